"""Attention layers with padding-mask support.

Every layer here follows Keras's masking protocol: ``supports_masking = True`` and a
``mask`` argument of shape [batch, time] (bool, True = real token). Attention weights on
masked (padding) keys are exactly 0.0 and each row of weights sums to 1 over the real keys
(a row with no real key is all zeros). Scores and softmax are computed in float32 also
under a mixed-precision policy, then cast to the layer's compute dtype.

Layers:

* ``DotProductAttention``: Luong dot / Vaswani scaled dot-product attention, no weights.
* ``AdditiveAttention``: Bahdanau additive attention.
* ``SelfAttention``: projected (Q = X W_q, K = X W_k, V = X W_v) dot or scaled-dot
  self-attention with a residual connection.
* ``AttentionPooling``: a learned query attends over time; returns the context vector and
  the weights (the model's explanation).
* ``TokenAndPositionEmbedding`` and ``TransformerEncoder``: the transformer encoder block on
  Keras's ``MultiHeadAttention``.
* ``MaskedGlobalMaxPooling1D``.

Keras's own ``Attention`` / ``AdditiveAttention`` are not used: ``Attention(use_scale=True)``
scales by a learned scalar rather than 1/sqrt(d_k), and both give a row whose keys are all
padding uniform weight over that padding instead of zeros.
"""

from collections.abc import Sequence

import tensorflow as tf
import tf_keras as keras


def masked_softmax(scores: tf.Tensor, mask: tf.Tensor = None, axis: int = -1) -> tf.Tensor:
  """Softmax over ``axis`` that gives exactly zero weight to masked positions.

  Args:
    scores: float tensor, e.g. [batch, time] or [batch, query_time, value_time]; float16
      and bfloat16 scores are normalised in float32 and the result cast back.
    mask: bool tensor broadcastable to ``scores`` (True = attend), or None.
    axis: the axis normalised over.

  Returns:
    a tensor like ``scores`` (same dtype); rows with no unmasked position are all zeros
    (an empty review attends to nothing) instead of NaN.
  """
  dtype = scores.dtype
  if dtype != tf.float32 and dtype != tf.float64:
    scores = tf.cast(scores, tf.float32)
  if mask is None:
    return tf.cast(tf.nn.softmax(scores, axis=axis), dtype)
  mask = tf.cast(mask, scores.dtype)
  # Subtracting the row max keeps exp() finite; masked entries are removed afterwards by
  # multiplication, so they are exactly 0 whatever their score.
  shifted = scores - tf.reduce_max(
    scores + (1.0 - mask) * scores.dtype.min, axis=axis, keepdims=True
  )
  exp = tf.exp(tf.minimum(shifted, 0.0)) * mask
  return tf.cast(tf.math.divide_no_nan(exp, tf.reduce_sum(exp, axis=axis, keepdims=True)), dtype)


def _key_mask(mask: tf.Tensor | None) -> tf.Tensor | None:
  """[batch, key_time] padding mask -> bool [batch, 1, key_time] (broadcast over queries)."""
  return None if mask is None else tf.cast(mask, tf.bool)[:, tf.newaxis, :]


def _zero_masked_queries(outputs: tf.Tensor, query_mask: tf.Tensor | None) -> tf.Tensor:
  if query_mask is None:
    return outputs
  return outputs * tf.cast(query_mask, outputs.dtype)[..., tf.newaxis]


def _split_inputs(inputs, mask):
  """``[query, value]`` or ``[query, value, key]`` (key defaults to value) and
  ``[query_mask, value_mask]`` (either may be None; the key shares the value's mask)."""
  if not isinstance(inputs, (list, tuple)) or len(inputs) not in (2, 3):
    raise ValueError(
      f"attention inputs must be [query, value] or [query, value, key], got {inputs!r}"
    )
  query, value = inputs[0], inputs[1]
  key = inputs[2] if len(inputs) == 3 else value
  query_mask = value_mask = None
  if mask is not None:
    query_mask, value_mask = mask[0], mask[1]
  return query, value, key, query_mask, value_mask


