"""The run report's sections, each rendered from small artifacts the test builds: TFDV
statistics and anomalies, a training summary, a TFMA result, behavioural rates."""

import html
import re

import numpy as np
import pandas as pd
import pytest
import tensorflow_data_validation as tfdv
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.proto import metrics_for_slice_pb2, validation_result_pb2
from tensorflow_model_analysis.slicer import slicer_lib

from analysis.explain import Explanation
from analysis.report import figures, page, sections
from pipeline.eval_config import make_eval_config

PNG = b"\x89PNG\r\n\x1a\n"


def _is_png(path) -> bool:
  with open(path, "rb") as f:
    return f.read(8) == PNG


def _reviews(n: int, seed: int, buckets=("0000-0127", "0128-0255")) -> pd.DataFrame:
  rng = np.random.default_rng(seed)
  lengths = rng.integers(5, 400, n)
  return pd.DataFrame(
    {
      "text": [f"review number {i} of seed {seed}" for i in range(n)],
      "label": rng.integers(0, 2, n),
      "review_length": lengths,
      "length_bucket": [buckets[i % len(buckets)] for i in range(n)],
    }
  )


def _row_cells(page_html: str, feature: str, split: str) -> list[str]:
  """The cells of the feature table's row for (feature, split)."""
  match = re.search(
    rf"<tr><td>{feature}</td><td>{split}</td>(.*?)</tr>", page_html, flags=re.DOTALL
  )
  assert match, (feature, split)
  return re.findall(r"<td[^>]*>(.*?)</td>", match.group(1))


def test_data_section_shows_tfdv_counts_figures_and_anomalies(tmp_path):
  train, test = _reviews(40, 1), _reviews(24, 2, buckets=("0000-0127", "0512+"))
  stats = {
    "train": tfdv.generate_statistics_from_dataframe(train),
    "test": tfdv.generate_statistics_from_dataframe(test),
  }
  schema = tfdv.infer_schema(stats["train"])
  anomalies = {"test": tfdv.validate_statistics(stats["test"], schema)}

  out = sections.data_section(stats, anomalies, str(tmp_path))

  assert re.search(r'data-split="train">40<', out) and re.search(r'data-split="test">24<', out)
  assert f"{100 * train['label'].mean():.1f}%" in out
  numeric = _row_cells(out, "review_length", "train")
  assert numeric[0] == f"{train['review_length'].mean():.2f}"
  assert numeric[3] == f"{train['review_length'].min():,}"
  assert numeric[5] == f"{train['review_length'].max():,}"
  bucket = _row_cells(out, "length_bucket", "train")
  assert bucket[6] == "2" and "0000-0127 (20)" in bucket[8]
  # Free text has no top values worth listing.
  assert _row_cells(out, "text", "test")[8] == ""
  # TFDV's anomaly: the test split has a bucket the schema does not know.
  assert "length_bucket" in out and "Unexpected string values" in out
  assert _is_png(tmp_path / "review_length.png")
  assert "No drift check in this run" in out


def test_data_section_without_anomalies_says_so(tmp_path):
  stats = {"train": tfdv.generate_statistics_from_dataframe(_reviews(10, 3))}
  schema = tfdv.infer_schema(stats["train"])
  out = sections.data_section(
    stats,
    {"train": tfdv.validate_statistics(stats["train"], schema)},
    str(tmp_path),
    drift={},
    drift_stopped=True,
    rejections=sections.Rejections(
      {"rows": 12, "reviews": 10, "rejected": 2, "golden_duplicates": 0},
      {"bad_label": 2},
      [{"file": "span-1/a.jsonl", "line": 3, "reason": "bad_label: label 7"}],
    ),
  )
  assert "No anomalies in train" in out
  assert "stopped the run before Transform" in out
  assert "span-1/a.jsonl:3" in out and "bad_label" in out


SUMMARY = {
  "model": "lstm_attention",
  "epochs": 4,
  "examples_per_second": 119.56,
  "history": {
    "loss": [0.5, 0.3, 0.2, 0.1],
    "val_loss": [0.4, 0.25, 0.27, 0.3],
    "accuracy": [0.7, 0.85, 0.9, 0.95],
    "val_accuracy": [0.8, 0.88, 0.89, 0.87],
  },
  "seconds_per_epoch": [12.0, 10.5, 10.25, 10.0],
  "calibration": {"temperature": 1.55},
}


