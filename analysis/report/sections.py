"""The run report's sections: each turns what one kind of artifact holds into an HTML
fragment (``templates``), drawing its figures into the page's folder.

Every function takes what the artifact holds (TFDV statistics and anomalies protos,
TFMA's metrics, plots and validation result, the Trainer's ``training_summary.json``,
the behavioural suite's rates), never MLMD, so each section is tested on artifacts the
test builds. The tables are filled from the same values the figures are drawn from.
"""

import dataclasses
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence

from analysis.report import figures, templates

# The metrics the evaluation table shows first, in this order; the rest follow by name.
_METRIC_ORDER = ("example_count", "binary_accuracy", "auc", "precision", "recall", "f1_score")
_CANDIDATE_NAMES = ("", "candidate")
# Bins of the calibration plot: TFMA records 10,000 fine buckets; they are merged into
# this many of equal width (the reliability diagram of Guo et al. 2017 uses 10-15).
CALIBRATION_BINS = 10
# A string feature with at most this many distinct values, and fewer than half as many as
# examples, is categorical: its top values are listed.
MAX_CATEGORIES = 50


def _number(value: float | int | None, digits: int = 4) -> str:
  """``value`` for a table: whole numbers with thousands separators (``25,000``), others
  with ``digits`` decimals; ``-`` for None or NaN."""
  if value is None or (isinstance(value, float) and math.isnan(value)):
    return "-"
  if float(value).is_integer():
    return f"{int(value):,}"
  return f"{value:.{digits}f}"


def metric_text(name: str, value: float) -> str:
  """A TFMA metric as the report shows it: ``example_count`` whole, others with four
  decimals (``0.9103``)."""
  return f"{int(value):,}" if name == "example_count" else f"{value:.4f}"


# ---------------------------------------------------------------------------------------
# Data


def _feature_name(feature) -> str:
  return ".".join(feature.path.step) or feature.name


def _dataset(stats):
  """The unsliced dataset of a DatasetFeatureStatisticsList."""
  return stats.datasets[0]


def feature_rows(stats: Mapping[str, object]) -> list[dict]:
  """Per feature and split: the figures TFDV's statistics hold (numeric: mean, std dev,
  zeros, min, median, max, missing share; string: unique values, mean length, top
  values). ``stats``: split -> DatasetFeatureStatisticsList."""
  rows = []
  names = []
  for split_stats in stats.values():
    for feature in _dataset(split_stats).features:
      if _feature_name(feature) not in names:
        names.append(_feature_name(feature))
  for name in names:
    for split, split_stats in stats.items():
      dataset = _dataset(split_stats)
      feature = next((f for f in dataset.features if _feature_name(f) == name), None)
      if feature is None:
        continue
      row = {"feature": name, "split": split}
      if feature.HasField("num_stats"):
        num = feature.num_stats
        common = num.common_stats
        quantiles = [h for h in num.histograms if h.type == h.QUANTILES]
        row.update(
          kind="numeric",
          mean=_number(num.mean, 2),
          std_dev=_number(num.std_dev, 2),
          zeros=_number(num.num_zeros),
          min=_number(num.min, 2),
          median=_number(_median(quantiles[0]) if quantiles else num.median, 2),
          max=_number(num.max, 2),
          missing=_share(common.num_missing, dataset.num_examples),
        )
      elif feature.HasField("string_stats"):
        string = feature.string_stats
        common = string.common_stats
        row.update(
          kind="string",
          unique=_number(string.unique),
          avg_length=_number(string.avg_length, 1),
          # Top values of a categorical feature; free text (most values unique) has none
          # worth showing.
          top=", ".join(f"{v.value} ({_number(v.frequency)})" for v in string.top_values[:4])
          if string.unique <= min(MAX_CATEGORIES, dataset.num_examples / 2)
          else "",
          missing=_share(common.num_missing, dataset.num_examples),
        )
      else:
        row.update(kind="other", missing="-")
      rows.append(row)
  return rows