class _ScoredAttention(keras.layers.Layer):
  """What every query-key-value attention here shares: inputs ``[query, value(, key)]``,
  masks ``[query_mask, value_mask]``, the masked softmax over the subclass's ``scores``
  (float [batch, Tq, Tv]), the weighted sum of the values, zeros at masked queries, and the
  query mask passed on."""

  def __init__(self, **kwargs):
    super().__init__(**kwargs)
    self.supports_masking = True

  def scores(self, query: tf.Tensor, key: tf.Tensor) -> tf.Tensor:
    raise NotImplementedError

  def call(self, inputs, mask=None, return_attention_scores=False):
    query, value, key, query_mask, value_mask = _split_inputs(inputs, mask)
    weights = masked_softmax(self.scores(query, key), _key_mask(value_mask))
    outputs = _zero_masked_queries(tf.matmul(weights, value), query_mask)
    if return_attention_scores:
      return outputs, weights
    return outputs

  def compute_mask(self, inputs, mask=None):
    return None if mask is None else mask[0]


@keras.utils.register_keras_serializable(package="imdb_tfx")
class DotProductAttention(_ScoredAttention):
  """Dot-product attention, ``softmax(Q K^T) V`` (Luong, Pham & Manning 2015, "Effective
  Approaches to Attention-based Neural Machine Translation", the ``dot`` score), or scaled,
  ``softmax(Q K^T / sqrt(d_k)) V`` (Vaswani et al. 2017, "Attention Is All You Need",
  eq. 1). No trainable weights.

  Inputs: ``[query, value]`` or ``[query, value, key]``: query float [batch, Tq, d_k],
  value float [batch, Tv, d_v], key float [batch, Tv, d_k] (default: value).
  Mask: ``[query_mask, value_mask]``, bool [batch, Tq] and [batch, Tv], either None.
  Output: float [batch, Tq, d_v], zero at masked query positions (mask: query_mask); with
  ``return_attention_scores=True`` also the weights, float [batch, Tq, Tv], exactly 0 on
  masked keys, rows summing to 1.

  Raises:
    ValueError: inputs are not a list of 2 or 3 tensors.
  """

  def __init__(self, scale: bool = True, **kwargs):
    super().__init__(**kwargs)
    self.scale = scale

  def scores(self, query, key):
    scores = tf.matmul(query, key, transpose_b=True)
    if self.scale:
      scores = scores / tf.sqrt(tf.cast(tf.shape(key)[-1], scores.dtype))
    return scores

  def get_config(self):
    return {**super().get_config(), "scale": self.scale}


@keras.utils.register_keras_serializable(package="imdb_tfx")
class AdditiveAttention(_ScoredAttention):
  """Additive attention (Bahdanau, Cho & Bengio 2015, "Neural Machine Translation by
  Jointly Learning to Align and Translate"): ``score(h_t, h_s) = v_a^T tanh(W_a [h_t; h_s])``,
  ``alpha_ts = softmax_s(score)``, context ``c_t = sum_s alpha_ts h_s``. ``W_a [h_t; h_s]``
  is computed as ``h_t W_q + h_s W_k + b`` (W_a split by columns; the bias is ours).

  Inputs: ``[query, value]`` or ``[query, value, key]``: query float [batch, Tq, d_q],
  value float [batch, Tv, d_v], key float [batch, Tv, d_k] (default: value).
  Mask: ``[query_mask, value_mask]`` as ``DotProductAttention``.
  Output: float [batch, Tq, d_v] (zero at masked queries); with
  ``return_attention_scores=True`` also the weights, float [batch, Tq, Tv].
  Memory: the scores need a [batch, Tq, Tv, units] intermediate, so use it with short
  queries (``AttentionPooling`` has Tq = 1), not as self-attention over long sequences.
  """

  def __init__(self, units: int = 64, **kwargs):
    super().__init__(**kwargs)
    self.units = units

  def build(self, input_shape):
    query_shape, value_shape = input_shape[0], input_shape[1]
    key_shape = input_shape[2] if len(input_shape) == 3 else value_shape
    self.w_query = self.add_weight(
      name="w_query", shape=(int(query_shape[-1]), self.units), initializer="glorot_uniform"
    )
    self.w_key = self.add_weight(
      name="w_key", shape=(int(key_shape[-1]), self.units), initializer="glorot_uniform"
    )
    self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")
    self.v = self.add_weight(name="v", shape=(self.units,), initializer="glorot_uniform")
    super().build(input_shape)

  def scores(self, query, key):
    q = tf.tensordot(query, self.w_query, axes=1)  # [B, Tq, units]
    k = tf.tensordot(key, self.w_key, axes=1)  # [B, Tv, units]
    hidden = tf.tanh(q[:, :, tf.newaxis, :] + k[:, tf.newaxis, :, :] + self.bias)
    return tf.tensordot(hidden, self.v, axes=1)  # [B, Tq, Tv]

  def get_config(self):
    return {**super().get_config(), "units": self.units}


