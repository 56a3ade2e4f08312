"""Scheduled runs on Apache Airflow 2.x (the ``airflow`` extra: ``pip install .[airflow]``).

``build_dag()`` turns the one ``create_pipeline()`` into an Airflow DAG with a schedule
(daily by default, or any cron expression), ``max_active_runs=1`` so two scheduled runs
never overlap, task retries, and catch-up off. Each TFX node is one Airflow task that
launches that node of the compiled pipeline (its IR) with TFX's portable launcher, the
one ``LocalDagRunner`` uses, under the DAG run's id as the pipeline run id
(``launch_node``). TFX's own ``AirflowDagRunner`` drives the older, non-IR component
launcher, which cannot run resolver functions (``Unsupported Channel type:
ResolvedChannel``), so it cannot run the span pipeline's window and drift baseline.

``render_dag_file()`` writes the small DAG module an Airflow deployment puts in its
``dags/`` folder (``imdb-tfx schedule airflow``). It holds the pipeline's arguments and its
task graph, so that parsing it, which Airflow's scheduler does every 30 s, imports neither
TFX nor TensorFlow (Airflow's best practices: no expensive top-level code); each task
compiles the pipeline when it runs.

ML Metadata: SQLite under the output directory by default; PostgreSQL or MySQL when the
Airflow worker's environment names a server (``IMDB_TFX_MLMD_POSTGRES_*`` or
``IMDB_TFX_MLMD_MYSQL_*``, checked at parse time, read by each task:
``pipeline.metadata_store``). Credentials are never written into the DAG file and never
logged."""

import datetime
import os
import pprint
from collections.abc import Mapping, Sequence
from typing import Any

from models.hparams import HParams
from pipeline import beam_profiles, code_version, metadata_store, tfx_fixes
from pipeline.layout import PIPELINE_NAME, UNLABELLED_SPLIT, OutputPaths, SpanInput

DEFAULT_SCHEDULE = "@daily"
DEFAULT_START_DATE = datetime.datetime(2026, 1, 1)
DEFAULT_RETRY_DELAY_SECONDS = 300.0


def airflow_dag_config(
  schedule: str = DEFAULT_SCHEDULE,
  retries: int = 2,
  retry_delay_seconds: float = DEFAULT_RETRY_DELAY_SECONDS,
  start_date: datetime.datetime = DEFAULT_START_DATE,
) -> dict[str, Any]:
  """Arguments of ``airflow.models.DAG``: the schedule (cron expression or preset),
  ``max_active_runs=1`` (runs never overlap: they share one pipeline root and MLMD),
  ``catchup=False`` (no backfill of missed intervals) and task retries,
  ``retry_delay_seconds`` apart.

  Raises:
    ValueError: an empty schedule, or a negative retry count or delay.
  """
  if not schedule.strip():
    raise ValueError("the schedule must be a cron expression or an Airflow preset")
  if retries < 0:
    raise ValueError(f"retries must be >= 0, got {retries}")
  if retry_delay_seconds < 0:
    raise ValueError(f"the retry delay must be >= 0 seconds, got {retry_delay_seconds}")
  return {
    "schedule": schedule,
    "start_date": start_date,
    "max_active_runs": 1,
    "catchup": False,
    "default_args": {
      "retries": retries,
      "retry_delay": datetime.timedelta(seconds=retry_delay_seconds),
    },
  }


