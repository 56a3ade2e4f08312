"""Warm start: a new Trainer run starts from the serving (latest blessed) model's weights.

With spans, each run's Transform analyses the vocabulary on the window of spans it trains
on, so token ids move between runs: a word that was id 17 may now be id 23, a new word
takes the id of one that fell out of the top ``vocab_size``. Restoring the old embedding
table as it is would give every moved word another word's vector. So the Trainer
(``models.trainer.build_models``):

1. builds the model with the new run's hyperparameters and, as without warm start, sets
   the token embedding from the word2vec vectors of the new vocabulary (the
   ``EmbeddingTrainer``'s ``embeddings.npy``, when there is one);
2. restores every weight of the serving model's SavedModel into it (TensorFlow's
   object-based checkpoint: ``tf.train.Checkpoint(explain_model=...)`` reads
   ``variables/variables`` by the object graph, so the architecture must match; a model
   with other layers or shapes is refused with ``IncompatibleModelError``, and the run
   trains from scratch);
3. rebuilds the token embedding by token (``carry_over_rows``): a word both vocabularies
   have keeps its trained row, a new word its word2vec row, the OOV buckets their rows
   (the hash is the same);
4. trains ``warm_start_epochs`` epochs (``continuation_hparams``), the learning rate
   restarting at the full schedule's peak and annealed to 0 by a cosine over those epochs
   (a warm restart, Loshchilov & Hutter 2017, SGDR). The optimizer's state starts afresh
   (the export holds no optimizer). Its epoch goes over the whole window, or over the
   newest span and a share of the older spans' reviews (``HParams.warm_start_replay``,
   ``models.trainer.training_inputs``). Earlier versions trained at the constant rate the full
   schedule ends with (5e-4), a fine-tuning: on ``make bench-spans`` that chain's fifth
   model stayed 0.010 below a full retrain of the same window on the golden test split
   (docs/bench/spans.json of 2026-11-30), the small steps not moving the models of the
   first, small spans far enough towards what the growing window holds.

Where the serving model comes from: the Trainer has one ``base_model``. With the word2vec
pretraining it is the ``EmbeddingTrainer``'s Model, which then also names the serving
model it was given in ``warm_start.json`` (``write_source``); without pretraining the
serving Model itself is the ``base_model``.

Why our own code: TFX's Trainer hands ``base_model`` to ``run_fn`` and stops there, and
Keras's ``load_weights(by_name=True)`` matches HDF5 layers by name without any notion of a
vocabulary. TF1's ``tf.estimator.WarmStartSettings`` with ``VocabInfo`` did this remapping
for estimators, which TFX 1.16 and Keras 2 no longer use.
"""

import dataclasses
import json
import os
from collections.abc import Sequence

import numpy as np
import tensorflow as tf
import tf_keras as keras
from absl import logging

from core import features
from models import model as model_lib
from models import pretraining
from models.hparams import HParams

# Written by the EmbeddingTrainer into its Format-Serving when given a serving model.
SOURCE_FILE = "warm_start.json"
# The vocabulary asset Transform's TransformGraph puts into every exported SavedModel.
_VOCABULARY_ASSET = os.path.join("assets", features.VOCABULARY_NAME)


class IncompatibleModelError(ValueError):
  """The serving model's weights do not fit the model being built (other layers or
  shapes: it was trained with other architecture hyperparameters)."""


def write_source(model_dir: str, serving_model_dir: str, model_id: int | None = None) -> None:
  """Records in ``model_dir`` (an EmbeddingTrainer's Format-Serving) that the Trainer
  should warm-start from the SavedModel in ``serving_model_dir``."""
  tf.io.gfile.makedirs(model_dir)
  with tf.io.gfile.GFile(os.path.join(model_dir, SOURCE_FILE), "w") as f:
    json.dump({"serving_model_dir": serving_model_dir, "model_id": model_id}, f, indent=2)


def source(base_model: str | None) -> str | None:
  """The SavedModel directory the Trainer warm-starts from, given its ``base_model``.

  Returns:
    ``base_model``'s ``warm_start.json`` target (an EmbeddingTrainer's Model), or
    ``base_model`` itself when it is a SavedModel (a Trainer's Model given as the base
    model), or None (no base model, or word2vec vectors alone).
  """
  if not base_model:
    return None
  path = os.path.join(base_model, SOURCE_FILE)
  if tf.io.gfile.exists(path):
    with tf.io.gfile.GFile(path) as f:
      return json.load(f)["serving_model_dir"]
  if tf.io.gfile.exists(os.path.join(base_model, "saved_model.pb")):
    return base_model
  return None


def continuation_hparams(hp: HParams) -> HParams:
  """The hyperparameters a warm-started run trains with: ``hp.warm_start_epochs`` epochs,
  no learning-rate warmup, starting at ``hp.warm_start_learning_rate`` (None:
  ``hp.learning_rate``) under ``hp.warm_start_lr_schedule`` (by default a cosine decay to
  0 over those epochs: a warm restart, Loshchilov & Hutter 2017)."""
  rate = hp.warm_start_learning_rate
  return dataclasses.replace(
    hp,
    epochs=hp.warm_start_epochs,
    learning_rate=hp.learning_rate if rate is None else rate,
    lr_schedule=hp.warm_start_lr_schedule,
    warmup_epochs=0.0,
  )


