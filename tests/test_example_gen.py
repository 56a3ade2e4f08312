"""Unit tests of components.imdb_example_gen (and core.features.length_bucket)."""

import glob
import gzip
import os
import re
import zlib

import apache_beam as beam
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from components import imdb_beam as beam_side
from components import imdb_example_gen as eg
from core import features

RAW_SPEC = {
  features.TEXT_KEY: tf.io.FixedLenFeature([1], tf.string),
  features.LABEL_KEY: tf.io.FixedLenFeature([1], tf.int64),
  features.REVIEW_LENGTH_KEY: tf.io.FixedLenFeature([1], tf.int64),
  features.LENGTH_BUCKET_KEY: tf.io.FixedLenFeature([1], tf.string),
}


def _split_files(uri, split):
  return sorted(glob.glob(os.path.join(uri, f"Split-{split}", "*")))


def _read_split(uri, split, span=False):
  paths = _split_files(uri, split)
  records = list(tf.data.TFRecordDataset(paths, compression_type="GZIP").as_numpy_iterator())
  spec = {**RAW_SPEC, "span": tf.io.FixedLenFeature([1], tf.int64)} if span else RAW_SPEC
  return [tf.io.parse_single_example(r, spec) for r in records]


# --- length_bucket ------------------------------------------------------------------


@pytest.mark.parametrize(
  "num_words, bucket",
  [
    (0, "0000-0127"),
    (127, "0000-0127"),
    (128, "0128-0255"),
    (255, "0128-0255"),
    (256, "0256-0511"),
    (511, "0256-0511"),
    (512, "0512+"),
    (10_000, "0512+"),
  ],
)
def test_length_bucket_boundaries(num_words, bucket):
  assert features.length_bucket(num_words) == bucket


def test_length_bucket_custom_boundaries_and_negative():
  assert features.length_bucket(5, boundaries=(10,)) == "0000-0009"
  assert features.length_bucket(10, boundaries=(10,)) == "0010+"
  with pytest.raises(ValueError, match="-1"):
    features.length_bucket(-1)


def test_length_bucket_names_are_the_curated_schema_domain():
  names = {features.length_bucket(n) for n in range(1000)}
  assert names == {"0000-0127", "0128-0255", "0256-0511", "0512+"}


# --- is_eval_example / to_tf_example ------------------------------------------------


def test_is_eval_example_deterministic_and_about_ten_percent():
  texts = [f"synthetic review number {i}".encode() for i in range(2000)]
  first = [beam_side.is_eval_example(t, 10) for t in texts]
  assert first == [beam_side.is_eval_example(t, 10) for t in texts]
  share = sum(first) / len(texts)
  assert 0.07 <= share <= 0.13
  # A larger percentage only adds examples (bucket < p is monotone in p).
  at_30 = [beam_side.is_eval_example(t, 30) for t in texts]
  assert all(b for a, b in zip(first, at_30) if a)
  assert 0.25 <= sum(at_30) / len(texts) <= 0.35


def test_is_eval_example_extremes():
  texts = [f"t{i}".encode() for i in range(200)]
  assert not any(beam_side.is_eval_example(t, 0) for t in texts)
  assert all(beam_side.is_eval_example(t, 100) for t in texts)


def test_to_tf_example_features():
  text = b"A fine film<br />with   five words"  # 6 whitespace-separated words
  example = beam_side.to_tf_example(text, 1)
  f = example.features.feature
  assert set(f) == {"text", "label", "review_length", "length_bucket"}
  assert list(f["text"].bytes_list.value) == [text]
  assert list(f["label"].int64_list.value) == [1]
  assert list(f["review_length"].int64_list.value) == [6]
  assert list(f["length_bucket"].bytes_list.value) == [b"0000-0127"]
  long = beam_side.to_tf_example(b" ".join([b"w"] * 300), 0).features.feature
  assert list(long["review_length"].int64_list.value) == [300]
  assert list(long["length_bucket"].bytes_list.value) == [b"0256-0511"]
  assert list(long["label"].int64_list.value) == [0]