def _median(quantiles) -> float | None:
  """The median from TFDV's quantiles histogram (the bucket edge at half the count)."""
  total = sum(b.sample_count for b in quantiles.buckets)
  seen = 0.0
  for bucket in quantiles.buckets:
    seen += bucket.sample_count
    if seen >= total / 2:
      return bucket.high_value
  return None


def _share(part: float, whole: float) -> str:
  return "-" if not whole else f"{100.0 * part / whole:.1f}%"


def _standard_histogram(stats, name: str):
  """(edges, shares) of a numeric feature's standard histogram, None without one."""
  dataset = _dataset(stats)
  feature = next((f for f in dataset.features if _feature_name(f) == name), None)
  if feature is None or not feature.HasField("num_stats"):
    return None
  standard = [h for h in feature.num_stats.histograms if h.type == h.STANDARD]
  if not standard or not standard[0].buckets:
    return None
  buckets = standard[0].buckets
  total = sum(b.sample_count for b in buckets) or 1.0
  edges = [buckets[0].low_value] + [b.high_value for b in buckets]
  return edges, [b.sample_count / total for b in buckets]


def _positive_share(stats) -> str:
  """The share of positive reviews (the mean of the 0/1 ``label``), ``-`` without labels."""
  dataset = _dataset(stats)
  label = next((f for f in dataset.features if _feature_name(f) == "label"), None)
  if label is None or not label.HasField("num_stats") or not dataset.num_examples:
    return "-"
  return f"{100.0 * label.num_stats.mean:.1f}%"


@dataclasses.dataclass(frozen=True)
class Rejections:
  """What the span ingestion refused (``components.review_example_gen``'s counts).

  Attributes:
    counts: ``rows``, ``reviews``, ``rejected``, ``golden_duplicates`` -> count.
    by_reason: reason -> refused rows.
    first: the first refused rows by file and line, each a dict (``file``, ``line``,
      ``reason``).
  """

  counts: Mapping[str, int]
  by_reason: Mapping[str, int]
  first: Sequence[Mapping] = ()


def data_section(
  stats: Mapping[str, object],
  anomalies: Mapping[str, object],
  out_dir: str,
  drift: Mapping[str, object] | None = None,
  drift_stopped: bool | None = None,
  rejections: Rejections | None = None,
  facets_page: str | None = None,
) -> str:
  """The data section.

  Args:
    stats: split -> TFDV DatasetFeatureStatisticsList (StatisticsGen's).
    anomalies: split -> TFDV Anomalies (ExampleValidator's).
    out_dir: where the figures are written.
    drift: split pair -> Anomalies of the DistributionValidator (spans only).
    drift_stopped: whether the DriftGate stopped the run (None: no drift check).
    rejections: the ingestion's refused rows (spans only).
    facets_page: file name of TFDV's Facets view beside the page, if written.
  """
  from tensorflow_data_validation.utils import display_util

  counts = [
    {
      "split": split,
      "examples": _number(_dataset(split_stats).num_examples),
      "positive": _positive_share(split_stats),
    }
    for split, split_stats in stats.items()
  ]
  histograms = {}
  for name in ("review_length",):
    series = {s: h for s, h in ((s, _standard_histogram(v, name)) for s, v in stats.items()) if h}
    if series:
      histograms[name] = os.path.basename(
        figures.histogram_comparison(
          series, f"{name} by split (TFDV statistics)", os.path.join(out_dir, f"{name}.png")
        )
      )
  anomaly_rows = []
  for split, found in anomalies.items():
    frame = display_util.get_anomalies_dataframe(found)
    for feature, row in frame.iterrows():
      anomaly_rows.append(
        {"split": split, "feature": feature, "short": row.iloc[0], "long": row.iloc[1]}
      )
  drift_rows = []
  for pair, found in (drift or {}).items():
    frame = display_util.get_drift_skew_dataframe(found)
    for _, row in frame.iterrows():
      drift_rows.append({"pair": pair, **{str(k): str(v) for k, v in row.items()}})
  return templates.render(
    "data.html",
    counts=counts,
    features=feature_rows(stats),
    histograms=histograms,
    anomalies=anomaly_rows,
    anomaly_splits=list(anomalies),
    drift_rows=drift_rows,
    drift_checked=drift is not None,
    drift_stopped=drift_stopped,
    rejections=rejections,
    facets_page=facets_page,
  )


