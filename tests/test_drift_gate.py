"""Unit tests of components.drift_gate: a clean span's Examples and statistics are
published again, with span and version; a drifted one raises and publishes nothing. And of
components.evaluation_examples, which copies splits the same way."""

import os

import pytest
import tensorflow as tf
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.components.util import examples_utils
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_artifacts

from components import drift_gate, evaluation_examples, oov_rate
from components.anomalies_gate import DataAnomaliesError
from components.imdb_beam import to_tf_example


def _examples(root):
  examples = standard_artifacts.Examples()
  examples.uri = str(root / "examples")
  examples.split_names = artifact_utils.encode_split_names(["train", "eval"])
  examples.span, examples.version = 3, 2
  examples_utils.set_payload_format(examples, example_gen_pb2.FORMAT_TF_EXAMPLE)
  for split in ("train", "eval"):
    os.makedirs(os.path.join(examples.uri, f"Split-{split}"))
    with open(os.path.join(examples.uri, f"Split-{split}", "data.gz"), "wb") as f:
      f.write(f"{split} records".encode())
  return examples


def _statistics(root):
  statistics = standard_artifacts.ExampleStatistics()
  statistics.uri = str(root / "statistics")
  statistics.split_names = artifact_utils.encode_split_names(["train", "eval"])
  for split in ("train", "eval"):
    os.makedirs(os.path.join(statistics.uri, f"Split-{split}"))
    with open(os.path.join(statistics.uri, f"Split-{split}", "FeatureStats.pb"), "wb") as f:
      f.write(split.encode())
  return statistics


def _anomalies(root, drifted):
  anomalies = standard_artifacts.ExampleAnomalies()
  anomalies.uri = str(root / "anomalies")
  anomalies.split_names = artifact_utils.encode_split_names(["train_train"])
  diff = anomalies_pb2.Anomalies()
  if drifted:
    reason = diff.anomaly_info["label"].reason.add()
    reason.short_description = "High Linfty distance between current and previous"
    reason.description = "The Linfty distance ... is 0.39, above the threshold 0.1."
  os.makedirs(os.path.join(anomalies.uri, "SplitPair-train_train"))
  with open(os.path.join(anomalies.uri, "SplitPair-train_train", "SchemaDiff.pb"), "wb") as f:
    f.write(diff.SerializeToString())
  return anomalies


def _run_gate(root, drifted, **optional):
  outputs = {
    "validated_examples": [standard_artifacts.Examples()],
    "validated_statistics": [standard_artifacts.ExampleStatistics()],
  }
  for key, (artifact,) in outputs.items():
    artifact.uri = str(root / key)
  inputs = {
    "anomalies": [_anomalies(root, drifted)],
    "examples": [_examples(root)],
    "statistics": [_statistics(root)],
  }
  if "examples" in optional:
    inputs["examples"] = [optional.pop("examples")]
  inputs.update({key: [value] for key, value in optional.items() if key != "max_oov_increase"})
  properties = {k: v for k, v in optional.items() if k == "max_oov_increase"}
  executor = drift_gate.DriftGate.EXECUTOR_SPEC.executor_class()
  executor.Do(inputs, outputs, properties)
  return outputs["validated_examples"][0], outputs["validated_statistics"][0]


def test_a_clean_span_is_published_again_with_span_and_version(tmp_path):
  examples, statistics = _run_gate(tmp_path, drifted=False)
  assert (examples.span, examples.version) == (3, 2)
  assert artifact_utils.decode_split_names(examples.split_names) == ["train", "eval"]
  assert examples_utils.get_payload_format(examples) == example_gen_pb2.FORMAT_TF_EXAMPLE
  with open(os.path.join(examples.uri, "Split-eval", "data.gz"), "rb") as f:
    assert f.read() == b"eval records"
  with open(os.path.join(statistics.uri, "Split-train", "FeatureStats.pb"), "rb") as f:
    assert f.read() == b"train"


def test_a_drifted_span_raises_naming_the_feature_and_writes_nothing(tmp_path):
  with pytest.raises(DataAnomaliesError) as info:
    _run_gate(tmp_path, drifted=True)
  message = str(info.value)
  assert message.startswith("The drift check found drift in 1 feature of span 3;")
  assert "train_train/label: High Linfty distance" in message and "threshold 0.1" in message
  assert "--max-label-linf" in message
  assert not os.path.exists(tmp_path / "validated_examples")
  assert not os.path.exists(tmp_path / "validated_statistics")


def test_a_missing_split_directory_is_named(tmp_path):
  examples = _examples(tmp_path)
  examples.split_names = artifact_utils.encode_split_names(["train", "test"])
  target = standard_artifacts.Examples()
  target.uri = str(tmp_path / "copy")
  with pytest.raises(FileNotFoundError, match="Examples split 'test' missing"):
    drift_gate.copy_split_artifact(examples, target)


