"""Keras model builders. Each returns the training model and its explanation twin.

The training model maps ``tokens`` (int64 [batch, time], time <= max_length, right-padded
with 0; the exported signatures always feed max_length) to the
probability of a positive review (float32 [batch, 1], also under a mixed-precision policy).
The explanation model shares every layer and additionally returns the attention pooling's
per-token weights (float32 [batch, time], zero on padding, summing to 1 over the real
tokens), which ``predict_text`` exports.

Models (``HParams.model``):

* ``lstm_attention`` (the seeds' model): Embedding [+ hashed bigram embedding] ->
  SpatialDropout1D -> LSTM -> scaled dot-product self-attention -> attention pooling
  [+ masked max pool] -> head.
* ``bilstm_attention``: the same with a bidirectional LSTM (forward and backward states
  concatenated, 2 * lstm_units wide).
* ``multi_head``: token + position [+ hashed bigram] embedding -> Dropout -> ``num_layers``
  transformer encoder blocks (MultiHeadAttention, Vaswani et al. 2017) -> attention
  pooling [+ masked max pool] -> head.

The head is Dense(dense_units, ReLU) -> Dropout -> Dense(1, sigmoid, float32).

With ``nb_wide`` the explanation model (the one exported and served) combines two logits
before the sigmoid: the attention model's (its last Dense without the sigmoid) and a linear
model's on naive-Bayes-scaled token and bigram features (``naive_bayes.NaiveBayesLogit``,
Wang & Manning 2012), as Mesnil et al. 2014 combine NBSVM with neural models. The two are
trained separately (``naive_bayes_model`` first, then the attention model alone, exactly as
without ``nb_wide``); the ``stacking`` layer, a Dense(1) on the two logits, is then fitted
on the eval split (``models.stacking``; it starts as their mean). Trained jointly on the
combined output instead, the linear part memorized the train split within an epoch and left
the attention model little to learn (eval accuracy 0.9110 after one epoch, the attention
model's own, then 0.9063). The attention weights explain the attention model's half only.

With ``bigram_buckets`` > 0 (the default) every position's input is its token's embedding
plus the embedding of the bigram it starts (``layers.HashedBigramEmbedding``): fastText's
bigram features (Joulin et al. 2017) inside a sequence model, so the attention weights
still line up with the tokens.
"""

from collections.abc import Callable

import tensorflow as tf
import tf_keras as keras

from core import features
from models import layers, naive_bayes, optimizers
from models.hparams import HParams

Models = tuple[keras.Model, keras.Model]
# Names of the nb_wide layers that run_fn sets: the naive-Bayes wide layer (its ratios),
# the two halves' logits side by side and the stacking on them (``models.stacking``).
NAIVE_BAYES_LAYER = "naive_bayes"
HALF_LOGITS_LAYER = "half_logits"
STACKING_LAYER = "stacking"


def _initializer(hp: HParams, offset: int) -> keras.initializers.Initializer:
  return keras.initializers.GlorotUniform(seed=hp.seed + offset)


def _regularizer(hp: HParams) -> keras.regularizers.Regularizer | None:
  return keras.regularizers.L2(hp.l2) if hp.l2 > 0 else None


def _tokens_input() -> tf.Tensor:
  # Any length up to max_length: training batches are cut to their longest review
  # (HParams.length_buckets); serving always feeds max_length.
  return keras.Input(shape=(None,), dtype="int64", name=features.TOKENS_KEY)


def _add_bigrams(hp: HParams, tokens: tf.Tensor, x: tf.Tensor) -> tf.Tensor:
  """``x`` plus the hashed bigram embedding of each position when hp.bigram_buckets
  (each position's bigram vector dropped whole at rate hp.bigram_dropout in training)."""
  if not hp.bigram_buckets:
    return x
  bigrams = layers.HashedBigramEmbedding(
    hp.embedding_input_dim,
    hp.bigram_buckets,
    hp.embedding_dim,
    seed=hp.seed,
    name="bigram_embedding",
  )(tokens)
  if hp.bigram_dropout:
    # Drops a position's whole bigram vector (noise broadcast over the embedding axis).
    bigrams = keras.layers.Dropout(
      hp.bigram_dropout, noise_shape=(None, None, 1), seed=hp.seed + 4, name="bigram_dropout"
    )(bigrams)
  return keras.layers.Add(name="token_and_bigram")([x, bigrams])


