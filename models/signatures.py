"""The exported SavedModel: Transform graph + model + serving signatures.

Signatures (all run the model with ``training=False``; dropout stays in the graph):

* ``serving_default``: ``examples`` string [batch] of serialized tf.Example (only ``text``
  is read) -> ``probabilities`` float32 [batch], the probability of a positive review.
* ``predict_text``: ``text`` string [batch] of raw reviews -> ``probabilities`` float32
  [batch], ``label`` int64 [batch] (1 when probability >= 0.5), ``attention_weights``
  float32 [batch, max_length] (zero on padding, rows sum to 1 over the real tokens) and
  ``tokens`` string [batch, max_length], the cleaned words the weights align with ("" on
  padding).
* ``transform_features``: ``examples`` string [batch] of serialized raw tf.Example ->
  the transformed features, for TFMA's ``preprocessing_function_names``.
"""

from typing import Dict

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from models import features
from models import preprocessing
from models.hparams import HParams

DECISION_THRESHOLD = 0.5


def _as_raw_feature(values: tf.Tensor, spec) -> tf.Tensor:
  """Shapes a [batch] tensor the way Transform's raw feature spec expects it."""
  if isinstance(spec, tf.io.VarLenFeature):
    return tf.sparse.from_dense(tf.reshape(values, [-1, 1]))
  return tf.reshape(values, [-1] + list(spec.shape))


class ExportModule(tf.Module):
  """Holds the Keras models and the TransformFeaturesLayer so they are saved together."""

  def __init__(self, model: keras.Model, explain_model: keras.Model,
               tf_transform_output: tft.TFTransformOutput, hp: HParams):
    super().__init__()
    self.model = model
    self.explain_model = explain_model
    self.tft_layer = tf_transform_output.transform_features_layer()
    self._raw_spec = tf_transform_output.raw_feature_spec()
    self._max_length = hp.max_length
    self._head_tokens = hp.head_tokens

  def _transform_text(self, text: tf.Tensor) -> tf.Tensor:
    raw = {features.TEXT_KEY: _as_raw_feature(text, self._raw_spec[features.TEXT_KEY])}
    return self.tft_layer(raw)[features.TOKENS_KEY]

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
  def serve_examples(self, examples):
    raw = tf.io.parse_example(examples, {features.TEXT_KEY: self._raw_spec[features.TEXT_KEY]})
    tokens = self.tft_layer(raw)[features.TOKENS_KEY]
    probabilities = self.model(tokens, training=False)
    return {"probabilities": tf.reshape(probabilities, [-1])}

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
  def predict_text(self, text):
    token_ids = self._transform_text(text)
    probabilities, weights = self.explain_model(token_ids, training=False)
    probabilities = tf.reshape(probabilities, [-1])
    words = preprocessing.pad_or_truncate_strings(preprocessing.tokenize(text),
                                                  self._max_length, self._head_tokens)
    return {
        "probabilities": probabilities,
        "label": tf.cast(probabilities >= DECISION_THRESHOLD, tf.int64),
        "attention_weights": tf.cast(weights, tf.float32),
        "tokens": words,
    }

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
  def transform_features(self, examples):
    raw = tf.io.parse_example(examples, self._raw_spec)
    return self.tft_layer(raw)

  def signatures(self) -> Dict[str, tf.types.experimental.ConcreteFunction]:
    return {
        "serving_default": self.serve_examples.get_concrete_function(),
        "predict_text": self.predict_text.get_concrete_function(),
        "transform_features": self.transform_features.get_concrete_function(),
    }


def export_saved_model(model: keras.Model, explain_model: keras.Model,
                       tf_transform_output: tft.TFTransformOutput, hp: HParams,
                       export_dir: str) -> None:
  """Saves the model with the signatures above to ``export_dir`` (tf.saved_model.save)."""
  module = ExportModule(model, explain_model, tf_transform_output, hp)
  tf.saved_model.save(module, export_dir, signatures=module.signatures())
