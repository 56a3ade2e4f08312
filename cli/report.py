"""``imdb-tfx report``: rebuild the HTML report of a past run (or of every run) from the
output directory's ML Metadata store (``analysis.report``)."""

import os

import click

from cli.console import RunConsole
from cli.options import past_runs_output_dir, past_runs_store
from pipeline import layout


@click.command()
@click.argument("run_id", required=False)
@past_runs_output_dir
@click.option("--all", "all_runs", is_flag=True, help="Rebuild the report of every run.")
@click.option(
  "--explain",
  type=click.IntRange(min=0),
  default=4,
  show_default=True,
  help="Golden-test reviews shown with the candidate's attention (0: none).",
)
def report(run_id, output_dir, all_runs, explain):
  """Write OUTPUT_DIR/reports/RUN_ID/index.html (default: the latest run) and the history
  page OUTPUT_DIR/reports/index.html; prints the paths. The history page, and
  `imdb-tfx history --json`, give every run id."""
  paths, config = past_runs_store(output_dir)
  if run_id and all_runs:
    raise click.UsageError("give a RUN_ID or --all, not both")
  written = []
  # TensorFlow's and TFMA's import and logging noise stays off the console.
  with RunConsole():
    from analysis.report import collect, page
    from pipeline import metadata_store

    known = collect.run_ids(config, layout.PIPELINE_NAME)
    if not known:
      raise click.ClickException(f"no run in {metadata_store.describe(config)}")
    wanted = known if all_runs else [run_id or known[-1]]
    settings = page.ReportSettings(explain=explain)
    try:
      for wanted_id in wanted:
        written.append(
          page.write_run_report(
            config, layout.PIPELINE_NAME, wanted_id, paths.reports_dir, settings, history=False
          )
        )
      page.write_history_page(config, layout.PIPELINE_NAME, paths.reports_dir)
    except ValueError as e:
      raise click.ClickException(str(e)) from e
  for path in written:
    click.echo(path)
  click.echo(os.path.join(paths.reports_dir, page.INDEX))