def _embedded_tokens(hp: HParams, tokens: tf.Tensor) -> tf.Tensor:
  x = keras.layers.Embedding(
    hp.embedding_input_dim, hp.embedding_dim, mask_zero=True, name="embedding"
  )(tokens)
  x = _add_bigrams(hp, tokens, x)
  return keras.layers.SpatialDropout1D(
    hp.embedding_dropout, seed=hp.seed, name="embedding_dropout"
  )(x)


def _lstm(hp: HParams, bidirectional: bool) -> keras.layers.Layer:
  lstm = keras.layers.LSTM(
    hp.lstm_units,
    return_sequences=True,
    kernel_initializer=_initializer(hp, 1),
    kernel_regularizer=_regularizer(hp),
    name="lstm",
  )
  return keras.layers.Bidirectional(lstm, name="bilstm") if bidirectional else lstm


def _pool_and_classify(hp: HParams, tokens: tf.Tensor, sequence: tf.Tensor) -> Models:
  """Attention pooling (+ masked max pool) and the classifier head on ``sequence`` (float
  [batch, max_length, features], masked); returns ``(model, explain_model)``."""
  context, weights = layers.AttentionPooling(
    units=hp.lstm_units, score=hp.attention, name="attention_pooling"
  )(sequence)
  if hp.max_pooling:
    pooled = layers.MaskedGlobalMaxPooling1D(name="max_pooling")(sequence)
    context = keras.layers.Concatenate(name="pooled")([context, pooled])
  h = keras.layers.Dense(
    hp.dense_units,
    activation="relu",
    kernel_initializer=_initializer(hp, 2),
    kernel_regularizer=_regularizer(hp),
    name="dense",
  )(context)
  h = keras.layers.Dropout(hp.dropout, seed=hp.seed, name="dropout")(h)
  # float32 under mixed precision too: the sigmoid and the loss need its range.
  if not hp.nb_wide:
    probabilities = keras.layers.Dense(
      1,
      activation="sigmoid",
      dtype="float32",
      kernel_initializer=_initializer(hp, 3),
      kernel_regularizer=_regularizer(hp),
      name="probabilities",
    )(h)
    served = probabilities
  else:
    logit = keras.layers.Dense(
      1,
      dtype="float32",
      kernel_initializer=_initializer(hp, 3),
      kernel_regularizer=_regularizer(hp),
      name="deep_logit",
    )(h)
    probabilities = keras.layers.Activation("sigmoid", dtype="float32", name="deep_probabilities")(
      logit
    )
    wide = naive_bayes.NaiveBayesLogit(
      hp.embedding_input_dim, hp.bigram_buckets, name=NAIVE_BAYES_LAYER
    )(tokens)
    both = keras.layers.Concatenate(dtype="float32", name=HALF_LOGITS_LAYER)([logit, wide])
    # Not trained by gradient: fitted on eval after both halves (models.stacking).
    stacked = keras.layers.Dense(
      1,
      dtype="float32",
      trainable=False,
      kernel_initializer=keras.initializers.Constant(0.5),
      bias_initializer="zeros",
      name=STACKING_LAYER,
    )(both)
    served = keras.layers.Activation("sigmoid", dtype="float32", name="probabilities")(stacked)
  weights = keras.layers.Activation("linear", dtype="float32", name="attention_weights")(weights)
  model = keras.Model(tokens, probabilities, name=hp.model)
  explain_model = keras.Model(tokens, [served, weights], name=f"{hp.model}_explain")
  return model, explain_model


def _build_recurrent(hp: HParams, bidirectional: bool) -> Models:
  tokens = _tokens_input()
  x = _lstm(hp, bidirectional)(_embedded_tokens(hp, tokens))
  x = layers.SelfAttention(units=hp.lstm_units, name="self_attention")(x)
  return _pool_and_classify(hp, tokens, x)


def build_lstm_attention(hp: HParams) -> Models:
  """The seeds' attention-LSTM (see the module docstring).

  Args:
    hp: hyperparameters (vocab_size, num_oov_buckets, max_length, embedding_dim,
      lstm_units, dense_units, attention, max_pooling, embedding_dropout, dropout, l2,
      seed).

  Returns:
    ``(model, explain_model)`` sharing weights; see the module docstring for shapes.
  """
  return _build_recurrent(hp, bidirectional=False)


def build_bilstm_attention(hp: HParams) -> Models:
  """``lstm_attention`` on a bidirectional LSTM (Schuster & Paliwal 1997): each step sees
  the review's left and right context. Args and returns as ``build_lstm_attention``."""
  return _build_recurrent(hp, bidirectional=True)


