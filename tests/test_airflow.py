"""The Airflow DAG: it parses with the right schedule and guards, and `airflow dags test`
runs it end to end on a small slice; a second scheduled run of unchanged data is served
from the cache (checked through MLMD)."""

import os
import subprocess
import sys

import pytest
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from analysis.report.page import run_dir_name
from pipeline import airflow_dag, mlmd_queries, run_lock
from pipeline import metadata_store as metadata_store_lib
from pipeline.layout import PIPELINE_NAME, OutputPaths

ALL_NODES = {
  "ImdbExampleGen",
  "StatisticsGen",
  "SchemaGen",
  "ExampleValidator",
  "AnomaliesGate",
  "Transform",
  "EmbeddingTrainer",
  "Trainer",
  "latest_blessed_model_resolver",
  "Evaluator",
  "BehaviourValidator",
  "Pusher",
}
TINY = dict(
  vocab_size=500,
  max_length=32,
  embedding_dim=8,
  lstm_units=8,
  dense_units=8,
  epochs=1,
  batch_size=32,
)


def _dag_kwargs(output_dir, tfds_data_dir, **overrides):
  kwargs = dict(
    output_dir=str(output_dir),
    train_split="train[:2%]",
    test_split="test[:1%]",
    unlabelled_split="unsupervised[:1%]",
    min_accuracy=0.0,
    # A model of 2% of the data fails the default behaviour gates; they are tested apart.
    behaviour_thresholds={},
    hparams=TINY,
    tfds_data_dir=tfds_data_dir,
    schedule="0 3 * * *",
    retries=0,
    beam_args=["--direct_running_mode=in_memory", "--direct_num_workers=1"],
  )
  kwargs.update(overrides)
  return kwargs


def _airflow_env(home):
  env = dict(os.environ)
  env.update(
    {
      "AIRFLOW_HOME": str(home),
      "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
      "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
      "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
      "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "300",
      "TF_USE_LEGACY_KERAS": "1",
    }
  )
  return env


