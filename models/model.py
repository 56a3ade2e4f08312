"""Keras model builders. Each returns the training model and its explanation twin.

The training model maps ``tokens`` (int64 [batch, max_length], 0 = padding) to the
probability of a positive review (float32 [batch, 1]). The explanation model shares every
layer and additionally returns the per-token attention weights (float32
[batch, max_length], zero on padding), which ``predict_text`` exports.
"""

from typing import Callable, Dict, Optional, Tuple

import tf_keras as keras

from models import features
from models import layers
from models.hparams import HParams


def build_lstm_attention(hp: HParams) -> Tuple[keras.Model, keras.Model]:
  """The seeds' attention-LSTM.

  Embedding -> SpatialDropout1D -> LSTM(return_sequences) -> masked self-attention ->
  attention pooling (optionally concatenated with a masked max pool) -> Dense -> Dropout
  -> sigmoid.

  Args:
    hp: hyperparameters (vocab_size, num_oov_buckets, max_length, embedding_dim,
      lstm_units, dense_units, embedding_dropout, dropout, seed).

  Returns:
    ``(model, explain_model)`` sharing weights; see the module docstring for shapes.
  """
  init = lambda offset: keras.initializers.GlorotUniform(seed=hp.seed + offset)
  tokens = keras.Input(shape=(hp.max_length,), dtype="int64", name=features.TOKENS_KEY)
  x = keras.layers.Embedding(hp.embedding_input_dim, hp.embedding_dim, mask_zero=True,
                             name="embedding")(tokens)
  x = keras.layers.SpatialDropout1D(hp.embedding_dropout, seed=hp.seed,
                                    name="embedding_dropout")(x)
  x = keras.layers.LSTM(hp.lstm_units, return_sequences=True, kernel_initializer=init(1),
                        name="lstm")(x)
  x = layers.SelfAttention(units=hp.lstm_units, name="self_attention")(x)
  context, weights = layers.AttentionPooling(units=hp.lstm_units, name="attention_pooling")(x)
  if hp.max_pooling:
    pooled = layers.MaskedGlobalMaxPooling1D(name="max_pooling")(x)
    context = keras.layers.Concatenate(name="pooled")([context, pooled])
  h = keras.layers.Dense(hp.dense_units, activation="relu", kernel_initializer=init(2),
                         name="dense")(context)
  h = keras.layers.Dropout(hp.dropout, seed=hp.seed, name="dropout")(h)
  probabilities = keras.layers.Dense(1, activation="sigmoid", dtype="float32",
                                     kernel_initializer=init(3), name="probabilities")(h)
  model = keras.Model(tokens, probabilities, name=hp.model)
  explain_model = keras.Model(tokens, [probabilities, weights], name=f"{hp.model}_explain")
  return model, explain_model


BUILDERS: Dict[str, Callable[[HParams], Tuple[keras.Model, keras.Model]]] = {
    "lstm_attention": build_lstm_attention,
}


def learning_rate(hp: HParams, steps_per_epoch: Optional[int] = None):
  """Adam's learning rate: ``hp.learning_rate * hp.lr_decay ** epoch`` (staircase
  ExponentialDecay over ``steps_per_epoch`` steps), or constant when ``steps_per_epoch``
  is unknown or ``hp.lr_decay`` is 1."""
  if not steps_per_epoch or hp.lr_decay == 1.0:
    return hp.learning_rate
  return keras.optimizers.schedules.ExponentialDecay(
      hp.learning_rate, decay_steps=steps_per_epoch, decay_rate=hp.lr_decay, staircase=True)


def build(hp: HParams, steps_per_epoch: Optional[int] = None
          ) -> Tuple[keras.Model, keras.Model]:
  """Builds and compiles ``hp.model`` (Adam, binary cross-entropy, accuracy and AUC).

  Call inside ``strategy.scope()`` for distributed training. ``steps_per_epoch`` enables
  the per-epoch learning-rate decay (see ``learning_rate``).

  Raises:
    ValueError: if ``hp.model`` has no builder.
  """
  if hp.model not in BUILDERS:
    raise ValueError(f"unknown model {hp.model!r}; choose one of {', '.join(BUILDERS)}")
  keras.utils.set_random_seed(hp.seed)
  model, explain_model = BUILDERS[hp.model](hp)
  model.compile(
      optimizer=keras.optimizers.Adam(learning_rate(hp, steps_per_epoch)),
      loss=keras.losses.BinaryCrossentropy(),
      metrics=[keras.metrics.BinaryAccuracy(name="accuracy"), keras.metrics.AUC(name="auc")])
  return model, explain_model