# ---------------------------------------------------------------------------------------
# Training


def kept_epoch(history: Mapping[str, Sequence[float]], monitor: str) -> int | None:
  """The epoch (from 1) whose weights early stopping kept (``restore_best_weights``): the
  best value of ``monitor``, highest for accuracy/AUC, lowest otherwise (Keras
  ``EarlyStopping``'s ``mode="auto"``); None when ``monitor`` was not recorded."""
  values = list(history.get(monitor) or [])
  if not values:
    return None
  higher = monitor.endswith(("acc", "accuracy", "auc"))
  best = max(values) if higher else min(values)
  return values.index(best) + 1


def training_section(
  summary: Mapping, out_dir: str, monitor: str = "val_loss", pretraining: Mapping | None = None
) -> str:
  """The training section, from the Trainer's ``training_summary.json`` (``history``,
  ``seconds_per_epoch``, ``examples_per_second``, ...) and the EmbeddingTrainer's
  ``pretraining_summary.json``. Writes ``training.png``.

  Args:
    summary: the training summary.
    out_dir: where the figure goes.
    monitor: the early-stopping metric (``HParams.early_stopping_monitor``).
    pretraining: the word2vec pretraining's summary, None without.
  """
  history = summary.get("history") or {}
  kept = kept_epoch(history, monitor)
  curves = None
  if any(history.get(n) for n in ("loss", "accuracy", "auc")):
    curves = os.path.basename(
      figures.training_curves(history, kept, os.path.join(out_dir, "training.png"))
    )
  seconds = list(summary.get("seconds_per_epoch") or [])
  columns = [
    c for c in ("loss", "val_loss", "accuracy", "val_accuracy", "auc", "val_auc") if history.get(c)
  ]
  epochs = max((len(history[c]) for c in columns), default=0)
  rows = []
  for i in range(epochs):
    values = [_number(history[c][i]) if i < len(history[c]) else "-" for c in columns]
    rows.append(
      {
        "epoch": i + 1,
        "cells": values,
        "seconds": f"{seconds[i]:.1f}" if i < len(seconds) else "-",
        "kept": i + 1 == kept,
      }
    )
  facts = [
    ("model", summary.get("model")),
    ("attention", summary.get("attention")),
    ("parameters", _number(summary.get("parameters"))),
    ("train examples", _number(summary.get("train_examples"))),
    ("strategy", summary.get("strategy")),
    ("replicas", summary.get("replicas")),
    ("precision policy", summary.get("precision_policy")),
    ("global batch size", summary.get("global_batch_size")),
    ("epochs run", epochs or None),
    (f"epoch kept (best {monitor})", kept),
    ("mean seconds per epoch", summary.get("mean_seconds_per_epoch")),
    ("examples/s (steady training steps)", summary.get("examples_per_second")),
  ]
  calibration = summary.get("calibration") or {}
  if calibration:
    facts.append(("temperature (fitted on eval)", calibration.get("temperature")))
  warm = summary.get("warm_start")
  if warm:
    facts.append(("warm start", warm.get("model") or warm))
  embeddings = summary.get("pretrained_embeddings")
  if embeddings:
    facts.append(("pretrained embedding rows", _number(embeddings.get("rows"))))
  return templates.render(
    "training.html",
    facts=[(k, v) for k, v in facts if v not in (None, "", "-")],
    columns=columns,
    rows=rows,
    curves=curves,
    pretraining=[
      (key.replace("_", " "), _number(value, 1) if isinstance(value, (int, float)) else value)
      for key, value in (pretraining or {}).items()
      if not isinstance(value, dict)
    ],
  )


# ---------------------------------------------------------------------------------------
# Evaluation


def slice_label(slice_key: Sequence[tuple]) -> str:
  """``Overall`` for the empty key, else TFMA's ``feature:value`` joined by ``_X_``."""
  from tensorflow_model_analysis.slicer import slicer_lib

  return slicer_lib.stringify_slice_key(tuple(slice_key))


