"""Transform's ``preprocessing_fn``: clean, tokenize, map to vocabulary ids, pad.

The same graph runs in Transform (analysis on the train split only, then every split) and,
through the TransformGraph embedded in the exported SavedModel, at serving time, so the
model sees identical token ids in training and in production (no training/serving skew).
"""

from collections.abc import Mapping
from typing import Any

import tensorflow as tf
import tensorflow_transform as tft

from core import features
from models.hparams import HParams

# <br />, <br/>, <br>, and any other HTML tag.
_HTML_TAG = r"<[^>]*>"
# Apostrophes inside words are dropped ("don't" -> "dont"); all other punctuation splits.
_APOSTROPHE = r"['`\x{2019}]"
_NON_WORD = r"[^a-z0-9]+"


def clean_text(text: tf.Tensor) -> tf.Tensor:
  """Lowercases, strips HTML tags and punctuation, collapses whitespace.

  Args:
    text: string tensor of any shape (UTF-8; invalid bytes are replaced, not fatal).

  Returns:
    string tensor of the same shape holding space-separated lowercase ASCII words.
  """
  text = tf.strings.unicode_transcode(text, "UTF-8", "UTF-8", errors="replace")
  text = tf.strings.lower(text, encoding="utf-8")
  text = tf.strings.regex_replace(text, _HTML_TAG, " ")
  text = tf.strings.regex_replace(text, _APOSTROPHE, "")
  text = tf.strings.regex_replace(text, _NON_WORD, " ")
  return tf.strings.strip(text)


def tokenize(text: tf.Tensor) -> tf.RaggedTensor:
  """Cleans and splits a [batch] string tensor into a [batch, (words)] RaggedTensor."""
  return tf.strings.split(clean_text(text))


def _dense_column(tensor, default_value) -> tf.Tensor:
  """A one-value-per-example feature as a [batch] dense tensor.

  The raw feature arrives as dense [batch, 1] when the schema gives it a fixed shape, or
  as a SparseTensor [batch, None] when it is VarLen (e.g. an inferred schema without
  shape); ``default_value`` fills examples where it is missing.
  """
  if isinstance(tensor, tf.sparse.SparseTensor):
    tensor = tf.sparse.to_dense(
      tf.sparse.reset_shape(tensor, [tensor.dense_shape[0], 1]), default_value
    )
  elif isinstance(tensor, tf.RaggedTensor):
    tensor = tensor.to_tensor(default_value, shape=[None, 1])
  return tf.reshape(tensor, [-1])


def select_head_tail(values: tf.RaggedTensor, max_length: int, head_tokens: int) -> tf.RaggedTensor:
  """Keeps rows of at most ``max_length`` whole; of a longer row keeps the first
  ``head_tokens`` and the last ``max_length - head_tokens`` values.

  Head+tail truncation: for long reviews the ending (often the verdict) matters as much
  as the opening (Sun, Qiu, Xu & Huang 2019, "How to Fine-Tune BERT for Text
  Classification?", sec. 5.3.1, found head+tail best on IMDB).

  Args:
    values: RaggedTensor [batch, (n)] of any dtype.
    max_length: values kept per row, >= 1.
    head_tokens: values kept from the start of a long row, >= 0 (clamped to
      max_length, which keeps only the head).

  Returns:
    RaggedTensor [batch, (min(n, max_length))], order preserved.
  """
  head = min(max(head_tokens, 0), max_length)
  tail = max_length - head
  lengths = tf.expand_dims(values.row_lengths(), 1)
  positions = tf.ragged.range(values.row_lengths())
  # Position i survives if it is in the head or the tail; for a row no longer than
  # max_length every position satisfies one of the two.
  keep = (positions < head) | (positions >= lengths - tail)
  return tf.ragged.boolean_mask(values, keep)


def pad_or_truncate(
  ids: tf.RaggedTensor, max_length: int, head_tokens: int | None = None
) -> tf.Tensor:
  """Truncates each row (head+tail, see ``select_head_tail``; only the head when
  ``head_tokens`` is None) and right-pads with ``PADDING_ID``.

  Args:
    ids: int64 RaggedTensor [batch, (tokens)].
    max_length: output width.
    head_tokens: tokens kept from the start of a long row; None keeps the first
      ``max_length``.

  Returns:
    int64 tensor [batch, max_length].
  """
  kept = select_head_tail(ids, max_length, max_length if head_tokens is None else head_tokens)
  return kept.to_tensor(
    default_value=tf.constant(features.PADDING_ID, tf.int64), shape=[None, max_length]
  )


def pad_or_truncate_strings(
  words: tf.RaggedTensor, max_length: int, head_tokens: int | None = None
) -> tf.Tensor:
  """String counterpart of ``pad_or_truncate``: [batch, (words)] -> [batch, max_length],
  right-padded with "" so position i lines up with token id i."""
  kept = select_head_tail(words, max_length, max_length if head_tokens is None else head_tokens)
  return kept.to_tensor(default_value="", shape=[None, max_length])


def preprocessing_fn(
  inputs: Mapping[str, Any], custom_config: dict[str, Any] | None = None
) -> dict[str, tf.Tensor]:
  """tf.Transform preprocessing_fn.

  Args:
    inputs: raw features: ``text`` (string) and optionally ``label`` (int64), dense
      [batch, 1] or SparseTensor [batch, None]. Other raw features are ignored.
    custom_config: the pipeline's custom_config; ``hparams.vocab_size``,
      ``hparams.num_oov_buckets``, ``hparams.max_length`` and ``hparams.head_tokens`` are
      read from it.

  Returns:
    ``tokens``: int64 [batch, max_length] (head+tail truncated, see
    ``select_head_tail``), 0 = padding, 1..vocab_size = vocabulary ids in
    descending train-split frequency, vocab_size+1.. = OOV buckets; ``label``: int64 [batch]
    when the input has a label.
  """
  hp = HParams.from_custom_config(custom_config)
  text = _dense_column(inputs[features.TEXT_KEY], default_value="")
  words = tokenize(text)
  # The vocabulary analyzer sees whatever split Transform analyzes: the pipeline sets
  # SplitsConfig(analyze=["train"]) so eval/test never influence it.
  ids = tft.compute_and_apply_vocabulary(
    words,
    top_k=hp.vocab_size,
    num_oov_buckets=hp.num_oov_buckets,
    vocab_filename=features.VOCABULARY_NAME,
  )
  outputs = {features.TOKENS_KEY: pad_or_truncate(ids + 1, hp.max_length, hp.head_tokens)}
  if features.LABEL_KEY in inputs:
    outputs[features.LABEL_KEY] = _dense_column(
      inputs[features.LABEL_KEY], default_value=tf.constant(-1, tf.int64)
    )
  return outputs
