"""Word2vec pretraining of the token embedding, run by the pipeline's ``EmbeddingTrainer``.

The ``EmbeddingTrainer`` (``components.embedding_trainer``, between Transform and the
Trainer) takes the token ids of the ``train`` reviews from Transform's transformed
Examples (the Trainer's own inputs) and maps the raw ``unlabelled`` reviews (TFDS's 50,000
unrated ones, which Transform does not write) to ids with the pipeline's TransformGraph
(the graph the Trainer's examples and the serving signatures go through, so the ids are
exactly the Trainer's), and trains word2vec's skip-gram with negative sampling (Mikolov et al. 2013,
"Distributed Representations of Words and Phrases and their Compositionality") on the id
sequences (``pretrain``). Its Model artifact is the Trainer's ``base_model``: the attention
model's token embedding starts from these vectors instead of a random table and is
fine-tuned with the rest (Dai & Le 2015, "Semi-supervised Sequence Learning", table 1: an
LSTM initialized with word2vec embeddings reached 10.0% test error on IMDB against 13.5%
from a random one).

Why gensim: word2vec is not what this project is about, and gensim's is the maintained,
optimized implementation (Řehůřek & Sojka 2010); no TFX component pretrains embeddings.
The corpus is written once to a local file (one review a line) and streamed from it by
gensim's ``corpus_file`` mode, so memory stays flat whatever the corpus size. By default
(``word2vec_workers`` 0) one worker thread per core; ``word2vec_workers`` 1 with its fixed
hash is the reproducible run gensim documents (the same data and hyperparameters give the
same vectors).

The Model directory (``<uri>/Format-Serving``, where TFX's Trainer looks for a
``base_model``) holds:

* ``embeddings.npy``: float32 [vocab_size + num_oov_buckets + 1, embedding_dim], row i the
  vector of token id i (``models.preprocessing``'s ids: 0 padding, then the vocabulary in
  descending train frequency, then the OOV buckets). Row 0 is zeros; an id that never
  occurs keeps Keras's Embedding initialization, uniform(-0.05, 0.05).
* ``word_vectors.bin``: the same vectors keyed by the words (OOV bucket b as ``<oov:b>``)
  in word2vec's binary format, for inspection: ``gensim.models.KeyedVectors.
  load_word2vec_format(path, binary=True).most_similar("awful")``.

and the ModelRun directory ``pretraining_summary.json``: reviews, tokens,
seconds, tokens/s, and how many rows came from word2vec.
"""

import dataclasses
import itertools
import os
import tempfile
import time
import zlib
from collections.abc import Iterator, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from absl import logging

from core import features
from models import inputs, throughput
from models.hparams import HParams

EMBEDDINGS_FILE = "embeddings.npy"
WORD_VECTORS_FILE = "word_vectors.bin"
SUMMARY_FILE = "pretraining_summary.json"
# Keras's Embedding default initializer is uniform(-0.05, 0.05); rows word2vec never saw
# are drawn from the same.
_UNSEEN_SCALE = 0.05
# Reviews per batch through the TransformGraph.
_BATCH = 512
# Reviews whose ids ``write_corpus`` counts at once.
_COUNT_CHUNK = 512


def _stable_hash(text: str) -> int:
  """gensim's ``hashfxn`` (seeds each word's initial vector): CRC-32 instead of Python's
  ``hash``, which is salted per process, so runs are reproducible without
  ``PYTHONHASHSEED``."""
  return zlib.crc32(text.encode("utf-8"))


