"""The Beam side of ``ImdbExampleGen``: what its workers run and import.

Beam's workers unpickle a DoFn by importing the module that defines it. Defined beside the
TFX component, ``_ToExamples`` made every worker import ``tfx.v1`` too (its extensions pull
in the Google Cloud clients): several seconds of each worker's start that reading and
writing reviews never needed. This module imports Beam, TensorFlow, TFDS and
``core.features`` only.
"""

import gzip
import hashlib
import json
import os

import apache_beam as beam
import tensorflow as tf
import tensorflow_datasets as tfds
from apache_beam.io import tfrecordio
from apache_beam.io.filesystem import CompressionTypes

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


def to_tf_example(text: bytes, label: int | None, span: int | None = None) -> tf.train.Example:
  """Builds the raw tf.Example (feature keys and types in ``core.features``); an
  unlabelled review (``label`` None) gets no ``label`` feature, and only a review with a
  ``span`` a ``span`` feature."""
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


def _as_pairs(batch: dict):
  """A batch of decoded TFDS ``imdb_reviews`` records (``text`` string [n], ``label``
  int64 [n]) -> its (text bytes, label int) pairs, in order."""
  for text, label in zip(batch["text"].numpy(), batch["label"].numpy()):
    yield text, int(label)


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
  on the workers) -> PCollection of (text bytes, label int), in each file's order.

  A spec of whole shard files (``reads_whole_files``) is read in batches of
  ``_READ_BATCH`` reviews, unbatched here: one review per TFDS element cost an eager
  ``IteratorGetNext`` per review, about half of ImdbExampleGen's time on the full data
  (``write_splits`` alone, 2 worker threads, 2-core machine, 2026-12-05: 45.9 s review by
  review, 18.7 s batched, the same examples in the same order). ``ReadFromTFDS`` cuts a
  file (``"train[:2%]"``) only review by review, so such a spec is read that way.
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
        | "AsPairs" >> beam.FlatMap(_as_pairs)
      )
    return (
      pbegin
      | "ReadFromTFDS" >> tfds.beam.ReadFromTFDS(self._builder, split=self._split)
      | "AsPair" >> beam.Map(_as_pair)
    )


class _ToExamples(beam.DoFn):
  """(text, label) -> serialized tf.Example, to the split it belongs to and the file of
  that split (``file_index``), as the output tagged ``_file_tag(split, index)`` (one step
  per review: Beam's per-element cost is paid once, not per conversion)."""

  def __init__(self, split: str | None, eval_percent: int, span: int | None, files: int):
    """Args: split: the output split, or None for the train/eval hash split;
    eval_percent: as ``is_eval_example``'s; span: the ``span`` feature, or None; files:
    files per split, >= 1."""
    super().__init__()
    self._split, self._eval_percent, self._span = split, eval_percent, span
    self._files = files

  def process(self, pair: tuple[bytes, int | None]):
    text, label = pair
    digest = hashlib.sha256(text).digest()  # one hash for both the split and the file
    split = self._split
    if split is None:
      split = EVAL if _is_eval(digest, self._eval_percent) else TRAIN
    if split == UNLABELLED:
      label = None
    yield beam.pvalue.TaggedOutput(
      _file_tag(split, _file_index(digest, self._files)),
      to_tf_example(text, label, self._span).SerializeToString(),
    )


class _GzipTFRecordSink(tfrecordio._TFRecordSink):
  """The sink of Beam's ``WriteToTFRecord`` (TFRecord framing, temporary files renamed
  into place when the write finishes), compressing with gzip at zlib level ``level``:
  Beam's own compression has no level option. Built on Beam's private ``_TFRecordSink``
  rather than a copy of its framing; apache-beam is pinned (``requirements.lock``)."""

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

  Each source is a PTransform from the pipeline's start to (text bytes, label int) pairs
  (``ReadTFDS`` in the component, ``beam.Create`` in tests), so the reviews are read,
  converted and written on Beam's workers, never in the launcher process. The split
  counts come back through a small JSON file that is removed once read. On any error
  (a failed read, an empty split) every split directory written is removed again, so a
  failed execution leaves nothing that looks finished.

  Args:
    pipeline: the Beam pipeline to build on and run (``with pipeline``).
    output_uri: the Examples artifact's directory.
    train_records: pairs split into train and eval by ``is_eval_example``; None writes
      neither split (the golden test set alone, when new reviews arrive as spans; its
      reviews then carry ``span`` 0, ``features.GOLDEN_SPAN``).
    test_records: pairs for test.
    eval_percent: share of ``train_records`` sent to eval, in [1, 99].
    unlabelled_records: pairs whose labels are dropped, written as the ``unlabelled``
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
  """The sources -> {split name: [PCollection of serialized tf.Example per file]}."""
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
        | f"Count[{tag}]" >> beam.combiners.Count.Globally()
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