# Score functions of AttentionPooling (models.hparams.ATTENTIONS lists the same names for
# the command line, which must not import TensorFlow; a test keeps the two equal).
ATTENTION_SCORES = ("dot", "scaled_dot", "additive")


def _check_score(score: str, allowed: Sequence[str]) -> None:
  if score not in allowed:
    raise ValueError(f"unknown attention score {score!r}; choose one of {', '.join(allowed)}")


@keras.utils.register_keras_serializable(package="imdb_tfx")
class AttentionPooling(keras.layers.Layer):
  """Attention pooling over time: a learned query attends over the time steps and the
  context (their masked weighted average) represents the sequence.

  ``score="additive"``: ``e_t = v^T tanh(q W_q + h_t W_k + b)`` (``AdditiveAttention``;
  with a constant learned query this is the pooling of Yang et al. 2016, "Hierarchical
  Attention Networks for Document Classification"). ``"dot"`` / ``"scaled_dot"``:
  ``e_t = q . (h_t W_k)``, divided by ``sqrt(units)`` when scaled (``DotProductAttention``).
  ``alpha = masked softmax(e)``, context ``c = sum_t alpha_t h_t``.

  Input: float [batch, time, features]; mask: bool [batch, time] (optional).
  Output: ``(context, weights)``: float [batch, features] and float [batch, time] (0 on
  padding, summing to 1 over the real steps).

  Raises:
    ValueError: an unknown ``score``.
  """

  def __init__(self, units: int = 64, score: str = "additive", **kwargs):
    super().__init__(**kwargs)
    _check_score(score, ATTENTION_SCORES)
    self.units = units
    self.score = score
    self.supports_masking = True

  def build(self, input_shape):
    self.query = self.add_weight(name="query", shape=(self.units,), initializer="glorot_uniform")
    if self.score == "additive":
      self.attention = AdditiveAttention(self.units, name="additive_attention")
      self.attention.build([(None, 1, self.units), tuple(input_shape)])
    else:
      self.key_projection = keras.layers.Dense(self.units, use_bias=False, name="key")
      self.key_projection.build(input_shape)
      self.attention = DotProductAttention(
        scale=self.score == "scaled_dot", name="dot_product_attention"
      )
    super().build(input_shape)

  def call(self, inputs, mask=None):
    batch = tf.shape(inputs)[0]
    query = tf.tile(
      tf.cast(self.query, inputs.dtype)[tf.newaxis, tf.newaxis, :], [batch, 1, 1]
    )  # [B, 1, units]
    key = inputs if self.score == "additive" else self.key_projection(inputs)
    attention_mask = None if mask is None else [None, mask]
    context, weights = self.attention(
      [query, inputs, key], mask=attention_mask, return_attention_scores=True
    )
    return context[:, 0, :], weights[:, 0, :]

  def compute_mask(self, inputs, mask=None):
    return None  # time is pooled away

  def get_config(self):
    return {**super().get_config(), "units": self.units, "score": self.score}