def _airflow(env, *args, timeout=900):
  airflow = os.path.join(os.path.dirname(sys.executable), "airflow")
  return subprocess.run(
    [airflow, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
  )


def test_dag_parses_with_schedule_and_guards(tmp_path):
  dag = airflow_dag.build_dag(
    output_dir=str(tmp_path), hparams=TINY, schedule="0 3 * * *", retries=3, environ={}
  )
  assert dag.dag_id == "imdb_sentiment"
  assert dag.max_active_runs == 1 and dag.catchup is False
  assert str(dag.timetable.summary) == "0 3 * * *"
  assert {t.task_id for t in dag.tasks} == ALL_NODES | {airflow_dag.CLAIM_TASK_ID}
  # Every component waits for the DAG run's lease on the output directory.
  assert [t.task_id for t in dag.tasks if not t.upstream_list] == [airflow_dag.CLAIM_TASK_ID]
  assert all(t.retries == 3 for t in dag.tasks)
  assert dag.get_task("Transform").upstream_task_ids >= {"SchemaGen", "AnomaliesGate"}
  assert dag.get_task("Evaluator").upstream_task_ids >= {"Trainer", "latest_blessed_model_resolver"}
  default = airflow_dag.build_dag(output_dir=str(tmp_path), environ={})
  assert default.timetable.summary in ("@daily", "0 0 * * *")  # Airflow expands the preset


def test_a_dag_for_a_missing_output_dir_refuses_to_parse(tmp_path):
  missing = tmp_path / "typo"
  with pytest.raises(ValueError, match=f"output directory {missing} does not exist"):
    airflow_dag.build_dag(output_dir=str(missing), environ={})
  assert not missing.exists()  # nothing written


def test_report_task_runs_last_whatever_the_pipeline_did(tmp_path):
  from analysis.report.airflow_task import REPORT_TASK_ID, add_report_task

  dag = airflow_dag.build_dag(output_dir=str(tmp_path), hparams=TINY, environ={})
  leaves = {t.task_id for t in dag.tasks if not t.downstream_list}
  report = add_report_task(dag, str(tmp_path))
  assert report.task_id == REPORT_TASK_ID and report.retries == 0
  assert report.trigger_rule == "all_done"
  assert report.upstream_task_ids == leaves and "Pusher" in leaves
  assert [t.task_id for t in dag.tasks if not t.downstream_list] == [REPORT_TASK_ID]


def test_dag_file_adds_the_report_task(tmp_path):
  source = airflow_dag.render_dag_file(output_dir=str(tmp_path), hparams=TINY)
  namespace = {}
  exec(compile(source, "imdb_sentiment.py", "exec"), namespace)
  dag = namespace["DAG"]
  assert {t.task_id for t in dag.tasks} == ALL_NODES | {"report", airflow_dag.CLAIM_TASK_ID}
  assert dag.get_task("report").upstream_task_ids >= {"Pusher"}


def test_dag_file_parses_without_tfx_and_tasks_refuse_a_changed_pipeline(tmp_path):
  # Airflow parses the DAG file every 30 s and in every task's process: it holds the task
  # graph, compiled when it was written, and imports neither TFX nor TensorFlow.
  dag_file = tmp_path / "imdb_sentiment.py"
  dag_file.write_text(airflow_dag.render_dag_file(output_dir=str(tmp_path), hparams=TINY))
  probe = (
    "import runpy, sys; dag = runpy.run_path(sys.argv[1])['DAG']; "
    "print(len(dag.tasks), 'tensorflow' in sys.modules, 'tfx' in sys.modules)"
  )
  parsed = subprocess.run(
    [sys.executable, "-c", probe, str(dag_file)], capture_output=True, text=True, check=False
  )
  assert parsed.returncode == 0, parsed.stderr[-3000:]
  assert parsed.stdout.split()[-3:] == [str(len(ALL_NODES) + 2), "False", "False"]
  # The graph in the file is the compiled pipeline's; a task whose pipeline now compiles
  # to other nodes (the project changed since) refuses to launch anything.
  dag = airflow_dag.build_dag(output_dir=str(tmp_path), hparams=TINY, environ={})
  transform = dag.get_task("Transform").python_callable
  arguments, nodes, node_id = transform.args
  assert list(nodes) == [n for n in nodes if n in ALL_NODES] and set(nodes) == ALL_NODES
  stale = {**nodes, "OldComponent": ["Trainer"]}
  with pytest.raises(RuntimeError, match="write it again with imdb-tfx schedule airflow"):
    airflow_dag.launch_node(arguments, stale, node_id, dag_run=None)
  assert not os.path.exists(OutputPaths(str(tmp_path)).pipeline_root)  # nothing launched


def test_mlmd_from_environment_never_puts_credentials_in_the_dag_file(tmp_path):
  config = metadata_store_lib.connection_config(str(tmp_path), {})
  assert config.sqlite.filename_uri == OutputPaths(str(tmp_path)).metadata_path
  env = {
    "IMDB_TFX_MLMD_MYSQL_HOST": "db.internal",
    "IMDB_TFX_MLMD_MYSQL_USER": "tfx",
    "IMDB_TFX_MLMD_MYSQL_PASSWORD": "s3cret",
    "IMDB_TFX_MLMD_MYSQL_PORT": "3307",
  }
  config = metadata_store_lib.connection_config(str(tmp_path), env)
  assert (
    config.mysql.host,
    config.mysql.port,
    config.mysql.user,
    config.mysql.password,
    config.mysql.database,
  ) == ("db.internal", 3307, "tfx", "s3cret", "imdb_tfx_mlmd")
  with pytest.raises(ValueError, match="IMDB_TFX_MLMD_MYSQL_USER") as raised:
    metadata_store_lib.connection_config(
      str(tmp_path), {"IMDB_TFX_MLMD_MYSQL_HOST": "h", "IMDB_TFX_MLMD_MYSQL_PASSWORD": "s3cret"}
    )
  assert "s3cret" not in str(raised.value)
  source = airflow_dag.render_dag_file(output_dir=str(tmp_path))
  assert "s3cret" not in source and "PASSWORD" in source  # named, never valued
  with pytest.raises(ValueError, match="retries"):
    airflow_dag.render_dag_file(output_dir=str(tmp_path), retries=-1)
  with pytest.raises(ValueError):
    airflow_dag.render_dag_file(output_dir=str(tmp_path), hparams={"no_such": 1})


@pytest.mark.e2e
def test_airflow_dags_test_runs_and_second_run_is_cached(tmp_path, tfds_data_dir):
  home = tmp_path / "airflow"
  (home / "dags").mkdir(parents=True)
  out = tmp_path / "out"
  out.mkdir()
  (home / "dags" / "imdb_sentiment.py").write_text(
    airflow_dag.render_dag_file(**_dag_kwargs(out, tfds_data_dir))
  )
  env = _airflow_env(home)
  migrated = _airflow(env, "db", "migrate")
  assert migrated.returncode == 0, migrated.stderr[-3000:]
  for day in ("2026-01-01", "2026-01-02"):
    result = _airflow(env, "dags", "test", "imdb_sentiment", day)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    assert "state=success" in result.stdout + result.stderr

  config = metadata_store_pb2.ConnectionConfig()
  config.sqlite.filename_uri = OutputPaths(str(out)).metadata_path
  store = metadata_store.MetadataStore(config)
  # Each task launched its node under the DAG run's id as the pipeline run id.
  node_of = mlmd_queries.executions_by_node(store, PIPELINE_NAME)
  runs = {
    run_id: {node_of[e.id]: e.last_known_state for e in executions}
    for run_id, executions in mlmd_queries.run_executions(store, PIPELINE_NAME, node_of).items()
  }
  assert sorted(runs) == ["manual__2026-01-01T00:00:00+00:00", "manual__2026-01-02T00:00:00+00:00"]
  first, second = (runs[r] for r in sorted(runs))
  states = metadata_store_pb2.Execution.State
  assert set(first) == set(second) == ALL_NODES
  assert all(first[n] == states.COMPLETE for n in ALL_NODES - {"latest_blessed_model_resolver"})
  # Unchanged data: cached up to the Trainer. The resolver now returns the model the
  # first run pushed, which is also the candidate; the Evaluator compares it with itself,
  # and the Pusher, finding it already serving, pushes nothing (components.serving_pusher).
  rerun = {"latest_blessed_model_resolver", "Evaluator", "BehaviourValidator", "Pusher"}
  assert {n: second[n] for n in ALL_NODES - rerun} == dict.fromkeys(
    ALL_NODES - rerun, states.CACHED
  )
  assert {n: second[n] for n in rerun} == dict.fromkeys(rerun, states.COMPLETE)
  pushed = os.listdir(OutputPaths(str(out)).serving_model_dir)
  assert len(pushed) == 1  # the cached run pushed nothing new
  # Each DAG run's report task released the lease its claim task took.
  assert run_lock.read_lease(str(out)) is None
  # Each DAG run ended with its report, and the history page lists both.
  reports = OutputPaths(str(out)).reports_dir
  for run_id in sorted(runs):
    page = os.path.join(reports, run_dir_name(run_id), "index.html")
    with open(page, encoding="utf-8") as f:
      assert f"Run {run_id}" in f.read()
  with open(os.path.join(reports, "index.html"), encoding="utf-8") as f:
    history = f.read()
  assert all(run_id in history for run_id in runs)


def test_cli_schedule_airflow_writes_a_dag_module(tmp_path):
  from click.testing import CliRunner

  from cli import main as cli

  target = tmp_path / "dags" / "imdb_sentiment.py"
  result = CliRunner().invoke(
    cli.main,
    [
      "schedule",
      "airflow",
      "--output",
      str(target),
      "--schedule",
      "30 2 * * 1",
      "--output-dir",
      str(tmp_path / "out"),
      "--hparam",
      "max_length=64",
      "--epochs",
      "2",
    ],
  )
  assert result.exit_code == 0, result.output
  assert (tmp_path / "out").is_dir()  # created with the DAG, which refuses a missing one
  source = target.read_text()
  compile(source, str(target), "exec")
  assert "'schedule': '30 2 * * 1'" in source
  assert "'max_length': 64" in source and "'epochs': 2" in source
  result = CliRunner().invoke(cli.main, ["schedule", "airflow", "--hparam", "bogus=1"])
  assert result.exit_code == 1 and "bogus" in result.output
