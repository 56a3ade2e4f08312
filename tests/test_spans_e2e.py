"""Continuous training on spans, end to end on small slices (checked through MLMD): each
run ingests the newest span, trains on the window of spans so far and is blessed on the
golden TFDS test split, warm-starting from the model serving; a span whose labels drifted from the previous span's stops the run
before anything is trained, and never enters a later window nor becomes a baseline; a
run with nothing new is all cached; `imdb-tfx spans make` writes the span folders. (Bad rows: test_review_example_gen.py.)"""

import json
import os

import pytest
from click.testing import CliRunner
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx

from cli import main as cli
from models.hparams import HParams
from models.inputs import count_records
from pipeline import mlmd_queries
from pipeline import runner as runner_lib
from pipeline.beam_profiles import default_beam_pipeline_args
from pipeline.layout import PIPELINE_NAME, OutputPaths, SpanInput, node_ids
from pipeline.pipeline import create_pipeline

pytestmark = pytest.mark.e2e

# Small and fast: no pretraining, a short vocabulary and reviews, one epoch.
# Span 2's warm start replays half of span 1 (the default, set here for the counts below).
HP = HParams(
  epochs=1,
  max_length=48,
  vocab_size=1000,
  word2vec_epochs=0,
  bigram_buckets=0,
  batch_size=32,
  warm_start_replay=0.5,
)


def _run(paths, spans_dir, **span_kwargs):
  pipeline = create_pipeline(
    pipeline_root=paths.pipeline_root,
    serving_model_dir=paths.serving_model_dir,
    metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
      paths.metadata_path
    ),
    hparams=HP,
    test_split="test[:1%]",
    tfds_data_dir=os.environ.get("TFDS_DATA_DIR"),
    min_accuracy=0.0,
    max_accuracy_drop=1.0,
    behaviour_thresholds={},  # the behaviour gates are test_e2e's
    spans=SpanInput(spans_dir, **span_kwargs),
    beam_pipeline_args=default_beam_pipeline_args(cpu_count=1),
    enable_cache=True,
  )
  return runner_lib.run_pipeline(pipeline, "local", show_progress=False)


def _node_executions(store, node):
  context = store.get_context_by_type_and_name("node", f"{PIPELINE_NAME}.{node}")
  return sorted(store.get_executions_by_context(context.id), key=lambda e: e.id)


def _input_spans(store, execution, key):
  events = [
    e
    for e in store.get_events_by_execution_ids([execution.id])
    if e.type == metadata_store_pb2.Event.INPUT and e.path.steps[0].key == key
  ]
  artifacts = store.get_artifacts_by_id([e.artifact_id for e in events])
  return sorted(a.properties["span"].int_value for a in artifacts)


INPUT, OUTPUT = metadata_store_pb2.Event.INPUT, metadata_store_pb2.Event.OUTPUT
STATES = metadata_store_pb2.Execution.State
COMPLETE, FAILED, CACHED = STATES.COMPLETE, STATES.FAILED, STATES.CACHED


def _artifact_ids(store, execution, key, event_type):
  return [
    e.artifact_id
    for e in store.get_events_by_execution_ids([execution.id])
    if e.type == event_type and e.path.steps[0].key == key
  ]


