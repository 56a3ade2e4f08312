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

The gate also measures what DistributionValidator cannot: the share of the span's words
outside the serving model's vocabulary (``components.oov_rate``), against the same share
of the previous span's, and stops when it rose past a threshold.

The copy costs the span's Examples once more on disk (the statistics are a few kB) (about 13 MB for 25,000 reviews,
gzipped); an artifact pointing at another's directory would leave TFX's ownership of
artifact directories (and any garbage collection of them) wrong.
"""

import os
from collections.abc import Sequence

import tensorflow as tf
from tfx.components.util import examples_utils
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import path_utils

from components import oov_rate
from components.anomalies_gate import DataAnomaliesError, describe_anomalies
from components.imdb_beam import TRAIN
from models import warm_start

FIX = (
  "The new span's data drifted from the previous span's: check its source, then "
  "re-deliver the span as a new version, or raise --max-label-linf / --max-length-js / "
  "--max-oov-increase."
)
# Custom properties of ``validated_statistics``: the span's out-of-vocabulary rate under
# the serving model's vocabulary, and the baseline span's.
OOV_RATE = "oov_rate"
BASELINE_OOV_RATE = "baseline_oov_rate"


def oov_drift(
  examples, baseline_examples, serving_model_dir: str, max_increase: float
) -> tuple[float, float, str | None]:
  """The ``train`` splits' out-of-vocabulary rates (``components.oov_rate``) of
  ``examples`` and ``baseline_examples`` under the vocabulary of the SavedModel in
  ``serving_model_dir``.

  Returns:
    ``(rate, baseline rate, line)``: ``line`` describes the drift, when the rate rose by
    more than ``max_increase``, else None.

  Raises:
    warm_start.IncompatibleModelError: the SavedModel has no vocabulary asset.
  """
  vocabulary = warm_start.read_vocabulary(serving_model_dir)
  rate, baseline = (
    oov_rate.oov_rate(artifact_utils.get_split_uri([e], TRAIN), vocabulary)
    for e in (examples, baseline_examples)
  )
  if rate - baseline <= max_increase:
    return rate, baseline, None
  return (
    rate,
    baseline,
    f"train/oov_rate: {rate:.4f} of the span's words are outside the serving model's "
    f"vocabulary against {baseline:.4f} of span {baseline_examples.span}'s, an increase of "
    f"{rate - baseline:.4f} above the threshold {max_increase:g}",
  )


def copy_split_artifact(source, target, splits: Sequence[str] | None = None) -> int:
  """Copies the split directories (``Split-<name>/``) and split names of ``source`` (an
  Examples or ExampleStatistics artifact) into ``target``, and for Examples their span,
  version and payload format; returns the number of files copied.

  Args:
    source, target: artifacts of the same type.
    splits: copy only these splits (``target``'s split names are then these); None = all.

  Raises:
    FileNotFoundError: a split directory of ``source`` is missing.
  """
  if splits is None:
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
  target.split_names = artifact_utils.encode_split_names(list(splits))
  if isinstance(source, standard_artifacts.Examples):
    target.span = source.span
    target.version = source.version
    examples_utils.set_payload_format(target, examples_utils.get_payload_format(source))
  return copied


@component
def DriftGate(  # noqa: N802 - TFX names a component (a function here) like a class
  anomalies: InputArtifact[standard_artifacts.ExampleAnomalies],
  examples: InputArtifact[standard_artifacts.Examples],
  statistics: InputArtifact[standard_artifacts.ExampleStatistics],
  validated_examples: OutputArtifact[standard_artifacts.Examples],
  validated_statistics: OutputArtifact[standard_artifacts.ExampleStatistics],
  serving_model: InputArtifact[standard_artifacts.Model] = None,
  baseline_examples: InputArtifact[standard_artifacts.Examples] = None,
  max_oov_increase: Parameter[float] = 0.05,
):
  """Raises on drift; otherwise publishes ``examples`` and ``statistics`` again as
  ``validated_examples`` and ``validated_statistics``.

  Drift is what DistributionValidator found (``anomalies``) and, with a
  ``serving_model`` and ``baseline_examples``, an out-of-vocabulary rate of the span's
  ``train`` reviews under the serving model's vocabulary more than ``max_oov_increase``
  above the baseline span's (``oov_drift``); both rates are custom properties of
  ``validated_statistics`` (``oov_rate``, ``baseline_oov_rate``).

  Args:
    anomalies: DistributionValidator's ExampleAnomalies (split pairs, e.g. ``train_train``).
    examples: the new span's Examples, as the ExampleGen published them.
    statistics: their statistics, as StatisticsGen published them.
    validated_examples: the same Examples (split files, span, version), published only
      when no split pair drifted: what the training window reads.
    validated_statistics: the same statistics: the next span's baseline.
    serving_model: optional, the latest blessed Model (whose vocabulary the rates use).
    baseline_examples: optional, the Examples of the span ``statistics`` is compared
      with (the last span that passed).
    max_oov_increase: largest allowed rise of the out-of-vocabulary rate, in [0, 1].

  Raises:
    DataAnomaliesError: at least one feature drifted beyond its threshold.
  """
  pairs = artifact_utils.decode_split_names(anomalies.split_names)
  lines = describe_anomalies(anomalies.uri, pairs)
  rates = None
  if serving_model is not None and baseline_examples is not None:
    *rates, line = oov_drift(
      examples,
      baseline_examples,
      path_utils.serving_model_dir(serving_model.uri),
      max_oov_increase,
    )
    lines += [line] if line else []
  if lines:
    raise DataAnomaliesError(
      f"The drift check found drift in {len(lines)} feature"
      f"{'' if len(lines) == 1 else 's'} of span {examples.span}; stopping before "
      f"Transform. {FIX}\n  " + "\n  ".join(lines)
    )
  copy_split_artifact(examples, validated_examples)
  copy_split_artifact(statistics, validated_statistics)
  if rates:
    validated_statistics.set_float_custom_property(OOV_RATE, rates[0])
    validated_statistics.set_float_custom_property(BASELINE_OOV_RATE, rates[1])