def build_multi_head(hp: HParams) -> Models:
  """A transformer encoder classifier (Vaswani et al. 2017; as keras-io's "Text
  classification with Transformer", with masking and attention pooling instead of
  average pooling).

  Args:
    hp: as ``build_lstm_attention``, plus num_heads (key_dim = embedding_dim / num_heads),
      ff_dim, num_layers and encoder_dropout (after the embedding and inside each block;
      ``embedding_dropout`` is not used here, ``dropout`` only in the head).

  Returns:
    ``(model, explain_model)``; see the module docstring.
  """
  tokens = _tokens_input()
  x = layers.TokenAndPositionEmbedding(
    hp.embedding_input_dim, hp.max_length, hp.embedding_dim, name="embedding"
  )(tokens)
  x = _add_bigrams(hp, tokens, x)
  x = keras.layers.Dropout(hp.encoder_dropout, seed=hp.seed, name="embedding_dropout")(x)
  for i in range(hp.num_layers):
    x = layers.TransformerEncoder(
      num_heads=hp.num_heads,
      key_dim=hp.embedding_dim // hp.num_heads,
      ff_dim=hp.ff_dim,
      dropout=hp.encoder_dropout,
      name=f"encoder_{i}",
    )(x)
  return _pool_and_classify(hp, tokens, x)


def naive_bayes_model(explain_model: keras.Model, hp: HParams) -> keras.Model:
  """The linear naive-Bayes model inside an ``nb_wide`` ``explain_model``, compiled on its
  own: ``tokens`` -> sigmoid of ``naive_bayes.NaiveBayesLogit``'s logit (float32 [batch,
  1]), sharing the layer (and so its weights) with ``explain_model``.

  Trained before the attention model, for ``hp.nb_epochs`` epochs with Adam at
  ``hp.learning_rate`` (constant; no weight decay: the few epochs are its regularization).
  Call inside the strategy scope that built ``explain_model``.

  Raises:
    ValueError: ``explain_model`` has no naive-Bayes layer (``hp.nb_wide`` was False).
  """
  try:
    wide = explain_model.get_layer(NAIVE_BAYES_LAYER)
  except ValueError as error:
    raise ValueError(
      f"{explain_model.name} has no {NAIVE_BAYES_LAYER!r} layer; build it with nb_wide=True"
    ) from error
  probabilities = keras.layers.Activation(
    "sigmoid", dtype="float32", name="naive_bayes_probabilities"
  )(wide.output)
  model = keras.Model(explain_model.inputs, probabilities, name="naive_bayes")
  model.compile(
    optimizer=keras.optimizers.Adam(hp.learning_rate),
    loss=keras.losses.BinaryCrossentropy(),
    metrics=[keras.metrics.BinaryAccuracy(name="accuracy")],
  )
  return model


def token_embedding_layer(model: keras.Model) -> keras.layers.Embedding:
  """The token embedding table of a model built here: the ``embedding`` layer, or inside
  ``multi_head``'s ``TokenAndPositionEmbedding`` its ``token`` table. Its one weight is
  float32 [hp.embedding_input_dim, hp.embedding_dim] (the Trainer sets it from the
  pretrained word2vec vectors, ``models.pretraining``)."""
  layer = model.get_layer("embedding")
  if isinstance(layer, layers.TokenAndPositionEmbedding):
    return layer.token_embedding
  return layer


BUILDERS: dict[str, Callable[[HParams], Models]] = {
  "lstm_attention": build_lstm_attention,
  "bilstm_attention": build_bilstm_attention,
  "multi_head": build_multi_head,
}


class LinearWarmup(keras.optimizers.schedules.LearningRateSchedule):
  """Linear learning-rate warmup (Goyal et al. 2017, "Accurate, Large Minibatch SGD"),
  then another schedule.

  Step ``s`` (0-based optimizer iterations) gets ``peak * (s + 1) / warmup_steps`` while
  ``s < warmup_steps`` and ``after(s - warmup_steps)`` from then on, so ``after`` starts
  its own step count where the warmup ends.

  Our own because Keras's only warmup is built into ``CosineDecay`` (``warmup_target``);
  this one also goes in front of the staircase ``ExponentialDecay`` and a constant rate.

  Args:
    peak: learning rate reached at the end of the warmup (float > 0).
    warmup_steps: steps of the warmup (int >= 1).
    after: the schedule (a LearningRateSchedule or a float) that follows.

  Raises:
    ValueError: if warmup_steps < 1.
  """

  def __init__(self, peak: float, warmup_steps: int, after, name: str = "linear_warmup"):
    super().__init__()
    if warmup_steps < 1:
      raise ValueError(f"warmup_steps must be >= 1, got {warmup_steps}")
    self.peak, self.warmup_steps, self.after, self.name = peak, int(warmup_steps), after, name

  def __call__(self, step):
    step = tf.cast(step, tf.float32)
    warmup = tf.cast(self.warmup_steps, tf.float32)
    after = self.after
    rest = after(step - warmup) if callable(after) else tf.constant(after, tf.float32)
    return tf.where(step < warmup, self.peak * (step + 1.0) / warmup, tf.cast(rest, tf.float32))

  def get_config(self):
    after = (
      keras.optimizers.schedules.serialize(self.after)
      if isinstance(self.after, keras.optimizers.schedules.LearningRateSchedule)
      else self.after
    )
    return {"peak": self.peak, "warmup_steps": self.warmup_steps, "after": after, "name": self.name}

  @classmethod
  def from_config(cls, config):
    config = dict(config)
    if isinstance(config["after"], dict):
      config["after"] = keras.optimizers.schedules.deserialize(config["after"])
    return cls(**config)


