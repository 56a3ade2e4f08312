"""A tiny exported model (tf.Transform graph + untrained model + signatures) built in
seconds from 20 hand-written reviews, for tests of the export and of serving."""

import dataclasses
import functools
import os
import shutil
from collections.abc import Sequence

import apache_beam as beam
import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
import tf_keras as keras
from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io, schema_utils

from core import features
from models import model as model_lib
from models import preprocessing, signatures
from models.hparams import HParams

HP = HParams(
  vocab_size=30,
  num_oov_buckets=2,
  max_length=8,
  embedding_dim=8,
  lstm_units=4,
  dense_units=4,
  max_pooling=False,
  embedding_dropout=0.1,
  dropout=0.5,
  learning_rate=1e-3,
  batch_size=4,
  epochs=1,
  bigram_buckets=64,
)

REVIEWS = [
  (b"a great film, great acting and a wonderful story", 1),
  (b"terrible movie, bad acting, awful plot", 0),
  (b"I loved it<br /><br />wonderful and great", 1),
  (b"boring and bad, I hated it", 0),
  (b"great great great", 1),
  (b"awful awful, just bad", 0),
  (b"wonderful cast and a great ending", 1),
  (b"the plot was boring and the acting terrible", 0),
  (b"a joy to watch, loved the story", 1),
  (b"waste of time, bad bad bad", 0),
  (b"brilliant and moving film", 1),
  (b"dull, slow and boring", 0),
  (b"one of the best films I have seen", 1),
  (b"the worst film of the year", 0),
  (b"great story, great cast", 1),
  (b"don't watch it, awful", 0),
  (b"superb acting, loved it", 1),
  (b"bad script and bad direction", 0),
  (b"charming, funny and great", 1),
  (b"poor, boring, terrible", 0),
]


@dataclasses.dataclass
class TinyExport:
  export_dir: str
  model: keras.Model
  tokens: np.ndarray  # int64 [len(REVIEWS), hp.max_length], REVIEWS transformed
  tf_transform_output: tft.TFTransformOutput


def analyze_reviews(
  transform_dir: str, hp: HParams = HP, reviews: Sequence[tuple[bytes, int]] = REVIEWS
) -> tft.TFTransformOutput:
  """Analyzes ``reviews`` with ``preprocessing_fn`` and writes the transform graph to
  ``transform_dir`` as TFX's Transform writes its TransformGraph (transform_fn,
  transformed_metadata and the raw metadata)."""
  spec = {
    features.TEXT_KEY: tf.io.FixedLenFeature([1], tf.string),
    features.LABEL_KEY: tf.io.FixedLenFeature([1], tf.int64),
  }
  metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(spec))
  raw = [{features.TEXT_KEY: [t], features.LABEL_KEY: [y]} for t, y in reviews]
  fn = functools.partial(preprocessing.preprocessing_fn, custom_config=hp.to_custom_config())
  temp_dir = os.path.join(os.path.dirname(os.path.abspath(transform_dir)), "tft_tmp")
  with beam.Pipeline() as pipeline, tft_beam.Context(temp_dir=temp_dir):
    transform_fn = (pipeline | beam.Create(raw), metadata) | tft_beam.AnalyzeDataset(fn)
    _ = transform_fn | tft_beam.WriteTransformFn(transform_dir)
  # TFX's Transform also writes the raw metadata, which raw_feature_spec() reads.
  metadata_io.write_metadata(
    metadata, os.path.join(transform_dir, tft.TFTransformOutput.RAW_METADATA_DIR)
  )
  return tft.TFTransformOutput(transform_dir)


def transform_reviews(
  tf_transform_output: tft.TFTransformOutput, reviews: Sequence[tuple[bytes, int]]
) -> dict[str, np.ndarray]:
  """``reviews`` through the transform graph: {"tokens": int64 [n, max_length],
  "label": int64 [n]}."""
  transformed = tf_transform_output.transform_raw_features(
    {
      features.TEXT_KEY: tf.constant([[t] for t, _ in reviews]),
      features.LABEL_KEY: tf.constant([[y] for _, y in reviews], tf.int64),
    }
  )
  return {k: v.numpy() for k, v in transformed.items()}


def export_tiny_model(root, hp: HParams = HP) -> TinyExport:
  """Analyzes REVIEWS with ``preprocessing_fn``, builds an (unfitted) model and exports it
  with ``signatures.export_saved_model`` to ``<root>/model``.

  The model is not fitted: tracing a training step costs ~20 s on a busy CPU and the
  signatures' contracts do not depend on the weights' values."""
  root = str(root)
  tf_transform_output = analyze_reviews(os.path.join(root, "transform"), hp)
  transformed = transform_reviews(tf_transform_output, REVIEWS)

  model, explain_model = model_lib.build(hp)
  export_dir = os.path.join(root, "model")
  signatures.export_saved_model(explain_model, tf_transform_output, hp, export_dir)
  return TinyExport(export_dir, model, transformed[features.TOKENS_KEY], tf_transform_output)


@dataclasses.dataclass
class TinyTransformedData:
  """What TFX's Transform hands the Trainer, for REVIEWS.

  Attributes:
    examples_uri: a transformed Examples artifact's directory: ``Split-train/`` and
      ``Split-eval/``, each ONE GZIP TFRecord file of tf.Example with ``tokens`` (int64
      [max_length]) and ``label`` (int64), as Transform writes small splits.
    transform_graph_uri: the TransformGraph artifact's directory (``TFTransformOutput``).
    train_examples: records in the train split.
  """

  examples_uri: str
  transform_graph_uri: str
  train_examples: int


def write_transformed_data(root, hp: HParams = HP, train_copies: int = 1) -> TinyTransformedData:
  """Analyzes REVIEWS and writes them transformed as the Trainer's inputs under ``root``:
  ``train`` holds REVIEWS ``train_copies`` times, ``eval`` holds them once."""
  root = str(root)
  transform_dir = os.path.join(root, "transform_graph")
  tf_transform_output = analyze_reviews(transform_dir, hp)
  transformed = transform_reviews(tf_transform_output, REVIEWS)
  examples_uri = os.path.join(root, "transformed_examples")
  options = tf.io.TFRecordOptions(compression_type="GZIP")
  for split, copies in (("train", train_copies), ("eval", 1)):
    split_dir = os.path.join(examples_uri, f"Split-{split}")
    os.makedirs(split_dir)
    path = os.path.join(split_dir, "transformed_examples-00000-of-00001.gz")
    with tf.io.TFRecordWriter(path, options) as writer:
      for _ in range(copies):
        for tokens, label in zip(
          transformed[features.TOKENS_KEY], transformed[features.LABEL_KEY].reshape(-1)
        ):
          writer.write(
            tf.train.Example(
              features=tf.train.Features(
                feature={
                  features.TOKENS_KEY: tf.train.Feature(
                    int64_list=tf.train.Int64List(value=tokens.tolist())
                  ),
                  features.LABEL_KEY: tf.train.Feature(
                    int64_list=tf.train.Int64List(value=[int(label)])
                  ),
                }
              )
            ).SerializeToString()
          )
  return TinyTransformedData(examples_uri, transform_dir, len(REVIEWS) * train_copies)


def copy_version(src: str, base: str, version: int) -> str:
  """Copies a SavedModel to ``<base>/<version>`` as TFX's Pusher does: everything else
  first, ``saved_model.pb`` last. Returns the version directory."""
  dst = os.path.join(base, str(version))
  shutil.copytree(src, dst, ignore=shutil.ignore_patterns("saved_model.pb"))
  shutil.copy(os.path.join(src, "saved_model.pb"), dst)
  return dst
