"""Warm start from the serving model (models.warm_start, models.trainer.build_models)."""

import dataclasses
import json

import numpy as np
import pytest
import tensorflow as tf
import tiny_model

from core import features
from models import model as model_lib
from models import pretraining, trainer, warm_start
from models.hparams import HParams

# A second batch of reviews: some of tiny_model's words at other frequencies (so other
# ids), some words the first vocabulary lacks.
NEW_REVIEWS = [
  (b"boring boring boring dull dull", 0),
  (b"splendid splendid splendid film", 1),
  (b"great acting, splendid cast", 1),
  (b"awful and dull, tedious", 0),
  (b"tedious tedious plot", 0),
]


def test_carry_over_rows_follows_each_word_to_its_new_id():
  old_words = ["", "great", "bad", "film", "<oov:0>", "<unused:5>"]
  new_words = ["", "film", "splendid", "great", "<oov:0>", "<unused:5>"]
  old = np.arange(12, dtype=np.float32).reshape(6, 2)
  new = -np.ones((6, 2), dtype=np.float32)

  table, carried = warm_start.carry_over_rows(old, old_words, new, new_words)

  np.testing.assert_array_equal(table[1], old[3])  # film: old id 3 -> new id 1
  np.testing.assert_array_equal(table[3], old[1])  # great: old id 1 -> new id 3
  np.testing.assert_array_equal(table[4], old[4])  # the OOV bucket keeps its row
  np.testing.assert_array_equal(table[2], new[2])  # splendid is new: its initial row
  np.testing.assert_array_equal(table[0], new[0])  # padding is not carried
  np.testing.assert_array_equal(table[5], new[5])  # nor a never-produced id
  assert carried == 3
  assert table.dtype == np.float32


def test_carry_over_rows_rejects_other_widths_and_lengths():
  with pytest.raises(ValueError, match="widths differ"):
    warm_start.carry_over_rows(np.zeros((2, 3)), ["", "a"], np.zeros((2, 4)), ["", "a"])
  with pytest.raises(ValueError, match="3 old words for a table of 2 rows"):
    warm_start.carry_over_rows(np.zeros((2, 3)), ["", "a", "b"], np.zeros((2, 3)), ["", "a"])


def test_continuation_hparams_restart_at_the_peak_rate_and_anneal_it():
  hp = HParams(
    epochs=3,
    learning_rate=2e-3,
    lr_decay=0.5,
    warm_start_epochs=2,
    warm_start_learning_rate=None,
    warmup_epochs=0.5,
  )
  resumed = warm_start.continuation_hparams(hp)
  assert (resumed.epochs, resumed.learning_rate, resumed.lr_schedule) == (2, 2e-3, "cosine")
  assert resumed.model_warmup_epochs == 0.0
  assert dataclasses.replace(resumed, epochs=3, lr_schedule="exponential", warmup_epochs=0.5) == hp
  # The cosine decays the warm run's rate from 2e-3 towards 0 over its two epochs.
  schedule = model_lib.learning_rate(resumed, steps_per_epoch=10)
  assert float(schedule(0)) == pytest.approx(2e-3)
  assert float(schedule(10)) == pytest.approx(1e-3)
  assert float(schedule(19)) < 1e-4


def test_continuation_hparams_start_at_twice_the_peak_rate_by_default():
  resumed = warm_start.continuation_hparams(HParams())
  assert (resumed.learning_rate, resumed.lr_schedule) == (2 * HParams().learning_rate, "cosine")


def test_continuation_hparams_take_the_warm_start_rate_and_schedule_when_set():
  hp = HParams(warm_start_learning_rate=5e-4, warm_start_lr_schedule="exponential")
  resumed = warm_start.continuation_hparams(hp)
  assert (resumed.epochs, resumed.learning_rate, resumed.lr_schedule) == (1, 5e-4, "exponential")
  schedule = model_lib.learning_rate(resumed, steps_per_epoch=10)
  assert float(schedule(9)) == pytest.approx(5e-4)


def test_source_reads_the_embedding_trainers_record_or_takes_a_saved_model(tmp_path, tiny_export):
  embeddings_only = tmp_path / "embeddings"
  embeddings_only.mkdir()
  assert warm_start.source(None) is None
  assert warm_start.source(str(embeddings_only)) is None
  warm_start.write_source(str(tmp_path / "with_source"), tiny_export.export_dir, 7)
  assert warm_start.source(str(tmp_path / "with_source")) == tiny_export.export_dir
  record = json.loads((tmp_path / "with_source" / warm_start.SOURCE_FILE).read_text())
  assert record["model_id"] == 7
  assert warm_start.source(tiny_export.export_dir) == tiny_export.export_dir


