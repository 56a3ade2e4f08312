"""Unit tests of pipeline.progress and pipeline.summary against a real MLMD SQLite store."""

import io
import json
import re

import pytest
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipeline import summary as summary_lib
from pipeline.progress import ComponentProgress

PIPELINE = "imdb_sentiment"
NODES = ["ImdbExampleGen", "StatisticsGen", "Trainer"]
Execution = metadata_store_pb2.Execution


class _Store:
  """A fresh MLMD SQLite store with TFX-like node contexts."""

  def __init__(self, path):
    self.config = metadata_store_pb2.ConnectionConfig()
    self.config.sqlite.filename_uri = path
    self.config.sqlite.connection_mode = (
      metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    )
    self.store = metadata_store.MetadataStore(self.config)
    self.execution_type = self.store.put_execution_type(
      metadata_store_pb2.ExecutionType(name="test.Component")
    )
    self.context_type = self.store.put_context_type(metadata_store_pb2.ContextType(name="node"))
    self.contexts = {}

  def context(self, name):
    if name not in self.contexts:
      (self.contexts[name],) = self.store.put_contexts(
        [metadata_store_pb2.Context(type_id=self.context_type, name=name)]
      )
    return self.contexts[name]

  def start(self, node, state=Execution.RUNNING, pipeline=PIPELINE):
    context = metadata_store_pb2.Context(
      id=self.context(f"{pipeline}.{node}"), type_id=self.context_type, name=f"{pipeline}.{node}"
    )
    execution = Execution(type_id=self.execution_type, last_known_state=state)
    execution_id, _, _ = self.store.put_execution(execution, [], [context])
    return execution_id

  def set_state(self, execution_id, state):
    (execution,) = self.store.get_executions_by_id([execution_id])
    execution.last_known_state = state
    self.store.put_execution(execution, [], [])
    (execution,) = self.store.get_executions_by_id([execution_id])
    return execution


@pytest.fixture
def store(tmp_path):
  return _Store(str(tmp_path / "metadata.sqlite"))


def _progress(store, stream, **kwargs):
  return ComponentProgress(store.config, PIPELINE, NODES, since_ms=0, stream=stream, **kwargs)


def test_poll_once_reports_running_then_finished(store):
  stream = io.StringIO()
  progress = _progress(store, stream, heartbeat_seconds=0)
  execution_id = store.start("Trainer")
  progress.poll_once()
  assert stream.getvalue().splitlines() == ["[3/3] Trainer running ..."]
  progress.poll_once()  # nothing changed -> nothing printed
  assert len(stream.getvalue().splitlines()) == 1
  execution = store.set_state(execution_id, Execution.COMPLETE)
  progress.poll_once()
  lines = stream.getvalue().splitlines()
  assert len(lines) == 2
  match = re.fullmatch(r"\[3/3\] Trainer finished in (\d+\.\d) s", lines[1])
  assert match, lines[1]
  expected = (execution.last_update_time_since_epoch - execution.create_time_since_epoch) / 1e3
  assert float(match.group(1)) == pytest.approx(expected, abs=0.051)
  progress.poll_once()  # a finished execution is reported once
  assert progress.lines == lines


def test_poll_once_cached_and_failed_print_only_final_line(store):
  stream = io.StringIO()
  progress = _progress(store, stream, heartbeat_seconds=0)
  store.start("ImdbExampleGen", state=Execution.CACHED)
  store.start("StatisticsGen", state=Execution.FAILED)
  progress.poll_once()
  lines = stream.getvalue().splitlines()
  assert len(lines) == 2
  assert re.fullmatch(r"\[1/3\] ImdbExampleGen cached in \d+\.\d s", lines[0])
  assert re.fullmatch(r"\[2/3\] StatisticsGen FAILED in \d+\.\d s", lines[1])


def test_poll_once_ignores_other_pipelines_unknown_nodes_and_old_executions(store):
  stream = io.StringIO()
  store.start("Trainer", pipeline="other_pipeline")
  store.start("NotInThisRun")
  old = store.start("StatisticsGen")
  (old_execution,) = store.store.get_executions_by_id([old])
  progress = ComponentProgress(
    store.config,
    PIPELINE,
    NODES,
    since_ms=old_execution.create_time_since_epoch + 1,
    stream=stream,
    heartbeat_seconds=0,
  )
  progress.poll_once()
  assert stream.getvalue() == ""


def test_poll_once_heartbeat_with_fake_clock(store):
  stream = io.StringIO()
  now = {"t": 0.0}
  progress = _progress(store, stream, heartbeat_seconds=60, clock=lambda: now["t"])
  execution_id = store.start("StatisticsGen")
  (execution,) = store.store.get_executions_by_id([execution_id])
  start = execution.create_time_since_epoch / 1e3
  now["t"] = start + 10
  progress.poll_once()
  now["t"] = start + 125
  progress.poll_once()
  progress.poll_once()  # same beat: no repeat
  now["t"] = start + 200  # the next beat is due at 240 s
  progress.poll_once()
  now["t"] = start + 250
  progress.poll_once()
  now["t"] = start + 400  # and then at 480 s
  progress.poll_once()
  assert stream.getvalue().splitlines() == [
    "[2/3] StatisticsGen running ...",
    "[2/3] StatisticsGen still running, 125 s elapsed",
    "[2/3] StatisticsGen still running, 250 s elapsed",
  ]


