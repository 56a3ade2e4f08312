"""The Trainer's ``run_fn``: reads transformed examples, trains under a tf.distribute
strategy, early-stops on ``eval``, writes TensorBoard logs, exports the SavedModel."""

import math
import sys
from typing import List

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from absl import logging
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

from models import features
from models import model as model_lib
from models import signatures
from models.hparams import HParams
from models.strategy import make_strategy


def count_records(file_patterns: List[str]) -> int:
  """Number of records in GZIP TFRecord files matching ``file_patterns`` (a fast pass that
  parses nothing)."""
  files = [f for pattern in file_patterns for f in tf.io.gfile.glob(pattern)]
  dataset = tf.data.TFRecordDataset(files, compression_type="GZIP")
  return int(dataset.reduce(tf.constant(0, tf.int64), lambda n, _: n + 1))


def make_dataset(file_patterns: List[str], data_accessor: tfx.components.DataAccessor,
                 tf_transform_output: tft.TFTransformOutput, batch_size: int,
                 shuffle: bool, repeat: bool, seed: int,
                 drop_remainder: bool = False) -> tf.data.Dataset:
  """Batches of (``{"tokens": int64 [batch, max_length]}``, float32 labels [batch, 1])."""
  dataset = data_accessor.tf_dataset_factory(
      file_patterns,
      tfxio.TensorFlowDatasetOptions(
          batch_size=batch_size, label_key=features.LABEL_KEY, shuffle=shuffle,
          shuffle_seed=seed, num_epochs=None if repeat else 1,
          drop_final_batch=drop_remainder),
      tf_transform_output.transformed_metadata.schema)
  return dataset.map(
      lambda x, y: ({features.TOKENS_KEY: x[features.TOKENS_KEY]},
                    tf.reshape(tf.cast(y, tf.float32), [-1, 1])),
      num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def run_fn(fn_args: tfx.components.FnArgs) -> None:
  """TFX Trainer entry point (``Trainer(run_fn="models.trainer.run_fn")``).

  Hyperparameters come from ``fn_args.custom_config`` (see ``HParams``). The global batch
  is ``hp.batch_size * strategy.num_replicas_in_sync``.

  Raises:
    ValueError: bad hyperparameters or an empty train split.
  """
  hp = HParams.from_custom_config(fn_args.custom_config)
  tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
  strategy = make_strategy(hp.strategy)
  replicas = strategy.num_replicas_in_sync
  global_batch = hp.batch_size * replicas
  train_examples = hp.train_examples or count_records(fn_args.train_files)
  if train_examples == 0:
    raise ValueError(f"no training examples in {fn_args.train_files}")
  steps_per_epoch = math.ceil(train_examples / global_batch)
  logging.info("Training %s on %d examples: %d replica(s) (%s), global batch %d, "
               "%d steps/epoch", hp.model, train_examples, replicas,
               type(strategy).__name__, global_batch, steps_per_epoch)

  is_tpu = isinstance(strategy, tf.distribute.TPUStrategy)
  train_ds = make_dataset(fn_args.train_files, fn_args.data_accessor, tf_transform_output,
                          global_batch, shuffle=True, repeat=True, seed=hp.seed,
                          drop_remainder=is_tpu)
  eval_ds = make_dataset(fn_args.eval_files, fn_args.data_accessor, tf_transform_output,
                         global_batch, shuffle=False, repeat=False, seed=hp.seed,
                         drop_remainder=is_tpu)
  with strategy.scope():
    model, explain_model = model_lib.build(hp, steps_per_epoch)

  callbacks = [
      keras.callbacks.EarlyStopping(monitor=hp.early_stopping_monitor,
                                    patience=hp.early_stopping_patience,
                                    restore_best_weights=True, verbose=1),
      keras.callbacks.TensorBoard(log_dir=fn_args.model_run_dir, update_freq="epoch"),
  ]
  model.fit(train_ds, epochs=hp.epochs, steps_per_epoch=steps_per_epoch,
            validation_data=eval_ds, callbacks=callbacks,
            verbose=1 if sys.stdout.isatty() else 2)
  signatures.export_saved_model(model, explain_model, tf_transform_output, hp,
                                fn_args.serving_model_dir)
