"""AutoGraph's conversion rules with tf_keras exempt (models.tracing)."""

import tensorflow as tf
import tf_keras as keras
from tensorflow.python.autograph.core import config
from tensorflow.python.autograph.impl import conversion

from models import layers, tracing


def test_keras_is_left_unconverted_and_our_layers_are_not(monkeypatch):
  monkeypatch.setattr(config, "CONVERSION_RULES", config.CONVERSION_RULES)
  # TensorFlow 2.16's own rules convert tf_keras (the reason for the module).
  config.CONVERSION_RULES = tuple(r for r in config.CONVERSION_RULES if not r.matches("tf_keras"))
  assert not conversion.is_allowlisted(keras.layers.Dense.call)
  tracing.leave_keras_unconverted()
  rules = config.CONVERSION_RULES
  assert conversion.is_allowlisted(keras.layers.Dense.call)
  assert conversion.is_allowlisted(keras.Model.train_step)
  assert not conversion.is_allowlisted(layers.AttentionPooling.call)
  tracing.leave_keras_unconverted()
  assert rules == config.CONVERSION_RULES  # once per process


def test_a_layer_with_python_control_flow_still_traces(monkeypatch):
  monkeypatch.setattr(config, "CONVERSION_RULES", config.CONVERSION_RULES)
  tracing.leave_keras_unconverted()

  class Clip(keras.layers.Layer):
    def call(self, x):
      if tf.reduce_max(x) > 1.0:  # a tensor condition: needs AutoGraph
        return x / tf.reduce_max(x)
      return x

  model = keras.Sequential([keras.Input((3,)), Clip()])
  model.compile(loss="mse")
  model.fit(tf.constant([[2.0, 4.0, 1.0]]), tf.zeros((1, 3)), epochs=1, verbose=0)
  out = tf.function(model)(tf.constant([[2.0, 4.0, 1.0], [0.1, 0.2, 0.3]]))
  assert out.numpy().max() == 1.0
