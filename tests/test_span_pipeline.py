"""Unit tests of the pipeline of spans (no runs): its nodes and their order, the
DistributionValidator's thresholds, the drift gate's message on TFDV's real drift
anomalies, and SpanInput's checks."""

import json
import os

import numpy as np
import pandas as pd
import pytest
import tensorflow_data_validation as tfdv
from google.protobuf import json_format
from tfx.dsl.compiler import compiler

from components import anomalies_gate
from models.hparams import HParams
from pipeline import drift_config
from pipeline.layout import SpanInput, node_ids
from pipeline.pipeline import create_pipeline

HP = HParams(max_length=32, vocab_size=500, epochs=1, batch_size=8, word2vec_epochs=0)


@pytest.fixture(scope="module")
def span_pipeline(tmp_path_factory):
  root = tmp_path_factory.mktemp("spans")
  return create_pipeline(
    pipeline_root=str(root / "root"),
    serving_model_dir=str(root / "serving"),
    hparams=HP,
    test_split="test[:1%]",
    spans=SpanInput(str(root / "in"), window_spans=3, max_label_linf=0.2, max_length_js=0.05),
    enable_cache=False,
  )


def _component(pipeline, component_id):
  (component,) = [c for c in pipeline.components if c.id == component_id]
  return component


def test_span_pipeline_nodes_in_order(span_pipeline):
  ids = [c.id for c in span_pipeline.components]  # TFX orders them topologically
  assert sorted(ids) == sorted(node_ids(pretraining=False, spans=True))
  assert ids.index("ImportSchemaGen") < ids.index("StatisticsGen")
  assert ids.index("StatisticsGen") < ids.index("DistributionValidator") < ids.index("DriftGate")
  # Both gates run before Transform, and the curated schema types the statistics.
  transform = _component(span_pipeline, "Transform")
  assert {"AnomaliesGate", "DriftGate"} <= {n.id for n in transform.upstream_nodes}
  assert "schema" in _component(span_pipeline, "StatisticsGen").inputs


def test_distribution_validator_compares_train_with_thresholds(span_pipeline):
  validator = _component(span_pipeline, "DistributionValidator")
  props = validator.exec_properties
  assert json.loads(props["include_split_pairs"]) == [["train", "train"]]
  config = props["distribution_validator_config"]
  comparators = {
    f.path.step[0]: json_format.MessageToDict(f.distribution_comparator)
    for f in config.default_slice_config.feature
  }
  assert comparators == {
    "label": {"infinityNorm": {"threshold": 0.2}},
    "review_length": {"jensenShannonDivergence": {"threshold": 0.05}},
  }
  # Its baseline is a resolver over StatisticsGen's published statistics, not this run's.
  assert "baseline_statistics" in validator.inputs


def test_span_pipeline_compiles_with_the_baseline_resolver(span_pipeline):
  ir = compiler.Compiler().compile(span_pipeline)
  (validator,) = [
    n.pipeline_node for n in ir.nodes if n.pipeline_node.node_info.id == "DistributionValidator"
  ]
  baseline = validator.inputs.inputs["baseline_statistics"]
  assert baseline.input_graph_ref.graph_id  # a resolver function's graph
  graph = validator.inputs.input_graphs[baseline.input_graph_ref.graph_id]
  ops = {node.op_node.op_type for node in graph.nodes.values() if node.HasField("op_node")}
  assert ops == {"pipeline.model_resolvers.PublishedBefore"}
  # Over the validated statistics of every earlier run, bounded by this run's statistics.
  (inputs,) = [node.dict_node for node in graph.nodes.values() if node.HasField("dict_node")]
  assert set(inputs.node_ids) == {"published", "arrived"}


