"""The Beam side of ``ImdbExampleGen``: what its workers run and import.

Beam's workers unpickle a DoFn by importing the module that defines it. Defined beside the
TFX component, ``_ToExamples`` made every worker import ``tfx.v1`` too (its extensions pull
in the Google Cloud clients): several seconds of each worker's start that reading and
writing reviews never needed. This module imports Beam, TensorFlow, TFDS, tfx_bsl's
example coder (with pyarrow and numpy) and ``core.features`` only.
"""

import gzip
import hashlib
import json
import os
from collections import defaultdict
from collections.abc import Sequence

import apache_beam as beam
import numpy as np
import pyarrow as pa
import tensorflow as tf
import tensorflow_datasets as tfds
from apache_beam.io import tfrecordio
from apache_beam.io.filesystem import CompressionTypes
from tfx_bsl.coders import example_coder

from core import features

TRAIN, EVAL, TEST, UNLABELLED = "train", "eval", "test", "unlabelled"
_FILE_PREFIX = "data_tfrecord"
# The split counts, written by the pipeline and removed once read.
_COUNTS_FILE = ".split_counts.json"
# zlib level of the Examples' gzip: the fastest. Beam's TFRecord sink compresses at zlib's
# default (6), a third of ImdbExampleGen's CPU time; at 1 ``write_splits`` took 11.9 and
# 12.7 s against 17.2 and 17.9 s on the full data, for 65 MB of files against 56 MB
# (2 worker threads, 2-core machine, 2026-12-06). Readers decompress either alike.
GZIP_LEVEL = 1


def is_eval_example(text: bytes, eval_percent: int) -> bool:
  """Deterministic hash split: True for about ``eval_percent`` % of distinct texts."""
  return _is_eval(hashlib.sha256(text).digest(), eval_percent)


def file_index(text: bytes, files: int) -> int:
  """Which of a split's ``files`` files a review goes to: a hash of its text (other bytes
  of the digest than ``is_eval_example``'s), so a split's files hold about as many
  reviews each, the same ones every run, whatever the read order."""
  return _file_index(hashlib.sha256(text).digest(), files)


def _is_eval(digest: bytes, eval_percent: int) -> bool:
  """``is_eval_example`` from the text's SHA-256 ``digest``."""
  return int.from_bytes(digest[:8], "big") % 100 < eval_percent


def _file_index(digest: bytes, files: int) -> int:
  """``file_index`` from the text's SHA-256 ``digest``."""
  return int.from_bytes(digest[8:16], "big") % files


def word_counts(texts: Sequence[bytes]) -> np.ndarray:
  """Whitespace-separated words of each text, ``len(text.split())`` of each, counted with
  numpy over the batch's bytes at once: splitting each text built every word as an object
  (0.18 s against 0.08 s for the 25,000 TFDS train reviews in batches of 1,024, 2-core
  machine, 2026-12-06).

  Returns:
    int64 [len(texts)].
  """
  lengths = np.fromiter(map(len, texts), np.int64, len(texts))
  ends = np.cumsum(lengths)
  starts = ends - lengths
  data = np.frombuffer(b"".join(texts), np.uint8)
  # bytes.split()'s separators: ASCII space and \t \n \v \f \r (9 to 13).
  in_word = (data != ord(" ")) & ((data < 9) | (data > 13))
  # A word starts at a byte outside whitespace that opens its text or follows whitespace.
  word_start = in_word.copy()
  word_start[1:] &= ~in_word[:-1]
  opening = starts[lengths > 0]
  word_start[opening] = in_word[opening]
  positions = np.flatnonzero(word_start)
  return np.searchsorted(positions, ends) - np.searchsorted(positions, starts)