def learning_rate(hp: HParams, steps_per_epoch: int | None = None):
  """Adam's learning rate for ``hp`` over training steps (optimizer iterations).

  * ``lr_schedule="exponential"``: ``hp.learning_rate * hp.lr_decay ** epoch`` (staircase
    ExponentialDecay over ``steps_per_epoch`` steps); constant when ``hp.lr_decay`` is 1.
  * ``lr_schedule="cosine"``: ``CosineDecay`` from ``hp.learning_rate`` to 0 over the
    ``hp.epochs * steps_per_epoch`` steps less the warmup (Loshchilov & Hutter 2017).
  * ``hp.model_warmup_epochs`` > 0 (``warmup_epochs`` or the model's default) puts a
    ``LinearWarmup`` of ``round(warmup_epochs * steps_per_epoch)`` steps (at least 1) in
    front.

  Returns the float ``hp.learning_rate`` when ``steps_per_epoch`` is unknown (None or 0):
  every schedule is defined in epochs.

  Raises:
    ValueError: if the warmup takes all of ``hp.epochs`` under the cosine schedule.
  """
  if not steps_per_epoch:
    return hp.learning_rate
  warmup_epochs = hp.model_warmup_epochs
  warmup_steps = max(1, round(warmup_epochs * steps_per_epoch)) if warmup_epochs > 0 else 0
  if hp.lr_schedule == "cosine":
    decay_steps = hp.epochs * steps_per_epoch - warmup_steps
    if decay_steps < 1:
      raise ValueError(
        f"warmup_epochs {warmup_epochs} leaves no step of the "
        f"{hp.epochs} epoch(s) for the cosine decay"
      )
    schedule = keras.optimizers.schedules.CosineDecay(hp.learning_rate, decay_steps)
  elif hp.lr_decay == 1.0:
    schedule = hp.learning_rate
  else:
    schedule = keras.optimizers.schedules.ExponentialDecay(
      hp.learning_rate, decay_steps=steps_per_epoch, decay_rate=hp.lr_decay, staircase=True
    )
  return LinearWarmup(hp.learning_rate, warmup_steps, schedule) if warmup_steps else schedule


def build(hp: HParams, steps_per_epoch: int | None = None) -> Models:
  """Builds and compiles ``hp.model`` (Adam, or ``LazyAdam`` with ``hp.lazy_adam``; binary
  cross-entropy, accuracy and AUC).

  Call inside ``strategy.scope()`` for distributed training, and with the Keras
  mixed-precision policy already set when ``hp.mixed_precision`` (``models.strategy.
  precision_policy``): compile then wraps Adam in a LossScaleOptimizer under
  ``mixed_float16``. ``steps_per_epoch`` enables the per-epoch learning-rate decay (see
  ``learning_rate``).

  Raises:
    ValueError: if ``hp.model`` has no builder.
  """
  if hp.model not in BUILDERS:
    raise ValueError(f"unknown model {hp.model!r}; choose one of {', '.join(BUILDERS)}")
  keras.utils.set_random_seed(hp.seed)
  model, explain_model = BUILDERS[hp.model](hp)
  adam = optimizers.LazyAdam if hp.lazy_adam else keras.optimizers.Adam
  model.compile(
    optimizer=adam(learning_rate(hp, steps_per_epoch)),
    loss=keras.losses.BinaryCrossentropy(),
    metrics=[keras.metrics.BinaryAccuracy(name="accuracy"), keras.metrics.AUC(name="auc")],
  )
  return model, explain_model
