"""DistributionValidator's configuration: which features of a new span are compared with
the previous span's, by which distance, against which threshold.

* ``label`` (categorical in the curated schema): L-infinity distance, the largest change
  of one class's share (TFDV's ``infinity_norm``); 0.1 lets a span's positive share move
  from 50% to 60% and stops one that moves further.
* ``review_length``: the approximate Jensen-Shannon divergence of the two spans'
  histograms (TFDV's ``jensen_shannon_divergence``, in [0, 1]); 0.1 stops a span whose
  reviews became much shorter or longer.
"""

from tensorflow_metadata.proto.v0 import path_pb2, schema_pb2
from tfx.proto import distribution_validator_pb2

from core import features
from pipeline.layout import DEFAULT_MAX_LABEL_LINF, DEFAULT_MAX_LENGTH_JS


def make_drift_config(
  max_label_linf: float = DEFAULT_MAX_LABEL_LINF, max_length_js: float = DEFAULT_MAX_LENGTH_JS
) -> distribution_validator_pb2.DistributionValidatorConfig:
  """The comparisons of the module docstring with these thresholds.

  Raises:
    ValueError: a threshold outside (0, 1].
  """
  for name, value in (("max_label_linf", max_label_linf), ("max_length_js", max_length_js)):
    if not 0 < value <= 1:
      raise ValueError(f"{name} must be in (0, 1], got {value}")
  label = schema_pb2.FeatureComparator()
  label.infinity_norm.threshold = max_label_linf
  length = schema_pb2.FeatureComparator()
  length.jensen_shannon_divergence.threshold = max_length_js
  return distribution_validator_pb2.DistributionValidatorConfig(
    default_slice_config=distribution_validator_pb2.DistributionValidatorConfig.DatasetConfig(
      feature=[
        distribution_validator_pb2.FeatureComparator(
          path=path_pb2.Path(step=[features.LABEL_KEY]), distribution_comparator=label
        ),
        distribution_validator_pb2.FeatureComparator(
          path=path_pb2.Path(step=[features.REVIEW_LENGTH_KEY]), distribution_comparator=length
        ),
      ]
    )
  )
