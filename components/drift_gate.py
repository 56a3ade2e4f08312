"""DriftGate: a new span's Examples pass on to training only when DistributionValidator
found no drift from the previous span.

Why a component of our own: TFX 1.16's DistributionValidator records drift (anomalies and
a per-split-pair ``blessed`` property) but never fails, and nothing standard turns that
record into a stop. A stop alone is not enough for continuous training either: the
drifted span's Examples are published by the ExampleGen before validation, so a window of
the ExampleGen's spans (``rolling_range``) would train on them in the next run. This gate
therefore raises on drift, printing each drifted feature with its distance and threshold,
and otherwise publishes ``validated_examples``: a copy of the span's Examples, with its
``span`` and ``version``, that the pipeline's window reads instead, and
``validated_statistics``, the next span's baseline. A drifted span is published in
neither, so it never enters a window nor becomes a baseline; re-delivering it as a new
version gives it a new check.

The copy costs the span's Examples once more on disk (the statistics are a few kB) (about 13 MB for 25,000 reviews,
gzipped); an artifact pointing at another's directory would leave TFX's ownership of
artifact directories (and any garbage collection of them) wrong.
"""

import os

import tensorflow as tf
from tfx import v1 as tfx
from tfx.components.util import examples_utils
from tfx.types import artifact_utils

from components.anomalies_gate import DataAnomaliesError, describe_anomalies

FIX = (
  "The new span's data drifted from the previous span's: check its source, then "
  "re-deliver the span as a new version, or raise --max-label-linf / --max-length-js."
)


def copy_split_artifact(source, target) -> int:
  """Copies the split directories (``Split-<name>/``) and split names of ``source`` (an
  Examples or ExampleStatistics artifact) into ``target``, and for Examples their span,
  version and payload format; returns the number of files copied.

  Raises:
    FileNotFoundError: a split directory of ``source`` is missing.
  """
  splits = artifact_utils.decode_split_names(source.split_names)
  copied = 0
  for split in splits:
    source_dir = artifact_utils.get_split_uri([source], split)
    if not tf.io.gfile.isdir(source_dir):
      raise FileNotFoundError(f"{source.type_name} split {split!r} missing: {source_dir}")
    target_dir = os.path.join(target.uri, f"Split-{split}")
    tf.io.gfile.makedirs(target_dir)
    for name in tf.io.gfile.listdir(source_dir):
      tf.io.gfile.copy(os.path.join(source_dir, name), os.path.join(target_dir, name), True)
      copied += 1
  target.split_names = source.split_names
  if isinstance(source, tfx.types.standard_artifacts.Examples):
    target.span = source.span
    target.version = source.version
    examples_utils.set_payload_format(target, examples_utils.get_payload_format(source))
  return copied


@tfx.dsl.components.component
def DriftGate(  # noqa: N802 - TFX names a component (a function here) like a class
  anomalies: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ExampleAnomalies],
  examples: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Examples],
  statistics: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ExampleStatistics],
  validated_examples: tfx.dsl.components.OutputArtifact[tfx.types.standard_artifacts.Examples],
  validated_statistics: tfx.dsl.components.OutputArtifact[
    tfx.types.standard_artifacts.ExampleStatistics
  ],
):
  """Raises on drift; otherwise publishes ``examples`` and ``statistics`` again as
  ``validated_examples`` and ``validated_statistics``.

  Args:
    anomalies: DistributionValidator's ExampleAnomalies (split pairs, e.g. ``train_train``).
    examples: the new span's Examples, as the ExampleGen published them.
    statistics: their statistics, as StatisticsGen published them.
    validated_examples: the same Examples (split files, span, version), published only
      when no split pair drifted: what the training window reads.
    validated_statistics: the same statistics: the next span's baseline.

  Raises:
    DataAnomaliesError: at least one feature drifted beyond its threshold.
  """
  pairs = artifact_utils.decode_split_names(anomalies.split_names)
  lines = describe_anomalies(anomalies.uri, pairs)
  if lines:
    raise DataAnomaliesError(
      f"DistributionValidator found drift in {len(lines)} feature"
      f"{'' if len(lines) == 1 else 's'} of span {examples.span}; stopping before "
      f"Transform. {FIX}\n  " + "\n  ".join(lines)
    )
  copy_split_artifact(examples, validated_examples)
  copy_split_artifact(statistics, validated_statistics)