@dataclasses.dataclass
class SliceMetrics:
  """One slice's metrics: name -> value for the candidate, the baseline and the change
  (candidate - baseline; TFMA's diff)."""

  slice_key: tuple
  candidate: dict[str, float] = dataclasses.field(default_factory=dict)
  baseline: dict[str, float] = dataclasses.field(default_factory=dict)
  change: dict[str, float] = dataclasses.field(default_factory=dict)


def metrics_by_slice(metrics_for_slices: Iterable) -> list[SliceMetrics]:
  """TFMA's MetricsForSlice protos (``tfma.load_metrics``) as ``SliceMetrics``, the
  overall slice first, then by slice name. Non-scalar metrics are left out."""
  from tensorflow_model_analysis.slicer import slicer_lib

  found: dict[tuple, SliceMetrics] = {}
  for per_slice in metrics_for_slices:
    key = slicer_lib.deserialize_slice_key(per_slice.slice_key)
    entry = found.setdefault(key, SliceMetrics(key))
    for item in per_slice.metric_keys_and_values:
      if not item.value.HasField("double_value"):
        continue
      value = item.value.double_value.value
      name = item.key.name
      if item.key.is_diff:
        entry.change[name] = value
      elif item.key.model_name in _CANDIDATE_NAMES:
        entry.candidate[name] = value
      else:
        entry.baseline[name] = value
  return sorted(found.values(), key=lambda s: (s.slice_key != (), slice_label(s.slice_key)))


def _ordered_metrics(names: Iterable[str]) -> list[str]:
  names = set(names)
  return [n for n in _METRIC_ORDER if n in names] + sorted(names - set(_METRIC_ORDER))


def _metric_name(class_name: str) -> str:
  """TFMA's metric name for a MetricConfig class name (``BinaryAccuracy`` ->
  ``binary_accuracy``)."""
  import tensorflow_model_analysis as tfma

  metric_class = getattr(tfma.metrics, class_name, None)
  try:
    return metric_class().name
  except Exception:  # not a TFMA metric, or one needing arguments: TFMA's own snake case
    return re.sub(r"(?<!^)(?=[A-Z])", "_", class_name).lower()


def threshold_rows(eval_config, slices: Sequence[SliceMetrics], validation) -> list[dict]:
  """Each gate of the EvalConfig on each slice it applies to: metric, slice, kind
  (``value`` / ``change``), the bound, the value TFMA measured and whether it held
  (a failure in TFMA's ValidationResult for that metric, slice and kind fails it).
  A change gate applies only where TFMA measured a change (a baseline was there)."""
  from tensorflow_model_analysis.slicer import slicer_lib

  failed = set()
  for per_slice in validation.metric_validations_per_slice:
    key = slicer_lib.deserialize_slice_key(per_slice.slice_key)
    for failure in per_slice.failures:
      failed.add((key, failure.metric_key.name, failure.metric_key.is_diff))
  rows = []
  for spec in eval_config.metrics_specs:
    for metric in spec.metrics:
      name = _metric_name(metric.class_name)
      gates = [(list(p.slicing_specs), p.threshold) for p in metric.per_slice_thresholds]
      if metric.HasField("threshold"):
        gates.append(([], metric.threshold))
      for slicing_specs, threshold in gates:
        for entry in slices:
          if not _slice_matches(entry.slice_key, slicing_specs):
            continue
          for kind, is_diff, values in (
            ("value", False, entry.candidate),
            ("change", True, entry.change),
          ):
            bound = _bound_text(threshold, kind)
            if bound is None or name not in values:
              continue
            rows.append(
              {
                "metric": name,
                "slice": slice_label(entry.slice_key),
                "kind": kind,
                "bound": bound,
                "value": values[name],
                "shown": f"{values[name]:+.4f}" if is_diff else metric_text(name, values[name]),
                "passed": (entry.slice_key, name, is_diff) not in failed,
              }
            )
  return rows


def _slice_matches(slice_key: tuple, slicing_specs: Sequence) -> bool:
  """Whether a slice is one a threshold's slicing specs name (none: the overall slice)."""
  if not slicing_specs:
    return slice_key == ()
  for spec in slicing_specs:
    columns = sorted(spec.feature_keys)
    if [column for column, _ in slice_key] == columns and not spec.feature_values:
      return True
  return False