@pytest.mark.parametrize(("monitor", "kept"), [("val_loss", 2), ("val_accuracy", 3)])
def test_training_section_marks_the_epoch_early_stopping_kept(tmp_path, monitor, kept):
  out = sections.training_section(SUMMARY, str(tmp_path), monitor=monitor)
  rows = re.findall(r"<tr[^>]*><td>(\d)( \(kept\))?</td>(.*?)</tr>", out)
  assert [int(r[0]) for r in rows] == [1, 2, 3, 4]
  assert [int(r[0]) for r in rows if r[1]] == [kept]
  cells = re.findall(r'<td class="num">(.*?)</td>', rows[1][2])
  # loss, val_loss, accuracy, val_accuracy, seconds of epoch 2
  assert cells == ["0.3000", "0.2500", "0.8500", "0.8800", "10.5"]
  assert f"epoch kept (best {monitor})</th><td>{kept}<" in out
  assert "119.56" in out and "1.55" in out
  assert _is_png(tmp_path / "training.png")


def test_training_curves_need_a_metric(tmp_path):
  with pytest.raises(ValueError, match="no loss, accuracy or auc"):
    figures.training_curves({"lr": [0.1]}, None, str(tmp_path / "x.png"))


def _slice(key: tuple):
  return slicer_lib.serialize_slice_key(key)


def _metrics(key, candidate, baseline=None):
  """MetricsForSlice: the candidate's values (and the baseline's and the diffs)."""
  metrics = metrics_for_slice_pb2.MetricsForSlice(slice_key=_slice(key))
  for name, value in candidate.items():
    item = metrics.metric_keys_and_values.add()
    item.key.name = name
    item.key.model_name = "candidate" if baseline else ""
    item.value.double_value.value = value
    if baseline:
      base = metrics.metric_keys_and_values.add()
      base.key.name, base.key.model_name = name, "baseline"
      base.value.double_value.value = baseline[name]
      diff = metrics.metric_keys_and_values.add()
      diff.key.name, diff.key.model_name, diff.key.is_diff = name, "candidate", True
      diff.value.double_value.value = value - baseline[name]
  return metrics


def _plots():
  plots = metrics_for_slice_pb2.PlotsForSlice(slice_key=_slice(()))
  item = plots.plot_keys_and_values.add()
  buckets = item.value.calibration_histogram_buckets.buckets
  # 0.05-wide buckets: 10 examples at p = 0.1 (2 positive), 30 at p = 0.9 (27 positive).
  for low, n, positives, mean_p in ((0.1, 10, 2, 0.1), (0.9, 30, 27, 0.9)):
    bucket = buckets.add(lower_threshold_inclusive=low, upper_threshold_exclusive=low + 0.05)
    bucket.num_weighted_examples.value = n
    bucket.total_weighted_label.value = positives
    bucket.total_weighted_refined_prediction.value = n * mean_p
  matrices = plots.plot_keys_and_values.add().value.confusion_matrix_at_thresholds
  matrices.matrices.add(
    threshold=0.5, true_negatives=8, false_positives=3, false_negatives=2, true_positives=27
  )
  matrices.matrices.add(
    threshold=0.9, true_negatives=10, false_positives=1, false_negatives=9, true_positives=20
  )
  return [plots]


def _validation_failing_the_change(overall_change: float):
  result = validation_result_pb2.ValidationResult(validation_ok=False)
  per_slice = result.metric_validations_per_slice.add(slice_key=_slice(()))
  failure = per_slice.failures.add()
  failure.metric_key.name = "binary_accuracy"
  failure.metric_key.model_name = "candidate"
  failure.metric_key.is_diff = True
  failure.metric_value.double_value.value = overall_change
  return result


