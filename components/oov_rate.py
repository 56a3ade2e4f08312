"""The out-of-vocabulary rate of reviews under a model's vocabulary: a drift measure that
TFDV's statistics cannot give (they know the raw text, not the vocabulary the serving
model maps it through), computed by the ``DriftGate``.

Definition: of a review's words (whitespace-separated after HTML tags are removed; words
without any letter or digit, in any script, are not counted), the share that map to no
vocabulary id: their cleaned tokens (``models.preprocessing.clean_text``, the Transform's
own cleaning) are all outside the vocabulary, or nothing is left of them after cleaning,
as of a word in another script, which the model then never sees.
"""

import os
from collections.abc import Iterable, Sequence

import tensorflow as tf

from models import preprocessing

# Reviews read per split for the rate (the first ones in file order).
MAX_REVIEWS = 5000
_BATCH = 500
_HTML_TAG = r"<[^>]*>"
_HAS_LETTER_OR_DIGIT = r".*[\p{L}\p{N}].*"


def unknown_words(texts: tf.Tensor, vocabulary: tf.lookup.StaticHashTable) -> tuple[int, int]:
  """Counts the words of ``texts`` that map to no id of ``vocabulary``.

  Args:
    texts: string [batch], raw reviews (UTF-8).
    vocabulary: token (string) -> 1, default 0.

  Returns:
    ``(unknown, words)``: words counted (module docstring) and those of them unknown.
  """
  words = tf.strings.split(tf.strings.regex_replace(texts, _HTML_TAG, " ")).flat_values
  words = tf.boolean_mask(words, tf.strings.regex_full_match(words, _HAS_LETTER_OR_DIGIT))
  tokens = preprocessing.tokenize(words)  # [words, (tokens)]
  known = tf.reduce_max(tf.ragged.map_flat_values(vocabulary.lookup, tokens), axis=1)
  # reduce_max of a word without tokens is the dtype's minimum: unknown too.
  unknown = tf.reduce_sum(tf.cast(known < 1, tf.int64))
  return int(unknown), int(tf.size(words))


def vocabulary_table(vocabulary: Sequence[bytes]) -> tf.lookup.StaticHashTable:
  """A lookup of ``vocabulary``'s tokens (1) with default 0."""
  keys = tf.constant(list(vocabulary), tf.string)
  return tf.lookup.StaticHashTable(
    tf.lookup.KeyValueTensorInitializer(keys, tf.ones_like(keys, tf.int64)), default_value=0
  )


def split_texts(split_uri: str, max_reviews: int = MAX_REVIEWS) -> Iterable[tf.Tensor]:
  """Batches of the ``text`` feature of the first ``max_reviews`` tf.Examples of a split
  directory (GZIP TFRecords), as string [batch] tensors."""
  files = sorted(tf.io.gfile.glob(os.path.join(split_uri, "*")))
  dataset = tf.data.TFRecordDataset(files, compression_type="GZIP").take(max_reviews)
  spec = {"text": tf.io.FixedLenFeature([], tf.string, default_value="")}
  for batch in dataset.batch(_BATCH):
    yield tf.io.parse_example(batch, spec)["text"]


def oov_rate(split_uri: str, vocabulary: Sequence[bytes], max_reviews: int = MAX_REVIEWS) -> float:
  """The out-of-vocabulary rate (module docstring) of the first ``max_reviews`` reviews
  of a split directory under ``vocabulary``; 0.0 for a split without words."""
  table = vocabulary_table(vocabulary)
  unknown = words = 0
  for texts in split_texts(split_uri, max_reviews):
    u, w = unknown_words(texts, table)
    unknown, words = unknown + u, words + w
  return unknown / words if words else 0.0
