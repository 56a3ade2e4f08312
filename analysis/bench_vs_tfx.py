"""``python -m analysis.bench_vs_tfx`` (``make bench-vs-tfx``): our full run beside TFX's own
IMDB example, on the same machine, one after the other.

* The peer: ``tfx/examples/imdb`` read from the installed ``tfx`` wheel (its
  ``imdb_fetch_data.fetch_data``, ``imdb_pipeline_native_keras._create_pipeline`` and
  ``imdb_utils_native_keras``'s ``preprocessing_fn`` and ``run_fn``), with the settings
  its own comments recommend for the full dataset: the 50,000 labelled reviews (TFDS's
  train and test splits) as its CSV, its 9:1 hash split into train and eval, batch 64 for
  training and evaluation, 1,500 train and 800 eval steps, and a BinaryAccuracy threshold
  of 0.85; run by TFX's ``LocalDagRunner``. Those settings are set on what the example
  builds (its module's batch-size constants, through a three-line module file that
  imports it; the Trainer's ``train_args``/``eval_args``; the Evaluator's threshold), so
  none of its code is copied. Its accuracy is its Evaluator's, on its own eval split.
* Ours: ``imdb-tfx run`` with its defaults (what ``make run`` runs) into a fresh output
  directory; its accuracy is the golden TFDS test split's (25,000 reviews, never trained
  on), from the run summary.

Each runs as a child process. Wall seconds are the child's; CPU is the user + system
time of the child and every process it waited for (``getrusage(RUSAGE_CHILDREN)``),
divided by the wall time, in percent of one core (200 = both cores of a 2-core machine
busy throughout).

Writes JSON (default ``outputs/bench/pipeline_vs_tfx_example.json``): ``ours`` and
``peer``, each with ``wall_s``, ``cpu_percent`` and accuracy (``ours.test_accuracy``,
``peer.accuracy``), the settings and the machine; for ours also each component's seconds
(``components_s``) and, from a sampler of the run's process tree every 0.5 s against each
component's MLMD window, its CPU share and idle core-seconds (``components_cpu``): where
the cores sat idle.
"""

import glob
import json
import os
import platform
import resource
import sys

import click

from analysis.bench_scale import TreeSampler, measure_run, measured
from analysis.bench_spans import imdb_tfx_path
from core import environment
from pipeline.layout import OutputPaths

PEER_PACKAGE = "tfx.examples.imdb"
PEER_BATCH_SIZE = 64
PEER_TRAIN_STEPS = 1500
PEER_EVAL_STEPS = 800
PEER_THRESHOLD = 0.85
# The peer's module file: its own module, with the batch sizes its comments recommend.
PEER_MODULE = f"""\
import {PEER_PACKAGE}.imdb_utils_native_keras as peer
peer._TRAIN_BATCH_SIZE = peer._EVAL_BATCH_SIZE = {PEER_BATCH_SIZE}
from {PEER_PACKAGE}.imdb_utils_native_keras import preprocessing_fn, run_fn  # noqa
"""


def timed(
  command: list[str], log_path: str, cwd: str | None = None
) -> tuple[dict, TreeSampler, int]:
  """Runs ``command`` (output to ``log_path``) and measures it, sampling its process tree
  meanwhile (``analysis.bench_scale.measured``).

  Returns:
    ``({"exit_status", "wall_s", "cpu_s", "cpu_percent"}, the sampler, start in ms since
    the epoch)``; CPU counts the child and every process it waited for.
  """
  before = resource.getrusage(resource.RUSAGE_CHILDREN)
  status, wall, sampler, since_ms = measured(command, log_path, cwd)
  after = resource.getrusage(resource.RUSAGE_CHILDREN)
  cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
  figures = {
    "exit_status": status,
    "wall_s": round(wall, 1),
    "cpu_s": round(cpu, 1),
    "cpu_percent": round(100 * cpu / wall, 1),
  }
  return figures, sampler, since_ms


def component_cpu(output_dir: str, sampler: TreeSampler, since_ms: int) -> dict[str, dict]:
  """Where our run's cores sat idle: each component of the run that started at
  ``since_ms`` (ms since the epoch) in ``output_dir``, from MLMD's execution times and
  ``sampler``'s samples of the run's process tree.

  Returns:
    ``{node id: {"seconds", "cpu_percent", "idle_core_s"}}`` in execution order, where
    ``idle_core_s`` = seconds x cores - CPU seconds (None where no two samples fell in the
    component's window).
  """
  cores = os.cpu_count() or 1
  figures = {}
  for node, run in measure_run(output_dir, sampler, since_ms).items():
    seconds, percent = run["seconds"], run["cpu_percent"]
    idle = None if percent is None else round(seconds * (cores - percent / 100), 1)
    figures[node] = {"seconds": seconds, "cpu_percent": percent, "idle_core_s": idle}
  return figures