@keras.utils.register_keras_serializable(package="imdb_tfx")
class SelfAttention(keras.layers.Layer):
  """Dot-product or scaled dot-product self-attention over a sequence, honouring the
  padding mask.

  ``softmax(Q K^T / sqrt(d_k)) V`` (``score="scaled_dot"``, Vaswani et al. 2017, eq. 1) or
  ``softmax(Q K^T) V`` (``"dot"``, Luong et al. 2015), with Q = X W_q, K = X W_k (d_k =
  ``units``) and V = X W_v. Keys on padding get exactly zero weight; outputs at padding
  positions are zeroed. A residual connection adds the input back, so the layer can start
  close to the identity. (Additive scores are not offered here: over T steps they need a
  [batch, T, T, units] intermediate.)

  Input: float [batch, time, features]; mask: bool [batch, time] (optional).
  Output: float [batch, time, features] (mask propagated unchanged). With
  ``return_attention_scores=True`` also the weights, float [batch, time, time].

  Raises:
    ValueError: ``score`` is not ``dot`` or ``scaled_dot``.
  """

  def __init__(self, units: int = 64, residual: bool = True, score: str = "scaled_dot", **kwargs):
    super().__init__(**kwargs)
    _check_score(score, ("dot", "scaled_dot"))
    self.units = units
    self.residual = residual
    self.score = score
    self.supports_masking = True

  def build(self, input_shape):
    features = int(input_shape[-1])
    self.query = keras.layers.Dense(self.units, use_bias=False, name="query")
    self.key = keras.layers.Dense(self.units, use_bias=False, name="key")
    self.value = keras.layers.Dense(features, use_bias=False, name="value")
    for layer in (self.query, self.key, self.value):
      layer.build(input_shape)
    self.attention = DotProductAttention(scale=self.score == "scaled_dot", name="attention")
    super().build(input_shape)

  def call(self, inputs, mask=None, return_attention_scores=False):
    q, k, v = self.query(inputs), self.key(inputs), self.value(inputs)
    outputs, weights = self.attention(
      [q, v, k], mask=None if mask is None else [None, mask], return_attention_scores=True
    )
    if self.residual:
      outputs = outputs + inputs
    outputs = _zero_masked_queries(outputs, mask)
    if return_attention_scores:
      return outputs, weights
    return outputs

  def compute_mask(self, inputs, mask=None):
    return mask

  def get_config(self):
    return {
      **super().get_config(),
      "units": self.units,
      "residual": self.residual,
      "score": self.score,
    }


@keras.utils.register_keras_serializable(package="imdb_tfx")
class TokenAndPositionEmbedding(keras.layers.Layer):
  """Token embedding plus a learned position embedding (as in BERT; Vaswani et al. 2017
  §3.5 found learned and sinusoidal positions equivalent).

  Input: int [batch, max_length] token ids, 0 = padding.
  Output: float [batch, max_length, embed_dim]; mask: bool [batch, max_length],
  ``ids != 0``.

  Raises:
    tf.errors.InvalidArgumentError (at call): a sequence longer than ``max_length``.
  """

  def __init__(self, input_dim: int, max_length: int, embed_dim: int, **kwargs):
    super().__init__(**kwargs)
    self.input_dim = input_dim
    self.max_length = max_length
    self.embed_dim = embed_dim
    self.token_embedding = keras.layers.Embedding(input_dim, embed_dim, name="token")
    self.position_embedding = keras.layers.Embedding(max_length, embed_dim, name="position")

  def call(self, inputs):
    length = tf.shape(inputs)[-1]
    tf.debugging.assert_less_equal(
      length, self.max_length, message="sequence longer than max_length"
    )
    positions = self.position_embedding(tf.range(length))
    return self.token_embedding(inputs) + positions

  def compute_mask(self, inputs, mask=None):
    return tf.not_equal(inputs, 0)

  def get_config(self):
    return {
      **super().get_config(),
      "input_dim": self.input_dim,
      "max_length": self.max_length,
      "embed_dim": self.embed_dim,
    }