def id_words(vocabulary: Sequence[bytes], hp: HParams) -> list[str]:
  """The word of each token id: ``result[i]`` for id i in [0, hp.embedding_input_dim).

  Id 0 (padding) is ``""``; ids 1..len(vocabulary) the vocabulary's words; the next
  ``hp.num_oov_buckets`` ids ``<oov:0>``, ``<oov:1>``, ...; ids beyond (a vocabulary
  smaller than ``hp.vocab_size``, so never produced) ``<unused:i>``.

  Raises:
    ValueError: the vocabulary is longer than ``hp.vocab_size``.
  """
  if len(vocabulary) > hp.vocab_size:
    raise ValueError(
      f"the vocabulary has {len(vocabulary)} words, more than vocab_size "
      f"{hp.vocab_size}: the TransformGraph was built with other "
      "hyperparameters"
    )
  words = [""] + [
    w.decode("utf-8", errors="replace") if isinstance(w, bytes) else w for w in vocabulary
  ]
  words += [f"<oov:{b}>" for b in range(hp.num_oov_buckets)]
  words += [f"<unused:{i}>" for i in range(len(words), hp.embedding_input_dim)]
  return words


def token_id_sequences(
  file_patterns: Sequence[str], tf_transform_output: tft.TFTransformOutput
) -> Iterator[np.ndarray]:
  """The token ids of every raw review in ``file_patterns`` (GZIP TFRecords of tf.Example
  with ``text``; ``label`` may be absent), through the TransformGraph.

  Yields:
    int64 [n] per review: its ids without the padding (n <= max_length; 0 for an empty
    review).
  """
  text_spec = {features.TEXT_KEY: tf_transform_output.raw_feature_spec()[features.TEXT_KEY]}
  tft_layer = tf_transform_output.transform_features_layer()

  # No AutoGraph: it would rewrite the layer's tf.Transform and Keras code (models.tracing).
  @tf.function(autograph=False)
  def to_ids(serialized):
    raw = tf.io.parse_example(serialized, text_spec)
    return tft_layer(raw)[features.TOKENS_KEY]

  return _id_rows(file_patterns, to_ids)


def transformed_id_sequences(
  file_patterns: Sequence[str], tf_transform_output: tft.TFTransformOutput
) -> Iterator[np.ndarray]:
  """The token ids of every review in ``file_patterns``, Transform's transformed Examples
  (GZIP TFRecords of tf.Example with ``tokens``, int64 [max_length]): the ids the
  TransformGraph gave those reviews, read instead of computed again.

  Yields:
    int64 [n] per review: its ids without the padding (n <= max_length).
  """
  spec = tf_transform_output.transformed_feature_spec()
  tokens_spec = {features.TOKENS_KEY: spec[features.TOKENS_KEY]}
  return _id_rows(
    file_patterns,
    lambda serialized: tf.io.parse_example(serialized, tokens_spec)[features.TOKENS_KEY],
  )


def _id_rows(file_patterns: Sequence[str], to_ids) -> Iterator[np.ndarray]:
  """``to_ids`` (serialized tf.Examples [batch] -> int64 ids [batch, max_length]) over the
  files of ``file_patterns`` in order (``id_batches``), one review's ids without padding
  at a time."""
  for ids in id_batches(file_patterns, to_ids):
    for row in ids.numpy():
      yield row[row != features.PADDING_ID]


