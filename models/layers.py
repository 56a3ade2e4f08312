"""Attention layers with padding-mask support.

Every layer here follows Keras's masking protocol: ``supports_masking = True`` and a
``mask`` argument of shape [batch, time] (bool, True = real token). Attention weights on
masked (padding) positions are exactly 0.0 and each row over the real tokens sums to 1.
"""

import tensorflow as tf
import tf_keras as keras


def masked_softmax(scores: tf.Tensor, mask: tf.Tensor = None, axis: int = -1) -> tf.Tensor:
  """Softmax over ``axis`` that gives exactly zero weight to masked positions.

  Args:
    scores: float tensor, e.g. [batch, time] or [batch, query_time, value_time].
    mask: bool tensor broadcastable to ``scores`` (True = attend), or None.
    axis: the axis normalised over.

  Returns:
    float tensor like ``scores``; rows with no unmasked position are all zeros
    (an empty review attends to nothing) instead of NaN.
  """
  if mask is None:
    return tf.nn.softmax(scores, axis=axis)
  mask = tf.cast(mask, scores.dtype)
  # Subtracting the row max keeps exp() finite; masked entries are removed afterwards by
  # multiplication, so they are exactly 0 whatever their score.
  shifted = scores - tf.reduce_max(scores + (1.0 - mask) * scores.dtype.min, axis=axis,
                                   keepdims=True)
  exp = tf.exp(tf.minimum(shifted, 0.0)) * mask
  return tf.math.divide_no_nan(exp, tf.reduce_sum(exp, axis=axis, keepdims=True))


@keras.utils.register_keras_serializable(package="imdb_tfx")
class AttentionPooling(keras.layers.Layer):
  """Attention pooling over time: a learned, masked weighted average of the time steps.

  Scores each step with an additive (Bahdanau) scorer against a learned query vector,
  ``e_t = v^T tanh(W h_t + b)``, normalises them with a masked softmax
  ``alpha_t = exp(e_t) / sum_s exp(e_s)`` over the real tokens and returns the context
  ``c = sum_t alpha_t h_t`` together with ``alpha`` (Bahdanau, Cho & Bengio 2015, "Neural
  Machine Translation by Jointly Learning to Align and Translate"; used for document
  classification by Yang et al. 2016, "Hierarchical Attention Networks").

  Input: float [batch, time, features]; mask: bool [batch, time] (optional).
  Output: ``(context, weights)``: float [batch, features] and float [batch, time].
  """

  def __init__(self, units: int = 64, **kwargs):
    super().__init__(**kwargs)
    self.units = units
    self.supports_masking = True

  def build(self, input_shape):
    features = int(input_shape[-1])
    self.w = self.add_weight(name="w", shape=(features, self.units),
                             initializer="glorot_uniform")
    self.b = self.add_weight(name="b", shape=(self.units,), initializer="zeros")
    self.v = self.add_weight(name="v", shape=(self.units,), initializer="glorot_uniform")
    super().build(input_shape)

  def call(self, inputs, mask=None):
    hidden = tf.tanh(tf.tensordot(inputs, self.w, axes=1) + self.b)  # [B, T, units]
    scores = tf.tensordot(hidden, self.v, axes=1)  # [B, T]
    weights = masked_softmax(scores, mask)
    context = tf.reduce_sum(inputs * weights[..., tf.newaxis], axis=1)
    return context, weights

  def compute_mask(self, inputs, mask=None):
    return None  # time is pooled away

  def get_config(self):
    return {**super().get_config(), "units": self.units}


@keras.utils.register_keras_serializable(package="imdb_tfx")
class SelfAttention(keras.layers.Layer):
  """Scaled dot-product self-attention over a sequence, honouring the padding mask.

  ``softmax(Q K^T / sqrt(d_k)) V`` with Q = X W_q, K = X W_k, V = X W_v (Vaswani et al.
  2017, "Attention Is All You Need", eq. 1). Keys on padding positions get exactly zero
  weight; outputs at padding query positions are zeroed. A residual connection adds the
  input back, so the layer can start close to the identity.

  Input: float [batch, time, features]; mask: bool [batch, time] (optional).
  Output: float [batch, time, features] (mask propagated unchanged). With
  ``return_attention_scores=True`` also the weights, float [batch, time, time].
  """

  def __init__(self, units: int = 64, residual: bool = True, **kwargs):
    super().__init__(**kwargs)
    self.units = units
    self.residual = residual
    self.supports_masking = True

  def build(self, input_shape):
    features = int(input_shape[-1])
    self.query = keras.layers.Dense(self.units, use_bias=False, name="query")
    self.key = keras.layers.Dense(self.units, use_bias=False, name="key")
    self.value = keras.layers.Dense(features, use_bias=False, name="value")
    for layer in (self.query, self.key, self.value):
      layer.build(input_shape)
    super().build(input_shape)

  def call(self, inputs, mask=None, return_attention_scores=False):
    q, k, v = self.query(inputs), self.key(inputs), self.value(inputs)
    scores = tf.matmul(q, k, transpose_b=True) / tf.sqrt(tf.cast(self.units, q.dtype))
    key_mask = None if mask is None else tf.cast(mask, tf.bool)[:, tf.newaxis, :]
    weights = masked_softmax(scores, key_mask)  # [B, Tq, Tk]
    outputs = tf.matmul(weights, v)
    if self.residual:
      outputs = outputs + inputs
    if mask is not None:
      outputs = outputs * tf.cast(mask, outputs.dtype)[..., tf.newaxis]
    if return_attention_scores:
      return outputs, weights
    return outputs

  def compute_mask(self, inputs, mask=None):
    return mask

  def get_config(self):
    return {**super().get_config(), "units": self.units, "residual": self.residual}


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
