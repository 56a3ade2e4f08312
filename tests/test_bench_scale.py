"""analysis.bench_scale: the scaled TFDS dataset, the process-tree sampler, the ratios."""

import collections
import json
import os
import subprocess
import sys
import textwrap

import click
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from ml_metadata.proto import metadata_store_pb2

from analysis import bench_scale

RECORDS_PER_SPLIT = 5


@pytest.fixture(scope="module")
def small_imdb(tmp_path_factory) -> str:
  """A TFDS data directory with the first RECORDS_PER_SPLIT records of each prepared
  imdb_reviews split, described by a dataset_info.json as TFDS writes it."""
  source = os.path.join(os.environ["TFDS_DATA_DIR"], *bench_scale.TFDS_BUILDER_DIR)
  data_dir = str(tmp_path_factory.mktemp("small_tfds"))
  dest = os.path.join(data_dir, *bench_scale.TFDS_BUILDER_DIR)
  os.makedirs(dest)
  with open(os.path.join(source, "dataset_info.json")) as f:
    info = json.load(f)
  for name in ("features.json", "label.labels.txt"):
    with open(os.path.join(source, name), "rb") as f, open(os.path.join(dest, name), "wb") as g:
      g.write(f.read())
  for split in info["splits"]:
    shards = len(split["shardLengths"])
    template = split.get("filepathTemplate", bench_scale.DEFAULT_TEMPLATE)
    files = [
      bench_scale._shard_path(source, template, split["name"], i, shards) for i in range(shards)
    ]
    records = list(tf.data.TFRecordDataset(files).take(RECORDS_PER_SPLIT).as_numpy_iterator())
    path = bench_scale._shard_path(dest, template, split["name"], 0, 1)
    with tf.io.TFRecordWriter(path) as writer:
      for record in records:
        writer.write(record)
    split["shardLengths"] = [str(RECORDS_PER_SPLIT)]
  with open(os.path.join(dest, "dataset_info.json"), "w") as f:
    json.dump(info, f)
  return data_dir


def _texts(data_dir: str, split: str) -> collections.Counter:
  builder = tfds.builder("imdb_reviews", data_dir=data_dir)
  return collections.Counter(r["text"] for r in tfds.as_numpy(builder.as_dataset(split=split)))


def test_scaled_tfds_holds_every_split_k_times_in_even_shards(small_imdb, tmp_path):
  dest = str(tmp_path / "scaled")

  counts = bench_scale.scaled_tfds(small_imdb, dest, copies=3, shard_examples=4)

  assert counts == {"train": 15, "test": 15, "unsupervised": 15}
  for split in counts:
    texts = _texts(dest, split)
    assert sum(texts.values()) == 15
    assert texts == collections.Counter({t: 3 * n for t, n in _texts(small_imdb, split).items()})
  with open(os.path.join(dest, *bench_scale.TFDS_BUILDER_DIR, "dataset_info.json")) as f:
    train = next(s for s in json.load(f)["splits"] if s["name"] == "train")
  assert train["shardLengths"] == ["4", "4", "4", "3"]
  shard = os.path.join(
    dest, *bench_scale.TFDS_BUILDER_DIR, "imdb_reviews-train.tfrecord-00003-of-00004"
  )
  assert int(train["numBytes"]) > os.path.getsize(shard) > 0


def test_scaled_tfds_refuses_bad_arguments_and_an_existing_dataset(small_imdb, tmp_path):
  with pytest.raises(ValueError, match="copies"):
    bench_scale.scaled_tfds(small_imdb, str(tmp_path / "a"), copies=0)
  with pytest.raises(FileNotFoundError, match="no prepared imdb_reviews"):
    bench_scale.scaled_tfds(str(tmp_path / "empty"), str(tmp_path / "b"), copies=1)
  bench_scale.scaled_tfds(small_imdb, str(tmp_path / "c"), copies=1)
  with pytest.raises(FileExistsError):
    bench_scale.scaled_tfds(small_imdb, str(tmp_path / "c"), copies=1)


