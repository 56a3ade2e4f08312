"""IMDB ingestion: TFDS ``imdb_reviews`` -> an Examples artifact with train/eval/test splits.

Why a custom component: TFX's standard ExampleGens read files (CSV, TFRecord, Parquet) or
BigQuery, and none reads a TFDS dataset by name with split slicing. This one reads through
TFDS's own builder (``tfds.builder(...).as_dataset``) and writes TFX's standard Examples
layout, so every standard component downstream (StatisticsGen, Transform, Evaluator, ...)
consumes it unchanged:

  <uri>/Split-train/data_tfrecord-00000-of-00001.gz   (GZIP TFRecord of tf.Example)
  <uri>/Split-eval/...
  <uri>/Split-test/...

``train``/``eval`` are a deterministic split of the TFDS train split by a hash of the
review text (so duplicated reviews never straddle the two, and the split does not depend
on read order or on slicing); ``test`` is the TFDS test split. With ``unlabelled_split``
(TFDS's ``unsupervised`` split: 50,000 reviews without a rating) an ``unlabelled`` split
is written too, whose tf.Examples have no ``label`` feature; only the embedding
pretraining reads it (``models.pretraining``).
"""

import hashlib
import os
from collections.abc import Iterable, Iterator

import tensorflow as tf
import tensorflow_datasets as tfds
from tfx import v1 as tfx
from tfx.components.util import examples_utils
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifact_utils

from core import features

DATASET_NAME = "imdb_reviews"
TRAIN, EVAL, TEST, UNLABELLED = "train", "eval", "test", "unlabelled"
SPLIT_NAMES = (TRAIN, EVAL, TEST)
_FILE_NAME = "data_tfrecord-00000-of-00001.gz"


class DatasetNotFoundError(FileNotFoundError):
  """The TFDS dataset is not prepared where we looked and downloading is off."""


def resolve_data_dir(data_dir: str | None) -> str:
  """The TFDS data directory used: ``data_dir``, else ``$TFDS_DATA_DIR``, else TFDS's default
  (``~/tensorflow_datasets``)."""
  if data_dir:
    return os.path.abspath(os.path.expanduser(data_dir))
  return os.path.expanduser(os.environ.get("TFDS_DATA_DIR") or tfds.core.constants.DATA_DIR)


def prepare_builder(
  data_dir: str | None,
  train_split: str,
  test_split: str,
  download: bool = False,
  dataset: str = DATASET_NAME,
  unlabelled_split: str = "",
):
  """Returns a ready TFDS builder for ``dataset``, checking the splits before any write.

  Args:
    data_dir: TFDS data directory, or None for ``$TFDS_DATA_DIR`` / TFDS's default.
    train_split: TFDS split spec for training data, e.g. ``"train"`` or ``"train[:2%]"``.
    test_split: TFDS split spec for the final evaluation data.
    download: let TFDS download and prepare the dataset when it is missing.
    dataset: TFDS dataset name.
    unlabelled_split: TFDS split spec of unlabelled reviews (``"unsupervised"``), or ""
      for none.

  Raises:
    DatasetNotFoundError: the dataset is not prepared under the data dir and ``download``
      is False; the message names the directory and the ways to fix it.
    ValueError: a split spec is malformed or names an unknown split.
  """
  resolved = resolve_data_dir(data_dir)
  builder = tfds.builder(dataset, data_dir=resolved)
  if not builder.is_prepared():
    if not download:
      raise DatasetNotFoundError(
        f"TFDS dataset '{dataset}' (version {builder.version}) is not prepared under "
        f"'{resolved}' (looked for {builder.data_dir}). Fix: point --tfds-data-dir or "
        f"TFDS_DATA_DIR at a TFDS data directory holding {dataset}/, or pass --download "
        f"to let TFDS download and prepare it (needs internet, about 80 MB)."
      )
    builder.download_and_prepare()
  for spec in (train_split, test_split, unlabelled_split):
    if not spec:
      continue
    try:
      tfds.core.ReadInstruction.from_spec(spec).to_absolute(dict(builder.info.splits.items()))
    except (ValueError, AssertionError, KeyError) as e:
      raise ValueError(f"invalid TFDS split spec {spec!r} for {dataset}: {e}") from e
  return builder


def is_eval_example(text: bytes, eval_percent: int) -> bool:
  """Deterministic hash split: True for about ``eval_percent`` % of distinct texts."""
  bucket = int.from_bytes(hashlib.sha256(text).digest()[:8], "big") % 100
  return bucket < eval_percent


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


def _records(builder, split: str) -> Iterator[tuple[bytes, int]]:
  dataset = builder.as_dataset(split=split, shuffle_files=False)
  for record in tfds.as_numpy(dataset):
    yield record["text"], int(record["label"])