def read_vocabulary(saved_model_dir: str) -> list[bytes]:
  """The vocabulary (one token per line, id order) of the TransformGraph exported with the
  SavedModel in ``saved_model_dir``.

  Raises:
    IncompatibleModelError: the SavedModel has no vocabulary asset (not this project's).
  """
  path = os.path.join(saved_model_dir, _VOCABULARY_ASSET)
  if not tf.io.gfile.exists(path):
    raise IncompatibleModelError(f"{saved_model_dir} has no {_VOCABULARY_ASSET}")
  with tf.io.gfile.GFile(path, "rb") as f:
    return f.read().splitlines()


def carry_over_rows(
  old_matrix: np.ndarray,
  old_words: Sequence[str],
  new_matrix: np.ndarray,
  new_words: Sequence[str],
) -> tuple[np.ndarray, int]:
  """The token embedding table of the new vocabulary, carrying the old rows over by token.

  Args:
    old_matrix: float32 [old_rows, dim], the serving model's table (row i: ``old_words[i]``).
    old_words: the word of each old id (``pretraining.id_words``: ``""`` padding,
      ``<oov:b>`` buckets, ``<unused:i>`` never produced).
    new_matrix: float32 [new_rows, dim], the new table as initialized (word2vec or random).
    new_words: the word of each new id, as ``old_words``.

  Returns:
    ``(table, carried)``: float32 [new_rows, dim], row i the old row of ``new_words[i]``
    when the old vocabulary had it (padding and ``<unused:i>`` excepted) and
    ``new_matrix[i]`` otherwise; ``carried`` the number of rows carried over.

  Raises:
    ValueError: the widths differ, or a words list is not as long as its table.
  """
  if old_matrix.shape[1] != new_matrix.shape[1]:
    raise ValueError(f"embedding widths differ: {old_matrix.shape[1]} and {new_matrix.shape[1]}")
  for name, words, matrix in (("old", old_words, old_matrix), ("new", new_words, new_matrix)):
    if len(words) != matrix.shape[0]:
      raise ValueError(f"{len(words)} {name} words for a table of {matrix.shape[0]} rows")
  old_index = {word: i for i, word in enumerate(old_words) if _carried(word)}
  table = np.array(new_matrix, dtype=np.float32, copy=True)
  carried = 0
  for new_id, word in enumerate(new_words):
    old_id = old_index.get(word) if _carried(word) else None
    if old_id is not None:
      table[new_id] = old_matrix[old_id]
      carried += 1
  return table, carried


def _carried(word: str) -> bool:
  """Whether a row of this word can carry over (not padding, not a never-produced id)."""
  return bool(word) and not word.startswith("<unused:")


def restore(explain_model: keras.Model, saved_model_dir: str) -> None:
  """Restores every weight of ``explain_model`` from the SavedModel in
  ``saved_model_dir`` (exported by ``models.signatures``: its checkpoint's root holds the
  explanation model as ``explain_model``). Call in the scope that built the model.

  Raises:
    IncompatibleModelError: a weight of ``explain_model`` is missing from the checkpoint
      or has another shape there.
  """
  checkpoint = tf.train.Checkpoint(explain_model=explain_model)
  path = os.path.join(saved_model_dir, "variables", "variables")
  try:
    status = checkpoint.read(path)
    status.assert_existing_objects_matched()
  except (AssertionError, ValueError, tf.errors.OpError) as e:
    raise IncompatibleModelError(
      f"the weights of {saved_model_dir} do not fit this model: {e}".splitlines()[0]
    ) from e
  status.expect_partial()


def warm_start(
  explain_model: keras.Model, hp: HParams, saved_model_dir: str, vocabulary: Sequence[bytes]
) -> dict:
  """Starts ``explain_model`` (built with ``hp``, its token embedding already initialized
  for ``vocabulary``) from the serving model in ``saved_model_dir``: ``restore``, then the
  token embedding by token (``carry_over_rows``).

  Args:
    explain_model: ``models.model.build``'s explanation model (its weights are the
      training model's and more).
    hp: the hyperparameters it was built with.
    saved_model_dir: the serving model's SavedModel directory.
    vocabulary: the new TransformGraph's vocabulary.

  Returns:
    ``{"model": saved_model_dir, "tokens_carried", "tokens_new", "vocabulary_size"}`` for
    ``training_summary.json``.

  Raises:
    IncompatibleModelError: the serving model's weights or vocabulary do not fit (the
      model's weights are then partly overwritten: rebuild it).
  """
  embedding = model_lib.token_embedding_layer(explain_model)
  initial = embedding.get_weights()[0]
  try:
    old_words = pretraining.id_words(read_vocabulary(saved_model_dir), hp)
  except ValueError as e:
    raise IncompatibleModelError(f"{saved_model_dir}: {e}") from e
  new_words = pretraining.id_words(vocabulary, hp)
  restore(explain_model, saved_model_dir)
  table, carried = carry_over_rows(embedding.get_weights()[0], old_words, initial, new_words)
  embedding.set_weights([table])
  in_vocabulary = [w for w in new_words if _carried(w) and not w.startswith("<oov:")]
  known = set(old_words)
  summary = {
    "model": saved_model_dir,
    "tokens_carried": carried,
    "tokens_new": sum(1 for w in in_vocabulary if w not in known),
    "vocabulary_size": len(in_vocabulary),
  }
  logging.info("Warm start from %s: %s", saved_model_dir, summary)
  return summary