def test_evaluation_section_shows_tfma_values_gates_and_plots(tmp_path):
  overall = {"example_count": 40.0, "binary_accuracy": 0.875, "auc": 0.91234567}
  baseline = {"example_count": 40.0, "binary_accuracy": 0.9, "auc": 0.92}
  short = {"example_count": 15.0, "binary_accuracy": 0.8, "auc": 0.85}
  metrics = [
    _metrics((("length_bucket", "0000-0127"),), short, {k: v - 0.01 for k, v in short.items()}),
    _metrics((), overall, baseline),
  ]
  config = make_eval_config(min_accuracy=0.85, max_accuracy_drop=0.01)
  out = sections.evaluation_section(
    metrics, _plots(), _validation_failing_the_change(-0.025), config, str(tmp_path)
  )

  shown = re.findall(
    r'data-slice="([^"]+)" data-metric="(\w+)" data-model="candidate" '
    r'data-value="([^"]+)">([^<]+)<',
    out,
  )
  values = {(s, m): (float(v), text) for s, m, v, text in shown}
  for name, value in overall.items():
    exact, text = values[("Overall", name)]
    assert exact == value
    assert text == (f"{int(value):,}" if name == "example_count" else f"{value:.4f}")
  assert values[("length_bucket:0000-0127", "auc")][0] == short["auc"]
  # Overall first, then the slices by name; the baseline and change beside each value.
  assert out.index('data-slice="Overall"') < out.index('data-slice="length_bucket:0000-0127"')
  assert "0.9000 (-0.0250)" in out
  # The gates: the value held (0.875 >= 0.85), the change failed (-0.025 < -0.01), only
  # on the overall slice.
  gates = re.findall(
    r'data-gate="([^"]+)" data-value="([^"]+)">([^<]+)</td>\s*<td class="(\w+)">(\w+)<', out
  )
  assert gates == [
    ("binary_accuracy:value:Overall", "0.875", "0.8750", "pass", "passed"),
    ("binary_accuracy:change:Overall", repr(0.875 - 0.9), "-0.0250", "fail", "FAILED"),
  ]
  assert _is_png(tmp_path / "calibration.png") and _is_png(tmp_path / "confusion.png")


def test_calibration_bins_merge_tfma_buckets():
  buckets = _plots()[0].plot_keys_and_values[0].value.calibration_histogram_buckets.buckets
  predicted, observed, counts = sections.calibration_bins(buckets, bins=10)
  assert counts == [10, 30]
  assert predicted == pytest.approx([0.1, 0.9])
  assert observed == pytest.approx([0.2, 0.9])


def test_confusion_at_picks_the_nearest_threshold():
  matrices = _plots()[0].plot_keys_and_values[1].value.confusion_matrix_at_thresholds
  assert sections.confusion_at(matrices, 0.55) == (0.5, [[8, 3], [2, 27]])
  assert sections.confusion_at(matrices, 0.8) == (0.9, [[10, 1], [9, 20]])
  assert sections.confusion_at(type(matrices)()) is None


def test_threshold_rows_follow_the_span_slices_with_spans():
  config = make_eval_config(min_accuracy=0.85, by_span=True)
  slices = sections.metrics_by_slice(
    [
      _metrics((), {"binary_accuracy": 0.95}),
      _metrics((("span", 0),), {"binary_accuracy": 0.9}),
      _metrics((("span", 3),), {"binary_accuracy": 0.8}),
      _metrics((("length_bucket", "0512+"),), {"binary_accuracy": 0.7}),
    ]
  )
  result = validation_result_pb2.ValidationResult(validation_ok=False)
  failure = result.metric_validations_per_slice.add(slice_key=_slice((("span", 3),)))
  failure.failures.add().metric_key.name = "binary_accuracy"
  rows = sections.threshold_rows(config, slices, result)
  assert [(r["slice"], r["passed"]) for r in rows] == [("span:0", True), ("span:3", False)]


def test_behaviour_section_compares_with_the_serving_model():
  out = sections.behaviour_section(
    {
      "negated_positive": {"candidate": 0.1, "baseline": 0.25},
      "contrast": {"candidate": 0.9, "baseline": None},
      "inv_typo": {"candidate": 0.05, "baseline": 0.0},
    },
    {"negated_positive": 0.2, "contrast": 0.85},
    ['contrast 0.900 > 0.850, e.g. "Dull, but superb." p=0.08'],
    {"negated_positive": "MFT", "contrast": "MFT", "inv_typo": "INV"},
  )
  rows = re.findall(
    r'data-capability="(\w+)" data-value="([^"]+)">([^<]+)</td>\s*'
    r'<td class="num">([^<]+)</td><td class="num">([^<]+)</td>\s*<td class="(\w+)">([^<]+)<',
    out,
  )
  assert rows == [
    ("negated_positive", "0.1", "0.100", "0.250", "0.200", "pass", "passed"),
    ("contrast", "0.9", "0.900", "-", "0.850", "fail", "FAILED"),
    ("inv_typo", "0.05", "0.050", "0.000", "-", "pass", "not gated"),
  ]
  assert html.unescape(out).count('e.g. "Dull, but superb." p=0.08') == 1


