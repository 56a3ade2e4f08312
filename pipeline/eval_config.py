"""The TFMA EvalConfig the Evaluator blesses models with."""

import tensorflow_model_analysis as tfma

from core import features

PREDICTION_KEY = "probabilities"
ACCURACY_METRIC = "binary_accuracy"


def make_eval_config(
  min_accuracy: float = 0.85,
  max_accuracy_drop: float = 0.01,
  by_span: bool = False,
) -> tfma.EvalConfig:
  """EvalConfig for the candidate (and, when the resolver finds one, the baseline) model.

  Metrics: ExampleCount, BinaryAccuracy, AUC, Precision, Recall, F1Score (decision
  threshold 0.5), Calibration (mean prediction / mean label) with CalibrationPlot, and a
  ConfusionMatrixPlot. Slices: overall and by ``length_bucket`` (review word count), and
  with ``by_span`` by ``span`` too.

  Blessing requires BinaryAccuracy >= ``min_accuracy`` and, when a baseline exists, no
  more than ``max_accuracy_drop`` below the baseline's (TFMA applies change thresholds
  only when a baseline model is present), on the overall slice; with ``by_span`` on each
  ``span`` slice instead: the golden test reviews (``span:0``) and the newest span's eval
  reviews (``components.evaluation_examples``) each pass both. The length slices are
  reported, not gated.

  Args:
    min_accuracy: value threshold on accuracy, in [0, 1].
    max_accuracy_drop: allowed absolute accuracy drop against the baseline, >= 0.
    by_span: the examples carry ``span`` (a pipeline of spans).

  Raises:
    ValueError: a threshold out of range.
  """
  if not 0.0 <= min_accuracy <= 1.0:
    raise ValueError(f"min_accuracy must be in [0, 1], got {min_accuracy}")
  if max_accuracy_drop < 0:
    raise ValueError(f"max_accuracy_drop must be >= 0, got {max_accuracy_drop}")
  accuracy_threshold = tfma.MetricThreshold(
    value_threshold=tfma.GenericValueThreshold(lower_bound={"value": min_accuracy}),
    change_threshold=tfma.GenericChangeThreshold(
      direction=tfma.MetricDirection.HIGHER_IS_BETTER, absolute={"value": -max_accuracy_drop}
    ),
  )
  # A model is judged on the whole test split (with spans: on the golden test and on the
  # newest span, each), and the per-length slices are reported, not gated.
  gated = tfma.SlicingSpec(feature_keys=[features.SPAN_KEY]) if by_span else tfma.SlicingSpec()
  metrics = [
    tfma.MetricConfig(class_name="ExampleCount"),
    tfma.MetricConfig(
      class_name="BinaryAccuracy",
      per_slice_thresholds=[
        tfma.PerSliceMetricThreshold(slicing_specs=[gated], threshold=accuracy_threshold)
      ],
    ),
    tfma.MetricConfig(class_name="AUC"),
    tfma.MetricConfig(class_name="Precision"),
    tfma.MetricConfig(class_name="Recall"),
    tfma.MetricConfig(class_name="F1Score"),
    tfma.MetricConfig(class_name="Calibration"),
    tfma.MetricConfig(class_name="CalibrationPlot"),
    tfma.MetricConfig(class_name="ConfusionMatrixPlot"),
  ]
  return tfma.EvalConfig(
    model_specs=[
      tfma.ModelSpec(
        signature_name="serving_default",
        label_key=features.LABEL_KEY,
        prediction_key=PREDICTION_KEY,
        # No preprocessing_function_names: every slice is on a raw feature that
        # ExampleGen writes, so TFMA need not run the TransformGraph a second time per
        # review (serving_default already runs it inside the model).
      )
    ],
    slicing_specs=[
      tfma.SlicingSpec(),
      tfma.SlicingSpec(feature_keys=[features.LENGTH_BUCKET_KEY]),
      *([gated] if by_span else []),
    ],
    metrics_specs=[tfma.MetricsSpec(metrics=metrics)],
  )
