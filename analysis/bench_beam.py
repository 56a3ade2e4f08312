"""``python -m analysis.bench_beam`` (``make bench-beam``): StatisticsGen, Transform and the
Evaluator on a Beam deployment shaped like a cluster, against the DirectRunner.

The deployment runs on this machine, as a cluster runs it:

* Beam's portable job service (``apache_beam.runners.portability.local_job_service_main``),
  to which TFX's components submit their Beam pipelines (``--runner=PortableRunner
  --job_endpoint=localhost:PORT``);
* a pool of SDK worker processes started apart from it
  (``apache_beam.runners.worker.worker_pool_main``), from which the job service asks for
  workers (``--environment_type=EXTERNAL --environment_config=localhost:PORT``), as Flink
  and Spark clusters run Python workers (a pool beside each task manager). Beam 2.60's
  job service runs each job on one worker: it calls ``FnApiRunner.run_via_runner_api``,
  which never reads ``--direct_num_workers`` (only ``FnApiRunner.run_pipeline``, the
  DirectRunner's path, does), so the pool starts one worker per Beam job.

Steps:

1. The base run: the pipeline up to the Evaluator on the DirectRunner (multi-processing, a
   worker per core), on TFDS slices, with a one-epoch model (the Trainer is not what is
   measured).
2. For each of StatisticsGen, Transform and the Evaluator: a partial run of that node alone
   (TFX's ``RunOptions(from_nodes, to_nodes)``, cache off) on the DirectRunner, then one
   on the deployment. Both read the base run's input artifacts.
3. Each node's outputs on the deployment are compared with the DirectRunner's, by what
   they hold (``analysis.artifact_diff``).

Writes JSON (default ``outputs/bench/beam_external.json``): per node its seconds on each
(MLMD's execution times: registration to last update), how many SDK workers the pool
started, and its outputs compared: the deployment's with the DirectRunner's partial run's,
and each with the base run's (which side differs, when they do); the settings and the
machine. Wall-clock figures depend on the
machine and what else runs on it.
"""

import contextlib
import json
import os
import platform
import socket
import subprocess
import sys
import time

import click

from core import environment
from pipeline.beam_profiles import BeamSettings, beam_args_for, default_beam_pipeline_args

NODES = ("StatisticsGen", "Transform", "Evaluator")
# Outputs compared by analysis.artifact_diff.differences. Left out: Transform's analyzer
# cache (its keys embed the input artifact's path) and its TransformGraph, compared by
# transform_graph_differences; its statistics outputs stay empty (disable_statistics).
COMPARED = {
  "StatisticsGen": ("statistics",),
  "Transform": ("transformed_examples",),
  "Evaluator": ("evaluation", "blessing"),
}
HPARAMS = {"epochs": 1, "word2vec_epochs": 0}
# What worker_pool_main logs for each SDK worker it starts.
WORKER_STARTED = "Starting worker with command"


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, what: str, timeout: float = 120) -> None:
  """Returns once ``port`` accepts connections.

  Raises:
    click.ClickException: ``process`` exited, or the port stayed closed for ``timeout`` s.
  """
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    if process.poll() is not None:
      raise click.ClickException(f"{what} exited with status {process.returncode}")
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
      return
    time.sleep(0.5)
  raise click.ClickException(f"{what} did not listen on port {port} within {timeout} s")


@contextlib.contextmanager
def beam_deployment(log_dir: str):
  """Starts the job service and the worker pool (module docstring), each in a session of
  its own logging to ``log_dir``; yields the Beam options that submit to them, then stops
  both (and the workers they started).

  Raises:
    click.ClickException: either did not start.
  """
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  # The pool starts each worker as `python -c ...` (worker_pool_main): this Python, as in an
  # activated virtual environment, with the project importable.
  env = {
    **os.environ,
    "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]),
    "PYTHONPATH": os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")])),
  }
  pool_port, job_port = _free_port(), _free_port()
  commands = {
    "worker_pool": ["apache_beam.runners.worker.worker_pool_main", f"--service_port={pool_port}"],
    "job_service": ["apache_beam.runners.portability.local_job_service_main", f"--port={job_port}"],
  }
  processes = {}
  try:
    for name, (module, *args) in commands.items():
      with open(os.path.join(log_dir, f"{name}.log"), "ab") as log:
        processes[name] = subprocess.Popen(
          [sys.executable, "-m", module, *args],
          stdout=log,
          stderr=subprocess.STDOUT,
          env=env,
          cwd=repo,
          start_new_session=True,
        )
    _wait_for_port(pool_port, processes["worker_pool"], "the worker pool")
    _wait_for_port(job_port, processes["job_service"], "the job service")
    yield beam_args_for(
      "portable",
      BeamSettings(
        endpoint=f"localhost:{job_port}",
        environment_type="EXTERNAL",
        environment_config=f"localhost:{pool_port}",
      ),
    )
  finally:
    for process in processes.values():
      with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, 15)
    for process in processes.values():
      try:
        process.wait(timeout=30)
      except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        process.wait()


