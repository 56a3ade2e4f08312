"""Unit tests of models.layers: masked softmax and the two attention layers."""

import numpy as np
import pytest
import tensorflow as tf

from models import layers


def _np_softmax(x, axis=-1):
  e = np.exp(x - np.max(x, axis=axis, keepdims=True))
  return e / np.sum(e, axis=axis, keepdims=True)


# --- masked_softmax -----------------------------------------------------------------

SCORES = np.array([[1.0, 2.0, 3.0, 50.0],
                   [0.5, -1.0, 4.0, 2.0],
                   [3.0, 1.0, -2.0, 0.0]], np.float32)
MASK = np.array([[True, True, True, False],
                 [True, False, True, True],
                 [False, False, False, False]])


def test_masked_softmax_matches_softmax_over_unmasked_and_zero_on_masked():
  out = layers.masked_softmax(tf.constant(SCORES), tf.constant(MASK)).numpy()
  assert out.shape == SCORES.shape
  assert not np.isnan(out).any()
  for row in range(2):
    m = MASK[row]
    np.testing.assert_allclose(out[row][m], _np_softmax(SCORES[row][m]), rtol=1e-6)
    np.testing.assert_allclose(out[row][m].sum(), 1.0, rtol=1e-6)
    # Exactly zero, even when the masked score (50.0) is the largest in the row.
    assert np.all(out[row][~m] == 0.0)


def test_masked_softmax_all_masked_row_is_zeros_not_nan():
  out = layers.masked_softmax(tf.constant(SCORES), tf.constant(MASK)).numpy()
  assert np.all(out[2] == 0.0)
  big = tf.constant([[1e30, -1e30, 3.0]], tf.float32)
  out_big = layers.masked_softmax(big, tf.zeros([1, 3], tf.bool)).numpy()
  assert np.all(out_big == 0.0)


def test_masked_softmax_without_mask_is_plain_softmax():
  out = layers.masked_softmax(tf.constant(SCORES)).numpy()
  np.testing.assert_allclose(out, _np_softmax(SCORES), rtol=1e-5, atol=1e-7)


def test_masked_softmax_broadcasts_mask_over_query_axis():
  scores = np.arange(2 * 3 * 3, dtype=np.float32).reshape(2, 3, 3) / 7.0
  key_mask = np.array([[True, True, False], [True, False, False]])
  out = layers.masked_softmax(tf.constant(scores),
                              tf.constant(key_mask)[:, tf.newaxis, :]).numpy()
  assert out.shape == (2, 3, 3)
  np.testing.assert_allclose(out.sum(-1), np.ones((2, 3)), rtol=1e-6)
  assert np.all(out[0, :, 2] == 0.0)
  assert np.all(out[1, :, 1:] == 0.0)
  np.testing.assert_allclose(out[1, :, 0], 1.0)


def test_scaled_dot_product_worked_example():
  q = np.array([[1, 0, 1], [0, 2, 1]], np.float32)
  k = np.array([[1, 0, 1], [0, 1, 2]], np.float32)
  v = np.array([[1, 2], [3, 4]], np.float32)
  scores = q @ k.T / np.sqrt(3.0)
  # Hand-computed Q K^T = [[2, 2], [1, 4]].
  np.testing.assert_allclose(q @ k.T, [[2, 2], [1, 4]])
  weights = layers.masked_softmax(tf.constant(scores), tf.ones([2, 2], tf.bool)).numpy()
  expected_weights = _np_softmax(scores)
  np.testing.assert_allclose(weights, expected_weights, rtol=1e-6)
  # Row 0 has equal scores -> uniform weights -> mean of V's rows.
  np.testing.assert_allclose(weights[0], [0.5, 0.5], rtol=1e-6)
  out = weights @ v
  np.testing.assert_allclose(out, expected_weights @ v, rtol=1e-6)
  np.testing.assert_allclose(out[0], [2.0, 3.0], rtol=1e-6)
  w1 = 1.0 / (1.0 + np.exp(3.0 / np.sqrt(3.0)))  # weight of key 0 for query 1
  np.testing.assert_allclose(out[1], [w1 * 1 + (1 - w1) * 3, w1 * 2 + (1 - w1) * 4],
                             rtol=1e-5)


