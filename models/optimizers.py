"""Adam with lazy (row-sparse) updates of embedding tables.

Why our own: Keras 2's Adam (``tf_keras.optimizers.Adam``) applies a sparse gradient (the
``tf.IndexedSlices`` of an ``Embedding``) by decaying both moment tables in full and
rewriting the whole variable, every step. With the default model's 2 ** 17-row bigram
table and 20,002-row token table (19.3 M floats), that is several passes over 77 MB per
step for a batch that touches at most 128 x 500 rows. TensorFlow Addons' ``LazyAdam``,
which updates only the touched rows, is end-of-life and not in the lock; Keras 3 has no
such mode.
"""

import tensorflow as tf
import tf_keras as keras


@keras.utils.register_keras_serializable(package="imdb_tfx")
class LazyAdam(keras.optimizers.Adam):
  """Adam (Kingma & Ba 2015) that applies a sparse gradient to the touched rows alone.

  Dense gradients get Keras's Adam unchanged. For a ``tf.IndexedSlices`` gradient ``g``
  with rows ``i`` (Keras sums duplicate rows before ``update_step``), only those rows of
  the first and second moments and of the variable change, by Adam's own formulas:
  ``m[i] = beta_1 m[i] + (1 - beta_1) g``, ``v[i] = beta_2 v[i] + (1 - beta_2) g**2``,
  ``var[i] -= lr sqrt(1 - beta_2**t) / (1 - beta_1**t) m[i] / (sqrt(v[i]) + epsilon)``.
  The other rows keep their moments and values, where Adam would decay the moments and
  keep moving the rows by them (the lazy update of TensorFlow Addons' ``LazyAdam`` and of
  PyTorch's ``SparseAdam``). A row touched at every step gets exactly Adam's update.

  Takes ``keras.optimizers.Adam``'s arguments.

  Raises:
    ValueError: ``amsgrad=True`` (its running maximum has no lazy form here).
  """

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    if self.amsgrad:
      raise ValueError("LazyAdam does not support amsgrad")

  def update_step(self, gradient, variable):
    """Applies ``gradient`` (float, the variable's shape, or ``tf.IndexedSlices`` of
    rows of it) to ``variable`` (see the class docstring)."""
    if not isinstance(gradient, tf.IndexedSlices):
      return super().update_step(gradient, variable)
    dtype = variable.dtype
    step = tf.cast(self.iterations + 1, dtype)
    beta_1 = tf.cast(self.beta_1, dtype)
    beta_2 = tf.cast(self.beta_2, dtype)
    alpha = (
      tf.cast(self.learning_rate, dtype)
      * tf.sqrt(1 - tf.pow(beta_2, step))
      / (1 - tf.pow(beta_1, step))
    )
    key = self._var_key(variable)
    m = self._momentums[self._index_dict[key]]
    v = self._velocities[self._index_dict[key]]
    rows, values = gradient.indices, tf.cast(gradient.values, dtype)
    m_rows = beta_1 * tf.gather(m, rows) + (1 - beta_1) * values
    v_rows = beta_2 * tf.gather(v, rows) + (1 - beta_2) * tf.square(values)
    m.scatter_update(tf.IndexedSlices(m_rows, rows))
    v.scatter_update(tf.IndexedSlices(v_rows, rows))
    variable.scatter_sub(tf.IndexedSlices(alpha * m_rows / (tf.sqrt(v_rows) + self.epsilon), rows))
