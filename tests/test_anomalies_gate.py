"""Unit tests of components.anomalies_gate."""

import os

import pytest
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.types import artifact_utils, standard_artifacts

from components import anomalies_gate


def _write(uri, split, anomalies):
  split_dir = os.path.join(uri, f"Split-{split}")
  os.makedirs(split_dir, exist_ok=True)
  with open(os.path.join(split_dir, "SchemaDiff.pb"), "wb") as f:
    f.write(anomalies.SerializeToString())


def _anomaly(short, long):
  info = anomalies_pb2.AnomalyInfo(short_description=short, description=long)
  info.severity = anomalies_pb2.AnomalyInfo.ERROR
  return info


@pytest.fixture
def anomalies_uri(tmp_path):
  uri = str(tmp_path / "anomalies")
  _write(uri, "train", anomalies_pb2.Anomalies())
  bad = anomalies_pb2.Anomalies()
  bad.anomaly_info["label"].CopyFrom(
    _anomaly("Out-of-range values", "Unexpectedly large value: 7.")
  )
  _write(uri, "eval", bad)
  return uri


def test_describe_anomalies_one_line_per_anomaly(anomalies_uri):
  lines = anomalies_gate.describe_anomalies(anomalies_uri, ["train", "eval"])
  assert lines == ["eval/label: Out-of-range values (Unexpectedly large value: 7.)"]


def test_describe_anomalies_clean_split_gives_nothing(anomalies_uri):
  assert anomalies_gate.describe_anomalies(anomalies_uri, ["train"]) == []


def test_describe_anomalies_sorted_features_and_dataset_anomaly(tmp_path):
  uri = str(tmp_path / "a")
  anomalies = anomalies_pb2.Anomalies()
  anomalies.anomaly_info["text"].CopyFrom(_anomaly("Missing", "Column dropped"))
  anomalies.anomaly_info["label"].CopyFrom(_anomaly("New value", "Saw 2"))
  anomalies.dataset_anomaly_info.CopyFrom(_anomaly("Low count", "Too few examples"))
  _write(uri, "test", anomalies)
  assert anomalies_gate.describe_anomalies(uri, ["test"]) == [
    "test/label: New value (Saw 2)",
    "test/text: Missing (Column dropped)",
    "test/<dataset>: Low count (Too few examples)",
  ]


def test_describe_anomalies_missing_split_file_raises(anomalies_uri):
  with pytest.raises(Exception) as info:
    anomalies_gate.describe_anomalies(anomalies_uri, ["test"])
  assert "Split-test" in str(info.value)


def _run_gate(uri, splits):
  artifact = standard_artifacts.ExampleAnomalies()
  artifact.uri = uri
  artifact.split_names = artifact_utils.encode_split_names(splits)
  executor = anomalies_gate.AnomaliesGate.EXECUTOR_SPEC.executor_class()
  output = standard_artifacts.Integer()
  output.uri = os.path.join(uri, "anomaly_count")
  executor.Do({"anomalies": [artifact]}, {"anomaly_count": [output]}, {})
  return output


def test_gate_raises_listing_every_anomaly(anomalies_uri):
  with pytest.raises(anomalies_gate.DataAnomaliesError) as info:
    _run_gate(anomalies_uri, ["train", "eval"])
  message = str(info.value)
  assert "1 anomaly;" in message
  assert "eval/label: Out-of-range values" in message
  assert "--schema-path" in message


def test_gate_passes_clean_splits(anomalies_uri):
  output = _run_gate(anomalies_uri, ["train"])
  assert output.read() == 0


def test_describe_anomalies_reads_reasons_of_distribution_validators_split_pairs(tmp_path):
  # As DistributionValidator writes a drifted feature: reasons only, under SplitPair-.
  anomalies = anomalies_pb2.Anomalies()
  reason = anomalies.anomaly_info["label"].reason.add()
  reason.short_description = "High Linfty distance between current and previous"
  reason.description = "The Linfty distance between current and previous is 0.39, above 0.1."
  uri = str(tmp_path / "drift")
  _write(uri, "unused", anomalies_pb2.Anomalies())
  os.rename(os.path.join(uri, "Split-unused"), os.path.join(uri, "SplitPair-train_train"))
  with open(os.path.join(uri, "SplitPair-train_train", "SchemaDiff.pb"), "wb") as f:
    f.write(anomalies.SerializeToString())
  assert anomalies_gate.describe_anomalies(uri, ["train_train"]) == [
    "train_train/label: High Linfty distance between current and previous (The Linfty "
    "distance between current and previous is 0.39, above 0.1.)"
  ]