@keras.utils.register_keras_serializable(package="imdb_tfx")
class TransformerEncoder(keras.layers.Layer):
  """One transformer encoder block (Vaswani et al. 2017, §3.1, post-LayerNorm):
  ``x = LayerNorm(x + Dropout(MultiHeadAttention(x, x)))``, then
  ``x = LayerNorm(x + Dropout(Dense(ReLU(Dense(x)))))``.

  Keras's ``MultiHeadAttention`` gets an attention mask built from the keys' padding mask
  alone (bool [batch, 1, time]): every query row, padding rows included, puts exactly zero
  weight on padding keys (Keras's adder is -1e9, whose exp underflows to 0). Left to
  itself, MultiHeadAttention also masks padding query rows entirely, and such a row's
  softmax is uniform over all keys, padding included.

  Input: float [batch, time, embed_dim]; mask: bool [batch, time] (optional, propagated).
  Output: float [batch, time, embed_dim]; with ``return_attention_scores=True`` also the
  weights, float [batch, num_heads, time, time].
  """

  def __init__(
    self, num_heads: int = 2, key_dim: int = 32, ff_dim: int = 128, dropout: float = 0.1, **kwargs
  ):
    super().__init__(**kwargs)
    self.num_heads = num_heads
    self.key_dim = key_dim
    self.ff_dim = ff_dim
    self.dropout = dropout
    self.supports_masking = True

  def build(self, input_shape):
    embed_dim = int(input_shape[-1])
    self.attention = keras.layers.MultiHeadAttention(
      num_heads=self.num_heads,
      key_dim=self.key_dim,
      dropout=self.dropout,
      name="multi_head_attention",
    )
    # Keras 2's documented way to build MultiHeadAttention's sublayers before the first
    # call (a private name there), so their weights exist when a checkpoint is restored.
    self.attention._build_from_signature(input_shape, input_shape)
    self.feed_forward = keras.Sequential(
      [keras.layers.Dense(self.ff_dim, activation="relu"), keras.layers.Dense(embed_dim)],
      name="feed_forward",
    )
    self.feed_forward.build(input_shape)
    self.attention_norm = keras.layers.LayerNormalization(epsilon=1e-6, name="attention_norm")
    self.output_norm = keras.layers.LayerNormalization(epsilon=1e-6, name="output_norm")
    self.attention_norm.build(input_shape)
    self.output_norm.build(input_shape)
    self.attention_dropout = keras.layers.Dropout(self.dropout)
    self.output_dropout = keras.layers.Dropout(self.dropout)
    super().build(input_shape)

  def call(self, inputs, mask=None, training=None, return_attention_scores=False):
    # tf.identity: a tensor without the Keras mask, so MultiHeadAttention uses only
    # attention_mask (see the class docstring).
    x = tf.identity(inputs)
    attended, weights = self.attention(
      x, x, attention_mask=_key_mask(mask), training=training, return_attention_scores=True
    )
    x = self.attention_norm(x + self.attention_dropout(attended, training=training))
    x = self.output_norm(x + self.output_dropout(self.feed_forward(x), training=training))
    if return_attention_scores:
      return x, weights
    return x

  def compute_mask(self, inputs, mask=None):
    return mask

  def get_config(self):
    return {
      **super().get_config(),
      "num_heads": self.num_heads,
      "key_dim": self.key_dim,
      "ff_dim": self.ff_dim,
      "dropout": self.dropout,
    }


@keras.utils.register_keras_serializable(package="imdb_tfx")
class MaskedGlobalMaxPooling1D(keras.layers.Layer):
  """Max over the real (unmasked) time steps of each feature.

  Keras's GlobalMaxPooling1D ignores the mask, so padding (whose LSTM output is a copy
  of the last state, or zeros) could win the max; here padded steps never do.

  Input: float [batch, time, features]; mask: bool [batch, time] (optional).
  Output: float [batch, features]; all-zero for a row with no real step.
  """

  def __init__(self, **kwargs):
    super().__init__(**kwargs)
    self.supports_masking = True

  def call(self, inputs, mask=None):
    if mask is None:
      return tf.reduce_max(inputs, axis=1)
    mask = tf.cast(mask, tf.bool)[..., tf.newaxis]
    masked = tf.where(mask, inputs, tf.fill(tf.shape(inputs), inputs.dtype.min))
    pooled = tf.reduce_max(masked, axis=1)
    return tf.where(tf.reduce_any(mask, axis=1), pooled, tf.zeros_like(pooled))

  def compute_mask(self, inputs, mask=None):
    return None


_KNUTH = 2654435761


