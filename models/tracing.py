"""AutoGraph leaves Keras's own code alone, as TensorFlow means it to.

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
s; with the rule 28.2 s, and the same metrics to the last digit. Our own layers' ``call``
methods are still converted (Keras converts a layer's ``call`` itself, whatever module the
caller is in), so Python control flow in them keeps working.

TensorFlow has no public API for a conversion rule (``tf.autograph.experimental.
do_not_convert`` marks one function), hence the internal module; the rule's effect is
only which functions AutoGraph rewrites, never what they compute.
"""


def leave_keras_unconverted() -> None:
  """Adds AutoGraph's ``DoNotConvert("tf_keras")`` rule, once per process (idempotent).

  Call before the first Keras model is traced (``models.trainer.run_fn`` does). Imports
  TensorFlow.
  """
  from tensorflow.python.autograph.core import config

  if any(rule.matches("tf_keras") for rule in config.CONVERSION_RULES):
    return
  config.CONVERSION_RULES = (*config.CONVERSION_RULES, config.DoNotConvert("tf_keras"))