def test_to_tf_example_with_a_span():
  f = beam_side.to_tf_example(b"a review of span three", 1, 3).features.feature
  assert set(f) == {"text", "label", "review_length", "length_bucket", "span"}
  assert list(f["span"].int64_list.value) == [3]


WORD_COUNT_CASES = [
  b"A fine film<br />with   five words",
  b"",
  b"   ",
  b" leading",
  b"trailing\n",
  b"tab\tnewline\ncarriage\rreturn\x0bvertical\x0cform",
  b"\x1cnot\x1dASCII\x85whitespace\xa0",
  "caf\u00e9 \u00a0 na\u00efve".encode(),
  b"\xff\xfe invalid UTF-8 \xc3",
]


def test_word_counts_are_those_of_bytes_split():
  assert beam_side.word_counts(WORD_COUNT_CASES).tolist() == [
    len(text.split()) for text in WORD_COUNT_CASES
  ]
  # Alone, reversed and beside a longer batch, each text counts the same.
  for text in WORD_COUNT_CASES:
    assert beam_side.word_counts([text]).tolist() == [len(text.split())]
  reversed_ = [*WORD_COUNT_CASES[::-1], b"w " * 300]
  assert beam_side.word_counts(reversed_).tolist() == [len(t.split()) for t in reversed_]
  assert beam_side.word_counts([]).shape == (0,)


def test_serialize_examples_is_to_tf_example_of_each_review():
  texts = [b"a short one", b"w " * 300, b"", b"the last review"]
  serialized = beam_side.serialize_examples(texts, [1, 0, 1, 0], span=4)
  for text, label, record in zip(texts, [1, 0, 1, 0], serialized):
    example = tf.train.Example.FromString(record)
    assert example == beam_side.to_tf_example(text, label, 4)
    f = example.features.feature
    assert list(f["text"].bytes_list.value) == [text]
    assert list(f["label"].int64_list.value) == [label]
    assert list(f["span"].int64_list.value) == [4]
    assert list(f["review_length"].int64_list.value) == [len(text.split())]
  unlabelled = beam_side.serialize_examples(texts, None)
  assert [set(tf.train.Example.FromString(r).features.feature) for r in unlabelled] == [
    {"text", "review_length", "length_bucket"}
  ] * 4
  assert beam_side.serialize_examples([], None) == []
  with pytest.raises(ValueError, match="3 labels for 4 texts"):
    beam_side.serialize_examples(texts, [1, 0, 1])


def test_write_splits_golden_test_alone_is_span_0(tmp_path):
  # Beside spans (no train records) the golden test reviews are span 0; otherwise no span.
  golden = str(tmp_path / "golden")
  assert _write(golden, None, TEST_RECORDS) == {"test": 30}
  assert {int(ex["span"].numpy()[0]) for ex in _read_split(golden, "test", span=True)} == {0}
  assert os.listdir(golden) == ["Split-test"]  # the counts file is gone
  bootstrap = str(tmp_path / "bootstrap")
  _write(bootstrap, TRAIN_RECORDS, TEST_RECORDS)
  paths = _split_files(bootstrap, "test")
  record = next(iter(tf.data.TFRecordDataset(paths, compression_type="GZIP")))
  assert "span" not in tf.train.Example.FromString(record.numpy()).features.feature


def test_to_tf_example_without_label_for_unlabelled_reviews():
  f = beam_side.to_tf_example(b"no rating here", None).features.feature
  assert set(f) == {"text", "review_length", "length_bucket"}
  assert list(f["review_length"].int64_list.value) == [3]


# --- write_splits -------------------------------------------------------------------

