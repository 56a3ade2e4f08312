"""The scheduled deployment for real (deploy/airflow/airflow.sh): PostgreSQL started by the
script, Airflow's metadata database and ML Metadata on it, Airflow's scheduler with the
LocalExecutor running the DAG on arriving spans. Checked through the Airflow CLI (DAG run
states) and ML Metadata on PostgreSQL (what each run executed, cached and pushed).

Run 1 is the scheduler's own scheduled run (the DAG is unpaused at creation and its latest
interval is due); runs 2 and 3 are triggered with ``airflow dags trigger``, which the
scheduler executes as it does a scheduled run, so the test controls when span 2 arrives.
Faults are injected while a Trainer trains: PostgreSQL restarts during run 1, and ML
Metadata's database then refuses connections until the task has failed (its retry
succeeds); and the scheduler's whole session is SIGKILLed during
run 2 (``airflow.sh up`` starts it again, and it runs the orphaned task anew, on fresh
output directories). Before run 3 the scheduler process alone exits, and the supervisor
``airflow.sh`` runs it under starts it again. Run 3 finds nothing new: everything is cached
and nothing pushed.
"""

import functools
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import psycopg2
import pytest
from click.testing import CliRunner
from ml_metadata import metadata_store as mlmd
from ml_metadata.proto import metadata_store_pb2

from cli import main as cli
from pipeline import layout, metadata_store, mlmd_queries, run_lock
from pipeline.layout import PIPELINE_NAME, OutputPaths

pytestmark = pytest.mark.e2e

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "deploy", "airflow", "airflow.sh")
DAG_ID = "imdb_sentiment"
TINY = [
  "--epochs=1",
  "--hparam=vocab_size=1000",
  "--hparam=max_length=48",
  "--hparam=word2vec_epochs=0",
  "--hparam=bigram_buckets=0",
  "--hparam=batch_size=32",
  # Tiny spans: Beam in this process, not a worker process per core importing TensorFlow.
  "--beam-arg=--direct_running_mode=in_memory",
  "--beam-arg=--direct_num_workers=1",
]
STATES = metadata_store_pb2.Execution.State
# What TFX's launcher logs as it starts a component's executor.
TRAINING = "Going to run a new execution"


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


