"""Unit tests of models.layers against NumPy references on small fixed inputs: masked
softmax, dot / scaled-dot / additive attention (the worked example Q, K, V), attention
pooling, self-attention, the transformer encoder block, masked max pooling."""

import numpy as np
import pytest
import tensorflow as tf

from models import layers
from models.hparams import ATTENTIONS


def _np_softmax(x, axis=-1):
  e = np.exp(x - np.max(x, axis=axis, keepdims=True))
  return e / np.sum(e, axis=axis, keepdims=True)


INPUTS = np.array(
  [
    [[0.1, 0.2, -0.3], [0.5, -0.4, 0.0], [1.0, 0.3, 0.2], [9.0, 9.0, 9.0]],
    [[-0.2, 0.7, 0.1], [0.0, 0.0, 0.0], [3.0, -3.0, 3.0], [5.0, 5.0, 5.0]],
  ],
  np.float32,
)  # [2, 4, 3]; positions where PAD_MASK is False hold large junk values
PAD_MASK = np.array([[True, True, True, False], [True, True, False, False]])


# --- masked_softmax -----------------------------------------------------------------

SCORES = np.array([[1.0, 2.0, 3.0, 50.0], [0.5, -1.0, 4.0, 2.0], [3.0, 1.0, -2.0, 0.0]], np.float32)
MASK = np.array(
  [[True, True, True, False], [True, False, True, True], [False, False, False, False]]
)


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
  out = layers.masked_softmax(tf.constant(scores), tf.constant(key_mask)[:, tf.newaxis, :]).numpy()
  assert out.shape == (2, 3, 3)
  np.testing.assert_allclose(out.sum(-1), np.ones((2, 3)), rtol=1e-6)
  assert np.all(out[0, :, 2] == 0.0)
  assert np.all(out[1, :, 1:] == 0.0)
  np.testing.assert_allclose(out[1, :, 0], 1.0)


# --- DotProductAttention and AdditiveAttention on the worked example -----------------

WQ = np.array([[[1, 0, 1], [0, 2, 1]]], np.float32)  # [1, 2, 3]
WK = np.array([[[1, 0, 1], [0, 1, 2]]], np.float32)  # [1, 2, 3]
WV = np.array([[[1, 2], [3, 4]]], np.float32)  # [1, 2, 2]


@pytest.mark.parametrize(
  "scale, expected_row1",
  [
    # softmax([1, 4] / sqrt(3)) = [0.150325, 0.849675] -> 0.150325 * [1, 2] + 0.849675 * [3, 4]
    (True, [2.699349, 3.699349]),
    # softmax([1, 4]) = [0.047426, 0.952574]
    (False, [2.905148, 3.905148]),
  ],
)
def test_dot_product_attention_worked_example(scale, expected_row1):
  layer = layers.DotProductAttention(scale=scale)
  out, weights = layer(
    [tf.constant(WQ), tf.constant(WV), tf.constant(WK)], return_attention_scores=True
  )
  scores = WQ[0] @ WK[0].T / (np.sqrt(3.0) if scale else 1.0)
  np.testing.assert_allclose(weights.numpy()[0], _np_softmax(scores), rtol=1e-6)
  # Q K^T = [[2, 2], [1, 4]]: query 0 scores both keys equally -> the mean of V's rows.
  np.testing.assert_allclose(out.numpy()[0, 0], [2.0, 3.0], rtol=1e-6)
  np.testing.assert_allclose(out.numpy()[0, 1], expected_row1, rtol=1e-5)


def test_dot_product_attention_masked_key_gets_zero_weight_and_masked_query_zero_output():
  layer = layers.DotProductAttention(scale=True)
  out, weights = layer(
    [tf.constant(WQ), tf.constant(WV), tf.constant(WK)],
    mask=[tf.constant([[True, False]]), tf.constant([[True, False]])],
    return_attention_scores=True,
  )
  # Only key 0 is real: all weight on it, exactly, for both queries.
  np.testing.assert_array_equal(weights.numpy()[0], [[1.0, 0.0], [1.0, 0.0]])
  np.testing.assert_allclose(out.numpy()[0, 0], WV[0, 0])
  assert np.all(out.numpy()[0, 1] == 0.0)  # query 1 is padding
  np.testing.assert_array_equal(
    layer.compute_mask(None, [tf.constant([[True, False]]), None]).numpy(), [[True, False]]
  )


