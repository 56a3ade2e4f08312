"""Artifacts compared by what they hold (analysis.artifact_diff)."""

import json
import os

import pytest
import tensorflow as tf
from tensorflow_metadata.proto.v0 import statistics_pb2
from tensorflow_model_analysis.proto import metrics_for_slice_pb2

from analysis import artifact_diff


def _example(text: str, label: int) -> bytes:
  return tf.train.Example(
    features=tf.train.Features(
      feature={
        "text": tf.train.Feature(bytes_list=tf.train.BytesList(value=[text.encode()])),
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
      }
    )
  ).SerializeToString()


def _write_examples(folder, shards: list[list[bytes]]) -> None:
  os.makedirs(folder / "Split-train")
  for i, records in enumerate(shards):
    path = folder / "Split-train" / f"data_tfrecord-{i:05d}-of-{len(shards):05d}.gz"
    with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
      for record in records:
        writer.write(record)


def test_examples_in_other_shards_and_order_are_the_same(tmp_path):
  records = [_example(f"review {i}", i % 2) for i in range(5)]
  _write_examples(tmp_path / "a", [records])
  _write_examples(tmp_path / "b", [records[3:][::-1], records[:3]])
  assert artifact_diff.differences(str(tmp_path / "a"), str(tmp_path / "b")) == []
  _write_examples(tmp_path / "c", [[*records[:4], _example("review 4", 1)]])
  [found] = artifact_diff.differences(str(tmp_path / "a"), str(tmp_path / "c"))
  assert found == (
    "Split-train/data_tfrecord.gz: 1 of 5 records only in the first, 1 of 5 only in the second"
  )
  _write_examples(tmp_path / "d", [records[:4]])
  assert artifact_diff.differences(str(tmp_path / "a"), str(tmp_path / "d")) != []


def _write_stats(folder, mean: float) -> None:
  stats = statistics_pb2.DatasetFeatureStatisticsList()
  feature = stats.datasets.add(num_examples=10).features.add()
  feature.path.step.append("review_length")
  feature.num_stats.mean = mean
  os.makedirs(folder / "Split-train")
  (folder / "Split-train" / "FeatureStats.pb").write_bytes(stats.SerializeToString())


def test_statistics_agree_to_the_last_bits_of_a_float_only(tmp_path):
  _write_stats(tmp_path / "a", 214.41513815959516)
  _write_stats(tmp_path / "b", 214.41513815959513)  # summed in another order
  _write_stats(tmp_path / "c", 214.4151)
  assert artifact_diff.differences(str(tmp_path / "a"), str(tmp_path / "b")) == []
  [found] = artifact_diff.differences(str(tmp_path / "a"), str(tmp_path / "c"))
  assert "numStats.mean" in found and "214.4151" in found


def _write_metrics(folder, slices: list[tuple[str, float]]) -> None:
  os.makedirs(folder)
  with tf.io.TFRecordWriter(str(folder / "metrics-00000-of-00001.tfrecord")) as writer:
    for value, accuracy in slices:
      metrics = metrics_for_slice_pb2.MetricsForSlice()
      if value:
        metrics.slice_key.single_slice_keys.add(column="length_bucket", bytes_value=value.encode())
      metrics.metric_keys_and_values.add(
        key=metrics_for_slice_pb2.MetricKey(name="accuracy")
      ).value.double_value.value = accuracy
      writer.write(metrics.SerializeToString())
  (folder / "eval_config.json").write_text(json.dumps({"slicingSpecs": [{}]}))


def test_tfma_metrics_are_compared_slice_by_slice(tmp_path):
  _write_metrics(tmp_path / "a", [("", 0.9), ("short", 0.8)])
  _write_metrics(tmp_path / "b", [("short", 0.8), ("", 0.9)])
  _write_metrics(tmp_path / "c", [("", 0.9), ("short", 0.7)])
  assert artifact_diff.differences(str(tmp_path / "a"), str(tmp_path / "b")) == []
  [found] = artifact_diff.differences(str(tmp_path / "a"), str(tmp_path / "c"))
  assert found.startswith("metrics.tfrecord") and "0.7" in found


def test_value_artifacts_and_missing_files(tmp_path):
  (tmp_path / "a").write_bytes(b"3")
  (tmp_path / "b").write_bytes(b"3")
  (tmp_path / "c").write_bytes(b"4")
  assert artifact_diff.differences(str(tmp_path / "a"), str(tmp_path / "b")) == []
  assert artifact_diff.differences(str(tmp_path / "a"), str(tmp_path / "c")) != []
  with pytest.raises(FileNotFoundError):
    artifact_diff.differences(str(tmp_path / "a"), str(tmp_path / "missing"))
  os.makedirs(tmp_path / "d" / "x")
  os.makedirs(tmp_path / "e" / "y")
  (tmp_path / "d" / "x" / "BLESSED").write_text("")
  (tmp_path / "e" / "y" / "BLESSED").write_text("")
  assert artifact_diff.differences(str(tmp_path / "d"), str(tmp_path / "e")) == [
    "files differ: ['x/BLESSED', 'y/BLESSED']"
  ]


def _write_histogram(folder, counts: list[float], inner_bound: float) -> None:
  stats = statistics_pb2.DatasetFeatureStatisticsList()
  feature = stats.datasets.add(num_examples=100).features.add()
  feature.path.step.append("tokens")
  for kind in (statistics_pb2.Histogram.STANDARD, statistics_pb2.Histogram.QUANTILES):
    histogram = feature.num_stats.histograms.add(type=kind)
    bounds = [0.0, inner_bound if kind == statistics_pb2.Histogram.QUANTILES else 50.0, 100.0]
    for low, high, count in zip(bounds, bounds[1:], counts):
      histogram.buckets.add(low_value=low, high_value=high, sample_count=count)
  os.makedirs(folder)
  (folder / "FeatureStats.pb").write_bytes(stats.SerializeToString())


def test_sketched_histograms_agree_to_the_sketch_error(tmp_path):
  _write_histogram(tmp_path / "a", [600.0, 400.0], 49.0)
  # Merged in another order: counts within 1% of the 1,000 values, another inner bound.
  _write_histogram(tmp_path / "b", [604.5, 395.5], 51.0)
  _write_histogram(tmp_path / "c", [620.0, 380.0], 49.0)
  assert artifact_diff.differences(str(tmp_path / "a"), str(tmp_path / "b")) == []
  found = artifact_diff.differences(str(tmp_path / "a"), str(tmp_path / "c"))
  assert len(found) == 2 and all("differs by 20 > 10" in f for f in found)
