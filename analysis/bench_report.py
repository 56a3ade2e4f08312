"""``python -m analysis.bench_report``: how long the run report adds to a run.

Times (wall seconds), each ``--repeats`` times, on a run already in ``--output-dir``'s
ML Metadata store (default: its latest run):

* ``report``: ``analysis.report.page.write_run_report`` as ``imdb-tfx run`` calls it
  after the pipeline: the page, its figures and the history page;
* ``report_without_explanations``: the same with no attention heatmaps (the candidate
  SavedModel is then never loaded);
* ``explanations``: loading the candidate and scoring the golden-test reviews alone.

TensorFlow, TFMA, TFDV and TFX (its ``v1`` API, 6 s of imports on its own, which
``create_pipeline`` has loaded) are imported before the clock starts, as they are in a
run's process (``imdb-tfx run``, or an Airflow task that parsed the DAG) by the time the
report is written; each repeat writes into a fresh
temporary folder. Writes JSON (default ``outputs/bench/report.json``) with the runs,
their min/median/max, the machine and its load average. Wall-clock figures depend on
what else runs on the machine.
"""

import json
import os
import platform
import statistics
import tempfile
import time

import click

from core import environment
from pipeline import layout


def _timed(function) -> float:
  started = time.perf_counter()
  function()
  return round(time.perf_counter() - started, 3)


def _stats(values: list[float]) -> dict:
  return {
    "runs": values,
    "min": min(values),
    "median": statistics.median(values),
    "max": max(values),
  }


@click.command()
@click.option(
  "--output-dir", default="outputs", show_default=True, type=click.Path(file_okay=False)
)
@click.option("--run-id", default=None, help="The run to report on [default: the latest].")
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True)
@click.option(
  "--out",
  default=os.path.join("outputs", "bench", "report.json"),
  show_default=True,
  type=click.Path(dir_okay=False),
)
def main(output_dir, run_id, repeats, out):
  """Time the run report's generation on a finished run."""
  environment.configure()
  import tensorflow  # noqa: F401 (imported before the clock, as in a run's process)
  import tensorflow_data_validation  # noqa: F401
  import tensorflow_model_analysis  # noqa: F401
  from tfx import v1  # noqa: F401
  from tfx.orchestration import metadata

  from analysis.report import collect, page

  paths = layout.OutputPaths(os.path.abspath(output_dir))
  if not os.path.exists(paths.metadata_path):
    raise click.ClickException(f"no ML Metadata store at {paths.metadata_path}")
  config = metadata.sqlite_metadata_connection_config(paths.metadata_path)
  run_id = run_id or collect.run_ids(config, layout.PIPELINE_NAME)[-1]
  run = collect.collect_run(config, layout.PIPELINE_NAME, run_id)
  load_before = os.getloadavg()
  timings = {"report": [], "report_without_explanations": [], "explanations": []}
  with tempfile.TemporaryDirectory() as scratch:
    for repeat in range(repeats):
      for name, settings in (
        ("report", page.ReportSettings()),
        ("report_without_explanations", page.ReportSettings(explain=0)),
      ):
        reports = os.path.join(scratch, f"{name}-{repeat}")
        timings[name].append(
          _timed(
            lambda reports=reports, settings=settings: page.write_run_report(
              config, layout.PIPELINE_NAME, run_id, reports, settings
            )
          )
        )
      timings["explanations"].append(
        _timed(lambda: page.explain_golden_reviews(run, page.ReportSettings()))
      )
  result = {
    "run_id": run_id,
    "components_seconds": round(sum(n.seconds for n in run.nodes.values()), 1),
    "repeats": repeats,
    "seconds": {name: _stats(values) for name, values in timings.items()},
    "machine": {
      "cpus": os.cpu_count(),
      "platform": platform.platform(),
      "load_average_before": [round(x, 2) for x in load_before],
      "load_average_after": [round(x, 2) for x in os.getloadavg()],
    },
  }
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  with open(out, "w", encoding="utf-8") as f:
    json.dump(result, f, indent=2)
  median = result["seconds"]["report"]["median"]
  click.echo(f"report: median {median:.2f} s over {repeats} runs -> {out}")


if __name__ == "__main__":
  main()