def pipeline_arguments(
  *,
  output_dir: str,
  hparams: Mapping[str, Any] | None = None,
  train_split: str = "train",
  test_split: str = "test",
  eval_percent: int = 10,
  unlabelled_split: str = UNLABELLED_SPLIT,
  tfds_data_dir: str | None = None,
  download: bool = False,
  min_accuracy: float = 0.85,
  max_accuracy_drop: float = 0.01,
  behaviour_thresholds: Mapping[str, float] | None = None,
  beam_args: Sequence[str] = (),
  spans: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
  """The arguments a DAG's tasks build ``create_pipeline()`` from, checked, as literals.

  Args:
    output_dir: holds ``pipeline_root/``, ``serving_model/`` and (SQLite) MLMD.
    hparams: ``HParams`` overrides, as ``imdb-tfx run --hparam``.
    beam_args: Beam options over the ``direct`` profile's (``pipeline.beam_profiles``).
    spans: ``SpanInput``'s fields, when new reviews arrive as spans: each scheduled run
      ingests the newest span (with none new, every component is cached).
    The rest: as ``create_pipeline()``.

  Raises:
    ValueError: bad hyperparameters or span options.
  """
  HParams.from_custom_config({"hparams": dict(hparams or {})})
  if spans:
    SpanInput(**spans)
  return dict(
    output_dir=os.path.abspath(output_dir),
    hparams=dict(hparams or {}),
    train_split=train_split,
    test_split=test_split,
    eval_percent=eval_percent,
    unlabelled_split=unlabelled_split,
    tfds_data_dir=tfds_data_dir,
    download=download,
    min_accuracy=min_accuracy,
    max_accuracy_drop=max_accuracy_drop,
    behaviour_thresholds=dict(behaviour_thresholds) if behaviour_thresholds is not None else None,
    beam_args=list(beam_args),
    spans=dict(spans) if spans else None,
  )


def build_dag(
  *,
  schedule: str = DEFAULT_SCHEDULE,
  retries: int = 2,
  retry_delay_seconds: float = DEFAULT_RETRY_DELAY_SECONDS,
  environ: Mapping[str, str] = os.environ,
  nodes: Mapping[str, Sequence[str]] | None = None,
  **pipeline_kwargs: Any,
):
  """The Airflow DAG (``dag_id`` ``imdb_sentiment``) running ``create_pipeline()``: a claim
  task, then a task per node of the pipeline.

  Args:
    schedule: cron expression (``"0 3 * * *"``) or Airflow preset (``"@daily"``).
    retries: how often Airflow retries a failed task, ``retry_delay_seconds`` apart.
    environ: the environment whose ``IMDB_TFX_MLMD_*`` variables are checked here; each
      task reads its worker's own.
    nodes: the pipeline's task graph (``pipeline_nodes``), as the DAG file holds it, so
      that parsing the DAG imports neither TFX nor TensorFlow; None compiles the pipeline
      for it (seconds, and TFX's imports).
    pipeline_kwargs: ``pipeline_arguments``'s (``output_dir`` is required).

  Raises:
    ValueError: bad hyperparameters, schedule or MLMD environment, or no ``output_dir``.
  """
  arguments = pipeline_arguments(**pipeline_kwargs)
  if not os.path.isdir(arguments["output_dir"]):
    # Not created here: a mistyped or unmounted directory would silently start a new,
    # empty pipeline whose first model is pushed without a baseline.
    raise ValueError(
      f"the DAG's output directory {arguments['output_dir']} does not exist: create it, or "
      "write the DAG again with imdb-tfx schedule airflow --output-dir DIR"
    )
  metadata_store.connection_config(arguments["output_dir"], environ)  # a bad one raises
  if nodes is None:
    nodes = pipeline_nodes(compile_pipeline(_pipeline(arguments, environ)))
  dag_config = airflow_dag_config(schedule, retries, retry_delay_seconds)
  dag = _dag_of_nodes(nodes, arguments, dag_config)
  add_claim_task(dag, arguments["output_dir"])
  return dag


def _pipeline(arguments: Mapping[str, Any], environ: Mapping[str, str]):
  """``create_pipeline()`` on ``build_dag``'s arguments, ML Metadata as ``environ`` names it
  (imports TFX)."""
  from pipeline.pipeline import create_pipeline

  paths = OutputPaths(arguments["output_dir"])
  spans = arguments["spans"]
  # The rest of pipeline_arguments' are create_pipeline's own, under the same names.
  forwarded = {
    k: v for k, v in arguments.items() if k not in ("output_dir", "hparams", "beam_args", "spans")
  }
  return create_pipeline(
    pipeline_root=paths.pipeline_root,
    serving_model_dir=paths.serving_model_dir,
    metadata_connection_config=metadata_store.connection_config(paths.output_dir, environ),
    pipeline_name=PIPELINE_NAME,
    hparams=HParams.from_custom_config({"hparams": arguments["hparams"]}),
    beam_pipeline_args=beam_profiles.beam_args_for("direct", extra=arguments["beam_args"]),
    spans=SpanInput(**spans) if spans else None,
    code_versions=code_version.code_versions(),
    **forwarded,
  )


def compile_pipeline(pipeline):
  """The pipeline's IR (``pipeline_pb2.Pipeline``), compiled as ``LocalDagRunner.run``
  compiles it; its nodes are in topological order."""
  from tfx.dsl.compiler import compiler

  return compiler.Compiler().compile(pipeline)


def pipeline_nodes(ir) -> dict[str, list[str]]:
  """The task graph of the pipeline IR ``ir``: node id -> the ids of the nodes it reads from
  (sorted), in the IR's topological order."""
  return {n.pipeline_node.node_info.id: sorted(n.pipeline_node.upstream_nodes) for n in ir.nodes}


def _dag_of_nodes(
  nodes: Mapping[str, Sequence[str]], arguments: Mapping[str, Any], dag_config: Mapping[str, Any]
):
  """An ``airflow.models.DAG`` (``dag_id`` the pipeline's name) with one task per node,
  each downstream of the nodes it reads from, each launching its node (``launch_node``)."""
  import functools

  from airflow.models import DAG
  from airflow.operators.python import PythonOperator

  dag = DAG(dag_id=PIPELINE_NAME, **dag_config)
  tasks = {}
  for node_id, upstream_ids in nodes.items():
    tasks[node_id] = PythonOperator(
      task_id=node_id,
      # The arguments ride in the callable, not in op_kwargs: Airflow renders those.
      python_callable=functools.partial(launch_node, arguments, nodes, node_id),
      dag=dag,
    )
    for upstream in upstream_ids:
      tasks[upstream] >> tasks[node_id]
  return dag


def launch_node(
  arguments: Mapping[str, Any],
  nodes: Mapping[str, Sequence[str]],
  node_id: str,
  dag_run=None,
  **_,
) -> None:
  """Runs node ``node_id`` of the pipeline as one step of DAG run ``dag_run`` (Airflow
  passes it): compiles the pipeline of ``build_dag``'s ``arguments`` (ML Metadata as this
  worker's environment names it), makes the DAG run's id the pipeline run id, so the nodes
  of one DAG run share one MLMD pipeline run, and lets TFX's portable launcher resolve the
  node's inputs, check the cache, run the executor and publish its outputs, as
  ``LocalDagRunner`` does for each node.

  Raises:
    RuntimeError: the pipeline compiled here is not the DAG's ``nodes`` (the project
      changed since the DAG file was written).
    whatever the node's driver or executor raises (the task fails; Airflow retries it).
  """
  from tfx.dsl.compiler import constants
  from tfx.orchestration import metadata
  from tfx.orchestration.local import runner_utils
  from tfx.orchestration.portable import launcher, runtime_parameter_utils

  pipeline = compile_pipeline(_pipeline(arguments, os.environ))
  compiled = pipeline_nodes(pipeline)
  if compiled != {k: list(v) for k, v in nodes.items()}:
    raise RuntimeError(
      f"the pipeline's nodes are now {compiled}, not the DAG's {dict(nodes)}: the project "
      "changed since the DAG file was written; write it again with imdb-tfx schedule airflow"
    )
  runtime_parameter_utils.substitute_runtime_parameter(
    pipeline, {constants.PIPELINE_RUN_ID_PARAMETER_NAME: dag_run.run_id}
  )
  deployment = runner_utils.extract_local_deployment_config(pipeline)
  store = deployment.metadata_connection_config
  connection = getattr(store, store.WhichOneof("connection_config"))
  [node] = [n.pipeline_node for n in pipeline.nodes if n.pipeline_node.node_info.id == node_id]
  node_launcher = launcher.Launcher(
    pipeline_node=node,
    mlmd_connection=metadata.Metadata(connection),
    pipeline_info=pipeline.pipeline_info,
    pipeline_runtime_spec=pipeline.runtime_spec,
    executor_spec=runner_utils.extract_executor_spec(deployment, node_id),
    custom_driver_spec=runner_utils.extract_custom_driver_spec(deployment, node_id),
  )
  with tfx_fixes.workarounds():  # TFX and ML Metadata defects
    node_launcher.launch()


CLAIM_TASK_ID = "claim_output_dir"
_LEASE_PREFIX = "Airflow DAG run "


def lease_command(dag_run) -> str:
  """How a DAG run names itself on the output directory's lease."""
  return f"{_LEASE_PREFIX}{dag_run.dag_id}/{dag_run.run_id}"


def add_claim_task(dag, output_dir: str):
  """Adds the task every other task of ``dag`` waits for: it takes the lease on
  ``output_dir`` (``pipeline.run_lock.take_lease``) for the DAG run, waiting while an
  ``imdb-tfx run`` holds the directory. The report task, last, releases it. Returns it.
  """
  from airflow.operators.python import PythonOperator

  roots = [task for task in dag.tasks if not task.upstream_list]
  claim = PythonOperator(
    task_id=CLAIM_TASK_ID,
    python_callable=claim_output_dir,
    op_kwargs={"output_dir": output_dir},
    dag=dag,
  )
  for root in roots:
    claim >> root
  return claim


def claim_output_dir(output_dir: str, dag_run=None, poll_seconds: float = 10.0, **_) -> str:
  """The claim task's body: checks that ML Metadata can be opened, then takes the lease
  for ``dag_run`` (Airflow passes it), waiting as long as the directory is busy; a lease
  left by a DAG run that is no longer queued or running (its report task never ran) is
  stale and taken over. Returns the lease file.

  Raises:
    ConnectionError: ML Metadata's database server cannot be reached or refuses the
      credentials (``pipeline.metadata_store.check_connection``).
  """
  from pipeline import run_lock

  # A wrong password or an unreachable server stops the DAG run here, before anything is
  # written, with libpq's reason rather than ML Metadata's "connection pointer is NULL".
  metadata_store.check_connection(metadata_store.connection_config(output_dir))
  lease = run_lock.take_lease(
    output_dir,
    lease_command(dag_run),
    wait_seconds=None,
    poll_seconds=poll_seconds,
    on_wait=lambda holder: print(
      f"Waiting for {holder.describe() if holder else 'another run'} to finish", flush=True
    ),
    is_stale=_dag_run_ended,
  )
  print(f"Lease on {output_dir}: {lease.describe()}", flush=True)
  return lease.lease


def _dag_run_ended(lease) -> bool:
  """Whether the DAG run a lease names is no longer queued or running (False for a lease
  that names no DAG run)."""
  from airflow.models import DagRun
  from airflow.utils.state import DagRunState

  if not lease.command.startswith(_LEASE_PREFIX):
    return False
  dag_id, _, run_id = lease.command[len(_LEASE_PREFIX) :].partition("/")
  runs = DagRun.find(dag_id=dag_id, run_id=run_id)
  return not runs or runs[0].state not in (DagRunState.QUEUED, DagRunState.RUNNING)


_DAG_FILE = '''"""Airflow DAG for the IMDB sentiment TFX pipeline (written by `imdb-tfx schedule airflow`).

Put this file in Airflow's dags/ folder on workers where the project is installed with its
`airflow` extra. MLMD uses SQLite under the output directory unless the worker's
environment sets {postgres}HOST (and _PORT, _DATABASE, _USER, _PASSFILE or _PASSWORD)
or {mysql}HOST (and _PORT, _DATABASE, _USER, _PASSWORD).
"""

from core import environment

# tf.Transform 1.16 needs Keras 2: set before a task imports TensorFlow.
environment.configure()

from analysis.report.airflow_task import add_report_task  # noqa: E402 (after the environment)
from pipeline.airflow_dag import build_dag  # noqa: E402

ARGUMENTS = {kwargs}
# The pipeline's nodes and the nodes each reads from, compiled when this file was written:
# parsing this file (Airflow does, every few seconds) imports neither TFX nor TensorFlow.
# Each task compiles the pipeline again and refuses to run if its nodes changed.
NODES = {nodes}
DAG = build_dag(**ARGUMENTS, nodes=NODES)
# Every DAG run ends with its HTML report: OUTPUT_DIR/reports/<run id>/index.html.
add_report_task(DAG, ARGUMENTS["output_dir"])
'''


def render_dag_file(**kwargs: Any) -> str:
  """The DAG module's source: ``build_dag(**kwargs)`` at import time with the pipeline's
  task graph, compiled here (``pipeline_nodes``), then the report task after it
  (``analysis.report.airflow_task``). ``kwargs`` must be literals (strings, numbers, lists,
  dicts); they are checked before anything is compiled.

  Raises:
    ValueError: bad arguments (checked before anything is written).
  """
  dag_keys = ("schedule", "retries", "retry_delay_seconds")
  airflow_dag_config(**{k: kwargs[k] for k in dag_keys if k in kwargs})
  arguments = pipeline_arguments(**{k: v for k, v in kwargs.items() if k not in dag_keys})
  # The task graph does not depend on where ML Metadata is: compiled on SQLite's config.
  nodes = pipeline_nodes(compile_pipeline(_pipeline(arguments, environ={})))
  return _DAG_FILE.format(
    postgres=metadata_store.POSTGRES_ENV_PREFIX,
    mysql=metadata_store.MYSQL_ENV_PREFIX,
    kwargs=pprint.pformat(kwargs, indent=4, width=88, sort_dicts=True),
    nodes=pprint.pformat(nodes, indent=4, width=88, sort_dicts=False),
  )