@pytest.fixture(scope="module")
def new_vocabulary(tmp_path_factory):
  """The vocabulary Transform analyses on NEW_REVIEWS + tiny_model's reviews."""
  root = tmp_path_factory.mktemp("new_transform")
  output = tiny_model.analyze_reviews(
    str(root / "transform"), tiny_model.HP, NEW_REVIEWS + tiny_model.REVIEWS
  )
  return output.vocabulary_by_name(features.VOCABULARY_NAME)


def test_warm_start_restores_the_weights_and_carries_rows_by_token(tiny_export, new_vocabulary):
  hp = tiny_model.HP
  old_model = tiny_export.model
  old_words = pretraining.id_words(
    tiny_export.tf_transform_output.vocabulary_by_name(features.VOCABULARY_NAME), hp
  )
  new_words = pretraining.id_words(new_vocabulary, hp)
  assert old_words != new_words  # the ids moved
  model, explain_model = model_lib.build(dataclasses.replace(hp, seed=hp.seed + 1))
  initial = model_lib.token_embedding_layer(explain_model).get_weights()[0]

  summary = warm_start.warm_start(explain_model, hp, tiny_export.export_dir, new_vocabulary)

  old_table = model_lib.token_embedding_layer(old_model).get_weights()[0]
  table = model_lib.token_embedding_layer(explain_model).get_weights()[0]
  old_ids = {w: i for i, w in enumerate(old_words)}
  carried = 0
  for new_id, word in enumerate(new_words):
    if word and not word.startswith("<unused:") and word in old_ids:
      np.testing.assert_array_equal(table[new_id], old_table[old_ids[word]], err_msg=word)
      carried += 1
    else:
      np.testing.assert_array_equal(table[new_id], initial[new_id], err_msg=word)
  assert summary["tokens_carried"] == carried > 0
  new = {w for w in new_words if w and w[0] != "<"} - set(old_words)
  assert {"splendid", "tedious"} <= new  # in the new vocabulary, not the old one
  assert summary["tokens_new"] == len(new)
  # Every other weight is the serving model's (the training models share the explanation
  # models' layers; one builder, so the same weights in the same order).
  embedding = model_lib.token_embedding_layer(explain_model).embeddings
  assert len(model.weights) == len(old_model.weights)
  for weight, old in zip(model.weights, old_model.weights):
    if weight is not embedding:
      np.testing.assert_array_equal(weight.numpy(), old.numpy(), err_msg=weight.name)


def test_warm_start_refuses_a_model_of_another_architecture(tiny_export, new_vocabulary):
  hp = dataclasses.replace(tiny_model.HP, lstm_units=6)
  _, explain_model = model_lib.build(hp)
  with pytest.raises(warm_start.IncompatibleModelError, match="do not fit"):
    warm_start.warm_start(explain_model, hp, tiny_export.export_dir, new_vocabulary)


def test_build_models_warm_starts_new_tokens_from_word2vec(tiny_export, tmp_path):
  hp = tiny_model.HP
  root = tmp_path / "new"
  new_output = tiny_model.analyze_reviews(str(root / "transform"), hp, NEW_REVIEWS)
  new_words = pretraining.id_words(new_output.vocabulary_by_name(features.VOCABULARY_NAME), hp)
  base = root / "base"  # as the EmbeddingTrainer writes it
  base.mkdir()
  word2vec = np.full((hp.embedding_input_dim, hp.embedding_dim), 0.25, np.float32)
  np.save(base / pretraining.EMBEDDINGS_FILE, word2vec)
  warm_start.write_source(str(base), tiny_export.export_dir)
  strategy = tf.distribute.get_strategy()

  built = trainer.build_models(hp, strategy, 5, str(base), new_output)

  assert built.hparams == warm_start.continuation_hparams(hp)
  assert built.summary["warm_start"]["model"] == tiny_export.export_dir
  assert built.summary["warm_start"]["epochs"] == hp.warm_start_epochs
  assert built.summary["pretrained_embeddings"]["path"] == str(base)
  table = model_lib.token_embedding_layer(built.model).get_weights()[0]
  np.testing.assert_array_equal(table[new_words.index("splendid")], word2vec[0])
  assert not np.allclose(table[new_words.index("boring")], 0.25)  # carried over


def test_build_models_trains_from_scratch_when_the_model_does_not_fit(tiny_export, tmp_path):
  hp = dataclasses.replace(tiny_model.HP, dense_units=3)
  strategy = tf.distribute.get_strategy()

  built = trainer.build_models(
    hp, strategy, 5, tiny_export.export_dir, tiny_export.tf_transform_output
  )

  assert built.hparams == hp
  assert built.summary["warm_start"]["model"] == tiny_export.export_dir
  assert "do not fit" in built.summary["warm_start"]["skipped"]