def test_dot_product_attention_key_defaults_to_value_and_rejects_bad_inputs():
  layer = layers.DotProductAttention(scale=False)
  x = tf.constant(WK)
  out = layer([x, x]).numpy()[0]
  expected = _np_softmax(WK[0] @ WK[0].T) @ WK[0]
  np.testing.assert_allclose(out, expected, rtol=1e-6)
  with pytest.raises(ValueError, match=r"\[query, value\]"):
    layer(x)
  assert layers.DotProductAttention.from_config(layer.get_config()).scale is False


def _additive_reference(layer, query, value, key, key_mask):
  q = query @ layer.w_query.numpy()
  k = key @ layer.w_key.numpy()
  hidden = np.tanh(q[:, :, None, :] + k[:, None, :, :] + layer.bias.numpy())
  scores = hidden @ layer.v.numpy()  # [B, Tq, Tv]
  weights = np.zeros_like(scores)
  for b in range(scores.shape[0]):
    for t in range(scores.shape[1]):
      weights[b, t, key_mask[b]] = _np_softmax(scores[b, t, key_mask[b]])
  return weights @ value, weights


def test_additive_attention_matches_numpy_reference_on_worked_example():
  layer = layers.AdditiveAttention(units=4)
  layer.build([WQ.shape, WV.shape, WK.shape])
  layer.bias.assign(np.array([0.1, -0.2, 0.3, 0.0], np.float32))
  out, weights = layer(
    [tf.constant(WQ), tf.constant(WV), tf.constant(WK)], return_attention_scores=True
  )
  expected_out, expected_weights = _additive_reference(layer, WQ, WV, WK, np.ones((1, 2), bool))
  np.testing.assert_allclose(weights.numpy(), expected_weights, rtol=1e-5)
  np.testing.assert_allclose(out.numpy(), expected_out, rtol=1e-5)
  np.testing.assert_allclose(weights.numpy().sum(-1), np.ones((1, 2)), rtol=1e-6)