def serialize_examples(
  texts: Sequence[bytes], labels: Sequence[int] | None, span: int | None = None
) -> list[bytes]:
  """Serialized raw tf.Examples of a batch of reviews, in the order of ``texts``: the
  features of ``to_tf_example`` (feature keys and types in ``core.features``).

  Encoded by tfx_bsl's ``RecordBatchToExamplesEncoder`` (C++) from an Arrow RecordBatch of
  the features: building each ``tf.train.Example`` in Python and serializing it took 25 us
  a review against 3 us (10,000 synthetic reviews, 2-core machine, 2026-12-06). With the
  batches kept whole from the read to the write (``ReadTFDS``), ``write_splits`` on the
  full data took 7.5-8.6 s against 11.0-11.8 s (3 and 2 runs), the same examples in the
  same files and order.

  Args:
    texts: the reviews' text, n of them.
    labels: their labels (0 or 1), n of them; None writes no ``label`` feature (the
      unlabelled split).
    span: every example's ``span`` feature; None writes none.

  Returns:
    n serialized ``tf.train.Example``s.

  Raises:
    ValueError: ``labels`` not as many as ``texts``.
  """
  if labels is not None and len(labels) != len(texts):
    raise ValueError(f"{len(labels)} labels for {len(texts)} texts")
  num_words = word_counts(texts).tolist()
  columns = {
    features.TEXT_KEY: pa.array(texts, pa.binary()),
    features.REVIEW_LENGTH_KEY: pa.array(num_words, pa.int64()),
    features.LENGTH_BUCKET_KEY: pa.array(
      [features.length_bucket(n).encode() for n in num_words], pa.binary()
    ),
  }
  if labels is not None:
    columns[features.LABEL_KEY] = pa.array([int(label) for label in labels], pa.int64())
  if span is not None:
    columns[features.SPAN_KEY] = pa.array([span] * len(texts), pa.int64())
  # One value per feature: a list array whose i-th list is the i-th value alone.
  offsets = pa.array(range(len(texts) + 1), pa.int32())
  batch = pa.RecordBatch.from_arrays(
    [pa.ListArray.from_arrays(offsets, values) for values in columns.values()],
    list(columns),
  )
  return example_coder.RecordBatchToExamplesEncoder().encode(batch)


def to_tf_example(text: bytes, label: int | None, span: int | None = None) -> tf.train.Example:
  """The raw tf.Example of one review (feature keys and types in ``core.features``): an
  unlabelled review (``label`` None) gets no ``label`` feature, and only a review with a
  ``span`` a ``span`` feature.

  ``serialize_examples`` encodes the same features for a batch, faster; a review at a time
  (TFX's ExampleGen executor, which ReviewExampleGen uses, takes protos: its hash split
  reads their deterministic serialization), the proto built here is 4x faster than a
  batch of one (25 against 106 us).
  """
  num_words = len(text.split())
  feature = {
    features.TEXT_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[text])),
    features.REVIEW_LENGTH_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[num_words])),
    features.LENGTH_BUCKET_KEY: tf.train.Feature(
      bytes_list=tf.train.BytesList(value=[features.length_bucket(num_words).encode()])
    ),
  }
  if label is not None:
    feature[features.LABEL_KEY] = tf.train.Feature(
      int64_list=tf.train.Int64List(value=[int(label)])
    )
  if span is not None:
    feature[features.SPAN_KEY] = tf.train.Feature(int64_list=tf.train.Int64List(value=[span]))
  return tf.train.Example(features=tf.train.Features(feature=feature))


# Reviews per element when ReadTFDS reads whole shard files.
_READ_BATCH = 1024


def _as_pair(record: dict) -> tuple[bytes, int]:
  """A decoded TFDS ``imdb_reviews`` record (tensors) -> (text bytes, label int)."""
  return record["text"].numpy(), int(record["label"])


def _as_batch(batch: dict) -> list[tuple[bytes, int]]:
  """A batch of decoded TFDS ``imdb_reviews`` records (``text`` string [n], ``label``
  int64 [n]) -> its (text bytes, label int) pairs, in order."""
  return list(zip(batch["text"].numpy().tolist(), batch["label"].numpy().tolist()))


def reads_whole_files(builder, split: str) -> bool:
  """True when the TFDS split spec ``split`` takes every review of each shard file it
  reads (``"train"``, ``"train+unsupervised"``), False when it cuts one (``"train[:2%]"``).

  Raises:
    ValueError (from TFDS): a split spec the builder does not have.
  """
  return all(
    instruction.skip == 0 and instruction.takes_all
    for instruction in builder.info.splits[split].file_instructions
  )