TRAIN_RECORDS = [(f"train review {i} ".encode() + b"word " * (i % 300), i % 2) for i in range(200)]
TEST_RECORDS = [(f"test review {i}".encode(), (i + 1) % 2) for i in range(30)]


def _batches(records, size=16):
  """``records`` in batches of ``size`` (lists of pairs), the elements of a source."""
  records = list(records)
  return [records[i : i + size] for i in range(0, len(records), size)]


def _write(uri, train, test, unlabelled=None, **kwargs):
  """``write_splits`` on an in-process Beam pipeline, the sources ``beam.Create``d in
  batches of 16 reviews."""

  def source(records):
    return None if records is None else beam.Create(_batches(records))

  return beam_side.write_splits(
    beam.Pipeline(),
    uri,
    source(train),
    source(test),
    unlabelled_records=source(unlabelled),
    **kwargs,
  )


def test_write_splits_writes_three_gzip_splits_with_counts(tmp_path):
  uri = str(tmp_path / "examples")
  counts = _write(uri, TRAIN_RECORDS, TEST_RECORDS, eval_percent=20)
  expected_eval = sum(beam_side.is_eval_example(t, 20) for t, _ in TRAIN_RECORDS)
  assert counts == {"train": 200 - expected_eval, "eval": expected_eval, "test": 30}
  assert 0 < expected_eval < 200
  assert sorted(os.listdir(uri)) == ["Split-eval", "Split-test", "Split-train"]
  for split in ("train", "eval", "test"):
    files = os.listdir(os.path.join(uri, f"Split-{split}"))
    if split == "test":  # the golden test split is written whole
      assert files == ["data_tfrecord-00000-of-00001.gz"]
    else:
      parts = {re.fullmatch(r"data_tfrecord-part(\d)-\d{5}-of-\d{5}\.gz", f)[1] for f in files}
      assert parts == {"0", "1"}
    parsed = _read_split(uri, split)
    assert len(parsed) == counts[split]
  train = _read_split(uri, "train")
  eval_ = _read_split(uri, "eval")
  texts = {ex["text"].numpy()[0] for ex in train + eval_}
  assert texts == {t for t, _ in TRAIN_RECORDS}  # every train record in exactly one split
  assert all(beam_side.is_eval_example(ex["text"].numpy()[0], 20) for ex in eval_)
  by_text = dict(TRAIN_RECORDS)
  for ex in train:
    text = ex["text"].numpy()[0]
    assert ex["label"].numpy()[0] == by_text[text]
    assert ex["review_length"].numpy()[0] == len(text.split())
    assert ex["length_bucket"].numpy()[0].decode() == features.length_bucket(len(text.split()))
  test = _read_split(uri, "test")
  assert sorted((ex["text"].numpy()[0], ex["label"].numpy()[0]) for ex in test) == sorted(
    TEST_RECORDS
  )


