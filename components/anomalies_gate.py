"""A gate that stops the pipeline when ExampleValidator found anomalies.

Why a custom component: TFX 1.16's ExampleValidator records anomalies (and a per-split
``blessed`` custom property) but never fails, so Transform and Trainer would happily run on
data that broke the schema. Nothing standard turns that record into a stop; this
component does, printing every anomaly, and the pipeline makes Transform depend on it.
(``components.drift_gate`` does the same for DistributionValidator's drift.)
"""

import os

import tensorflow as tf
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputDict
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils, standard_artifacts


class DataAnomaliesError(RuntimeError):
  """ExampleValidator found anomalies (or DistributionValidator drift); the run stops
  before Transform."""


def describe_anomalies(anomalies_uri: str, split_names: list[str]) -> list[str]:
  """One readable line per anomaly: ``split/feature: short description (long description)``.

  Args:
    anomalies_uri: an ExampleAnomalies artifact's directory.
    split_names: splits to read (``Split-<name>/SchemaDiff.pb`` in each; for
      DistributionValidator's split pairs, ``SplitPair-<name>/SchemaDiff.pb``).

  Raises:
    FileNotFoundError: a split's anomalies file is missing.
  """
  lines = []
  for split in split_names:
    path = os.path.join(anomalies_uri, f"Split-{split}", "SchemaDiff.pb")
    if not tf.io.gfile.exists(path):
      path = os.path.join(anomalies_uri, f"SplitPair-{split}", "SchemaDiff.pb")
    if not tf.io.gfile.exists(path):
      raise FileNotFoundError(
        f"no anomalies of split {split!r} in {anomalies_uri}: neither Split-{split}/ nor "
        f"SplitPair-{split}/ holds a SchemaDiff.pb"
      )
    anomalies = anomalies_pb2.Anomalies()
    with tf.io.gfile.GFile(path, "rb") as f:
      anomalies.ParseFromString(f.read())
    for feature, info in sorted(anomalies.anomaly_info.items()):
      lines.append(f"{split}/{feature}: {_describe(info)}")
    if anomalies.HasField("dataset_anomaly_info"):
      lines.append(f"{split}/<dataset>: {_describe(anomalies.dataset_anomaly_info)}")
  return lines


def _describe(info: anomalies_pb2.AnomalyInfo) -> str:
  """``short (long)``; from the reasons when the anomaly has no summary of its own (as
  DistributionValidator writes them: a reason's description gives the distance and the
  threshold)."""
  short = info.short_description or "; ".join(r.short_description for r in info.reason)
  long = info.description or " ".join(r.description for r in info.reason)
  return f"{short} ({long})"


@component
def AnomaliesGate(  # noqa: N802 - TFX names a component (a function here) like a class
  anomalies: InputArtifact[standard_artifacts.ExampleAnomalies],
) -> OutputDict(anomaly_count=int):
  """Passes when no split has anomalies; otherwise raises with every anomaly listed.

  Raises:
    DataAnomaliesError: at least one anomaly was found.
  """
  splits = artifact_utils.decode_split_names(anomalies.split_names)
  lines = describe_anomalies(anomalies.uri, splits)
  if lines:
    raise DataAnomaliesError(
      f"ExampleValidator found {len(lines)} anomal{'y' if len(lines) == 1 else 'ies'}; "
      "stopping before Transform. Fix the data or the schema (--schema-path):\n  "
      + "\n  ".join(lines)
    )
  return {"anomaly_count": 0}