class ReadTFDS(beam.PTransform):
  """Reads a TFDS split spec in Beam (``tfds.beam.ReadFromTFDS``: one read per shard file,
  on the workers) -> PCollection of batches of reviews, each a list of (text bytes, label
  int) pairs, in each file's order.

  A spec of whole shard files (``reads_whole_files``) is read in batches of
  ``_READ_BATCH`` reviews, which stay batches through ``write_splits``: one review per TFDS
  element cost an eager ``IteratorGetNext`` per review, about half of ImdbExampleGen's
  time on the full data (``write_splits`` alone, 2 worker threads, 2-core machine,
  2026-12-05: 45.9 s review by review, 18.7 s batched, the same examples in the same
  order), and one review per Beam element Beam's per-element work in each step after.
  ``ReadFromTFDS`` cuts a file (``"train[:2%]"``) only review by review, so such a spec
  is read that way and batched after (Beam's ``BatchElements``, up to ``_READ_BATCH``).
  """

  def __init__(self, builder, split: str):
    """Args: builder: a prepared TFDS builder (``prepare_builder``); split: a split spec,
    e.g. ``"train[:2%]"``."""
    super().__init__()
    self._builder, self._split = builder, split

  def expand(self, pbegin):
    if reads_whole_files(self._builder, self._split):
      return (
        pbegin
        | "ReadFromTFDS"
        >> tfds.beam.ReadFromTFDS(self._builder, split=self._split, batch_size=_READ_BATCH)
        | "AsBatch" >> beam.Map(_as_batch)
      )
    return (
      pbegin
      | "ReadFromTFDS" >> tfds.beam.ReadFromTFDS(self._builder, split=self._split)
      | "AsPair" >> beam.Map(_as_pair)
      | "AsBatch" >> beam.BatchElements(max_batch_size=_READ_BATCH)
    )


class _ToExamples(beam.DoFn):
  """A batch of (text, label) pairs -> its serialized tf.Examples (``serialize_examples``),
  grouped by the split each belongs to and the file of that split (``file_index``): a
  list per file, in the batch's order, as the output tagged ``_file_tag(split, index)``."""

  def __init__(self, split: str | None, eval_percent: int, span: int | None, files: int):
    """Args: split: the output split, or None for the train/eval hash split;
    eval_percent: as ``is_eval_example``'s; span: the ``span`` feature, or None; files:
    files per split, >= 1."""
    super().__init__()
    self._split, self._eval_percent, self._span = split, eval_percent, span
    self._files = files

  def process(self, batch: list[tuple[bytes, int | None]]):
    texts = [text for text, _ in batch]
    labels = None if self._split == UNLABELLED else [label for _, label in batch]
    by_file = defaultdict(list)
    for text, example in zip(texts, serialize_examples(texts, labels, self._span)):
      digest = hashlib.sha256(text).digest()  # one hash for both the split and the file
      split = self._split
      if split is None:
        split = EVAL if _is_eval(digest, self._eval_percent) else TRAIN
      by_file[_file_tag(split, _file_index(digest, self._files))].append(example)
    for tag, examples in by_file.items():
      yield beam.pvalue.TaggedOutput(tag, examples)


class _GzipTFRecordSink(tfrecordio._TFRecordSink):
  """The sink of Beam's ``WriteToTFRecord`` (TFRecord framing, temporary files renamed
  into place when the write finishes) for elements that are lists of records, compressing
  with gzip at zlib level ``level``: Beam's own compression has no level option. Built on
  Beam's private ``_TFRecordSink`` rather than a copy of its framing; apache-beam is
  pinned (``requirements.lock``)."""

  def __init__(self, file_path_prefix: str, level: int):
    """Args: file_path_prefix: as ``WriteToTFRecord``'s (files end in ``.gz``); level:
    zlib level, 1 (fastest) to 9."""
    super().__init__(
      file_path_prefix,
      coder=beam.coders.BytesCoder(),
      file_name_suffix=".gz",
      num_shards=0,
      shard_name_template=None,
      compression_type=CompressionTypes.UNCOMPRESSED,
    )
    self._level = level

  def open(self, temp_path):
    return _GzipFile(super().open(temp_path), self._level)

  def write_record(self, file_handle, value: list[bytes]):
    """Writes the records of ``value`` (serialized tf.Examples), in order."""
    for record in value:
      self.write_encoded_record(file_handle, record)