# --- AttentionPooling ---------------------------------------------------------------

INPUTS = np.array([
    [[0.1, 0.2, -0.3], [0.5, -0.4, 0.0], [1.0, 0.3, 0.2], [9.0, 9.0, 9.0]],
    [[-0.2, 0.7, 0.1], [0.0, 0.0, 0.0], [3.0, -3.0, 3.0], [5.0, 5.0, 5.0]],
], np.float32)  # [2, 4, 3]; positions where PAD_MASK is False hold large junk values
PAD_MASK = np.array([[True, True, True, False], [True, True, False, False]])


@pytest.fixture(scope="module")
def pooling():
  layer = layers.AttentionPooling(units=5)
  layer(tf.constant(INPUTS))  # builds the weights
  rng = np.random.default_rng(0)
  # Non-zero bias so the b term is actually exercised.
  layer.b.assign(rng.normal(size=layer.b.shape).astype(np.float32))
  return layer


def test_attention_pooling_matches_numpy_reference(pooling):
  context, weights = pooling(tf.constant(INPUTS), mask=tf.constant(PAD_MASK))
  w, b, v = pooling.w.numpy(), pooling.b.numpy(), pooling.v.numpy()
  scores = np.tanh(INPUTS @ w + b) @ v  # [2, 4]
  expected = np.zeros_like(scores)
  for row in range(2):
    m = PAD_MASK[row]
    expected[row, m] = _np_softmax(scores[row, m])
  weights = weights.numpy()
  assert weights.shape == (2, 4)
  assert context.shape == (2, 3)
  np.testing.assert_allclose(weights, expected, rtol=1e-5, atol=1e-7)
  assert np.all(weights[~PAD_MASK] == 0.0)
  np.testing.assert_allclose(weights.sum(-1), [1.0, 1.0], rtol=1e-6)
  expected_context = np.einsum("bt,btf->bf", expected, INPUTS)
  np.testing.assert_allclose(context.numpy(), expected_context, rtol=1e-5, atol=1e-6)


def test_attention_pooling_padding_values_do_not_change_output(pooling):
  changed = INPUTS.copy()
  changed[~PAD_MASK] = -123.0
  c1, w1 = pooling(tf.constant(INPUTS), mask=tf.constant(PAD_MASK))
  c2, w2 = pooling(tf.constant(changed), mask=tf.constant(PAD_MASK))
  np.testing.assert_allclose(c1.numpy(), c2.numpy(), rtol=1e-6)
  np.testing.assert_allclose(w1.numpy(), w2.numpy(), rtol=1e-6)


def test_attention_pooling_does_not_propagate_mask(pooling):
  assert pooling.compute_mask(tf.constant(INPUTS), tf.constant(PAD_MASK)) is None


def test_attention_pooling_config_round_trip():
  layer = layers.AttentionPooling(units=7, name="pool")
  config = layer.get_config()
  assert config["units"] == 7
  assert config["name"] == "pool"
  clone = layers.AttentionPooling.from_config(config)
  assert clone.get_config() == config


# --- SelfAttention ------------------------------------------------------------------


@pytest.fixture(scope="module")
def self_attention():
  layer = layers.SelfAttention(units=4)
  layer(tf.constant(INPUTS))
  return layer


def _self_attention_reference(layer, x, mask, residual=True):
  wq, wk, wv = (layer.query.kernel.numpy(), layer.key.kernel.numpy(),
                layer.value.kernel.numpy())
  q, k, v = x @ wq, x @ wk, x @ wv
  scores = q @ np.swapaxes(k, 1, 2) / np.sqrt(wq.shape[1])  # d_k = units
  weights = np.zeros_like(scores)
  for b in range(x.shape[0]):
    keys = mask[b]
    for t in range(x.shape[1]):
      weights[b, t, keys] = _np_softmax(scores[b, t, keys])
  out = weights @ v
  if residual:
    out = out + x
  out = out * mask[..., None]
  return out, weights