def test_write_splits_compresses_at_the_fastest_zlib_level(tmp_path):
  uri = str(tmp_path / "examples")
  _write(uri, TRAIN_RECORDS, TEST_RECORDS, eval_percent=20)
  for path in glob.glob(os.path.join(uri, "Split-*", "*.gz")):
    with open(path, "rb") as f:
      data = f.read()
    # gzip header: magic, deflate, no flags (no name), mtime 0, XFL 4 ("fastest").
    assert data[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x04\xff"
    raw = gzip.decompress(data)
    fast = zlib.compressobj(beam_side.GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
    assert data[10:-8] == fast.compress(raw) + fast.flush()  # the deflate stream itself


UNLABELLED_TEXTS = [f"unrated review {i}".encode() for i in range(12)]


def test_write_splits_writes_the_unlabelled_split_without_labels(tmp_path):
  uri = str(tmp_path / "examples")
  unlabelled = [(text, 1) for text in UNLABELLED_TEXTS]  # a label there is dropped
  counts = _write(uri, TRAIN_RECORDS, TEST_RECORDS, unlabelled, eval_percent=20)
  assert counts["unlabelled"] == 12 and counts["test"] == 30
  assert list(counts) == ["train", "eval", "test", "unlabelled"]
  paths = _split_files(uri, "unlabelled")
  examples = [
    tf.train.Example.FromString(r)
    for r in tf.data.TFRecordDataset(paths, compression_type="GZIP").as_numpy_iterator()
  ]
  texts = sorted(e.features.feature["text"].bytes_list.value[0] for e in examples)
  assert texts == sorted(UNLABELLED_TEXTS)
  assert all("label" not in e.features.feature for e in examples)
  # Without unlabelled texts there is no such split.
  other = str(tmp_path / "other")
  assert "unlabelled" not in _write(other, TRAIN_RECORDS, TEST_RECORDS)
  assert not os.path.exists(os.path.join(other, "Split-unlabelled"))


def test_write_splits_empty_unlabelled_split_raises_and_leaves_nothing(tmp_path):
  uri = str(tmp_path / "examples")
  with pytest.raises(ValueError, match=r"\['unlabelled'\] would be empty"):
    _write(uri, TRAIN_RECORDS, TEST_RECORDS, unlabelled=[])
  assert not glob.glob(os.path.join(uri, "*")) + glob.glob(os.path.join(uri, ".*"))


@pytest.mark.parametrize("eval_percent", [0, 100, -5])
def test_write_splits_eval_percent_out_of_range(tmp_path, eval_percent):
  with pytest.raises(ValueError, match="eval_percent"):
    _write(str(tmp_path), TRAIN_RECORDS, TEST_RECORDS, eval_percent=eval_percent)
  assert not glob.glob(str(tmp_path / "**" / "*.gz"), recursive=True)


def test_write_splits_empty_split_raises_and_leaves_no_finished_file(tmp_path):
  uri = str(tmp_path / "examples")
  with pytest.raises(ValueError, match="test"):
    _write(uri, TRAIN_RECORDS, [], eval_percent=10)
  assert not glob.glob(os.path.join(uri, "*")) + glob.glob(os.path.join(uri, ".*"))


def _fails_on_the_tenth(batch):
  if any(text.startswith(b"train review 9 ") for text, _ in batch):
    raise OSError("source went away")
  return batch


def test_write_splits_removes_every_split_when_reading_fails(tmp_path):
  # The test split is written in full before the train source fails on a later bundle.
  uri = str(tmp_path / "examples")
  failing = beam.Create(_batches(TRAIN_RECORDS)) | beam.Map(_fails_on_the_tenth)
  with pytest.raises(Exception, match="went away"):
    beam_side.write_splits(beam.Pipeline(), uri, failing, beam.Create(_batches(TEST_RECORDS)))
  assert not glob.glob(os.path.join(uri, "*")) + glob.glob(os.path.join(uri, ".*"))


def test_write_splits_single_train_record_leaves_a_split_empty(tmp_path):
  # One distinct text goes to train or eval, never both, so one of them is empty.
  with pytest.raises(ValueError, match="would be empty"):
    _write(str(tmp_path), [(b"only one", 1)], TEST_RECORDS)


# --- data directory / builder -------------------------------------------------------


def test_resolve_data_dir(monkeypatch, tmp_path):
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "from_env"))
  assert eg.resolve_data_dir(None) == str(tmp_path / "from_env")
  assert eg.resolve_data_dir("") == str(tmp_path / "from_env")
  assert eg.resolve_data_dir(str(tmp_path / "explicit")) == str(tmp_path / "explicit")
  monkeypatch.chdir(tmp_path)
  assert eg.resolve_data_dir("rel") == os.path.join(str(tmp_path), "rel")
  monkeypatch.delenv("TFDS_DATA_DIR")
  monkeypatch.setenv("HOME", str(tmp_path / "home"))
  resolved = eg.resolve_data_dir(None)
  assert os.path.isabs(resolved) and not resolved.startswith("~")


