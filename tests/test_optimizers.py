"""models.optimizers.LazyAdam against Keras's Adam and Adam's formulas in NumPy."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
import tiny_model

from models import model as model_lib
from models.optimizers import LazyAdam

ROWS, WIDTH = 6, 3


def _table(seed: int = 0) -> tf.Variable:
  return tf.Variable(np.random.default_rng(seed).normal(size=(ROWS, WIDTH)).astype("float32"))


def _embedding_steps(optimizer, ids_per_step, seed: int = 0) -> np.ndarray:
  """The table after one step per entry of ``ids_per_step`` of loss sum(gather(table) * w)."""
  table = _table(seed)
  weights = np.random.default_rng(seed + 1).normal(size=(len(ids_per_step), 8, WIDTH))
  for step, ids in enumerate(ids_per_step):
    with tf.GradientTape() as tape:
      rows = tf.gather(table, tf.constant(ids))
      loss = tf.reduce_sum(rows * weights[step, : len(ids)].astype("float32"))
    (gradient,) = tape.gradient(loss, [table])
    assert isinstance(gradient, tf.IndexedSlices)
    optimizer.apply_gradients([(gradient, table)])
  return table.numpy()


def _numpy_lazy_adam(ids_per_step, seed=0, lr=0.01, beta_1=0.9, beta_2=0.999, eps=1e-7):
  table = _table(seed).numpy().astype("float64")
  weights = np.random.default_rng(seed + 1).normal(size=(len(ids_per_step), 8, WIDTH))
  m, v = np.zeros_like(table), np.zeros_like(table)
  for step, ids in enumerate(ids_per_step, start=1):
    gradient = np.zeros_like(table)
    np.add.at(gradient, ids, weights[step - 1, : len(ids)])
    touched = sorted(set(ids))
    m[touched] = beta_1 * m[touched] + (1 - beta_1) * gradient[touched]
    v[touched] = beta_2 * v[touched] + (1 - beta_2) * gradient[touched] ** 2
    alpha = lr * np.sqrt(1 - beta_2**step) / (1 - beta_1**step)
    table[touched] -= alpha * m[touched] / (np.sqrt(v[touched]) + eps)
  return table


def test_rows_touched_at_every_step_get_exactly_adams_update():
  every_row = [[0, 1, 2, 3, 4, 5]] * 4
  lazy = _embedding_steps(LazyAdam(0.01), every_row)
  adam = _embedding_steps(keras.optimizers.Adam(0.01), every_row)
  np.testing.assert_allclose(lazy, adam, rtol=1e-5, atol=1e-6)


def test_untouched_rows_keep_their_values_and_moments_where_adam_moves_them():
  ids = [[0, 1], [2]]  # rows 0 and 1 are not in the second batch; 3-5 never
  lazy = _embedding_steps(LazyAdam(0.01), ids)
  adam = _embedding_steps(keras.optimizers.Adam(0.01), ids)
  start = _table().numpy()
  np.testing.assert_array_equal(lazy[3:], start[3:])
  np.testing.assert_allclose(lazy, _numpy_lazy_adam(ids), rtol=1e-5, atol=1e-6)
  # Adam's decaying momentum keeps moving rows 0 and 1 at the second step; LazyAdam's not.
  assert not np.allclose(adam[:2], lazy[:2])
  np.testing.assert_allclose(lazy[2], adam[2], rtol=1e-5, atol=1e-6)


def test_duplicate_ids_in_a_batch_sum_their_gradients_as_adam_does():
  ids = [[0, 0, 3, 3, 3], [5, 0, 0]]
  lazy = _embedding_steps(LazyAdam(0.01), ids)
  np.testing.assert_allclose(lazy, _numpy_lazy_adam(ids), rtol=1e-5, atol=1e-6)


def test_dense_gradients_follow_adam_exactly():
  lazy_var, adam_var = tf.Variable([1.0, -2.0, 3.0]), tf.Variable([1.0, -2.0, 3.0])
  lazy, adam = LazyAdam(0.1), keras.optimizers.Adam(0.1)
  for gradient in ([0.5, -1.0, 2.0], [0.1, 0.2, -0.3]):
    lazy.apply_gradients([(tf.constant(gradient), lazy_var)])
    adam.apply_gradients([(tf.constant(gradient), adam_var)])
  np.testing.assert_allclose(lazy_var.numpy(), adam_var.numpy(), rtol=1e-6)


def test_amsgrad_is_refused_and_config_round_trips():
  with pytest.raises(ValueError, match="amsgrad"):
    LazyAdam(0.01, amsgrad=True)
  restored = keras.optimizers.deserialize(keras.optimizers.serialize(LazyAdam(0.02)))
  assert isinstance(restored, LazyAdam)
  assert restored.get_config()["learning_rate"] == pytest.approx(0.02)


def test_the_model_compiles_with_lazy_adam_and_learns():
  hp = dataclasses.replace(tiny_model.HP, lazy_adam=True, learning_rate=0.01)
  model, _ = model_lib.build(hp)  # no steps_per_epoch: a constant rate
  assert isinstance(model.optimizer, LazyAdam)
  assert not isinstance(
    model_lib.build(dataclasses.replace(hp, lazy_adam=False))[0].optimizer, LazyAdam
  )
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 2, size=(64, 1)).astype("float32")
  # Token 2 in positive reviews and 3 in negative ones, among random fillers.
  tokens = rng.integers(4, hp.embedding_input_dim, size=(64, hp.max_length))
  tokens[:, 0] = np.where(labels[:, 0] == 1, 2, 3)
  model.fit(tokens, labels, epochs=20, batch_size=16, verbose=0)
  accuracy = model.evaluate(tokens, labels, verbose=0, return_dict=True)["accuracy"]
  assert accuracy >= 0.9