class _GzipFile(gzip.GzipFile):
  """A gzip stream into ``raw`` that closes ``raw`` too (Beam's sink closes only the handle
  ``open`` returned). No name and mtime 0 in the header, as Beam's gzip has."""

  def __init__(self, raw, level: int):
    super().__init__(filename="", mode="wb", compresslevel=level, fileobj=raw, mtime=0)
    self._raw = raw

  def close(self):
    try:
      super().close()
    finally:
      self._raw.close()


def _file_tag(split: str, index: int) -> str:
  """The tag of ``_ToExamples``'s output for file ``index`` of ``split``."""
  return f"{split}/{index}"


def write_splits(
  pipeline: beam.Pipeline,
  output_uri: str,
  train_records: beam.PTransform | None,
  test_records: beam.PTransform,
  eval_percent: int = 10,
  unlabelled_records: beam.PTransform | None = None,
  files_per_split: int = 2,
) -> dict[str, int]:
  """Runs ``pipeline``, writing train/eval/test GZIP TFRecords (zlib level ``GZIP_LEVEL``)
  of tf.Example under ``output_uri``: ``Split-<name>/data_tfrecord-part<i>-*-of-*.gz``,
  ``files_per_split`` parts of a split by a hash of the review text (``file_index``), each
  in the shards the runner picks (one per bundle: one file per part for a source read as
  one bundle); ``data_tfrecord-*-of-*.gz`` with ``files_per_split=1`` and for the test
  split.

  Several files per split are what lets the components downstream use more than one
  worker: Beam reads a gzipped TFRecord file as one unsplittable work item, and IMDB's
  TFDS splits are one shard file each, so one file per split left StatisticsGen,
  Transform and the EmbeddingTrainer's read on one core. The golden test split stays
  whole: its reader that matters, the Evaluator, runs on Beam's in-memory runner with
  one worker (``beam_profiles.evaluator_beam_args``), where two files made it slower
  (55.0 s against 48.1 s in a full run each; 47.2 s against 44.3 s alone, 2-core
  machine, 2026-12-06).

  Each source is a PTransform from the pipeline's start to batches of reviews, lists of
  (text bytes, label int) pairs (``ReadTFDS`` in the component, ``beam.Create`` in tests);
  a batch stays one element until its records are written. The reviews are read,
  converted and written on Beam's workers, never in the launcher process. The split
  counts come back through a small JSON file that is removed once read. On any error
  (a failed read, an empty split) every split directory written is removed again, so a
  failed execution leaves nothing that looks finished.

  Args:
    pipeline: the Beam pipeline to build on and run (``with pipeline``).
    output_uri: the Examples artifact's directory.
    train_records: batches split into train and eval by ``is_eval_example``; None writes
      neither split (the golden test set alone, when new reviews arrive as spans; its
      reviews then carry ``span`` 0, ``features.GOLDEN_SPAN``).
    test_records: batches for test.
    eval_percent: share of ``train_records`` sent to eval, in [1, 99].
    unlabelled_records: batches whose labels are dropped, written as the ``unlabelled``
      split (tf.Examples without ``label``); None writes no such split.
    files_per_split: parts each split but test is written in, >= 1.

  Returns:
    examples written per split name, in the order train, eval, test, unlabelled.

  Raises:
    ValueError: ``eval_percent`` or ``files_per_split`` out of range (nothing run), or a
      split would be empty.
  """
  if not 1 <= eval_percent <= 99:
    raise ValueError(f"eval_percent must be in [1, 99], got {eval_percent}")
  if files_per_split < 1:
    raise ValueError(f"files_per_split must be >= 1, got {files_per_split}")
  names = ((TRAIN, EVAL) if train_records is not None else ()) + (TEST,)
  names += (UNLABELLED,) if unlabelled_records is not None else ()
  counts_path = os.path.join(output_uri, _COUNTS_FILE)
  try:
    with pipeline:
      splits = _read_splits(
        pipeline, train_records, test_records, eval_percent, unlabelled_records, files_per_split
      )
      _write_and_count(splits, output_uri, counts_path)
    with tf.io.gfile.GFile(counts_path) as f:
      written = json.load(f)
    tf.io.gfile.remove(counts_path)
    counts = {name: written.get(name, 0) for name in names}
    empty = [name for name, count in counts.items() if count == 0]
    if empty:
      raise ValueError(
        f"split(s) {empty} would be empty (counts {counts}); use a larger slice of the TFDS splits"
      )
  except BaseException:
    written = [os.path.join(output_uri, f"Split-{name}") for name in names] + [counts_path]
    # Beam's temporary directories of a write that never finished, too.
    for path in written + tf.io.gfile.glob(os.path.join(output_uri, "beam-temp-*")):
      if tf.io.gfile.isdir(path):
        tf.io.gfile.rmtree(path)
      elif tf.io.gfile.exists(path):
        tf.io.gfile.remove(path)
    raise
  return counts