def bigram_buckets(tokens: tf.Tensor, input_dim: int, buckets: int):
  """The hashed bucket of the bigram each position starts (its token and the next one).

  The bigram (a, b) of ids a, b in [1, input_dim) is the integer ``a * input_dim + b``,
  hashed by Knuth's multiplicative hash (TAOCP vol. 3, sec. 6.4: multiply by 2654435761,
  keep the low 32 bits) modulo ``buckets``. Shared by ``HashedBigramEmbedding`` and the
  naive-Bayes features (``models.naive_bayes``), which must agree on every bucket. The
  products are int64: exact for input_dim up to about 59,000; above that they wrap around,
  which still gives a deterministic hash.

  Args:
    tokens: int [batch, time] token ids, 0 = padding.
    input_dim: the token id range (every id < input_dim).
    buckets: hash buckets, >= 1.

  Returns:
    ``(bucket_ids, present)``: int64 [batch, time] in [0, buckets), and bool [batch,
    time], True where the position and the next one are real tokens (False at padding
    and at the last real token, whose bucket is meaningless).
  """
  ids = tf.cast(tokens, tf.int64)
  following = tf.pad(ids[:, 1:], [[0, 0], [0, 1]])
  hashed = tf.math.floormod((ids * input_dim + following) * _KNUTH, 2**32)
  present = tf.logical_and(tf.not_equal(ids, 0), tf.not_equal(following, 0))
  return tf.math.floormod(hashed, buckets), present


@keras.utils.register_keras_serializable(package="imdb_tfx")
class HashedBigramEmbedding(keras.layers.Layer):
  """An embedding of each token's bigram (the token and the next one), hashed into
  ``buckets`` rows: the bigram features of fastText (Joulin, Grave, Bojanowski & Mikolov
  2017, "Bag of Tricks for Efficient Text Classification", sec. 2.2, which also hashes
  them), laid out per position so that it can be added to the token embedding and the
  attention weights stay aligned with the tokens.

  Bigrams are hashed by ``bigram_buckets`` (Knuth's multiplicative hash). A
  vocabulary of bigrams would need a second tf.Transform analyzer pass and a table in the
  serving graph; hashing needs neither and needs no change to the TransformGraph.

  Input: int [batch, time] token ids, 0 = padding, every id < ``input_dim``.
  Output: float [batch, time, output_dim] (the layer's compute dtype); zero at padding and
  at the last real token (it has no next token). Mask: bool [batch, time], ``ids != 0``.

  Raises:
    ValueError: buckets < 1, input_dim < 2 or output_dim < 1.
  """

  def __init__(self, input_dim: int, buckets: int, output_dim: int, seed: int = 0, **kwargs):
    super().__init__(**kwargs)
    if buckets < 1 or input_dim < 2 or output_dim < 1:
      raise ValueError(
        f"need buckets >= 1, input_dim >= 2, output_dim >= 1; got "
        f"buckets={buckets}, input_dim={input_dim}, output_dim={output_dim}"
      )
    self.input_dim = input_dim
    self.buckets = buckets
    self.output_dim = output_dim
    self.seed = seed
    self.supports_masking = True
    self.embedding = keras.layers.Embedding(
      buckets,
      output_dim,
      name="bigram",
      embeddings_initializer=keras.initializers.RandomUniform(-0.05, 0.05, seed=seed),
    )

  def bucket_ids(self, inputs: tf.Tensor) -> tf.Tensor:
    """int64 [batch, time] bucket of each position's bigram, in [0, buckets)."""
    return bigram_buckets(inputs, self.input_dim, self.buckets)[0]

  def call(self, inputs):
    buckets, present = bigram_buckets(inputs, self.input_dim, self.buckets)
    vectors = self.embedding(buckets)
    return vectors * tf.cast(present, vectors.dtype)[..., tf.newaxis]

  def compute_mask(self, inputs, mask=None):
    return tf.not_equal(inputs, 0)

  def get_config(self):
    return {
      **super().get_config(),
      "input_dim": self.input_dim,
      "buckets": self.buckets,
      "output_dim": self.output_dim,
      "seed": self.seed,
    }