def test_prepare_builder_missing_dataset_message(tmp_path):
  empty = str(tmp_path / "empty_tfds")
  os.makedirs(empty)
  with pytest.raises(eg.DatasetNotFoundError) as info:
    eg.prepare_builder(empty, "train", "test", download=False)
  message = str(info.value)
  assert empty in message
  for hint in ("--tfds-data-dir", "TFDS_DATA_DIR", "--download"):
    assert hint in message
  assert isinstance(info.value, FileNotFoundError)
  assert os.listdir(empty) == []  # nothing downloaded or prepared


@pytest.fixture(scope="module")
def builder(tfds_data_dir):
  return eg.prepare_builder(tfds_data_dir, "train[:1%]", "test[:1%]")


@pytest.mark.parametrize(
  "train_split, test_split",
  [("train[:abc]", "test"), ("train", "test[:1%"), ("validation", "test")],
)
def test_prepare_builder_bad_split_spec(tfds_data_dir, train_split, test_split):
  with pytest.raises(ValueError, match="invalid TFDS split spec"):
    eg.prepare_builder(tfds_data_dir, train_split, test_split)


def test_write_splits_sends_each_review_to_the_file_its_text_hashes_to(tmp_path):
  uri = str(tmp_path / "examples")
  counts = _write(uri, TRAIN_RECORDS, TEST_RECORDS, TEST_RECORDS, files_per_split=3)
  for split in ("train", "eval", "unlabelled"):
    directory = os.path.join(uri, f"Split-{split}")
    by_file = {
      re.fullmatch(r"data_tfrecord-part(\d)-00000-of-00001\.gz", name)[1]: [
        tf.train.Example.FromString(r.numpy()).features.feature["text"].bytes_list.value[0]
        for r in tf.data.TFRecordDataset(os.path.join(directory, name), "GZIP")
      ]
      for name in os.listdir(directory)
    }
    assert sum(map(len, by_file.values())) == counts[split]
    for index, texts in by_file.items():
      assert all(beam_side.file_index(text, 3) == int(index) for text in texts)
  assert {len(texts) > 0 for texts in by_file.values()} == {True}


def test_write_splits_in_one_file_per_split_keeps_tfx_names(tmp_path):
  uri = str(tmp_path / "examples")
  _write(uri, TRAIN_RECORDS, TEST_RECORDS, files_per_split=1)
  for split in ("train", "eval", "test"):
    assert os.listdir(os.path.join(uri, f"Split-{split}")) == ["data_tfrecord-00000-of-00001.gz"]


def test_write_splits_rejects_no_files_per_split_before_writing(tmp_path):
  uri = str(tmp_path / "examples")
  with pytest.raises(ValueError, match="files_per_split must be >= 1, got 0"):
    _write(uri, TRAIN_RECORDS, TEST_RECORDS, files_per_split=0)
  assert not os.path.exists(uri)


def test_file_index_spreads_texts_evenly_and_apart_from_the_eval_split():
  texts = [f"review {i}".encode() for i in range(4000)]
  indices = [beam_side.file_index(t, 2) for t in texts]
  assert 0.45 < sum(indices) / len(texts) < 0.55
  evals = [t for t in texts if beam_side.is_eval_example(t, 10)]
  assert 0.35 < sum(beam_side.file_index(t, 2) for t in evals) / len(evals) < 0.65


def test_prepare_builder_checks_the_unlabelled_split_spec(tfds_data_dir):
  with pytest.raises(ValueError, match="invalid TFDS split spec 'unlabeled'"):
    eg.prepare_builder(tfds_data_dir, "train", "test", unlabelled_split="unlabeled")
  eg.prepare_builder(tfds_data_dir, "train", "test", unlabelled_split="unsupervised[:1%]")