def _bound_text(threshold, kind: str) -> str | None:
  from pipeline.summary import value_bound_text

  if kind == "value":
    return value_bound_text(threshold)
  if kind == "change" and threshold.HasField("change_threshold"):
    change = threshold.change_threshold
    if change.HasField("absolute"):
      return f">= {change.absolute.value:+g}"
    if change.HasField("relative"):
      return f">= {change.relative.value:+g} (relative)"
  return None


def calibration_bins(buckets, bins: int = CALIBRATION_BINS) -> tuple[list, list, list]:
  """Merges TFMA's calibration histogram buckets (``lower_threshold_inclusive``,
  ``num_weighted_examples``, ``total_weighted_label``,
  ``total_weighted_refined_prediction``) into ``bins`` equal-width bins of [0, 1]:
  per non-empty bin, (mean prediction, mean label, examples)."""
  examples = [0.0] * bins
  labels = [0.0] * bins
  predictions = [0.0] * bins
  for bucket in buckets:
    n = bucket.num_weighted_examples.value
    if not n:
      continue
    low = bucket.lower_threshold_inclusive
    index = min(max(math.floor((0.0 if math.isinf(low) else low) * bins), 0), bins - 1)
    examples[index] += n
    labels[index] += bucket.total_weighted_label.value
    predictions[index] += bucket.total_weighted_refined_prediction.value
  kept = [i for i in range(bins) if examples[i]]
  return (
    [predictions[i] / examples[i] for i in kept],
    [labels[i] / examples[i] for i in kept],
    [examples[i] for i in kept],
  )


def confusion_at(matrices, threshold: float = 0.5) -> tuple[float, list[list[float]]] | None:
  """TFMA's ConfusionMatrixAtThresholds at the threshold nearest ``threshold``:
  ``(threshold, [[TN, FP], [FN, TP]])``; None without matrices."""
  if not matrices.matrices:
    return None
  nearest = min(matrices.matrices, key=lambda m: abs(m.threshold - threshold))
  return nearest.threshold, [
    [nearest.true_negatives, nearest.false_positives],
    [nearest.false_negatives, nearest.true_positives],
  ]


def evaluation_section(
  metrics_for_slices: Iterable,
  plots_for_slices: Iterable,
  validation,
  eval_config,
  out_dir: str,
  golden_slice: tuple = (),
) -> str:
  """The evaluation section: TFMA's metrics per slice, candidate beside baseline with the
  change; each gate with its bound and value; the calibration plot and the confusion
  matrix of ``golden_slice`` (the golden test: overall, or ``span:0`` with spans).

  Args:
    metrics_for_slices, plots_for_slices: ``tfma.load_metrics`` / ``tfma.load_plots``.
    validation: ``tfma.load_validation_result``.
    eval_config: the Evaluator's ``tfma.EvalConfig``.
    out_dir: where ``calibration.png`` and ``confusion.png`` go.
    golden_slice: the slice key the plots are drawn for.
  """
  from tensorflow_model_analysis.slicer import slicer_lib

  slices = metrics_by_slice(metrics_for_slices)
  has_baseline = any(s.baseline for s in slices)
  names = _ordered_metrics(n for s in slices for n in s.candidate)
  table = []
  for entry in slices:
    cells = []
    for name in names:
      value = entry.candidate.get(name)
      cells.append(
        {
          "metric": name,
          "value": value,
          "shown": "-" if value is None else metric_text(name, value),
          "baseline": None
          if name not in entry.baseline
          else metric_text(name, entry.baseline[name]),
          "change": None if name not in entry.change else f"{entry.change[name]:+.4f}",
        }
      )
    table.append({"slice": slice_label(entry.slice_key), "cells": cells})
  calibration = confusion = None
  for per_slice in plots_for_slices:
    if slicer_lib.deserialize_slice_key(per_slice.slice_key) != tuple(golden_slice):
      continue
    for item in per_slice.plot_keys_and_values:
      if item.key.model_name not in _CANDIDATE_NAMES:
        continue
      if item.value.HasField("calibration_histogram_buckets") and calibration is None:
        predicted, observed, counts = calibration_bins(
          item.value.calibration_histogram_buckets.buckets
        )
        if counts:
          calibration = os.path.basename(
            figures.calibration_plot(
              predicted, observed, counts, os.path.join(out_dir, "calibration.png")
            )
          )
      if item.value.HasField("confusion_matrix_at_thresholds") and confusion is None:
        found = confusion_at(item.value.confusion_matrix_at_thresholds)
        if found:
          confusion = os.path.basename(
            figures.confusion_matrix(found[1], found[0], os.path.join(out_dir, "confusion.png"))
          )
  return templates.render(
    "evaluation.html",
    metric_names=names,
    table=table,
    has_baseline=has_baseline,
    thresholds=threshold_rows(eval_config, slices, validation),
    validation_ok=validation.validation_ok,
    calibration=calibration,
    confusion=confusion,
    golden=slice_label(golden_slice),
  )