def write_splits(
  output_uri: str,
  train_records: Iterable[tuple[bytes, int]] | None,
  test_records: Iterable[tuple[bytes, int]],
  eval_percent: int = 10,
  unlabelled_texts: Iterable[bytes] | None = None,
) -> dict[str, int]:
  """Writes train/eval/test GZIP TFRecords of tf.Example under ``output_uri``.

  Each file is written under a temporary name and renamed once every split is complete;
  on any error the temporary files are removed, so a failed write leaves nothing that
  looks finished.

  Args:
    output_uri: the Examples artifact's directory.
    train_records: (text bytes, label int) pairs split into train and eval; None writes
      neither split (the golden test set alone, when new reviews arrive as spans; its
      reviews then carry ``span`` 0, ``features.GOLDEN_SPAN``).
    test_records: (text bytes, label int) pairs for test.
    eval_percent: share of train_records sent to eval, in [1, 99].
    unlabelled_texts: review texts without labels, written as the ``unlabelled`` split
      (tf.Examples without ``label``); None writes no such split.

  Returns:
    examples written per split name.

  Raises:
    ValueError: ``eval_percent`` out of range, or a split would be empty.
  """
  if not 1 <= eval_percent <= 99:
    raise ValueError(f"eval_percent must be in [1, 99], got {eval_percent}")
  names = (TRAIN, EVAL) if train_records is not None else ()
  names += (TEST,) + ((UNLABELLED,) if unlabelled_texts is not None else ())
  writers, temp_paths, counts = {}, {}, dict.fromkeys(names, 0)
  options = tf.io.TFRecordOptions(compression_type="GZIP")
  for name in names:
    split_dir = os.path.join(output_uri, f"Split-{name}")
    tf.io.gfile.makedirs(split_dir)
    temp_paths[name] = os.path.join(split_dir, f".{_FILE_NAME}.incomplete")
    writers[name] = tf.io.TFRecordWriter(temp_paths[name], options)
  try:
    try:
      for text, label in train_records or ():
        name = EVAL if is_eval_example(text, eval_percent) else TRAIN
        writers[name].write(to_tf_example(text, label).SerializeToString())
        counts[name] += 1
      # Beside spans, the golden test reviews are span 0 (the Evaluator's slices).
      test_span = features.GOLDEN_SPAN if train_records is None else None
      for text, label in test_records:
        writers[TEST].write(to_tf_example(text, label, test_span).SerializeToString())
        counts[TEST] += 1
      for text in unlabelled_texts or ():
        writers[UNLABELLED].write(to_tf_example(text, None).SerializeToString())
        counts[UNLABELLED] += 1
    finally:
      for writer in writers.values():
        writer.close()
    empty = [name for name, count in counts.items() if count == 0]
    if empty:
      raise ValueError(
        f"split(s) {empty} would be empty (counts {counts}); use a larger slice of the TFDS splits"
      )
  except BaseException:
    for temp in temp_paths.values():
      if tf.io.gfile.exists(temp):
        tf.io.gfile.remove(temp)
    raise
  for temp in temp_paths.values():
    tf.io.gfile.rename(temp, os.path.join(os.path.dirname(temp), _FILE_NAME), overwrite=True)
  return counts


@tfx.dsl.components.component
def ImdbExampleGen(  # noqa: N802 - TFX names a component (a function here) like a class
  examples: tfx.dsl.components.OutputArtifact[tfx.types.standard_artifacts.Examples],
  train_split: tfx.dsl.components.Parameter[str] = "train",
  test_split: tfx.dsl.components.Parameter[str] = "test",
  eval_percent: tfx.dsl.components.Parameter[int] = 10,
  tfds_data_dir: tfx.dsl.components.Parameter[str] = "",
  download: tfx.dsl.components.Parameter[bool] = False,
  dataset_version: tfx.dsl.components.Parameter[str] = "1.0.0",
  unlabelled_split: tfx.dsl.components.Parameter[str] = "",
) -> None:
  """Reads IMDB through TFDS and emits Examples with ``train``, ``eval`` and ``test`` splits
  (and ``unlabelled`` with ``unlabelled_split``).

  Args:
    examples: output Examples artifact (GZIP TFRecords of tf.Example, features in
      ``core.features``); custom properties record the per-split counts.
    train_split: TFDS split spec feeding train+eval, e.g. ``"train"`` or ``"train[:2%]"``;
      "" writes neither (the reviews to train on then arrive as spans: ReviewExampleGen).
    test_split: TFDS split spec of the official test data, e.g. ``"test[:2%]"``.
    eval_percent: percent of ``train_split`` held out as ``eval`` (hash of the text).
    tfds_data_dir: TFDS data dir; empty = ``$TFDS_DATA_DIR`` or TFDS's default.
    download: allow TFDS to download the dataset when missing.
    dataset_version: TFDS version of ``imdb_reviews`` to read (part of the cache key).
    unlabelled_split: TFDS split spec of reviews without labels for the embedding
      pretraining, e.g. ``"unsupervised"`` or ``"unsupervised[:2%]"``; "" = none.

  Raises:
    DatasetNotFoundError: no prepared dataset and ``download`` is False (nothing written).
    ValueError: a bad split spec or ``eval_percent``.
  """
  builder = prepare_builder(
    tfds_data_dir or None,
    train_split,
    test_split,
    download,
    dataset=f"{DATASET_NAME}:{dataset_version}",
    unlabelled_split=unlabelled_split,
  )
  unlabelled = (
    (text for text, _ in _records(builder, unlabelled_split)) if unlabelled_split else None
  )
  counts = write_splits(
    examples.uri,
    _records(builder, train_split) if train_split else None,
    _records(builder, test_split),
    eval_percent,
    unlabelled,
  )
  examples.split_names = standard_artifact_utils.encode_split_names(list(counts))
  examples_utils.set_payload_format(examples, example_gen_pb2.PayloadFormat.FORMAT_TF_EXAMPLE)
  examples_utils.set_file_format(examples, "tfrecords_gzip")
  for name, count in counts.items():
    examples.set_int_custom_property(f"num_examples_{name}", count)