def workers_started(log_dir: str) -> int:
  """How many SDK workers the pool has started (its log's lines)."""
  path = os.path.join(log_dir, "worker_pool.log")
  with open(path, encoding="utf-8", errors="replace") as f:
    return sum(WORKER_STARTED in line for line in f)


def _pipeline(output_dir: str, beam_args, train_split: str, test_split: str, enable_cache: bool):
  from models.hparams import HParams
  from pipeline.layout import OutputPaths
  from pipeline.pipeline import create_pipeline

  paths = OutputPaths(output_dir)
  return create_pipeline(
    pipeline_root=paths.pipeline_root,
    serving_model_dir=paths.serving_model_dir,
    metadata_connection_config=_connection(output_dir),
    hparams=HParams(**HPARAMS),
    train_split=train_split,
    test_split=test_split,
    min_accuracy=0.0,
    beam_pipeline_args=beam_args,
    enable_cache=enable_cache,
    last_node="Evaluator",
  )


def _connection(output_dir: str):
  """The bench's ML Metadata: SQLite in the output directory, whatever the environment
  names (``pipeline.metadata_store.connection_config`` with no server variables)."""
  from pipeline import metadata_store

  return metadata_store.connection_config(output_dir, environ={})


def _store(output_dir: str):
  from pipeline import mlmd_queries

  return mlmd_queries.open_store(_connection(output_dir))


def base_run_id(output_dir: str) -> str:
  """The id of the store's first pipeline run (the base run).

  Raises:
    RuntimeError: the store holds no pipeline run.
  """
  from pipeline import mlmd_queries

  runs = _store(output_dir).get_contexts_by_type(mlmd_queries.RUN_CONTEXT_TYPE)
  if not runs:
    raise RuntimeError(f"no pipeline run in {output_dir}")
  return min(runs, key=lambda c: c.id).name


def run_node(
  output_dir: str, node: str, beam_args, splits, base_run: str
) -> tuple[float, dict[str, str]]:
  """A partial run of ``node`` alone (TFX's RunOptions; cache off) with ``beam_args``, its
  inputs those of the pipeline run ``base_run``.

  Returns:
    ``(seconds, {output key: artifact URI})`` of its execution, from MLMD.

  Raises:
    RuntimeError: the node did not complete.
  """
  from tfx import v1 as tfx
  from tfx.orchestration import pipeline as pipeline_lib

  from pipeline import mlmd_queries
  from pipeline.layout import PIPELINE_NAME

  since = int(time.time() * 1000)
  tfx.orchestration.LocalDagRunner().run(
    _pipeline(output_dir, beam_args, *splits, enable_cache=False),
    run_options=pipeline_lib.RunOptions(
      from_nodes=[node], to_nodes=[node], base_pipeline_run_id=base_run
    ),
  )
  store = _store(output_dir)
  executions = mlmd_queries.node_executions(store, PIPELINE_NAME, node, since)
  if [mlmd_queries.state_name(e) for e in executions] != ["COMPLETE"]:
    raise RuntimeError(f"{node}: {[mlmd_queries.state_name(e) for e in executions]}")
  outputs = mlmd_queries.execution_outputs(store, executions[0].id)
  return mlmd_queries.execution_seconds(executions[0]), {k: v[0].uri for k, v in outputs.items()}


def _firsts(differences: dict[str, list[str]], count: int = 5) -> dict[str, list[str]]:
  """The first ``count`` differences of each output that has any, and how many in all."""
  return {k: [f"{len(v)} in all", *v[:count]] for k, v in differences.items() if v}


def node_outputs(output_dir: str, node: str) -> dict[str, str]:
  """``{output key: URI}`` of ``node``'s first execution (the base run's)."""
  from pipeline import mlmd_queries
  from pipeline.layout import PIPELINE_NAME

  store = _store(output_dir)
  [first, *_] = mlmd_queries.node_executions(store, PIPELINE_NAME, node, 0)
  return {k: v[0].uri for k, v in mlmd_queries.execution_outputs(store, first.id).items()}