# ---------------------------------------------------------------------------------------
# Behaviour, explanations, lineage


def behaviour_section(
  rates: Mapping[str, Mapping[str, float | None]],
  thresholds: Mapping[str, float],
  reasons: Sequence[str],
  test_types: Mapping[str, str] | None = None,
) -> str:
  """The behavioural suite: per capability, the candidate's and the serving model's
  failure rates, the threshold and whether it held; then the validator's reasons.

  Args:
    rates: capability -> ``{"candidate", "baseline"}`` (``summary.behaviour_rates``).
    thresholds: capability -> highest allowed failure rate (absent: not gated).
    reasons: the BehaviourValidator's reasons for not blessing.
    test_types: capability -> ``MFT``/``INV``/``DIR``.
  """
  rows = []
  for name, rate in rates.items():
    limit = thresholds.get(name)
    rows.append(
      {
        "capability": name,
        "type": (test_types or {}).get(name, ""),
        "candidate": rate["candidate"],
        "candidate_shown": f"{rate['candidate']:.3f}",
        "baseline_shown": "-" if rate.get("baseline") is None else f"{rate['baseline']:.3f}",
        "threshold": "-" if limit is None else f"{limit:.3f}",
        "passed": limit is None or rate["candidate"] <= limit,
        "gated": limit is not None,
      }
    )
  return templates.render(
    "behaviour.html",
    rows=rows,
    has_baseline=any(r.get("baseline") is not None for r in rates.values()),
    reasons=reasons,
  )


@dataclasses.dataclass(frozen=True)
class ExplainedReview:
  """A golden-test review, its true label (0/1) and the candidate's ``Explanation``."""

  label: int
  explanation: object  # analysis.explain.Explanation

  @property
  def correct(self) -> bool:
    return self.explanation.label == self.label


def explanations_section(reviews: Sequence[ExplainedReview], out_dir: str) -> str:
  """Attention heatmaps (``analysis.explain.render_png``) of golden-test reviews the
  candidate gets right, then of those it gets wrong."""
  from analysis import explain

  shown = []
  for group in (True, False):
    for review in (r for r in reviews if r.correct == group):
      index = len(shown)
      path = explain.render_png(review.explanation, os.path.join(out_dir, f"attention_{index}.png"))
      e = review.explanation
      shown.append(
        {
          "image": os.path.basename(path),
          "correct": group,
          "label": "positive" if review.label == 1 else "negative",
          "predicted": e.sentiment,
          "probability": f"{e.probability:.3f}",
          "top": ", ".join(f"{t} ({w:.3f})" for t, w in e.top_tokens(6)),
          "words": len(e.tokens),
        }
      )
  return templates.render("explanations.html", reviews=shown)


def lineage_section(nodes: Sequence[Mapping]) -> str:
  """Every component of the run: state, seconds, and its input and output artifacts
  (type, span and version where they have one, URI).

  Args:
    nodes: per component ``{"node_id", "state", "seconds", "inputs", "outputs"}``, the
      artifacts as ``{"key", "type", "id", "uri", "span", "version"}``.
  """
  return templates.render("lineage.html", nodes=nodes)