def _read_json(path: str) -> dict:
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def peer_pipeline(work_dir: str):
  """The peer's pipeline (module docstring) on ``work_dir/data/imdb.csv``."""
  import tensorflow_model_analysis as tfma
  from tfx.examples.imdb import imdb_pipeline_native_keras as peer
  from tfx.proto import trainer_pb2
  from tfx.utils import proto_utils

  module_file = os.path.join(work_dir, "peer_module.py")
  with open(module_file, "w", encoding="utf-8") as f:
    f.write(PEER_MODULE)
  pipeline = peer._create_pipeline(
    pipeline_name=peer._pipeline_name,
    pipeline_root=os.path.join(work_dir, "pipeline_root"),
    data_root=os.path.join(work_dir, "data"),
    module_file=module_file,
    serving_model_dir=os.path.join(work_dir, "serving_model"),
    metadata_path=os.path.join(work_dir, "metadata.db"),
    beam_pipeline_args=peer._beam_pipeline_args,
  )
  # TFX keeps proto parameters as JSON text in exec_properties.
  by_id = {c.id: c for c in pipeline.components}
  trainer_spec = by_id["Trainer"].exec_properties
  trainer_spec["train_args"] = proto_utils.proto_to_json(
    trainer_pb2.TrainArgs(num_steps=PEER_TRAIN_STEPS)
  )
  trainer_spec["eval_args"] = proto_utils.proto_to_json(
    trainer_pb2.EvalArgs(num_steps=PEER_EVAL_STEPS)
  )
  evaluator_spec = by_id["Evaluator"].exec_properties
  eval_config = proto_utils.json_to_proto(evaluator_spec["eval_config"], tfma.EvalConfig())
  [metric] = eval_config.metrics_specs[0].metrics
  metric.threshold.value_threshold.lower_bound.value = PEER_THRESHOLD
  evaluator_spec["eval_config"] = proto_utils.proto_to_json(eval_config)
  return pipeline


def peer_accuracy(work_dir: str) -> float:
  """The peer Evaluator's overall BinaryAccuracy (its eval split).

  Raises:
    FileNotFoundError: it wrote no evaluation.
  """
  import tensorflow_model_analysis as tfma

  [uri] = glob.glob(os.path.join(work_dir, "pipeline_root", "Evaluator", "evaluation", "*"))
  for metrics in tfma.load_metrics(uri):
    if not metrics.slice_key.single_slice_keys:
      for item in metrics.metric_keys_and_values:
        if item.key.name == "binary_accuracy":
          return item.value.double_value.value
  raise FileNotFoundError(f"no overall binary_accuracy in {uri}")


@click.group()
def cli():
  """Our full run beside TFX's IMDB example (module docstring)."""


@cli.command("peer")
@click.option("--work-dir", required=True)
def peer_command(work_dir):
  """Writes the peer's CSV with its own fetch_data, then runs its pipeline (one child)."""
  environment.configure()
  from tfx import v1 as tfx
  from tfx.examples.imdb import imdb_fetch_data

  os.makedirs(os.path.join(work_dir, "data"), exist_ok=True)
  os.chdir(work_dir)  # fetch_data writes ./data/imdb.csv
  imdb_fetch_data.fetch_data()
  tfx.orchestration.LocalDagRunner().run(peer_pipeline(work_dir))


@cli.command("run")
@click.option("--out-dir", default="outputs/bench/vs_tfx", show_default=True, help="Work folder.")
@click.option("--output", default="outputs/bench/pipeline_vs_tfx_example.json", show_default=True)
@click.option("--skip-ours", is_flag=True, help="The peer alone (to check its set-up).")
def run_command(out_dir, output, skip_ours):
  """Runs the peer, then ours, and writes the JSON."""
  environment.configure()
  if os.path.exists(out_dir):
    raise click.ClickException(f"{out_dir} exists: remove it, or choose another --out-dir")
  os.makedirs(out_dir)
  out_dir = os.path.abspath(out_dir)
  result = {"what": "imdb-tfx run (defaults) vs TFX's tfx/examples/imdb (analysis.bench_vs_tfx)"}
  peer_dir = os.path.join(out_dir, "peer")
  os.makedirs(peer_dir)
  peer, _, _ = timed(
    [sys.executable, "-m", "analysis.bench_vs_tfx", "peer", "--work-dir", peer_dir],
    os.path.join(out_dir, "peer.log"),
  )
  peer["accuracy"] = peer_accuracy(peer_dir) if peer["exit_status"] == 0 else None
  result["peer"] = peer
  click.echo(f"peer: {peer}")
  if not skip_ours:
    ours_dir = os.path.join(out_dir, "ours")
    ours, sampler, since_ms = timed(
      [imdb_tfx_path(), "run", "--output-dir", ours_dir], os.path.join(out_dir, "ours.log")
    )
    summary = _read_json(OutputPaths(ours_dir).summary_path) if ours["exit_status"] == 0 else {}
    ours["test_accuracy"] = (summary.get("metrics") or {}).get("binary_accuracy")
    ours["components_s"] = {c["node_id"]: c["seconds"] for c in summary.get("components", [])}
    if ours["exit_status"] == 0:
      ours["components_cpu"] = component_cpu(ours_dir, sampler, since_ms)
    result["ours"] = ours
    click.echo(f"ours: {ours}")
  result["settings"] = {
    "peer": {
      "reviews": "TFDS imdb_reviews train+test (50,000), 9:1 hash split",
      "batch_size": PEER_BATCH_SIZE,
      "train_steps": PEER_TRAIN_STEPS,
      "eval_steps": PEER_EVAL_STEPS,
      "accuracy_threshold": PEER_THRESHOLD,
      "runner": "LocalDagRunner",
    },
    "ours": "imdb-tfx run (defaults: make run)",
  }
  result["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform()}
  os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
  with open(output, "w", encoding="utf-8") as f:
    json.dump(result, f, indent=2)
  click.echo(f"written: {output}")


if __name__ == "__main__":
  cli()