def compare(node: str, direct: dict[str, str], deployed: dict[str, str], raw_examples) -> dict:
  """``{output key: differences}`` of ``node``'s outputs (``COMPARED``, and Transform's
  TransformGraph)."""
  from analysis import artifact_diff

  found = {key: artifact_diff.differences(direct[key], deployed[key]) for key in COMPARED[node]}
  if node == "Transform":
    found["transform_graph"] = artifact_diff.transform_graph_differences(
      direct["transform_graph"], deployed["transform_graph"], raw_examples
    )
  return found


def raw_test_examples(output_dir: str, count: int = 64) -> list[bytes]:
  """Serialized raw test-split examples of the base run, to apply TransformGraphs to."""
  import glob

  import tensorflow as tf

  from pipeline.layout import OutputPaths

  pattern = os.path.join(
    OutputPaths(output_dir).pipeline_root, "ImdbExampleGen", "examples", "*", "Split-test", "*"
  )
  records = tf.data.TFRecordDataset(sorted(glob.glob(pattern)), compression_type="GZIP")
  return [bytes(r) for r in records.take(count).as_numpy_iterator()]


@click.command()
@click.option("--out-dir", default="outputs/bench/beam", show_default=True, help="Work folder.")
@click.option("--train-split", default="train", show_default=True)
@click.option("--test-split", default="test", show_default=True)
@click.option("--output", default="outputs/bench/beam_external.json", show_default=True)
def main(out_dir, train_split, test_split, output):
  """The data components and the Evaluator on the DirectRunner and on a job service with
  an external worker pool (module docstring)."""
  environment.configure()
  from tfx import v1 as tfx

  if os.path.exists(out_dir):
    raise click.ClickException(f"{out_dir} exists: remove it, or choose another --out-dir")
  output_dir, log_dir = os.path.join(out_dir, "pipeline"), os.path.join(out_dir, "logs")
  for directory in (output_dir, log_dir):  # output_dir holds ML Metadata's SQLite file
    os.makedirs(directory)
  splits = (train_split, test_split)
  direct_args = default_beam_pipeline_args()
  started = time.monotonic()
  tfx.orchestration.LocalDagRunner().run(_pipeline(output_dir, direct_args, *splits, True))
  base_seconds = round(time.monotonic() - started, 1)
  raw = raw_test_examples(output_dir)
  base_run = base_run_id(output_dir)
  base_outputs = {node: node_outputs(output_dir, node) for node in NODES}
  nodes = {}
  with beam_deployment(log_dir) as deployed_args:
    for node in NODES:
      direct_s, direct_out = run_node(output_dir, node, direct_args, splits, base_run)
      before = workers_started(log_dir)
      deployed_s, deployed_out = run_node(output_dir, node, deployed_args, splits, base_run)
      differences = compare(node, direct_out, deployed_out, raw)
      # Against the base run too: which side differs when the two partial runs do.
      deployed_vs_base = compare(node, base_outputs[node], deployed_out, raw)
      direct_vs_base = compare(node, base_outputs[node], direct_out, raw)
      nodes[node] = {
        "direct_s": round(direct_s, 1),
        "deployed_s": round(deployed_s, 1),
        "sdk_workers_started": workers_started(log_dir) - before,
        "outputs_equal": not any(differences.values()),
        "differences": _firsts(differences),
        "deployed_equal_to_base_run": not any(deployed_vs_base.values()),
        "direct_equal_to_base_run": not any(direct_vs_base.values()),
        "direct_vs_base_differences": _firsts(direct_vs_base),
      }
      click.echo(f"{node}: {nodes[node]}")
  result = {
    "what": "StatisticsGen, Transform and Evaluator: DirectRunner vs portable job service "
    "with an EXTERNAL SDK worker pool (analysis.bench_beam)",
    "settings": {
      "train_split": train_split,
      "test_split": test_split,
      "hparams": HPARAMS,
      "direct_args": direct_args,
      "deployed_args": [a for a in deployed_args if "localhost" not in a],
    },
    "base_run_s": base_seconds,
    "nodes": nodes,
    "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
  }
  os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
  with open(output, "w", encoding="utf-8") as f:
    json.dump(result, f, indent=2)
  click.echo(f"written: {output}")
  if not all(n["outputs_equal"] for n in nodes.values()):
    raise click.ClickException("outputs differ between the runners (see the JSON)")


if __name__ == "__main__":
  main()