def test_each_run_trains_on_the_window_of_spans(tmp_path, tfds_data_dir):
  spans_dir = str(tmp_path / "spans")
  made = CliRunner().invoke(
    cli.main,
    [
      "spans",
      "make",
      "--out",
      spans_dir,
      "--spans",
      "4",
      "--split",
      "train[:4%]",
      "--drift",
      "3:label-skew",
      "--tfds-data-dir",
      tfds_data_dir,
    ],
  )
  assert made.exit_code == 0, made.output
  assert sorted(os.listdir(spans_dir)) == ["span-1", "span-2", "span-3", "span-4"]
  paths = OutputPaths(str(tmp_path / "out"))

  first = _run(paths, spans_dir, span=1)
  second = _run(paths, spans_dir, span=2)
  assert first.pushed_path and second.pushed_path and first.pushed_path != second.pushed_path
  store = metadata_store.MetadataStore(
    tfx.orchestration.metadata.sqlite_metadata_connection_config(paths.metadata_path)
  )
  transforms = _node_executions(store, "Transform")
  assert [_input_spans(store, e, "examples") for e in transforms] == [[1], [1, 2]]
  trainers = _node_executions(store, "Trainer")
  assert len(trainers) == 2  # span 2's window made a new model
  # Span 2's Trainer started from span 1's model, the one serving (without pretraining,
  # the serving Model is the base_model), its embedding rows carried over by token.
  assert _artifact_ids(store, trainers[0], "base_model", INPUT) == []
  assert _artifact_ids(store, trainers[1], "base_model", INPUT) == _artifact_ids(
    store, trainers[0], "model", OUTPUT
  )
  [model_run] = store.get_artifacts_by_id(_artifact_ids(store, trainers[1], "model_run", OUTPUT))
  with open(os.path.join(model_run.uri, "training_summary.json")) as f:
    summary = json.load(f)
  warm = summary["warm_start"]
  assert warm["tokens_carried"] > 0.5 * warm["vocabulary_size"]
  assert warm["epochs"] == HP.warm_start_epochs
  # It replayed half of span 1's train reviews beside all of span 2's.
  span_examples = {
    a.properties["span"].int_value: a
    for a in store.get_artifacts_by_id(_artifact_ids(store, transforms[1], "examples", INPUT))
  }
  train_reviews = {
    span: count_records([os.path.join(a.uri, "Split-train", "*")])
    for span, a in span_examples.items()
  }
  assert summary["replay"] == {
    "share": HP.warm_start_replay,
    "newest_examples": train_reviews[2],
    "older_examples": train_reviews[1],
    "older_examples_per_epoch": round(HP.warm_start_replay * train_reviews[1]),
  }
  # An epoch: those reviews plus the negation views mixed in with them.
  assert (
    summary["train_examples"]
    == train_reviews[2]
    + round(HP.warm_start_replay * train_reviews[1])
    + summary["negation_views"]["views_per_epoch"]
  )
  evaluators = _node_executions(store, "Evaluator")
  # The second candidate was judged against the first, blessed one.
  assert any(
    e.path.steps[0].key == "baseline_model"
    for e in store.get_events_by_execution_ids([evaluators[-1].id])
  )

  # Span 3 kept a tenth of its negative reviews: about 90% positive against span 2's
  # 50%, far past the L-infinity threshold of 0.1. Stopped before Transform.
  with pytest.raises(Exception, match=r"drift in 1 feature of span 3") as drift:
    _run(paths, spans_dir, span=3)
  message = str(drift.value)
  assert "train_train/label: High Linfty distance" in message and "threshold 0.1" in message
  assert "review_length" not in message  # the lengths kept their distribution
  assert len(_node_executions(store, "Transform")) == 2
  assert sorted(os.listdir(paths.serving_model_dir))[-1] == os.path.basename(second.pushed_path)

  # Span 4 is ordinary: compared with span 2 (the last span that passed), not span 3, it
  # passes, and the window leaves span 3 out.
  fourth = _run(paths, spans_dir)
  assert fourth.pushed_path
  transforms = _node_executions(store, "Transform")
  assert _input_spans(store, transforms[-1], "examples") == [1, 2, 4]
  # Span 3 and span 4 were both compared with span 2's validated statistics.
  gates = _node_executions(store, "DriftGate")
  assert [g.last_known_state for g in gates] == [COMPLETE, COMPLETE, FAILED, COMPLETE]
  assert _artifact_ids(store, gates[2], "validated_examples", OUTPUT) == []  # span 3
  span_2_statistics = _artifact_ids(store, gates[1], "validated_statistics", OUTPUT)
  validators = _node_executions(store, "DistributionValidator")
  assert [_artifact_ids(store, e, "baseline_statistics", INPUT) for e in validators[2:]] == [
    span_2_statistics,
    span_2_statistics,
  ]

  # imdb-tfx history reads the same story back from MLMD, a run to a line.
  shown = CliRunner().invoke(cli.main, ["history", "--output-dir", paths.output_dir, "--json"])
  assert shown.exit_code == 0, shown.output
  runs = [json.loads(line) for line in shown.output.splitlines() if line.startswith("{")]
  assert [(r["span"], r["drift"], r["window"], r["failed_at"]) for r in runs] == [
    (1, "passed", [1], None),
    (2, "passed", [1, 2], None),
    (3, "drift", [], "DriftGate"),
    (4, "passed", [1, 2, 4], None),
  ]
  assert [r["pushed_version"] for r in runs if r["pushed_version"]] == sorted(
    os.listdir(paths.serving_model_dir)
  )
  assert all(r["reviews"] > 0 and r["rejected"] == 0 for r in runs)
  assert runs[3]["trainer"] == "ran" and 0 <= runs[3]["accuracy"] <= 1
  # Each candidate was judged on the golden test reviews and the newest span's, apart.
  assert all(0 <= r["span_accuracy"] <= 1 for r in runs if r["trainer"] == "ran")
  # The first run trained from scratch; each later one from the version serving then.
  assert [r["warm_start"] for r in runs] == [
    None,
    runs[0]["pushed_version"],
    None,
    runs[1]["pushed_version"],
  ]
  # With a model serving, the drift check also compared the spans' out-of-vocabulary
  # rates under its vocabulary (spans of one source: close).
  [statistics] = store.get_artifacts_by_id(
    _artifact_ids(store, gates[3], "validated_statistics", OUTPUT)
  )
  rate = statistics.custom_properties["oov_rate"].double_value
  baseline = statistics.custom_properties["baseline_oov_rate"].double_value
  assert 0 < rate < 0.5 and abs(rate - baseline) < 0.05

  # Nothing new arrived: the fifth run resolves what the fourth did (the model serving when
  # span 4 arrived; the model span 4's candidate was judged against), so every component
  # is served from the cache and nothing is pushed.
  fifth = _run(paths, spans_dir)
  assert fifth.pushed_path is None
  node_of = mlmd_queries.executions_by_node(store, PIPELINE_NAME)
  last_run = list(mlmd_queries.run_executions(store, PIPELINE_NAME, node_of).values())[-1]
  states = {node_of[e.id]: e.last_known_state for e in last_run}
  components = set(node_ids(curated_schema=True, pretraining=False, spans=True))
  components -= {"arrival_model_resolver", "latest_blessed_model_resolver"}
  assert {n: states.get(n) for n in components} == dict.fromkeys(components, CACHED)
  assert sorted(os.listdir(paths.serving_model_dir)) == [
    r["pushed_version"] for r in runs if r["pushed_version"]
  ]
  shown = CliRunner().invoke(cli.main, ["history", "--output-dir", paths.output_dir, "--json"])
  last = json.loads([line for line in shown.output.splitlines() if line.startswith("{")][-1])
  assert (last["trainer"], last["pushed_version"]) == ("cached", None)