def _read_splits(
  pipeline, train_records, test_records, eval_percent, unlabelled_records, files_per_split
):
  """The sources -> {split name: [PCollection of lists of serialized tf.Examples, per
  file]}."""
  splits = {}
  # Beside spans, the golden test reviews are span 0 (the Evaluator's slices).
  test_span = features.GOLDEN_SPAN if train_records is None else None
  for name, split, source, span, files in (
    ("Train", None, train_records, None, files_per_split),
    ("Test", TEST, test_records, test_span, 1),
    ("Unlabelled", UNLABELLED, unlabelled_records, None, files_per_split),
  ):
    if source is None:
      continue
    outputs = (TRAIN, EVAL) if split is None else (split,)
    tags = [_file_tag(output, index) for output in outputs for index in range(files)]
    converted = (
      pipeline
      | f"Read{name}" >> source
      | f"ToExamples[{name}]"
      >> beam.ParDo(_ToExamples(split, eval_percent, span, files)).with_outputs(*tags)
    )
    splits.update(
      {
        output: [converted[_file_tag(output, index)] for index in range(files)]
        for output in outputs
      }
    )
  return splits


def _write_and_count(splits, output_uri: str, counts_path: str) -> None:
  """Writes each split's files of tf.Examples and the counts file (``{split: examples}``).

  Each file's examples are counted where they are written and only the counts meet:
  a Flatten of a split's files before counting made the DirectRunner hold every example
  in memory (ImdbExampleGen's peak grew 1.57x from 1x to 4x the data in
  ``make bench-scale``)."""
  counted = []
  for name, parts in splits.items():
    for index, examples in enumerate(parts):
      tag = _file_tag(name, index)
      prefix = _FILE_PREFIX if len(parts) == 1 else f"{_FILE_PREFIX}-part{index}"
      _ = examples | f"Write[{tag}]" >> beam.io.Write(
        _GzipTFRecordSink(os.path.join(output_uri, f"Split-{name}", prefix), GZIP_LEVEL)
      )
      counted.append(
        examples
        | f"Size[{tag}]" >> beam.Map(len)
        | f"Count[{tag}]" >> beam.CombineGlobally(sum)
        | f"Key[{tag}]" >> beam.Map(lambda n, name: (name, n), name=name)
      )
  _ = (
    counted
    | "Counts" >> beam.Flatten()
    | "Sum" >> beam.CombinePerKey(sum)
    | "ToDict" >> beam.combiners.ToDict()
    | "ToJson" >> beam.Map(json.dumps)
    | "WriteCounts" >> beam.io.WriteToText(counts_path, num_shards=1, shard_name_template="")
  )
