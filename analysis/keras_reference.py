"""The seeds' plain Keras training, without TFX: the benchmark's throughput reference.

A user without TFX would train the same model this way: TFDS's ``imdb_reviews`` as a
tf.data pipeline, Keras's ``TextVectorization`` adapted on the train texts (vocabulary
``vocab_size``, sequences cut or padded to ``max_length``) applied on the fly, and
``model.fit``. The model is the pipeline's own builder, so both runs do the same model
arithmetic; ``make bench-models`` compares the Trainer's steady-state training examples/s
with this one's (``models.throughput.ThroughputCallback`` measures both).
"""

from typing import Any

import tensorflow as tf
import tf_keras as keras

from components.imdb_example_gen import prepare_builder
from models import model as model_lib
from models import throughput
from models.hparams import HParams


def train_reference(
  hp: HParams,
  split: str = "train[:90%]",
  tfds_data_dir: str | None = None,
  steps: int | None = 100,
) -> dict[str, Any]:
  """Trains ``hp.model`` with plain Keras for one epoch (or ``steps`` steps) on ``split``.

  Args:
    hp: the model's hyperparameters (model, vocab_size, max_length, batch_size, seed, ...).
    split: TFDS split spec of ``imdb_reviews`` to train on (default: as many reviews as
      the pipeline's train split, 90% of ``train``).
    tfds_data_dir: TFDS data dir; None = ``$TFDS_DATA_DIR`` or TFDS's default.
    steps: training steps to time (None = one whole epoch); the first 5 are warm-up.

  Returns:
    ``ThroughputCallback.summary`` plus ``model``, ``parameters``, ``split``,
    ``vectorize_seconds`` (adapting TextVectorization, wall seconds).

  Raises:
    components.imdb_example_gen.DatasetNotFoundError: the dataset is not prepared under
      the data dir.
    ValueError: a bad split spec.
  """
  reviews = prepare_builder(tfds_data_dir, split, split).as_dataset(split=split, as_supervised=True)
  vectorize = keras.layers.TextVectorization(
    max_tokens=hp.vocab_size + 2,  # + padding (0) and OOV (1)
    output_sequence_length=hp.max_length,
    name="text_vectorization",
  )
  adapt_start = tf.timestamp()
  vectorize.adapt(reviews.map(lambda text, _: text).batch(1024))
  vectorize_seconds = float(tf.timestamp() - adapt_start)
  train = (
    reviews.shuffle(25_000, seed=hp.seed)
    .batch(hp.per_replica_batch_size, drop_remainder=True)
    .map(
      lambda text, label: (
        {"tokens": tf.cast(vectorize(text), tf.int64)},
        tf.reshape(tf.cast(label, tf.float32), [-1, 1]),
      ),
      num_parallel_calls=tf.data.AUTOTUNE,
    )
    .prefetch(tf.data.AUTOTUNE)
  )
  if steps:
    train = train.take(steps)
  model, _ = model_lib.build(hp)
  speed = throughput.ThroughputCallback(hp.per_replica_batch_size)
  history = model.fit(train, epochs=1, callbacks=[speed], verbose=2)
  return speed.summary(
    history.history,
    model=hp.model,
    parameters=model.count_params(),
    split=split,
    vectorize_seconds=round(vectorize_seconds, 2),
  )
