"""``imdb-tfx history``: the runs recorded in an output directory's ML Metadata store, a
run to a line (``pipeline.history``)."""

import dataclasses
import json

import click

from cli.console import RunConsole
from cli.options import past_runs_output_dir, past_runs_store
from pipeline import layout


@click.command()
@past_runs_output_dir
@click.option("--json", "as_json", is_flag=True, help="One JSON object per run instead.")
def history(output_dir, as_json):
  """Each run: the span ingested and the rows refused, the drift check, the window of
  spans trained on, the candidate's test accuracy, the blessing and the version pushed."""
  _, config = past_runs_store(output_dir)
  # TensorFlow's and TFMA's import and logging noise stays off the console.
  with RunConsole():
    from pipeline import history as history_lib

    records = history_lib.read_history(config, layout.PIPELINE_NAME)
  if as_json:
    for record in records:
      click.echo(json.dumps(dataclasses.asdict(record)))
  else:
    click.echo(history_lib.format_history(records))