def test_additive_attention_with_padding():
  query = INPUTS[:, :2]  # [2, 2, 3]
  layer = layers.AdditiveAttention(units=5)
  out, weights = layer(
    [tf.constant(query), tf.constant(INPUTS)],
    mask=[None, tf.constant(PAD_MASK)],
    return_attention_scores=True,
  )
  expected_out, expected_weights = _additive_reference(layer, query, INPUTS, INPUTS, PAD_MASK)
  np.testing.assert_allclose(weights.numpy(), expected_weights, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(out.numpy(), expected_out, rtol=1e-5, atol=1e-6)
  for b in range(2):
    assert np.all(weights.numpy()[b][:, ~PAD_MASK[b]] == 0.0)
  config = layer.get_config()
  assert layers.AdditiveAttention.from_config(config).get_config() == config


# --- AttentionPooling ---------------------------------------------------------------


def _pooling_scores(layer, x):
  """NumPy e_t of AttentionPooling, [batch, time]."""
  query = layer.query.numpy()
  if layer.score == "additive":
    attention = layer.attention
    hidden = np.tanh(
      query @ attention.w_query.numpy() + x @ attention.w_key.numpy() + attention.bias.numpy()
    )
    return hidden @ attention.v.numpy()
  scores = (x @ layer.key_projection.kernel.numpy()) @ query
  return scores / np.sqrt(layer.units) if layer.score == "scaled_dot" else scores


@pytest.fixture(scope="module", params=layers.ATTENTION_SCORES)
def pooling(request):
  layer = layers.AttentionPooling(units=5, score=request.param)
  layer(tf.constant(INPUTS))  # builds the weights
  if request.param == "additive":
    # Non-zero bias so the b term is actually exercised.
    rng = np.random.default_rng(0)
    layer.attention.bias.assign(rng.normal(size=5).astype(np.float32))
  return layer


def test_attention_pooling_matches_numpy_reference(pooling):
  context, weights = pooling(tf.constant(INPUTS), mask=tf.constant(PAD_MASK))
  scores = _pooling_scores(pooling, INPUTS)  # [2, 4]
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


def test_attention_scores_are_the_hyperparameter_choices():
  """The command line lists models.hparams.ATTENTIONS without importing TensorFlow; the
  layer must accept exactly those."""
  assert set(layers.ATTENTION_SCORES) == set(ATTENTIONS)
  with pytest.raises(ValueError, match="unknown attention score 'cosine'"):
    layers.AttentionPooling(score="cosine")


def test_attention_pooling_config_round_trip():
  layer = layers.AttentionPooling(units=7, score="dot", name="pool")
  config = layer.get_config()
  assert config["units"] == 7 and config["score"] == "dot"
  assert config["name"] == "pool"
  clone = layers.AttentionPooling.from_config(config)
  assert clone.get_config() == config
  with pytest.raises(ValueError, match="unknown attention score 'cosine'"):
    layers.AttentionPooling(score="cosine")


# --- SelfAttention ------------------------------------------------------------------


@pytest.fixture(scope="module")
def self_attention():
  layer = layers.SelfAttention(units=4)
  layer(tf.constant(INPUTS))
  return layer


def _self_attention_reference(layer, x, mask, residual=True, scaled=True):
  wq, wk, wv = (layer.query.kernel.numpy(), layer.key.kernel.numpy(), layer.value.kernel.numpy())
  q, k, v = x @ wq, x @ wk, x @ wv
  scores = q @ np.swapaxes(k, 1, 2)
  if scaled:
    scores = scores / np.sqrt(wq.shape[1])  # d_k = units
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
  out, weights = self_attention(
    tf.constant(INPUTS), mask=tf.constant(PAD_MASK), return_attention_scores=True
  )
  expected_out, expected_weights = _self_attention_reference(self_attention, INPUTS, PAD_MASK)
  assert out.shape == INPUTS.shape
  assert weights.shape == (2, 4, 4)
  np.testing.assert_allclose(weights.numpy(), expected_weights, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(out.numpy(), expected_out, rtol=1e-5, atol=1e-6)


def test_self_attention_zero_weight_on_padded_keys_and_zero_padded_outputs(self_attention):
  out, weights = self_attention(
    tf.constant(INPUTS), mask=tf.constant(PAD_MASK), return_attention_scores=True
  )
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
  expected, _ = _self_attention_reference(
    layer, INPUTS[:, :3], np.ones((2, 3), bool), residual=False
  )
  np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_self_attention_unscaled_dot_score():
  layer = layers.SelfAttention(units=4, score="dot")
  out, weights = layer(
    tf.constant(INPUTS), mask=tf.constant(PAD_MASK), return_attention_scores=True
  )
  expected_out, expected_weights = _self_attention_reference(layer, INPUTS, PAD_MASK, scaled=False)
  np.testing.assert_allclose(weights.numpy(), expected_weights, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(out.numpy(), expected_out, rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match="unknown attention score 'additive'"):
    layers.SelfAttention(score="additive")


def test_self_attention_propagates_mask(self_attention):
  mask = tf.constant(PAD_MASK)
  np.testing.assert_array_equal(
    self_attention.compute_mask(tf.constant(INPUTS), mask).numpy(), PAD_MASK
  )


def test_self_attention_config_round_trip():
  layer = layers.SelfAttention(units=6, residual=False, score="dot", name="sa")
  config = layer.get_config()
  assert config["units"] == 6 and config["residual"] is False and config["score"] == "dot"
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


# --- TokenAndPositionEmbedding and TransformerEncoder --------------------------------


def test_token_and_position_embedding_adds_positions_and_masks_padding():
  layer = layers.TokenAndPositionEmbedding(input_dim=10, max_length=4, embed_dim=3)
  ids = np.array([[5, 3, 0, 0], [7, 7, 7, 1]], np.int64)
  out = layer(tf.constant(ids)).numpy()
  tokens = layer.token_embedding.embeddings.numpy()
  positions = layer.position_embedding.embeddings.numpy()
  np.testing.assert_allclose(out, tokens[ids] + positions[np.newaxis], rtol=1e-6)
  # The same token at different positions gets different vectors.
  assert not np.allclose(out[1, 0], out[1, 1])
  np.testing.assert_array_equal(layer.compute_mask(tf.constant(ids)).numpy(), ids != 0)
  config = layer.get_config()
  assert layers.TokenAndPositionEmbedding.from_config(config).get_config() == config
  with pytest.raises(tf.errors.InvalidArgumentError, match="longer than max_length"):
    layer(tf.zeros([1, 5], tf.int64))


def _layer_norm(x, layer):
  mean = x.mean(-1, keepdims=True)
  var = x.var(-1, keepdims=True)
  return (x - mean) / np.sqrt(var + layer.epsilon) * layer.gamma.numpy() + layer.beta.numpy()


def _transformer_reference(block, x, mask):
  """NumPy transformer encoder block (inference: dropout off), Keras MHA's weight layout."""
  mha = block.attention
  dense = lambda layer, t, eq: np.einsum(eq, t, layer.kernel.numpy()) + layer.bias.numpy()
  q = dense(mha._query_dense, x, "btd,dhk->bthk")
  k = dense(mha._key_dense, x, "btd,dhk->bthk")
  v = dense(mha._value_dense, x, "btd,dhk->bthk")
  scores = np.einsum("bthk,bshk->bhts", q, k) / np.sqrt(block.key_dim)
  weights = np.zeros_like(scores)
  for b in range(x.shape[0]):
    for h in range(scores.shape[1]):
      for t in range(x.shape[1]):
        weights[b, h, t, mask[b]] = _np_softmax(scores[b, h, t, mask[b]])
  attended = np.einsum("bhts,bshk->bthk", weights, v)
  attended = dense(mha._output_dense, attended, "bthk,hkd->btd")
  x = _layer_norm(x + attended, block.attention_norm)
  ff_in, ff_out = block.feed_forward.layers
  hidden = np.maximum(x @ ff_in.kernel.numpy() + ff_in.bias.numpy(), 0.0)
  x = _layer_norm(x + hidden @ ff_out.kernel.numpy() + ff_out.bias.numpy(), block.output_norm)
  return x, weights


@pytest.fixture(scope="module")
def encoder():
  block = layers.TransformerEncoder(num_heads=2, key_dim=3, ff_dim=5, dropout=0.1)
  block(tf.constant(INPUTS))
  rng = np.random.default_rng(1)
  for variable in block.weights:  # biases and LayerNorm offsets away from their zeros/ones
    variable.assign(variable + 0.1 * rng.normal(size=variable.shape).astype(np.float32))
  return block


def test_transformer_encoder_matches_numpy_reference(encoder):
  out, weights = encoder(
    tf.constant(INPUTS), mask=tf.constant(PAD_MASK), training=False, return_attention_scores=True
  )
  expected_out, expected_weights = _transformer_reference(encoder, INPUTS, PAD_MASK)
  assert out.shape == INPUTS.shape and weights.shape == (2, 2, 4, 4)
  np.testing.assert_allclose(weights.numpy(), expected_weights, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(out.numpy(), expected_out, rtol=1e-4, atol=1e-5)


def test_transformer_encoder_padding_keys_get_exactly_zero_weight(encoder):
  _, weights = encoder(
    tf.constant(INPUTS), mask=tf.constant(PAD_MASK), training=False, return_attention_scores=True
  )
  weights = weights.numpy()
  for b in range(2):
    # Every query row, padding queries included, ignores the padding keys exactly.
    assert np.all(weights[b][..., ~PAD_MASK[b]] == 0.0)
    np.testing.assert_allclose(weights[b].sum(-1), np.ones((2, 4)), rtol=1e-6)
  changed = INPUTS.copy()
  changed[~PAD_MASK] = -50.0
  out1 = encoder(tf.constant(INPUTS), mask=tf.constant(PAD_MASK), training=False).numpy()
  out2 = encoder(tf.constant(changed), mask=tf.constant(PAD_MASK), training=False).numpy()
  np.testing.assert_allclose(out1[PAD_MASK], out2[PAD_MASK], rtol=1e-5, atol=1e-6)


def test_transformer_encoder_mask_propagates_and_config_round_trips(encoder):
  np.testing.assert_array_equal(
    encoder.compute_mask(tf.constant(INPUTS), tf.constant(PAD_MASK)).numpy(), PAD_MASK
  )
  config = encoder.get_config()
  assert (config["num_heads"], config["key_dim"], config["ff_dim"]) == (2, 3, 5)
  assert layers.TransformerEncoder.from_config(config).get_config() == config


def test_masked_softmax_under_float16_keeps_exact_zeros_and_dtype():
  scores = tf.constant(SCORES, tf.float16)
  out = layers.masked_softmax(scores, tf.constant(MASK))
  assert out.dtype == tf.float16
  out = out.numpy().astype(np.float32)
  assert np.all(out[~MASK] == 0.0)
  np.testing.assert_allclose(out[:2].sum(-1), [1.0, 1.0], rtol=1e-3)


# --- HashedBigramEmbedding ----------------------------------------------------------

BIGRAM_IDS = np.array([[3, 7, 2, 9, 0, 0], [7, 3, 0, 0, 0, 0]], np.int64)


def _np_bigram_buckets(ids, input_dim, buckets):
  following = np.concatenate([ids[:, 1:], np.zeros((len(ids), 1), ids.dtype)], axis=1)
  return ((ids * input_dim + following) * 2654435761 % 2**32) % buckets


def test_hashed_bigram_buckets_match_knuth_multiplicative_hash():
  layer = layers.HashedBigramEmbedding(input_dim=10, buckets=97, output_dim=4)
  buckets = layer.bucket_ids(tf.constant(BIGRAM_IDS)).numpy()
  np.testing.assert_array_equal(buckets, _np_bigram_buckets(BIGRAM_IDS, 10, 97))
  assert buckets.min() >= 0 and buckets.max() < 97
  # (3, 7) and (7, 3) are different bigrams and land in different buckets here.
  assert buckets[0, 0] != buckets[1, 0]
  # Large ids do not overflow into negative buckets.
  big = np.array([[19_999, 20_001, 20_000]], np.int64)
  large = layers.HashedBigramEmbedding(input_dim=20_002, buckets=131_072, output_dim=2)
  np.testing.assert_array_equal(
    large.bucket_ids(tf.constant(big)).numpy(), _np_bigram_buckets(big, 20_002, 131_072)
  )


def test_hashed_bigram_embedding_rows_zero_without_a_next_token_and_mask():
  layer = layers.HashedBigramEmbedding(input_dim=10, buckets=97, output_dim=4, seed=3)
  out = layer(tf.constant(BIGRAM_IDS)).numpy()
  table = layer.embedding.embeddings.numpy()
  buckets = _np_bigram_buckets(BIGRAM_IDS, 10, 97)
  present = (BIGRAM_IDS != 0) & (np.roll(BIGRAM_IDS, -1, axis=1) != 0)
  present[:, -1] = False
  assert present.sum() == 4  # (3,7) (7,2) (2,9) and (7,3)
  for row, col in zip(*np.nonzero(present)):
    np.testing.assert_allclose(out[row, col], table[buckets[row, col]])
  assert np.all(out[~present] == 0.0)
  np.testing.assert_array_equal(
    layer.compute_mask(tf.constant(BIGRAM_IDS)).numpy(), BIGRAM_IDS != 0
  )


def test_hashed_bigram_embedding_config_round_trip_and_validation():
  layer = layers.HashedBigramEmbedding(input_dim=10, buckets=97, output_dim=4, seed=5)
  clone = layers.HashedBigramEmbedding.from_config(layer.get_config())
  assert (clone.input_dim, clone.buckets, clone.output_dim, clone.seed) == (10, 97, 4, 5)
  with pytest.raises(ValueError, match="buckets=0"):
    layers.HashedBigramEmbedding(input_dim=10, buckets=0, output_dim=4)