def test_tree_sampler_counts_the_memory_of_children(tmp_path):
  # A parent whose child holds 300 MB: the tree's peak holds it, and so does the largest
  # single process.
  ready = tmp_path / "ready"
  child = textwrap.dedent(
    f"""
    import time
    block = bytearray(300 * 2**20)
    for i in range(0, len(block), 4096):
      block[i] = 1
    open({str(ready)!r}, "w").close()
    time.sleep(60)
    """
  )
  parent = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {child!r}])"
  process = subprocess.Popen([sys.executable, "-c", parent])
  sampler = bench_scale.TreeSampler(process.pid, interval=0.1).start()
  try:
    for _ in range(300):
      if ready.exists() and len(sampler.samples) > 3:
        break
      sampler._stop.wait(0.1)
    assert ready.exists()
    sampler._stop.wait(0.3)
  finally:
    for p in __import__("psutil").Process(process.pid).children(recursive=True):
      p.kill()
    process.kill()
    process.wait()
    sampler.stop()
  window = sampler.window(0, float("inf"))
  assert window["peak_process_rss_bytes"] >= 300 * 2**20
  assert window["peak_rss_bytes"] > window["peak_process_rss_bytes"]
  assert window["cpu_percent"] is not None and window["cpu_percent"] >= 0
  assert sampler.window(0, 1)["peak_rss_bytes"] is None


def _run(seconds: dict[str, float], rss: dict[str, int]) -> dict:
  return {
    "components": {node: {"seconds": s, "peak_rss_bytes": rss[node]} for node, s in seconds.items()}
  }


def test_ratios_divide_the_high_scale_by_the_low_one():
  runs = {
    1: _run({"Transform": 50.0, "Pusher": 0.1}, {"Transform": 2000, "Pusher": 1000}),
    4: _run({"Transform": 210.0, "Pusher": 0.1}, {"Transform": 2400, "Pusher": 1000}),
  }

  components = bench_scale.ratios(runs, 1, 4)

  assert components["Transform"]["time_ratio_4x_1x"] == pytest.approx(4.2)
  assert components["Transform"]["memory_ratio_4x_1x"] == pytest.approx(1.2)
  assert components["Transform"]["scales"]["4"]["seconds"] == 210.0
  assert components["Pusher"]["time_ratio_4x_1x"] is None


def test_all_ratios_give_the_largest_and_second_scale_against_the_smallest():
  runs = {k: _run({"Transform": 50.0 * k}, {"Transform": 1000 + k}) for k in (1, 2, 4)}

  components = bench_scale.all_ratios(runs)

  assert components["Transform"]["time_ratio_4x_1x"] == pytest.approx(4.0)
  assert components["Transform"]["time_ratio_2x_1x"] == pytest.approx(2.0)
  assert components["Transform"]["memory_ratio_2x_1x"] == pytest.approx(1002 / 1001, abs=1e-3)


def test_rerun_needs_an_earlier_result(tmp_path):
  with pytest.raises(click.ClickException, match="needs an earlier"):
    bench_scale.rerun(
      "Transform", str(tmp_path), str(tmp_path / "none"), str(tmp_path / "scale.json"), "x"
    )


def _artifact(uri: str = "", **counts: int) -> metadata_store_pb2.Artifact:
  artifact = metadata_store_pb2.Artifact(uri=uri)
  for name, count in counts.items():
    artifact.custom_properties[name].int_value = count
  return artifact


def test_examples_processed_reads_the_split_counts_and_the_corpus(tmp_path):
  with open(tmp_path / "pretraining_summary.json", "w") as f:
    json.dump({"reviews": 72471}, f)
  examples = _artifact(
    num_examples_train=22500,
    num_examples_eval=2500,
    num_examples_test=25000,
    num_examples_unlabelled=50000,
  )
  outputs = {
    "ImdbExampleGen": {"examples": [examples]},
    "EmbeddingTrainer": {"pretraining_run": [_artifact(str(tmp_path))]},
  }

  def count(node):
    return bench_scale.examples_processed(node, outputs)

  assert count("ImdbExampleGen") == 100000
  assert count("StatisticsGen") == 50000
  assert count("Transform") == 25000  # train and eval: Transform no longer writes test
  assert count("Trainer") == 22500
  assert count("Evaluator") == 25000
  assert count("EmbeddingTrainer") == 72471
  assert count("Pusher") is None
  assert bench_scale.examples_processed("Trainer", {}) is None


def test_plot_writes_a_png(tmp_path):
  runs = {k: _run({"Transform": 50.0 * k}, {"Transform": 2**30}) for k in (1, 2, 4)}
  path = str(tmp_path / "scale.png")

  bench_scale.plot(bench_scale.ratios(runs, 1, 4), path)

  with open(path, "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