def id_batches(file_patterns: Sequence[str], to_ids) -> tf.data.Dataset:
  """The dataset of ``to_ids`` (serialized tf.Examples [batch] -> int64 ids [batch,
  max_length]) over batches of the files of ``file_patterns`` in order. The mapping runs
  in tf.data's threads, ahead of the caller's loop (which writes the corpus in Python),
  without tf.data's autotuning, whose end of iteration idled the cores for 9-10 s in about
  4 runs of 10 (``inputs.without_autotuning``)."""
  files = sorted({f for pattern in file_patterns for f in tf.io.gfile.glob(pattern)})
  return inputs.without_autotuning(
    tf.data.TFRecordDataset(files, compression_type="GZIP")
    .batch(_BATCH)
    .map(to_ids, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    .prefetch(tf.data.AUTOTUNE)
  )


@dataclasses.dataclass(frozen=True)
class Corpus:
  """What ``write_corpus`` wrote, and the counts gensim would otherwise read the file again
  for (its vocabulary scan, Python under the GIL: 2.3 s of a full run's EmbeddingTrainer,
  py-spy, 2-core machine, 2026-12-06), counted instead as the ids are written, a few numpy
  calls per 512 reviews.

  Attributes:
    path: the corpus file, one review a line.
    reviews: lines written (reviews).
    sentences: lines with at least one word (gensim skips empty lines).
    word_counts: word -> occurrences, in the order of each word's first occurrence (the
      order of gensim's own scan, on which its vocabulary's tie order rests).
  """

  path: str
  reviews: int
  sentences: int
  word_counts: dict[str, int]

  @property
  def tokens(self) -> int:
    """Words written."""
    return sum(self.word_counts.values())


class _IdCounter:
  """Occurrences of ids in [0, size) and the order they were first seen in, counted a
  chunk of ``_COUNT_CHUNK`` reviews at a time."""

  def __init__(self, size: int):
    self._counts = np.zeros(size, np.int64)
    self._first_seen: list[int] = []
    self._pending: list[np.ndarray] = []

  def add(self, ids: np.ndarray) -> None:
    self._pending.append(ids)
    if len(self._pending) >= _COUNT_CHUNK:
      self._flush()

  def by_word(self, words: Sequence[str]) -> dict[str, int]:
    """``{words[id]: count}`` in first-seen order (ids of equal words summed)."""
    self._flush()
    counts: dict[str, int] = {}
    for i in self._first_seen:
      counts[words[i]] = counts.get(words[i], 0) + int(self._counts[i])
    return counts

  def _flush(self) -> None:
    if not self._pending:
      return
    ids = np.concatenate(self._pending)
    self._pending = []
    unseen = ids[self._counts[ids] == 0]
    if unseen.size:
      unique, first = np.unique(unseen, return_index=True)
      self._first_seen.extend(unique[np.argsort(first)].tolist())
    self._counts += np.bincount(ids, minlength=len(self._counts))


def write_corpus(sequences: Iterator[np.ndarray], words: Sequence[str], path: str) -> Corpus:
  """Writes the corpus for gensim's ``corpus_file`` mode: one review a line, its words
  (``words[id]``, which hold no whitespace) separated by spaces, streamed from
  ``sequences`` (``token_id_sequences``) so no more than one review is in memory, and
  counts its words as it goes.

  Raises:
    IndexError: an id outside ``words``.
  """
  reviews = sentences = 0
  by_id = np.asarray(words, dtype=object)
  counter = _IdCounter(len(words))
  with open(path, "w", encoding="utf-8") as f:
    for ids in sequences:
      f.write(" ".join(by_id[ids]))
      f.write("\n")
      counter.add(ids)
      reviews += 1
      sentences += bool(len(ids))
  return Corpus(path, reviews, sentences, counter.by_word(words))


def word2vec_workers(hp: HParams) -> int:
  """The worker threads gensim runs with: ``hp.word2vec_workers``, or with 0 one per CPU
  core of this process (its CPU affinity, else ``os.cpu_count()``)."""
  if hp.word2vec_workers:
    return hp.word2vec_workers
  try:
    return max(1, len(os.sched_getaffinity(0)))
  except AttributeError:  # not on Linux
    return max(1, os.cpu_count() or 1)


def word2vec_parameters(hp: HParams, workers: int = 1) -> dict:
  """gensim ``Word2Vec``'s arguments for ``hp``: skip-gram (``sg=1``) with negative
  sampling, every word kept (``min_count=1``), ``workers`` threads, seeded with the
  process-independent ``_stable_hash``."""
  return {
    "vector_size": hp.embedding_dim,
    "window": hp.word2vec_window,
    "negative": hp.word2vec_negative,
    "epochs": hp.word2vec_epochs,
    "sg": 1,
    "min_count": 1,
    "sample": hp.word2vec_sample,
    "workers": workers,
    "seed": hp.seed,
    "hashfxn": _stable_hash,
  }


def train_word2vec(corpus: Corpus, hp: HParams, workers: int = 1):
  """Skip-gram with negative sampling over ``corpus`` (``write_corpus``'s), read by
  gensim's ``corpus_file`` mode: streamed from disk by ``workers`` threads, each on its own
  part of the file, so neither the corpus nor a job queue is held in memory. The
  vocabulary comes from ``corpus.word_counts`` (gensim's ``build_vocab_from_freq``), the
  counts and order gensim's scan of the file would find, so the vectors are the ones
  ``Word2Vec(corpus_file=...)`` gives.

  Args:
    corpus: the corpus file and its counts.
    hp: ``embedding_dim`` (vector size), ``word2vec_window``, ``word2vec_negative``,
      ``word2vec_sample``, ``word2vec_epochs``, ``seed``.
    workers: gensim's worker threads; 1 gives reproducible vectors.

  Returns:
    gensim ``KeyedVectors``: a float32 [embedding_dim] vector per word seen.

  Raises:
    ValueError: the corpus holds no word.
  """
  from gensim.models import Word2Vec

  if not corpus.tokens:
    raise ValueError(
      "no tokens to pretrain the embedding on: the train and unlabelled splits are empty"
    )
  model = Word2Vec(**word2vec_parameters(hp, workers))
  model.build_vocab_from_freq(corpus.word_counts, corpus_count=corpus.sentences)
  model.train(
    corpus_file=corpus.path,
    total_examples=corpus.sentences,
    total_words=corpus.tokens,
    epochs=model.epochs,
    start_alpha=model.alpha,
    end_alpha=model.min_alpha,
  )
  return model.wv


def embedding_matrix(word_vectors, words: Sequence[str], hp: HParams) -> np.ndarray:
  """The Trainer's token embedding table from ``word_vectors``.

  Args:
    word_vectors: gensim ``KeyedVectors`` of ``hp.embedding_dim``.
    words: ``id_words``' list (the word of each id).
    hp: ``embedding_dim``, ``embedding_input_dim``, ``seed``.

  Returns:
    float32 [hp.embedding_input_dim, hp.embedding_dim]: row i the vector of ``words[i]``,
    row 0 zeros, rows of words without a vector uniform(-0.05, 0.05).

  Raises:
    ValueError: the vectors are not ``hp.embedding_dim`` wide.
  """
  if word_vectors.vector_size != hp.embedding_dim:
    raise ValueError(
      f"word vectors of size {word_vectors.vector_size} for embedding_dim {hp.embedding_dim}"
    )
  rng = np.random.default_rng(hp.seed)
  matrix = rng.uniform(
    -_UNSEEN_SCALE, _UNSEEN_SCALE, (hp.embedding_input_dim, hp.embedding_dim)
  ).astype(np.float32)
  matrix[features.PADDING_ID] = 0.0
  for token_id, word in enumerate(words):
    if token_id != features.PADDING_ID and word in word_vectors.key_to_index:
      matrix[token_id] = word_vectors[word]
  return matrix


def load_embeddings(base_model_dir: str, hp: HParams) -> np.ndarray:
  """Reads ``embeddings.npy`` from an ``EmbeddingTrainer`` Model directory.

  Returns:
    float32 [hp.embedding_input_dim, hp.embedding_dim].

  Raises:
    FileNotFoundError: the directory has no ``embeddings.npy`` (the base model is not
      the ``EmbeddingTrainer``'s).
    ValueError: the table's shape does not match ``hp`` (pretrained with another
      vocabulary or embedding width).
  """
  path = os.path.join(base_model_dir, EMBEDDINGS_FILE)
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(
      f"the base model {base_model_dir} has no {EMBEDDINGS_FILE}: "
      "it is not an EmbeddingTrainer output"
    )
  with tf.io.gfile.GFile(path, "rb") as f:
    matrix = np.load(f)
  expected = (hp.embedding_input_dim, hp.embedding_dim)
  if matrix.shape != expected:
    raise ValueError(
      f"pretrained embeddings in {path} are {matrix.shape}, the model needs "
      f"{expected} (vocab_size + num_oov_buckets + 1, embedding_dim)"
    )
  return matrix.astype(np.float32)


def pretrain(
  file_patterns: Sequence[str],
  transform_graph_uri: str,
  hp: HParams,
  model_dir: str,
  run_dir: str,
  transformed_patterns: Sequence[str] = (),
) -> dict:
  """Word2vec over the reviews of ``transformed_patterns`` (Transform's transformed
  Examples, whose ids are read: ``transformed_id_sequences``) and of ``file_patterns``
  (raw Examples, through the TransformGraph: ``token_id_sequences``), in that order,
  written as described in the module docstring: the table and the vectors to
  ``model_dir``, ``pretraining_summary.json`` to ``run_dir``. Runs on the CPU in this
  process, whatever the distribution strategy of the model's Trainer.

  Returns:
    the summary written (reviews, tokens, seconds, tokens/s, rows, hyperparameters).

  Raises:
    ValueError: bad hyperparameters, ``word2vec_epochs`` 0, or no tokens in the splits.
  """
  if not hp.word2vec_epochs:
    raise ValueError("word2vec_epochs is 0: the pipeline should have no EmbeddingTrainer")
  tf_transform_output = tft.TFTransformOutput(transform_graph_uri)
  words = id_words(tf_transform_output.vocabulary_by_name(features.VOCABULARY_NAME), hp)
  workers = word2vec_workers(hp)
  with tempfile.TemporaryDirectory() as local:
    corpus_file = os.path.join(local, "corpus.txt")
    started = time.monotonic()
    sequences = itertools.chain(
      transformed_id_sequences(transformed_patterns, tf_transform_output)
      if transformed_patterns
      else (),
      token_id_sequences(file_patterns, tf_transform_output) if file_patterns else (),
    )
    corpus = write_corpus(sequences, words, corpus_file)
    read_seconds = time.monotonic() - started
    logging.info(
      "word2vec corpus: %d reviews, %d tokens (%.1f s)", corpus.reviews, corpus.tokens, read_seconds
    )
    started = time.monotonic()
    word_vectors = train_word2vec(corpus, hp, workers)
    train_seconds = time.monotonic() - started
  # Every word of the corpus is a word of ``words`` (padding removed), so each vector
  # fills exactly one row.
  matrix = embedding_matrix(word_vectors, words, hp)
  tf.io.gfile.makedirs(model_dir)
  with tf.io.gfile.GFile(os.path.join(model_dir, EMBEDDINGS_FILE), "wb") as f:
    np.save(f, matrix)
  with tempfile.TemporaryDirectory() as local:
    # gensim writes local files; tf.io.gfile copies to any pipeline root (gs://, ...).
    word_vectors.save_word2vec_format(os.path.join(local, WORD_VECTORS_FILE), binary=True)
    tf.io.gfile.copy(
      os.path.join(local, WORD_VECTORS_FILE),
      os.path.join(model_dir, WORD_VECTORS_FILE),
      overwrite=True,
    )
  summary = {
    "reviews": corpus.reviews,
    "tokens": corpus.tokens,
    "workers": workers,
    "read_seconds": round(read_seconds, 3),
    "word2vec_seconds": round(train_seconds, 3),
    "word2vec_tokens_per_second": round(corpus.tokens * hp.word2vec_epochs / train_seconds, 1)
    if train_seconds > 0
    else None,
    "rows": int(matrix.shape[0]),
    "rows_from_word2vec": len(word_vectors.key_to_index),
    "hparams": hp.pretraining_custom_config()["hparams"],
  }
  throughput.write_summary(run_dir, summary, SUMMARY_FILE)
  logging.info("word2vec: %s", summary)
  return summary