def test_trainer_warm_starts_from_the_model_serving_when_the_span_arrived(span_pipeline, tmp_path):
  # Without pretraining that model is the base_model; it is also the drift check's.
  trainer = _component(span_pipeline, "Trainer")
  arrival = _component(span_pipeline, "arrival_model_resolver")
  assert trainer.inputs["base_model"] is arrival.outputs["model"]
  assert _component(span_pipeline, "DriftGate").inputs["serving_model"] is arrival.outputs["model"]
  assert "ReviewExampleGen" in {n.id for n in arrival.upstream_nodes}  # its arrived_examples
  # The Evaluator's and the suite's baseline: the newest blessed model but the candidate.
  baseline = _component(span_pipeline, "latest_blessed_model_resolver")
  assert "Trainer" in {n.id for n in baseline.upstream_nodes}  # its candidate
  for judge in ("Evaluator", "BehaviourValidator"):
    assert _component(span_pipeline, judge).inputs["baseline_model"] is baseline.outputs["model"]
  # With it, the EmbeddingTrainer passes the serving model on beside its word2vec vectors.
  spans = SpanInput(str(tmp_path / "in"))
  pretraining = create_pipeline(
    pipeline_root=str(tmp_path / "root"),
    serving_model_dir=str(tmp_path / "serving"),
    hparams=HParams(word2vec_epochs=1),
    spans=spans,
  )
  embedding_trainer = _component(pretraining, "EmbeddingTrainer")
  resolver = _component(pretraining, "arrival_model_resolver")
  assert embedding_trainer.inputs["warm_start_model"] is resolver.outputs["model"]
  # word2vec reads the unlabelled reviews alone, raw (the spans' reviews train the model).
  assert "transformed_examples" not in embedding_trainer.inputs
  props = embedding_trainer.exec_properties
  assert (props["splits"], props["transformed_splits"]) == ("unlabelled", "")
  trainer = _component(pretraining, "Trainer")
  assert trainer.inputs["base_model"] is embedding_trainer.outputs["embeddings"]
  assert sorted(c.id for c in pretraining.components) == sorted(node_ids(spans=True))
  # --no-warm-start: neither is given the serving model.
  cold = create_pipeline(
    pipeline_root=str(tmp_path / "root"),
    serving_model_dir=str(tmp_path / "serving"),
    hparams=HParams(word2vec_epochs=1),
    spans=SpanInput(str(tmp_path / "in"), warm_start=False),
  )
  assert "warm_start_model" not in _component(cold, "EmbeddingTrainer").inputs


def test_evaluator_judges_on_golden_test_and_newest_span_by_span_slices(span_pipeline):
  evaluator = _component(span_pipeline, "Evaluator")
  evaluation_examples = _component(span_pipeline, "EvaluationExamples")
  assert evaluator.inputs["examples"] is evaluation_examples.outputs["examples"]
  assert json.loads(evaluator.exec_properties["example_splits"]) == ["test", "eval"]
  drift_gate = _component(span_pipeline, "DriftGate")
  assert evaluation_examples.inputs["span_examples"] is drift_gate.outputs["validated_examples"]
  assert (
    evaluation_examples.inputs["golden_examples"]
    is _component(span_pipeline, "ImdbExampleGen").outputs["examples"]
  )


@pytest.mark.parametrize(
  "kwargs, message",
  [
    ({"max_label_linf": 0.0}, "max_label_linf"),
    ({"max_length_js": 1.5}, "max_length_js"),
    ({"window_spans": 0}, "window_spans"),
    ({"max_rejected_fraction": 2}, "max_rejected_fraction"),
    ({"input_pattern": "*.jsonl"}, "names no span"),
  ],
)
def test_span_input_refuses_bad_values(kwargs, message):
  with pytest.raises(ValueError, match=message):
    SpanInput("/in", **kwargs)


def test_drift_config_refuses_bad_thresholds():
  with pytest.raises(ValueError, match="max_length_js must be in"):
    drift_config.make_drift_config(0.1, 0.0)


def _statistics(positive_share, lengths, seed):
  rng = np.random.default_rng(seed)
  n = 2000
  frame = pd.DataFrame(
    {
      "label": (rng.random(n) < positive_share).astype(str),
      "review_length": rng.integers(*lengths, n),
    }
  )
  return tfdv.generate_statistics_from_dataframe(frame)


def _drift_anomalies(current, previous):
  """TFDV's own drift check with the comparators of ``make_drift_config``, as
  DistributionValidator runs it."""
  schema = tfdv.infer_schema(previous)
  config = drift_config.make_drift_config()
  for feature in config.default_slice_config.feature:
    tfdv.get_feature(schema, feature.path.step[0]).drift_comparator.CopyFrom(
      feature.distribution_comparator
    )
  return tfdv.validate_statistics(current, schema, previous_statistics=previous)


def _write_split_pair(uri, anomalies):
  split_dir = os.path.join(uri, "SplitPair-train_train")
  os.makedirs(split_dir)
  with open(os.path.join(split_dir, "SchemaDiff.pb"), "wb") as f:
    f.write(anomalies.SerializeToString())


def test_drift_gate_names_each_drifted_feature_with_distance_and_threshold(tmp_path):
  previous = _statistics(0.5, (50, 600), seed=0)
  similar = _statistics(0.52, (50, 600), seed=1)
  drifted = _statistics(0.9, (5, 40), seed=2)
  _write_split_pair(str(tmp_path / "ok"), _drift_anomalies(similar, previous))
  _write_split_pair(str(tmp_path / "drift"), _drift_anomalies(drifted, previous))

  assert anomalies_gate.describe_anomalies(str(tmp_path / "ok"), ["train_train"]) == []
  lines = anomalies_gate.describe_anomalies(str(tmp_path / "drift"), ["train_train"])
  assert [line.split(":")[0] for line in lines] == [
    "train_train/label",
    "train_train/review_length",
  ]
  assert "0.1" in lines[0] and "nfty" in lines[0]  # TFDV: "The Linfty distance ..."
  assert "0.1" in lines[1] and "Jensen-Shannon" in lines[1]