def test_poll_once_without_store_file_does_not_raise(tmp_path):
  config = metadata_store_pb2.ConnectionConfig()
  config.sqlite.filename_uri = str(tmp_path / "missing" / "metadata.sqlite")
  config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
  stream = io.StringIO()
  ComponentProgress(config, PIPELINE, NODES, 0, stream=stream).poll_once()
  assert stream.getvalue() == ""


def test_start_stop_prints_final_state(store):
  stream = io.StringIO()
  execution_id = store.start("ImdbExampleGen")
  store.set_state(execution_id, Execution.COMPLETE)
  progress = _progress(store, stream, poll_seconds=60).start()
  progress.stop()  # the last poll happens in stop()
  assert len(progress.lines) == 1
  assert progress.lines[0].startswith("[1/3] ImdbExampleGen finished in ")


# --- summary ------------------------------------------------------------------------


def _summary(**kwargs):
  defaults = dict(
    components=[
      summary_lib.ComponentRun("ImdbExampleGen", "COMPLETE", 3.0),
      summary_lib.ComponentRun("Trainer", "COMPLETE", 40.5),
    ],
    metrics={"binary_accuracy": 0.8123, "auc": 0.9012, "example_count": 250.0},
    blessed=False,
    blessing_reasons=["binary_accuracy: 0.8123 < 0.85 (overall)"],
    pushed_path=None,
  )
  defaults.update(kwargs)
  return summary_lib.RunSummary(**defaults)


def test_run_summary_format_not_blessed():
  text = _summary().format()
  assert "Test split: accuracy 0.8123, AUC 0.9012 (250 examples)" in text
  assert "Blessing: NOT blessed: binary_accuracy: 0.8123 < 0.85 (overall)" in text
  assert "Pushed: nothing" in text
  assert re.search(r"ImdbExampleGen\s+COMPLETE\s+3\.0 s", text)
  assert re.search(r"total\s+43\.5 s", text)


def test_run_summary_format_blessed_and_pushed():
  text = _summary(blessed=True, blessing_reasons=[], pushed_path="/srv/model/17").format()
  assert "Blessing: BLESSED" in text
  assert "NOT blessed" not in text
  assert "Pushed to: /srv/model/17" in text


def test_run_summary_shows_behaviour_rates_beside_the_serving_models():
  rates = {
    "negated_positive": {"candidate": 0.2, "baseline": 0.35},
    "contrast": {"candidate": 0.15, "baseline": None},
    "inv_typo": {"candidate": 0.0, "baseline": 0.05},
    "short_review": {"candidate": 0.0333, "baseline": 0.1},
  }
  reasons = ['contrast 0.150 > 0.100, e.g. "Dull, but great." p=0.20']
  text = _summary(behaviour=rates, blessing_reasons=reasons).format()
  lines = text.splitlines()
  start = lines.index("Behaviour suite failure rates (candidate / serving model):")
  assert lines[start + 1].split() == [
    "negated_positive", "0.200", "/", "0.350",
    "contrast", "0.150", "/", "-",
    "inv_typo", "0.000", "/", "0.050",
  ]  # fmt: skip
  assert lines[start + 2].split() == ["short_review", "0.033", "/", "0.100"]
  assert 'NOT blessed: contrast 0.150 > 0.100, e.g. "Dull, but great." p=0.20' in text


def test_behaviour_reasons_and_rates_from_mlmd_artifacts():
  from ml_metadata.proto import metadata_store_pb2

  blessing = metadata_store_pb2.Artifact()
  blessing.custom_properties[
    "reasons"
  ].string_value = "the Evaluator did not bless the model; contrast 0.300 > 0.200"
  assert summary_lib.behaviour_reasons(blessing) == ["contrast 0.300 > 0.200"]
  report = metadata_store_pb2.Artifact()
  report.custom_properties["failure_rate_contrast"].double_value = 0.3
  report.custom_properties["failure_rate_negated_positive"].double_value = 0.1
  report.custom_properties["baseline_failure_rate_contrast"].double_value = 0.5
  report.custom_properties["overall_failure_rate"].double_value = 0.2
  assert summary_lib.behaviour_rates(report) == {
    "negated_positive": {"candidate": 0.1, "baseline": None},
    "contrast": {"candidate": 0.3, "baseline": 0.5},
  }


def test_run_summary_format_without_evaluator():
  text = _summary(metrics={}, blessed=None, blessing_reasons=[]).format()
  assert "the Evaluator did not run" in text
  assert "accuracy" not in text


def test_run_summary_to_json_round_trip():
  data = json.loads(_summary().to_json())
  assert data["blessed"] is False
  assert data["metrics"]["auc"] == pytest.approx(0.9012)
  assert data["components"][1] == {"node_id": "Trainer", "state": "COMPLETE", "seconds": 40.5}


def test_summarize_reads_component_states_from_mlmd(store):
  done = store.start("ImdbExampleGen")
  store.set_state(done, Execution.COMPLETE)
  store.start("Trainer", state=Execution.FAILED)
  result = summary_lib.summarize(store.config, PIPELINE, NODES, since_ms=0)
  assert [(c.node_id, c.state) for c in result.components] == [
    ("ImdbExampleGen", "COMPLETE"),
    ("Trainer", "FAILED"),
  ]
  assert result.blessed is None and result.metrics == {} and result.pushed_path is None
  assert "the Evaluator did not run" in result.format()
