"""IMDB ingestion: TFDS ``imdb_reviews`` -> an Examples artifact with train/eval/test splits.

Why a custom component: TFX's standard ExampleGens read files (CSV, TFRecord, Parquet) or
BigQuery, and none reads a TFDS dataset by name with split slicing, or sends one input to
a hash split and others to splits of their own. This one is a Beam component like them
(TFX's ``beam_pipeline_args`` reach it): the reviews are read with TFDS's own Beam source
(``tfds.beam.ReadFromTFDS``: the prepared TFRecord shards, on the workers), converted and
written in Beam, in TFX's standard Examples layout, so every standard component
downstream (StatisticsGen, Transform, Evaluator, ...) consumes it unchanged:

  <uri>/Split-train/data_tfrecord-part0-00000-of-00001.gz   (GZIP TFRecords of tf.Example)
  <uri>/Split-train/data_tfrecord-part1-00000-of-00001.gz   (``files_per_split`` parts)
  <uri>/Split-eval/...
  <uri>/Split-test/data_tfrecord-00000-of-00001.gz          (the golden test split: whole)

``train``/``eval`` are a deterministic split of the TFDS train split by a hash of the
review text (so duplicated reviews never straddle the two, and the split does not depend
on read order or on slicing); ``test`` is the TFDS test split. With ``unlabelled_split``
(TFDS's ``unsupervised`` split: 50,000 reviews without a rating) an ``unlabelled`` split
is written too, whose tf.Examples have no ``label`` feature; only the embedding
pretraining reads it (``models.pretraining``). What the Beam workers run (reading,
conversion, the hash split, writing) lives in ``components.imdb_beam``, so that they do not
import TFX.
"""

import os

import apache_beam as beam
import tensorflow_datasets as tfds
from tfx.components.util import examples_utils
from tfx.dsl.component.experimental.annotations import (
  BeamComponentParameter,
  OutputArtifact,
  Parameter,
)
from tfx.dsl.component.experimental.decorators import component
from tfx.proto import example_gen_pb2
from tfx.types import standard_artifact_utils, standard_artifacts

from components.imdb_beam import ReadTFDS, write_splits

DATASET_NAME = "imdb_reviews"


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


@component(use_beam=True)
def ImdbExampleGen(  # noqa: N802 - TFX names a component (a function here) like a class
  examples: OutputArtifact[standard_artifacts.Examples],
  train_split: Parameter[str] = "train",
  test_split: Parameter[str] = "test",
  eval_percent: Parameter[int] = 10,
  tfds_data_dir: Parameter[str] = "",
  download: Parameter[bool] = False,
  dataset_version: Parameter[str] = "1.0.0",
  unlabelled_split: Parameter[str] = "",
  files_per_split: Parameter[int] = 2,
  beam_pipeline: BeamComponentParameter[beam.Pipeline] = None,
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
    files_per_split: files each split but test is written in, by a hash of the review
      text (``imdb_beam.write_splits``): what the Beam components downstream can read in
      parallel, one file per worker; the default matches the DirectRunner's 2 workers
      on the 2-core reference machine.
    beam_pipeline: the pipeline TFX builds from the pipeline's ``beam_pipeline_args`` (the
      DirectRunner's worker processes, or a portable runner's): the reviews are read with
      ``tfds.beam.ReadFromTFDS`` and written there, like every Beam-based ExampleGen's.

  Raises:
    DatasetNotFoundError: no prepared dataset and ``download`` is False (nothing written).
    ValueError: a bad split spec, ``eval_percent`` or ``files_per_split``.
  """
  builder = prepare_builder(
    tfds_data_dir or None,
    train_split,
    test_split,
    download,
    dataset=f"{DATASET_NAME}:{dataset_version}",
    unlabelled_split=unlabelled_split,
  )
  counts = write_splits(
    beam_pipeline,
    examples.uri,
    ReadTFDS(builder, train_split) if train_split else None,
    ReadTFDS(builder, test_split),
    eval_percent,
    ReadTFDS(builder, unlabelled_split) if unlabelled_split else None,
    files_per_split,
  )
  examples.split_names = standard_artifact_utils.encode_split_names(list(counts))
  examples_utils.set_payload_format(examples, example_gen_pb2.PayloadFormat.FORMAT_TF_EXAMPLE)
  examples_utils.set_file_format(examples, "tfrecords_gzip")
  for name, count in counts.items():
    examples.set_int_custom_property(f"num_examples_{name}", count)
