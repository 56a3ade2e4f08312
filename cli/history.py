"""``imdb-tfx history``: the runs recorded in an output directory's ML Metadata store, a
run to a line (``pipeline.history``)."""

import dataclasses
import json
import os

import click

from cli.console import RunConsole
from pipeline import layout


@click.command()
@click.option(
  "--output-dir",
  default="outputs",
  show_default=True,
  type=click.Path(file_okay=False),
  help="The --output-dir of imdb-tfx run (its metadata.sqlite is read).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per run instead.")
def history(output_dir, as_json):
  """Each run: the span ingested and the rows refused, the drift check, the window of
  spans trained on, the candidate's test accuracy, the blessing and the version pushed."""
  paths = layout.OutputPaths(os.path.abspath(output_dir))
  # Checked here: TFX's SQLite connection config creates the folder it names.
  if not os.path.exists(paths.metadata_path):
    raise click.ClickException(
      f"no ML Metadata store at {paths.metadata_path}: has imdb-tfx run --output-dir "
      f"{output_dir} run yet?"
    )
  # TensorFlow's and TFMA's import and logging noise stays off the console.
  with RunConsole():
    from tfx.orchestration import metadata

    from pipeline import history as history_lib

    records = history_lib.read_history(
      metadata.sqlite_metadata_connection_config(paths.metadata_path), layout.PIPELINE_NAME
    )
  if as_json:
    for record in records:
      click.echo(json.dumps(dataclasses.asdict(record)))
  else:
    click.echo(history_lib.format_history(records))
