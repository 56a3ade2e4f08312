"""Unit tests of components.drift_gate: a clean span's Examples and statistics are
published again, with span and version; a drifted one raises and publishes nothing."""

import os

import pytest
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.components.util import examples_utils
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_artifacts

from components import drift_gate
from components.anomalies_gate import DataAnomaliesError


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


def _run_gate(root, drifted):
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
  executor = drift_gate.DriftGate.EXECUTOR_SPEC.executor_class()
  executor.Do(inputs, outputs, {})
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
  assert message.startswith("DistributionValidator found drift in 1 feature of span 3;")
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