def test_evaluation_examples_hold_the_golden_test_and_the_span_eval_split(tmp_path):
  golden = standard_artifacts.Examples()
  golden.uri = str(tmp_path / "golden")
  golden.split_names = artifact_utils.encode_split_names(["test", "unlabelled"])
  for split in ("test", "unlabelled"):
    os.makedirs(os.path.join(golden.uri, f"Split-{split}"))
    with open(os.path.join(golden.uri, f"Split-{split}", "data.gz"), "wb") as f:
      f.write(f"golden {split}".encode())
  (output,) = outputs = [standard_artifacts.Examples()]
  output.uri = str(tmp_path / "evaluation")
  executor = evaluation_examples.EvaluationExamples.EXECUTOR_SPEC.executor_class()

  executor.Do(
    {"golden_examples": [golden], "span_examples": [_examples(tmp_path)]}, {"examples": outputs}, {}
  )

  assert artifact_utils.decode_split_names(output.split_names) == ["test", "eval"]
  assert sorted(os.listdir(output.uri)) == ["Split-eval", "Split-test"]
  with open(os.path.join(output.uri, "Split-test", "data.gz"), "rb") as f:
    assert f.read() == b"golden test"
  with open(os.path.join(output.uri, "Split-eval", "data.gz"), "rb") as f:
    assert f.read() == b"eval records"
  assert (output.span, output.version) == (3, 2)
  # Examples without the split are named.
  with pytest.raises(ValueError, match="no 'test' split"):
    executor.Do(
      {
        "golden_examples": [_examples(tmp_path / "x")],
        "span_examples": [_examples(tmp_path / "y")],
      },
      {"examples": [standard_artifacts.Examples()]},
      {},
    )


# --- the out-of-vocabulary rate -------------------------------------------------------

VOCABULARY = [b"great", b"film", b"dont", b"bad", b"plot"]


def _serving_model(root):
  model = standard_artifacts.Model()
  model.uri = str(root / "model")
  assets = os.path.join(model.uri, "Format-Serving", "assets")
  os.makedirs(assets)
  with open(os.path.join(assets, "vocabulary"), "wb") as f:
    f.write(b"\n".join(VOCABULARY) + b"\n")
  return model


def _text_examples(root, name, texts, span):
  examples = standard_artifacts.Examples()
  examples.uri = str(root / name)
  examples.split_names = artifact_utils.encode_split_names(["train"])
  examples.span = span
  os.makedirs(os.path.join(examples.uri, "Split-train"))
  path = os.path.join(examples.uri, "Split-train", "data.gz")
  with tf.io.TFRecordWriter(path, tf.io.TFRecordOptions(compression_type="GZIP")) as writer:
    for text in texts:
      writer.write(to_tf_example(text.encode(), 1, span).SerializeToString())
  return examples


def test_oov_rate_counts_words_no_vocabulary_id_reaches(tmp_path):
  table = oov_rate.vocabulary_table(VOCABULARY)
  texts = tf.constant(["A great film!<br /><br />I don't know --- 42", "Плохой film"])
  # Counted: A great film! I don't know 42 / Плохой film (not "---"); known: great, film!,
  # don't (dont), film.
  assert oov_rate.unknown_words(texts, table) == (5, 9)
  examples = _text_examples(tmp_path, "e", ["great film", "bad, bad plot", "awful film"], 1)
  assert oov_rate.oov_rate(os.path.join(examples.uri, "Split-train"), VOCABULARY) == 1 / 7


def test_a_span_of_unknown_words_drifts_on_the_oov_rate(tmp_path):
  model = _serving_model(tmp_path)
  baseline = _text_examples(tmp_path, "baseline", ["great film", "bad plot, bad film"], 2)
  foreign = _text_examples(tmp_path, "new", ["Отличный фильм", "great фильм"], 3)
  with pytest.raises(DataAnomaliesError, match="drift in 1 feature of span 3") as drift:
    _run_gate(
      tmp_path, drifted=False, examples=foreign, serving_model=model, baseline_examples=baseline
    )
  assert (
    "train/oov_rate: 0.7500 of the span's words are outside the serving model's vocabulary "
    "against 0.0000 of span 2's, an increase of 0.7500 above the threshold 0.05"
  ) in str(drift.value)
  assert not os.path.exists(tmp_path / "validated_examples")


def test_the_oov_rates_are_recorded_when_they_pass(tmp_path):
  model = _serving_model(tmp_path)
  baseline = _text_examples(tmp_path, "baseline", ["great film", "bad plot, bad film"], 2)
  new = _text_examples(tmp_path, "new", ["great film", "a bad plot"], 3)  # 1 of 5 unknown
  _, statistics = _run_gate(
    tmp_path,
    drifted=False,
    examples=new,
    serving_model=model,
    baseline_examples=baseline,
    max_oov_increase=0.25,
  )
  assert statistics.get_float_custom_property(drift_gate.OOV_RATE) == pytest.approx(0.2)
  assert statistics.get_float_custom_property(drift_gate.BASELINE_OOV_RATE) == 0.0