class Deployment:
  """``airflow.sh`` on a temporary output directory, and the airflow CLI on it."""

  def __init__(self, output_dir):
    self.output_dir = str(output_dir)
    self.base = os.path.join(self.output_dir, "airflow")
    self.env = {
      **os.environ,
      "OUTPUT_DIR": self.output_dir,
      "AIRFLOW_PG_PORT": str(_free_port()),
      "AIRFLOW_WEB_PORT": "0",  # the webserver is not what this test checks
      "VENV_BIN": os.path.dirname(sys.executable),
      # A restarted scheduler takes over the tasks of one silent for 10 s (Airflow's
      # default: 30 s), and looks for such tasks every 10 s.
      "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD": "10",
      "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "10",
    }

  def script(self, *args, timeout=600):
    return subprocess.run(
      ["bash", SCRIPT, *args], env=self.env, capture_output=True, text=True, timeout=timeout
    )

  @functools.cached_property
  def airflow_env(self) -> dict:
    """The environment ``env.sh`` sets, for the airflow CLI and MLMD (read once: ``up``
    writes it, and nothing changes it after)."""
    out = subprocess.run(
      ["bash", "-c", f"source {self.base}/env.sh && env -0"],
      env=self.env,
      capture_output=True,
      check=True,
    ).stdout
    return dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)

  def airflow(self, *args) -> str:
    result = subprocess.run(
      [os.path.join(os.path.dirname(sys.executable), "airflow"), *args],
      env=self.airflow_env,
      capture_output=True,
      text=True,
      timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout

  def dag_runs(self) -> list[dict]:
    out = self.airflow("dags", "list-runs", "-d", DAG_ID, "-o", "json")
    # The table is one line; log lines of the DAG's imports may come before it.
    [table] = [line for line in out.splitlines() if line.startswith(("[{", "[]"))]
    return sorted(json.loads(table), key=lambda r: r["start_date"] or "")

  def ended_runs(self) -> int:
    """How many of the DAG's runs have ended (success or failed), read from Airflow's
    database: polling with the CLI would start a Python process importing Airflow (about
    3 s of CPU) every time, beside the tasks."""
    with (
      psycopg2.connect(
        host="127.0.0.1",
        port=self.env["AIRFLOW_PG_PORT"],
        dbname="airflow",
        user="airflow",
        passfile=self.airflow_env["PGPASSFILE"],
      ) as connection,
      connection.cursor() as cursor,
    ):
      cursor.execute(
        "SELECT count(*) FROM dag_run WHERE dag_id = %s AND state IN ('success', 'failed')",
        (DAG_ID,),
      )
      [(count,)] = cursor.fetchall()
    connection.close()
    return count

  def wait_for_runs(self, count: int, timeout: float) -> None:
    """Returns once ``count`` of the DAG's runs have ended."""
    deadline = time.monotonic() + timeout
    while self.ended_runs() < count:
      if time.monotonic() > deadline:
        raise AssertionError(f"{count} DAG runs did not end in {timeout} s: {self.dag_runs()}")
      time.sleep(1)

  def wait_for_lease(self, timeout: float):
    """The output directory's lease once a DAG run's claim task has taken it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
      lease = run_lock.read_lease(self.output_dir)
      if lease is not None:
        return lease
      time.sleep(1)
    raise AssertionError(f"no lease on {self.output_dir} after {timeout} s")

  def wait_for_task_log(self, run_glob: str, task_id: str, text: str, timeout: float) -> str:
    """The log file of ``task_id``'s first try in the DAG run matching ``run_glob`` once it
    holds ``text``."""
    pattern = os.path.join(
      self.base, "logs", f"dag_id={DAG_ID}", f"run_id={run_glob}", f"task_id={task_id}", "*.log"
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
      for path in sorted(glob.glob(pattern)):
        with open(path, encoding="utf-8", errors="replace") as f:
          if text in f.read():
            return path
      time.sleep(0.5)
    raise AssertionError(f"no {task_id} log with {text!r} after {timeout} s: {self.logs()}")

  def attempts(self, run_id: str, task_id: str) -> int:
    """How many tries of ``task_id`` the DAG run ``run_id`` started (Airflow writes a log
    file per try)."""
    folder = os.path.join(
      self.base, "logs", f"dag_id={DAG_ID}", f"run_id={run_id}", f"task_id={task_id}"
    )
    return len(glob.glob(os.path.join(folder, "attempt=*.log")))

  def postgres(self, *args) -> None:
    """``postgres.sh`` on the deployment's server (``start`` also needs the port)."""
    script = os.path.join(ROOT, "deploy", "airflow", "postgres.sh")
    folder = os.path.join(self.base, "postgres")
    subprocess.run(["bash", script, args[0], folder, *args[1:]], env=self.env, check=True)

  def mlmd_connections(self, allowed: bool) -> None:
    """Lets ML Metadata's database take connections, or refuses them and drops those open
    (Airflow's database, on the same server, stays up)."""
    sql = f"ALTER DATABASE imdb_tfx_mlmd ALLOW_CONNECTIONS {str(allowed).lower()};"
    if not allowed:
      sql += (
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'imdb_tfx_mlmd';"
      )
    self.postgres("psql", self.env["AIRFLOW_PG_PORT"], "-c", sql)

  def kill_scheduler(self) -> None:
    """SIGKILL to every process of the scheduler's session: the scheduler, its executor
    and the tasks it runs, as a crash of the machine would stop them."""
    session = self.scheduler_session()
    subprocess.run(["pkill", "-KILL", "-s", str(session)], check=False)
    deadline = time.monotonic() + 60
    while subprocess.run(["pgrep", "-s", str(session)], capture_output=True).returncode == 0:
      assert time.monotonic() < deadline, "the scheduler's processes outlived SIGKILL"
      time.sleep(0.5)

  def scheduler_session(self) -> int:
    """The pid of ``airflow.sh supervise``, the scheduler session's leader (its pid file)."""
    with open(os.path.join(self.base, "run", "scheduler.pid")) as f:
      return int(f.read())

  def scheduler_processes(self) -> tuple[int, list[int]]:
    """The supervisor's pid and the pids of its children that run ``scheduler.py``."""
    supervisor = self.scheduler_session()
    children = subprocess.run(
      ["pgrep", "-P", str(supervisor), "-f", "scheduler.py"], capture_output=True, text=True
    ).stdout.split()
    return supervisor, [int(pid) for pid in children]

  def exit_scheduler(self, timeout: float = 180) -> None:
    """SIGTERM to the scheduler process alone, which exits as it does when its database
    goes away; returns once its supervisor has started a new one."""
    supervisor, [scheduler] = self.scheduler_processes()
    os.kill(scheduler, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while True:
      now_supervisor, schedulers = self.scheduler_processes()
      assert now_supervisor == supervisor
      if schedulers and schedulers != [scheduler]:
        return
      assert time.monotonic() < deadline, f"no new scheduler after {timeout} s: {self.logs()}"
      time.sleep(0.5)

  def logs(self) -> str:
    path = os.path.join(self.base, "logs", "scheduler.log")
    with open(path, encoding="utf-8", errors="replace") as f:
      return f.read()[-5000:]


def _executions_by_run(store) -> dict[str, dict[str, metadata_store_pb2.Execution]]:
  """Run id (the DAG run's) -> node id -> its execution in that run."""
  node_of = mlmd_queries.executions_by_node(store, PIPELINE_NAME)
  return {
    run_id: {node_of[e.id]: e for e in executions}
    for run_id, executions in mlmd_queries.run_executions(store, PIPELINE_NAME, node_of).items()
  }


INPUT, OUTPUT = metadata_store_pb2.Event.INPUT, metadata_store_pb2.Event.OUTPUT


def _event_artifacts(store, execution, event_type) -> dict[str, list[int]]:
  """Key -> artifact ids of an execution's INPUT or OUTPUT events."""
  found = {}
  for event in store.get_events_by_execution_ids([execution.id]):
    if event.type == event_type:
      found.setdefault(event.path.steps[0].key, []).append(event.artifact_id)
  return found


def _input_spans(store, execution, key) -> list[int]:
  ids = [
    e.artifact_id
    for e in store.get_events_by_execution_ids([execution.id])
    if e.type == metadata_store_pb2.Event.INPUT and e.path.steps[0].key == key
  ]
  return sorted(a.properties["span"].int_value for a in store.get_artifacts_by_id(ids))


def test_scheduler_runs_arriving_spans_on_postgres(tmp_path, tfds_data_dir):
  spans = tmp_path / "spans"
  made = CliRunner().invoke(
    cli.main,
    [
      "spans",
      "make",
      "--out",
      str(spans),
      "--spans",
      "2",
      "--split",
      "train[:4%]",
      "--tfds-data-dir",
      tfds_data_dir,
    ],
  )
  assert made.exit_code == 0, made.output
  later = tmp_path / "span-2"
  shutil.move(spans / "span-2", later)  # span 2 arrives after the first run

  # Run as root, the script runs PostgreSQL as the `postgres` user, who cannot enter
  # pytest's tmp_path (its parent is mode 700): the deployment gets a folder it can.
  out = tempfile.mkdtemp(prefix="imdb-tfx-airflow-")
  os.chmod(out, 0o755)
  deployment = Deployment(out)
  up_args = [
    "--schedule=0 3 * * *",
    "--retries=1",
    "--retry-delay=2",
    f"--input-base={spans}",
    "--test-split=test[:1%]",
    f"--tfds-data-dir={tfds_data_dir}",
    "--min-accuracy=0",
    "--max-accuracy-drop=1",
    "--behaviour-threshold=all=none",
    *TINY,
  ]
  up = deployment.script("up", *up_args)
  try:
    assert up.returncode == 0, up.stderr[-3000:]
    # The DAG is unpaused at creation: the scheduler starts the run of its latest interval.
    # Faults while run 1's Trainer trains: PostgreSQL (Airflow's and ML Metadata's
    # server) restarts, which TFX's launcher rides out (it connects anew for each step);
    # then ML Metadata's database refuses connections until the Trainer's first try has
    # failed to publish its model, and the retry succeeds.
    deployment.wait_for_task_log("scheduled__*", "Trainer", TRAINING, timeout=600)
    deployment.postgres("stop")
    deployment.postgres("start", deployment.env["AIRFLOW_PG_PORT"])
    deployment.mlmd_connections(allowed=False)
    deployment.wait_for_task_log("scheduled__*", "Trainer", "UP_FOR_RETRY", timeout=600)
    deployment.mlmd_connections(allowed=True)
    deployment.wait_for_runs(1, timeout=900)
    runs = deployment.dag_runs()
    assert [r["run_id"].split("__")[0] for r in runs] == ["scheduled"], runs
    shutil.move(later, spans / "span-2")
    deployment.airflow("dags", "trigger", DAG_ID)
    # While the DAG run holds the output directory, a run by hand is refused, naming it.
    lease = deployment.wait_for_lease(timeout=300)
    manual = subprocess.run(
      [
        os.path.join(os.path.dirname(sys.executable), "imdb-tfx"),
        *("run", "--output-dir", deployment.output_dir, "--input-base", str(spans)),
        "--no-report",
      ],
      env=deployment.airflow_env,
      capture_output=True,
      text=True,
      timeout=300,
    )
    assert manual.returncode == 1, manual.stdout + manual.stderr
    assert f"another run is using {deployment.output_dir}" in manual.stderr
    assert (
      lease.command in manual.stderr and "Airflow DAG run imdb_sentiment/manual__" in lease.command
    )
    # Fault: the scheduler and everything it started are killed while run 2's Trainer
    # trains; `up` starts the scheduler again, which takes the orphaned task over.
    deployment.wait_for_task_log("manual__*", "Trainer", TRAINING, timeout=600)
    deployment.kill_scheduler()
    # What the killed try had half written stays in its output directory (the newest
    # execution's): stand-in for a partial SavedModel, which the retry must not build on.
    model_dirs = glob.glob(os.path.join(deployment.output_dir, "pipeline_root/Trainer/model/*"))
    half_written = os.path.join(max(model_dirs, key=lambda d: int(os.path.basename(d))), "stale")
    with open(half_written, "w") as f:
      f.write("half-written")
    up = deployment.script("up", *up_args)
    assert up.returncode == 0, up.stderr[-3000:]
    deployment.wait_for_runs(2, timeout=900)
    # Fault: the scheduler process exits (as Airflow's does when PostgreSQL goes away under
    # it); airflow.sh's supervisor starts it again, and the new one executes run 3.
    deployment.exit_scheduler()
    assert "scheduler exited with status" in deployment.logs()
    deployment.airflow("dags", "trigger", DAG_ID)  # nothing new has arrived
    deployment.wait_for_runs(3, timeout=900)
    runs = deployment.dag_runs()
    assert [r["state"] for r in runs] == ["success"] * 3, (runs, deployment.logs())

    config = metadata_store.connection_config(deployment.output_dir, deployment.airflow_env)
    assert config.HasField("postgresql")
    store = mlmd.MetadataStore(config)
    by_run = _executions_by_run(store)
    first, second, third = (by_run[r["run_id"]] for r in runs)
    # Each fault cost the Trainer a try. The retry resumed the node's execution in the DAG
    # run (TFX's launcher reuses it) on fresh output directories, and published the model
    # the Evaluator judged.
    node_of = mlmd_queries.executions_by_node(store, PIPELINE_NAME)
    every_execution = mlmd_queries.run_executions(store, PIPELINE_NAME, node_of)
    for run, executions in zip(runs[:2], (first, second)):
      assert deployment.attempts(run["run_id"], "Trainer") == 2, run
      [trainer] = [e for e in every_execution[run["run_id"]] if node_of[e.id] == "Trainer"]
      assert trainer.last_known_state == STATES.COMPLETE
      model = _event_artifacts(store, trainer, OUTPUT)["model"]
      assert _event_artifacts(store, executions["Evaluator"], INPUT)["model"] == model
    [model] = store.get_artifacts_by_id(_event_artifacts(store, second["Trainer"], OUTPUT)["model"])
    assert model.uri == os.path.dirname(half_written) and not os.path.exists(half_written)
    assert _input_spans(store, first["Transform"], "examples") == [1]
    assert _input_spans(store, second["Transform"], "examples") == [1, 2]
    assert first["Pusher"].last_known_state == STATES.COMPLETE
    assert second["Pusher"].last_known_state == STATES.COMPLETE
    # Nothing new: run 3 resolves what run 2 did, so every component is cached and
    # nothing is pushed (pipeline.model_resolvers).
    components = set(layout.node_ids(curated_schema=True, pretraining=False, spans=True))
    components -= {layout.ARRIVAL_RESOLVER, layout.BASELINE_RESOLVER}
    assert {n: third[n].last_known_state for n in components} == dict.fromkeys(
      components, STATES.CACHED
    )
    versions = sorted(os.listdir(OutputPaths(deployment.output_dir).serving_model_dir))
    assert len(versions) == 2
    contexts = {c.name for c in store.get_contexts_by_type("pipeline")}
    assert contexts == {PIPELINE_NAME}
    assert run_lock.read_lease(deployment.output_dir) is None  # every report task released it
  finally:
    down = deployment.script("down")
  assert down.returncode == 0, down.stderr
  # Nothing the deployment started is left running, and its data stays.
  assert not os.path.exists(os.path.join(deployment.base, "run", "scheduler.pid"))
  assert not os.path.exists(os.path.join(deployment.base, "postgres", "data", "postmaster.pid"))
  assert os.path.exists(os.path.join(deployment.base, "postgres", "data", "PG_VERSION"))
  shutil.rmtree(out, ignore_errors=True)