def test_write_splits_on_a_real_unsupervised_slice(builder, tmp_path):
  uri = str(tmp_path / "examples")
  counts = beam_side.write_splits(
    beam.Pipeline(),
    uri,
    beam_side.ReadTFDS(builder, "train[:1%]"),
    beam_side.ReadTFDS(builder, "test[:20]"),
    unlabelled_records=beam_side.ReadTFDS(builder, "unsupervised[:50]"),
  )
  assert counts["unlabelled"] == 50 and counts["test"] == 20


def test_write_splits_on_real_imdb_slices(builder, tmp_path):
  uri = str(tmp_path / "examples")
  counts = beam_side.write_splits(
    beam.Pipeline(),
    uri,
    beam_side.ReadTFDS(builder, "train[:1%]"),
    beam_side.ReadTFDS(builder, "test[:1%]"),
  )
  assert counts["test"] == 250
  assert counts["train"] + counts["eval"] == 250
  assert 0.03 <= counts["eval"] / 250 <= 0.20
  for split in ("train", "eval", "test"):
    parsed = _read_split(uri, split)
    assert len(parsed) == counts[split]
    assert {int(ex["label"].numpy()[0]) for ex in parsed} <= {0, 1}
    assert all(ex["review_length"].numpy()[0] > 0 for ex in parsed)
  # The same reviews as TFDS's own reader gives, each once, with its label.
  tfds_pairs = sorted(
    (r["text"], int(r["label"])) for r in tfds.as_numpy(builder.as_dataset(split="train[:1%]"))
  )
  written = _read_split(uri, "train") + _read_split(uri, "eval")
  assert sorted((ex["text"].numpy()[0], ex["label"].numpy()[0]) for ex in written) == tfds_pairs


@pytest.mark.parametrize(
  "split, whole",
  [
    ("train", True),
    ("unsupervised", True),
    ("train+test", True),
    ("train[:1%]", False),
    ("test[:20]", False),
    ("train[50%:]", False),
  ],
)
def test_reads_whole_files(builder, split, whole):
  assert beam_side.reads_whole_files(builder, split) is whole


def test_as_batch_keeps_the_tfds_order():
  batch = {"text": tf.constant([b"great", b"awful"]), "label": tf.constant([1, 0], tf.int64)}
  assert beam_side._as_batch(batch) == [(b"great", 1), (b"awful", 0)]
  record = {"text": tf.constant(b"fine"), "label": tf.constant(1, tf.int64)}
  assert beam_side._as_pair(record) == (b"fine", 1)


def test_a_whole_split_is_read_in_batches_as_tfds_orders_it(builder, tmp_path):
  # "train" is one whole shard file: read in batches, every review of each written file
  # (train/eval by is_eval_example, then the part by file_index) in the TFDS file's order.
  uri = str(tmp_path / "examples")
  assert beam_side.reads_whole_files(builder, "train")
  assert beam_side.write_splits(
    beam.Pipeline(),
    uri,
    beam_side.ReadTFDS(builder, "train"),
    beam_side.ReadTFDS(builder, "test[:10]"),
  )
  expected = list(tfds.as_numpy(builder.as_dataset(split="train")))
  assert len(expected) == 25000
  for split, index in [("train", 0), ("train", 1), ("eval", 0), ("eval", 1)]:
    written = [
      tf.train.Example.FromString(r).features.feature
      for r in tf.data.TFRecordDataset(
        glob.glob(os.path.join(uri, f"Split-{split}", f"data_tfrecord-part{index}-*")),
        compression_type="GZIP",
      ).as_numpy_iterator()
    ]
    in_file = [
      r
      for r in expected
      if beam_side.is_eval_example(r["text"], 10) == (split == "eval")
      and beam_side.file_index(r["text"], 2) == index
    ]
    assert len(written) == len(in_file) > 0
    for feature, record in zip(written, in_file):
      assert feature["text"].bytes_list.value[0] == record["text"]
      assert feature["label"].int64_list.value[0] == record["label"]