def _explanation(words, p):
  weights = np.full(len(words), 1.0 / len(words), dtype=np.float32)
  return Explanation(" ".join(words), p, int(p >= 0.5), list(words), weights)


def test_explanations_show_right_reviews_then_wrong(tmp_path):
  reviews = [
    sections.ExplainedReview(1, _explanation(["awful", "film"], 0.2)),
    sections.ExplainedReview(1, _explanation(["great", "film"], 0.9)),
  ]
  out = sections.explanations_section(reviews, str(tmp_path))
  captions = re.findall(r'<figcaption class="(\w+)">(\w+):', out)
  assert captions == [("pass", "Right"), ("fail", "Wrong")]
  assert _is_png(tmp_path / "attention_0.png") and _is_png(tmp_path / "attention_1.png")
  assert "p(positive) 0.200" in out


def test_text_is_escaped(tmp_path):
  out = sections.behaviour_section(
    {"contrast": {"candidate": 1.0, "baseline": None}},
    {"contrast": 0.5},
    ['contrast 1.000 > 0.500, e.g. "<script>alert(1)</script>" p=0.1'],
  )
  assert "<script>" not in out and "&lt;script&gt;" in out


def test_history_plot_needs_one_entry_per_run(tmp_path):
  path = figures.history_plot(
    [0.9, None, 0.91],
    [0.96, None, 0.97],
    [True, None, False],
    str(tmp_path / "h.png"),
  )
  assert _is_png(path)
  with pytest.raises(ValueError, match="one entry per run"):
    figures.history_plot([0.9, 0.8], [0.9], [True], str(tmp_path / "x.png"))


@pytest.mark.parametrize(
  ("run_id", "name"),
  [
    ("2026-12-01T05:30:00.123456", "2026-12-01T05-30-00.123456"),
    ("scheduled__2026-01-01T00:00:00+00:00", "scheduled__2026-01-01T00-00-00-00-00"),
    ("../../etc", "..-..-etc"),
    ("..", "run.."),
  ],
)
def test_run_dir_name_is_one_safe_path_segment(run_id, name):
  assert page.run_dir_name(run_id) == name


def test_metric_names_follow_tfma():
  assert sections._metric_name("BinaryAccuracy") == tfma.metrics.BinaryAccuracy().name
  assert sections._metric_name("ExampleCount") == "example_count"


def _write_golden(examples_uri, reviews):
  import tensorflow as tf

  split = examples_uri / "Split-test"
  split.mkdir(parents=True)
  options = tf.io.TFRecordOptions(compression_type="GZIP")
  with tf.io.TFRecordWriter(str(split / "data_tfrecord-00000-of-00001.gz"), options) as w:
    for text, label in reviews:
      example = tf.train.Example()
      example.features.feature["text"].bytes_list.value.append(text.encode("utf-8"))
      example.features.feature["label"].int64_list.value.append(label)
      w.write(example.SerializeToString())


def test_golden_reviews_to_explain_are_the_first_short_ones(tmp_path):
  long = " ".join(["word"] * 11)
  reviews = [(long, 1), ("short and good", 1), (long, 0), ("bad.", 0), ("fine", 1), ("ok", 0)]
  _write_golden(tmp_path, reviews)
  picked = page._golden_reviews(str(tmp_path), n=2, max_words=10, scan=100)
  assert picked == [("short and good", 1), ("bad.", 0)]
  # only the first ``scan`` records are read
  assert page._golden_reviews(str(tmp_path), n=5, max_words=10, scan=3) == [("short and good", 1)]
  assert page._golden_reviews(str(tmp_path / "none"), n=2, max_words=10, scan=100) == []
