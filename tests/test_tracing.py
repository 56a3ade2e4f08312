"""AutoGraph's conversion rules with tf_keras exempt (models.tracing)."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
import tiny_model
from tensorflow.python.autograph.core import config
from tensorflow.python.autograph.impl import api, conversion

from components.imdb_beam import to_tf_example
from core import features
from models import layers, pretraining, signatures, tracing
from models import model as model_lib


def test_keras_and_our_package_are_left_unconverted(monkeypatch):
  monkeypatch.setattr(config, "CONVERSION_RULES", config.CONVERSION_RULES)
  # TensorFlow 2.16's own rules convert tf_keras (the reason for the module) and ours.
  config.CONVERSION_RULES = tuple(
    r for r in config.CONVERSION_RULES if not any(map(r.matches, tracing.UNCONVERTED_PACKAGES))
  )
  assert not conversion.is_allowlisted(keras.layers.Dense.call)
  assert not conversion.is_allowlisted(layers.AttentionPooling.call)
  tracing.exempt_from_autograph()
  rules = config.CONVERSION_RULES
  assert conversion.is_allowlisted(keras.layers.Dense.call)
  assert conversion.is_allowlisted(keras.Model.train_step)
  assert conversion.is_allowlisted(layers.AttentionPooling.call)
  assert conversion.is_allowlisted(pretraining.token_id_sequences)
  assert not conversion.is_allowlisted(test_a_layer_with_python_control_flow_still_traces)
  tracing.exempt_from_autograph()
  assert rules == config.CONVERSION_RULES  # once per process


def test_a_layer_with_python_control_flow_still_traces(monkeypatch):
  """A layer outside the exempt packages (this test module's) is still converted."""
  monkeypatch.setattr(config, "CONVERSION_RULES", config.CONVERSION_RULES)
  tracing.exempt_from_autograph()

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


def _op_types(concrete_function) -> set[str]:
  graph_def = concrete_function.graph.as_graph_def()
  nodes = list(graph_def.node)
  for function in graph_def.library.function:
    nodes.extend(function.node_def)
  return {node.op for node in nodes}


def _masked_lstms() -> keras.Model:
  tokens = keras.Input((None,), dtype="int64")
  x = keras.layers.Embedding(20, 8, mask_zero=True)(tokens)
  x = keras.layers.LSTM(6, return_sequences=True)(x)
  x = keras.layers.Bidirectional(keras.layers.LSTM(5))(x)
  return keras.Model(tokens, keras.layers.Dense(1)(x))


def test_lstms_trace_only_their_cpu_kernel_inside_the_block():
  if tf.config.list_logical_devices("GPU"):
    pytest.skip("a GPU is visible: the LSTMs keep both kernels (the next test)")
  model = _masked_lstms()
  tokens = tf.constant([[3, 4, 5, 0], [7, 1, 0, 0], [2, 2, 2, 9]], tf.int64)

  def loss_and_grads():
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(model(tokens, training=True))
    return loss, tape.gradient(loss, model.trainable_variables)

  with tracing.cpu_kernel_lstms(model, tf.distribute.get_strategy()) as switched:
    cpu_only = tf.function(loss_and_grads).get_concrete_function()
  both = tf.function(loss_and_grads).get_concrete_function()

  # The LSTM, and Bidirectional's wrapped layer with its forward and backward copies.
  assert switched == 4
  assert "CudnnRNNV3" not in _op_types(cpu_only)
  assert "CudnnRNNV3" in _op_types(both)  # the flag is set back: the export keeps both
  (loss_a, grads_a), (loss_b, grads_b) = cpu_only(), both()
  assert abs(float(loss_a) - float(loss_b)) < 1e-6
  for a, b in zip(grads_a, grads_b, strict=True):
    np.testing.assert_allclose(tf.convert_to_tensor(a), tf.convert_to_tensor(b), atol=1e-6)


def test_the_flag_is_set_back_on_errors_and_left_alone_on_a_tpu_or_with_a_gpu(monkeypatch):
  model = _masked_lstms()
  lstms = [m for m in model.submodules if isinstance(m, keras.layers.LSTM)]
  try:
    with tracing.cpu_kernel_lstms(model, tf.distribute.get_strategy()):
      assert not any(lstm._could_use_gpu_kernel for lstm in lstms)
      raise RuntimeError("fit failed")
  except RuntimeError:
    pass
  assert all(lstm._could_use_gpu_kernel for lstm in lstms)

  class FakeTPUStrategy(tf.distribute.TPUStrategy):
    def __init__(self):  # no TPU to resolve here
      pass

  with tracing.cpu_kernel_lstms(model, FakeTPUStrategy()) as switched:
    assert switched == 0 and all(lstm._could_use_gpu_kernel for lstm in lstms)

  # A GPU could run the cuDNN kernel: nothing is switched.
  visible = tf.config.list_logical_devices
  monkeypatch.setattr(
    tf.config,
    "list_logical_devices",
    lambda kind=None: (
      [tf.config.LogicalDevice("/device:GPU:0", "GPU")] if kind == "GPU" else visible(kind)
    ),
  )
  with tracing.cpu_kernel_lstms(model, tf.distribute.get_strategy()) as switched:
    assert switched == 0 and all(lstm._could_use_gpu_kernel for lstm in lstms)


def test_the_export_and_the_raw_review_ids_trace_without_autograph(tmp_path, monkeypatch):
  """The signatures and the EmbeddingTrainer's raw-review function convert none of our,
  tf.Transform's or Keras's functions: with AutoGraph on, a trace through the
  TransformGraph's Keras layer rewrote them (``models.tracing``)."""
  tf_transform_output = tiny_model.analyze_reviews(str(tmp_path / "transform"))
  _, explain_model = model_lib.build(tiny_model.HP)
  converted = []
  convert = api._convert_actual

  def recording(entity, program_ctx):
    converted.append(getattr(entity, "__module__", None) or "")
    return convert(entity, program_ctx)

  monkeypatch.setattr(api, "_convert_actual", recording)
  export_dir = str(tmp_path / "model")
  signatures.export_saved_model(explain_model, tf_transform_output, tiny_model.HP, export_dir)
  path = str(tmp_path / "reviews.tfrecord.gz")
  with tf.io.TFRecordWriter(path, "GZIP") as writer:
    for review, label in tiny_model.REVIEWS:
      writer.write(to_tf_example(review, label).SerializeToString())
  ids = list(pretraining.token_id_sequences([path], tf_transform_output))
  watched = (*tracing.UNCONVERTED_PACKAGES, "tensorflow_transform")
  ours = [m for m in converted if m.split(".")[0] in watched]
  assert ours == []
  # TensorFlow's saver converts a wrapper of its own: the recording saw the export.
  assert converted
  expected = tiny_model.transform_reviews(tf_transform_output, tiny_model.REVIEWS)
  tokens = expected[features.TOKENS_KEY]
  assert [row.tolist() for row in ids] == [
    row[row != features.PADDING_ID].tolist() for row in tokens
  ]
  loaded = tf.saved_model.load(export_dir)
  text = tf.constant([review for review, _ in tiny_model.REVIEWS])
  assert loaded.signatures["predict_text"](text=text)["probabilities"].shape == [len(text)]
