"""Less tracing: AutoGraph leaves Keras's own code alone, as TensorFlow means it to, and
ours, and a machine without GPU traces only the LSTM's CPU kernel while it trains.

When ``tf.function`` traces a Keras training step, AutoGraph rewrites every Python
function the step calls into graph code, except those of modules its conversion rules
exempt (``tensorflow.python.autograph.core.config.CONVERSION_RULES``). TensorFlow 2.16's
rules exempt ``keras``, Keras 2's package name in earlier releases, but not ``tf_keras``,
the name Keras 2 has now (``TF_USE_LEGACY_KERAS=1``, which tf.Transform 1.16 needs). So
every trace converts thousands of tf_keras functions: the training step, metrics, the
optimizer, the functional model's graph walk. Newer TensorFlow sources list ``tf_keras``
beside ``keras`` there; this adds the same rule to 2.16.

Measured with cProfile on the Trainer of a tiny span run (887 reviews, 1 epoch, 28 steps;
2-core machine, idle): ``run_fn`` took 66.1 s, of which AutoGraph's transpiler took 40.9
s; with the rule 28.2 s, and the same metrics to the last digit.

Our own package (``models``) is exempt too: its graph code has no Python control flow on
tensors (``tf.where``, ``tf.while_loop`` instead), so converting it changed nothing but
cost the Trainer 0.82 s of one busy core, mostly our layers' ``call`` methods, which
Keras converts itself when it builds the model (AutoGraph's conversions counted on the
Trainer alone, 4,000 train reviews, 2-core machine). A layer of any other module is
still converted, so Python control flow on tensors keeps working there.

Our own ``tf.function``s (the SavedModel's signatures, the EmbeddingTrainer's ids of raw
reviews, the calibration's and stacking's model calls, the naive-Bayes counts) are traced
with ``autograph=False``: their control flow on tensors is explicit (``tf.while_loop``,
``tf.where``), so AutoGraph would only rewrite the code they call, which through the
TransformGraph's Keras layer is tf.Transform's and Keras's. Measured on the 2-core machine,
idle, on a full run's artifacts: the EmbeddingTrainer's first batch of raw reviews 0.57 s
against 4.16 s (one core busy meanwhile), the Trainer's export 2.97 and 2.79 s against 4.55
and 4.64 s (4,000 train reviews, same temperature), outputs unchanged (the tests compare
them). The package rule alone would not do for these: in a trace with AutoGraph on, Keras
still converts the TransformGraph layer's ``call``, which is tf.Transform's.

TensorFlow has no public API for a conversion rule (``tf.autograph.experimental.
do_not_convert`` marks one function), hence the internal module; the rule's effect is
only which functions AutoGraph rewrites, never what they compute.

Keras's ``LSTM`` traced inside a ``tf.function`` builds both its kernels, the CPU loop and
the cuDNN one behind a ``tf.cond`` on the mask, and their gradients, so that Grappler's
implementation selector can pick one per device when the graph runs
(``tf_keras/src/layers/rnn/lstm.py``, ``lstm_with_backend_selection``).
``cpu_kernel_lstms`` has a model's LSTMs trace only the CPU loop while no GPU could run the
other; see its docstring for what it measured.
"""

import contextlib
from collections.abc import Iterator

# Packages AutoGraph leaves alone: Keras 2's, and ours (module docstring).
UNCONVERTED_PACKAGES = ("tf_keras", __name__.split(".")[0])


def exempt_from_autograph() -> None:
  """Adds AutoGraph's ``DoNotConvert`` rule of each of ``UNCONVERTED_PACKAGES``, once per
  process (idempotent).

  Call before the first Keras model is built or traced (``models.trainer.run_fn`` does).
  Imports TensorFlow.
  """
  from tensorflow.python.autograph.core import config

  for package in UNCONVERTED_PACKAGES:
    if not any(rule.matches(package) for rule in config.CONVERSION_RULES):
      config.CONVERSION_RULES = (*config.CONVERSION_RULES, config.DoNotConvert(package))


@contextlib.contextmanager
def cpu_kernel_lstms(model, strategy) -> Iterator[int]:
  """Within the block, ``model``'s Keras LSTMs trace only their CPU kernel, when no GPU is
  visible and ``strategy`` is not a ``TPUStrategy``; yields how many LSTMs it switched.

  Keras decides per layer, when the layer is built, whether it may use the cuDNN kernel
  (``LSTM._could_use_gpu_kernel``; true for our LSTMs: tanh, sigmoid, no recurrent
  dropout) and then reads that flag each time the layer is traced. Without it the layer
  runs ``keras.backend.rnn`` over ``LSTMCell`` directly: the same step (the input and
  recurrent kernels, the bias, the gates in the same order), the same mask handling, and
  no cuDNN function, ``tf.cond`` or their gradients in the graph. TensorFlow offers no
  public switch for this (the selection is meant to stay in exported graphs), hence the
  private flag, with tf_keras pinned in ``requirements.lock``; it is set back on leaving
  the block, so functions traced afterwards (the SavedModel's signatures, which a GPU
  server may run) keep both kernels.

  Measured on the Trainer alone (8,000 train and 2,529 eval reviews, one epoch; 2-core
  machine, idle): fit 24.0 s against 26.0 s, calibration 2.5 s against 3.2 s, the same
  loss, metrics and temperature to the last digit.

  Args:
    model: a Keras model; its LSTMs are found among its submodules (inside
      ``Bidirectional`` too).
    strategy: the ``tf.distribute`` strategy the model was built under.
  """
  import tf_keras as keras

  from models.strategy import accelerator

  switched = []
  if accelerator(strategy) is None:
    switched = [
      layer
      for layer in model.submodules
      if isinstance(layer, keras.layers.LSTM) and layer._could_use_gpu_kernel
    ]
  for layer in switched:
    layer._could_use_gpu_kernel = False
  try:
    yield len(switched)
  finally:
    for layer in switched:
      layer._could_use_gpu_kernel = True