def test_self_attention_matches_numpy_reference(self_attention):
  out, weights = self_attention(tf.constant(INPUTS), mask=tf.constant(PAD_MASK),
                                return_attention_scores=True)
  expected_out, expected_weights = _self_attention_reference(self_attention, INPUTS, PAD_MASK)
  assert out.shape == INPUTS.shape
  assert weights.shape == (2, 4, 4)
  np.testing.assert_allclose(weights.numpy(), expected_weights, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(out.numpy(), expected_out, rtol=1e-5, atol=1e-6)


def test_self_attention_zero_weight_on_padded_keys_and_zero_padded_outputs(self_attention):
  out, weights = self_attention(tf.constant(INPUTS), mask=tf.constant(PAD_MASK),
                                return_attention_scores=True)
  weights, out = weights.numpy(), out.numpy()
  for b in range(2):
    assert np.all(weights[b][:, ~PAD_MASK[b]] == 0.0)
    np.testing.assert_allclose(weights[b].sum(-1), np.ones(4), rtol=1e-6)
    assert np.all(out[b][~PAD_MASK[b]] == 0.0)
    assert np.all(np.abs(out[b][PAD_MASK[b]]).sum(-1) > 0)


def test_self_attention_without_residual_and_without_mask():
  layer = layers.SelfAttention(units=2, residual=False)
  x = tf.constant(INPUTS[:, :3])  # [2, 3, 3], no padding
  out = layer(x).numpy()
  expected, _ = _self_attention_reference(layer, INPUTS[:, :3], np.ones((2, 3), bool),
                                          residual=False)
  np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_self_attention_propagates_mask(self_attention):
  mask = tf.constant(PAD_MASK)
  np.testing.assert_array_equal(
      self_attention.compute_mask(tf.constant(INPUTS), mask).numpy(), PAD_MASK)


def test_self_attention_config_round_trip():
  layer = layers.SelfAttention(units=6, residual=False, name="sa")
  config = layer.get_config()
  assert config["units"] == 6 and config["residual"] is False
  clone = layers.SelfAttention.from_config(config)
  assert clone.get_config() == config


# --- MaskedGlobalMaxPooling1D -------------------------------------------------------


def test_masked_global_max_pooling_ignores_padding():
  layer = layers.MaskedGlobalMaxPooling1D()
  x = INPUTS.copy()
  x[1, 1] = -1.0  # a real step whose values are all below the others' in row 1
  mask = np.array([[True, True, True, False], [True, True, False, False]])
  out = layer(tf.constant(x), mask=tf.constant(mask)).numpy()
  # The padded steps hold 9.0 / 3.0 / 5.0, larger than any real value: they never win.
  np.testing.assert_allclose(out[0], INPUTS[0, :3].max(axis=0))
  np.testing.assert_allclose(out[1], x[1, :2].max(axis=0))
  np.testing.assert_allclose(out[1], [-0.2, 0.7, 0.1])


def test_masked_global_max_pooling_all_masked_row_is_zero_and_no_mask_is_plain_max():
  layer = layers.MaskedGlobalMaxPooling1D()
  mask = np.array([[True, False, False, False], [False, False, False, False]])
  out = layer(tf.constant(-np.abs(INPUTS) - 1.0), mask=tf.constant(mask)).numpy()
  assert np.all(out[1] == 0.0)
  np.testing.assert_allclose(out[0], -np.abs(INPUTS[0, 0]) - 1.0)
  np.testing.assert_allclose(layer(tf.constant(INPUTS)).numpy(), INPUTS.max(axis=1))
  assert layer.compute_mask(tf.constant(INPUTS), tf.constant(mask)) is None
