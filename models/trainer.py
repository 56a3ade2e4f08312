"""The Trainer's ``run_fn``: reads transformed examples, trains under a tf.distribute
strategy (and mixed-precision policy), early-stops on ``eval``, writes TensorBoard logs and
``training_summary.json`` (seconds per epoch, examples/s, history) to the ModelRun, and
exports the SavedModel."""

import math
import sys
import time
from typing import List, Optional

import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from absl import logging
# tfx.v1.components.DataAccessor and FnArgs, imported from their module: `from tfx import v1`
# also imports every TFX extension (Vertex AI's client library: ~9 s), which each training
# worker would pay for at startup.
from tfx.components.trainer.fn_args_utils import DataAccessor
from tfx.components.trainer.fn_args_utils import FnArgs
from tfx_bsl.public import tfxio

from models import features
from models import model as model_lib
from models import naive_bayes
from models import pretraining
from models import signatures
from models import stacking
from models import throughput
from models.hparams import HParams
from models.strategy import keras_precision_policy
from models.strategy import make_strategy
from models.strategy import precision_policy
from models.strategy import wait_for_workers
from models.strategy import worker_role
from models.strategy import worker_write_dir


def count_records(file_patterns: List[str]) -> int:
  """Number of records in GZIP TFRecord files matching ``file_patterns`` (a fast pass that
  parses nothing)."""
  files = [f for pattern in file_patterns for f in tf.io.gfile.glob(pattern)]
  dataset = tf.data.TFRecordDataset(files, compression_type="GZIP")
  return int(dataset.reduce(tf.constant(0, tf.int64), lambda n, _: n + 1))


def count_files(file_patterns: List[str]) -> int:
  """Number of distinct files matching ``file_patterns``."""
  return len({f for pattern in file_patterns for f in tf.io.gfile.glob(pattern)})


def auto_shard_policy(num_files: int, num_workers: int
                      ) -> tf.data.experimental.AutoShardPolicy:
  """How MultiWorkerMirroredStrategy splits a split of ``num_files`` files among
  ``num_workers`` workers.

  ``FILE`` (each worker reads its own files; what ``AUTO`` picks for a file-based
  dataset) when every worker can get at least one file, else ``DATA``: every worker reads
  all files and keeps its share of each global batch. ``AUTO`` would choose ``FILE`` for a
  split of fewer files than workers (Transform writes a small split as ONE file) and the
  workers' iterators fail with "Could not apply FILE based sharding: the dataset only has
  1 file(s), which is not enough for the required 2 shards/workers". ``DATA`` needs the
  same element order on every worker, which ``make_dataset`` gives: a seeded shuffle of a
  deterministic read.

  Raises:
    ValueError: ``num_workers`` < 1.
  """
  if num_workers < 1:
    raise ValueError(f"num_workers must be >= 1, got {num_workers}")
  if num_files >= num_workers:
    return tf.data.experimental.AutoShardPolicy.FILE
  return tf.data.experimental.AutoShardPolicy.DATA


def bucket_by_length(dataset: tf.data.Dataset, batch_size: int, max_length: int,
                     buckets: int) -> tf.data.Dataset:
  """Batches reviews of similar length together and cuts each batch to its longest
  review, rounded up to a multiple of ``ceil(max_length / buckets)`` (so at most
  ``buckets`` distinct widths, and as few retraces of the training step).

  A review's length is its count of non-padding ids (``preprocessing`` right-pads with
  0, and every real token, OOV included, is >= 1), so the cut removes padding only; with
  the model's mask the outputs per review are unchanged. Uses tf.data's
  ``bucket_by_sequence_length`` (Khomenko et al. 2016 measured the speed-up for RNN
  training; TensorFlow's NMT tutorial buckets the same way).

  Args:
    dataset: unbatched ``({"tokens": int64 [max_length]}, float32 label [1])`` elements.
    batch_size: examples per batch (a bucket's last batch of a finite dataset may be
      smaller).
    max_length: the tokens' width.
    buckets: number of length buckets, >= 2.

  Returns:
    batches ``({"tokens": int64 [batch, width]}, float32 [batch, 1])``, width <=
    max_length.
  """
  width = -(-max_length // buckets)
  boundaries = [width * i + 1 for i in range(1, buckets) if width * i < max_length]
  length = lambda x, y: tf.reduce_sum(tf.cast(x[features.TOKENS_KEY] > 0, tf.int32))
  dataset = dataset.bucket_by_sequence_length(
      length, bucket_boundaries=boundaries,
      bucket_batch_sizes=[batch_size] * (len(boundaries) + 1))

  def cut(x, y):
    tokens = x[features.TOKENS_KEY]
    longest = tf.reduce_max(tf.reduce_sum(tf.cast(tokens > 0, tf.int32), axis=1))
    keep = tf.minimum(tf.maximum(-(-longest // width), 1) * width, max_length)
    return {features.TOKENS_KEY: tokens[:, :keep]}, y

  return dataset.map(cut, num_parallel_calls=tf.data.AUTOTUNE)


def make_dataset(file_patterns: List[str], data_accessor: DataAccessor,
                 tf_transform_output: tft.TFTransformOutput, batch_size: int,
                 shuffle: bool, repeat: bool, seed: int,
                 drop_remainder: bool = False,
                 shard_policy: Optional[tf.data.experimental.AutoShardPolicy] = None,
                 length_buckets: int = 0, max_length: Optional[int] = None
                 ) -> tf.data.Dataset:
  """Batches of (``{"tokens": int64 [batch, max_length]}``, float32 labels [batch, 1]).

  ``shard_policy`` (multi-worker training only) is set as the dataset's
  ``experimental_distribute.auto_shard_policy``; None leaves tf.data's default (AUTO).
  With ``length_buckets`` >= 2 the batches are regrouped by review length and narrower
  (``bucket_by_length``; ``max_length`` is then required).
  """
  dataset = data_accessor.tf_dataset_factory(
      file_patterns,
      tfxio.TensorFlowDatasetOptions(
          batch_size=batch_size, label_key=features.LABEL_KEY, shuffle=shuffle,
          shuffle_seed=seed, num_epochs=None if repeat else 1,
          drop_final_batch=drop_remainder),
      tf_transform_output.transformed_metadata.schema)
  dataset = dataset.map(
      lambda x, y: ({features.TOKENS_KEY: x[features.TOKENS_KEY]},
                    tf.reshape(tf.cast(y, tf.float32), [-1, 1])),
      num_parallel_calls=tf.data.AUTOTUNE)
  if length_buckets >= 2:
    dataset = bucket_by_length(dataset.unbatch(), batch_size, max_length, length_buckets)
  dataset = dataset.prefetch(tf.data.AUTOTUNE)
  if shard_policy is not None:
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = shard_policy
    dataset = dataset.with_options(options)
  return dataset


# Reviews per batch of the naive-Bayes counting pass (memory: batch * 2 * max_length ids).
NAIVE_BAYES_BATCH = 1024


def set_naive_bayes_ratios(model: keras.Model, hp: HParams, train_ds: tf.data.Dataset
                           ) -> None:
  """Counts the naive-Bayes log-count ratios over ``train_ds`` (one pass, unshuffled:
  every worker gets the same ratios) and assigns them to ``model``'s
  ``naive_bayes.NaiveBayesLogit`` layer (``hp.nb_wide``).

  Raises:
    ValueError: a label other than 0 or 1 in ``train_ds``.
  """
  started = time.monotonic()
  ratios = naive_bayes.log_count_ratios(train_ds, hp.embedding_input_dim,
                                        hp.bigram_buckets)
  model.get_layer(model_lib.NAIVE_BAYES_LAYER).set_ratios(ratios)
  logging.info("Naive-Bayes log-count ratios of %d features (%d seen) in %.1f s",
               ratios.size, int((ratios != 0).sum()), time.monotonic() - started)


def train_naive_bayes(wide_model: keras.Model, hp: HParams, train_ds: tf.data.Dataset,
                      eval_ds: tf.data.Dataset, steps_per_epoch: int,
                      counting_ds: tf.data.Dataset) -> dict:
  """Sets the naive-Bayes ratios from ``counting_ds`` (``set_naive_bayes_ratios``) and
  trains ``wide_model`` (``models.model.naive_bayes_model``) for ``hp.nb_epochs`` epochs
  of ``steps_per_epoch`` steps on ``train_ds``, validating on ``eval_ds``.

  Returns:
    ``{"seconds": wall time of counting and training, "history": its Keras history}``.
  """
  started = time.monotonic()
  set_naive_bayes_ratios(wide_model, hp, counting_ds)
  history = wide_model.fit(train_ds, epochs=hp.nb_epochs, steps_per_epoch=steps_per_epoch,
                           validation_data=eval_ds, verbose=1 if sys.stdout.isatty() else 2)
  return {"seconds": round(time.monotonic() - started, 3),
          "history": {k: [float(v) for v in values]
                      for k, values in history.history.items()}}


def stack_halves(explain_model: keras.Model, eval_ds: tf.data.Dataset) -> dict:
  """Fits ``explain_model``'s stacking layer on the eval split (``models.stacking``) and
  sets it. Every worker of a multi-worker run calls it on its single-device copy with the
  whole (unsharded) eval split, so all export the same weights.

  Returns:
    the fit's fields (``StackingFit.as_dict``), for ``training_summary.json``.
  """
  started = time.monotonic()
  logits, labels = stacking.half_logits(explain_model, eval_ds)
  fit = stacking.fit_stacking(logits, labels)
  stacking.set_stacking(explain_model, fit)
  if not fit.fitted:
    logging.warning("The eval split's %d reviews have one class only: the served logit "
                    "stays the mean of the two halves'", fit.eval_examples)
  logging.info("Stacked ensemble on eval (%.1f s): %s", time.monotonic() - started,
               fit.as_dict())
  return fit.as_dict()


def set_pretrained_embeddings(model: keras.Model, hp: HParams, base_model_dir: str
                              ) -> dict:
  """Starts ``model``'s token embedding from the ``EmbeddingTrainer``'s word2vec vectors
  in ``base_model_dir`` (the Trainer's ``base_model``; ``models.pretraining``). Call
  inside the strategy scope that built ``model``.

  Returns:
    ``{"path": base_model_dir, "rows": table rows}`` for ``training_summary.json``.

  Raises:
    FileNotFoundError, ValueError: as ``pretraining.load_embeddings``.
  """
  matrix = pretraining.load_embeddings(base_model_dir, hp)
  model_lib.token_embedding_layer(model).set_weights([matrix])
  logging.info("Token embedding initialized from %s (%d x %d)", base_model_dir,
               *matrix.shape)
  return {"path": base_model_dir, "rows": int(matrix.shape[0])}


def single_device_copy(explain_model: keras.Model, hp: HParams) -> keras.Model:
  """The explanation model (the one exported; see ``models.model``) built afresh outside
  any strategy scope, holding ``explain_model``'s weights in plain variables. Its weights
  are a superset of the training model's (with ``nb_wide`` they include the naive-Bayes
  layer's).

  A multi-worker model's variables are MirroredVariables, which the traced serving
  signatures read on this worker's device (``/job:worker/task:N``): a SavedModel holding
  those ops loads nowhere outside that cluster ("Cannot assign a device for operation
  ... was explicitly assigned to /job:worker/task:0", tensorflow/tfx#2894), so neither
  TF Serving nor the Evaluator could use it. The copy exports as a single-device model.
  """
  _, explain_copy = model_lib.build(hp)
  explain_copy.set_weights(explain_model.get_weights())
  return explain_copy


def run_fn(fn_args: FnArgs) -> None:
  """TFX Trainer entry point (``Trainer(run_fn="models.trainer.run_fn")``).

  Hyperparameters come from ``fn_args.custom_config`` (see ``HParams``). The global batch
  is ``hp.per_replica_batch_size * strategy.num_replicas_in_sync``.

  With ``strategy="multi_worker"`` every worker of the cluster in its ``$TF_CONFIG`` runs
  this function with the same ``fn_args`` (TensorFlow's multi-worker Keras recipe): the
  datasets are sharded among the workers (``auto_shard_policy``); only the chief writes the
  TensorBoard logs to ``fn_args.model_run_dir`` and the SavedModel to
  ``fn_args.serving_model_dir``, the other workers run the same writes into temporary
  directories they remove (``strategy.worker_write_dir``); the model is exported
  from a single-device copy (``single_device_copy``); and no worker returns before all
  have exported (``strategy.wait_for_workers``). With any other strategy it trains and
  writes exactly as before.

  With a ``fn_args.base_model`` (the ``EmbeddingTrainer``'s Model, ``models.pretraining``)
  the token embedding starts from its word2vec vectors (``set_pretrained_embeddings``).

  With ``hp.nb_wide`` it first counts the naive-Bayes ratios and trains the linear
  naive-Bayes model alone (``train_naive_bayes``), then trains the attention model exactly
  as without it, fits the stacking of the two logits on eval (``stack_halves``) and exports
  the ensemble; ``training_summary.json`` then also holds the naive-Bayes model's history
  (``naive_bayes``) and the fit with the halves' eval accuracies (``stacking``).

  Raises:
    ValueError: bad hyperparameters or an empty train split.
    models.strategy.StrategyUnavailableError: the strategy, or mixed precision, cannot run
      here.
  """
  hp = HParams.from_custom_config(fn_args.custom_config)
  # Before anything runs TensorFlow: MultiWorkerMirroredStrategy must be created at
  # program startup (it configures the collective ops).
  strategy = make_strategy(hp.strategy)
  role = worker_role(strategy)
  policy = precision_policy(strategy, hp.mixed_precision)
  tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
  replicas = strategy.num_replicas_in_sync
  global_batch = hp.per_replica_batch_size * replicas
  train_examples = hp.train_examples or count_records(fn_args.train_files)
  if train_examples == 0:
    raise ValueError(f"no training examples in {fn_args.train_files}")
  steps_per_epoch = math.ceil(train_examples / global_batch)
  logging.info("Training %s on %d examples: %d replica(s) (%s), global batch %d, "
               "%d steps/epoch", hp.model, train_examples, replicas,
               type(strategy).__name__, global_batch, steps_per_epoch)

  is_tpu = isinstance(strategy, tf.distribute.TPUStrategy)
  shard_policies = {"train": None, "eval": None}
  if role.num_workers > 1:
    for split, files in (("train", fn_args.train_files), ("eval", fn_args.eval_files)):
      shard_policies[split] = auto_shard_policy(count_files(files), role.num_workers)
    logging.info("Task %s %d of %d workers (chief: %s); tf.data auto-shard policy: %s",
                 role.task_type, role.task_id, role.num_workers, role.is_chief,
                 {k: v.name for k, v in shard_policies.items()})
  # Bucketing gives batches of varying width: not on TPU (static shapes), and not across
  # workers (DATA sharding would need every worker's buckets to fill identically).
  length_buckets = 0 if is_tpu or role.num_workers > 1 else hp.length_buckets
  def train_dataset() -> tf.data.Dataset:
    return make_dataset(fn_args.train_files, fn_args.data_accessor, tf_transform_output,
                        global_batch, shuffle=True, repeat=True, seed=hp.seed,
                        drop_remainder=is_tpu, shard_policy=shard_policies["train"],
                        length_buckets=length_buckets, max_length=hp.max_length)

  train_ds = train_dataset()
  eval_ds = make_dataset(fn_args.eval_files, fn_args.data_accessor, tf_transform_output,
                         global_batch, shuffle=False, repeat=False, seed=hp.seed,
                         drop_remainder=is_tpu, shard_policy=shard_policies["eval"],
                         length_buckets=length_buckets, max_length=hp.max_length)
  # Every worker trains (in lock-step) and exports, as TensorFlow's multi-worker guide
  # prescribes; only the chief's logs and model land in model_run_dir / serving_model_dir,
  # the others' in temporary directories.
  with keras_precision_policy(policy), \
       worker_write_dir(fn_args.model_run_dir, role) as log_dir, \
       worker_write_dir(fn_args.serving_model_dir, role) as export_dir:
    extra = {}
    with strategy.scope():
      model, explain_model = model_lib.build(hp, steps_per_epoch)
      if fn_args.base_model:
        extra["pretrained_embeddings"] = set_pretrained_embeddings(
            model, hp, fn_args.base_model)
      if hp.nb_wide:
        wide_model = model_lib.naive_bayes_model(explain_model, hp)
    if hp.nb_wide:
      # Its own train dataset: iterating train_ds would advance its shuffle's seed
      # generator, and the attention model would see another order than without nb_wide.
      extra["naive_bayes"] = train_naive_bayes(
          wide_model, hp, train_dataset(), eval_ds, steps_per_epoch,
          make_dataset(fn_args.train_files, fn_args.data_accessor, tf_transform_output,
                       NAIVE_BAYES_BATCH, shuffle=False, repeat=False, seed=hp.seed))
    speed = throughput.ThroughputCallback(global_batch)
    callbacks = [
        keras.callbacks.EarlyStopping(monitor=hp.early_stopping_monitor,
                                      patience=hp.early_stopping_patience,
                                      restore_best_weights=True, verbose=1),
        keras.callbacks.TensorBoard(log_dir=log_dir, update_freq="epoch"),
        speed,
    ]
    history = model.fit(train_ds, epochs=hp.epochs, steps_per_epoch=steps_per_epoch,
                        validation_data=eval_ds, callbacks=callbacks,
                        verbose=1 if sys.stdout.isatty() else 2)
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
      # Also with a one-task cluster: its variables live on /job:chief or /job:worker too.
      explain_model = single_device_copy(explain_model, hp)
    if hp.nb_wide:
      # With the attention model's best epoch restored. The copy of a multi-worker run
      # reads eval_ds outside the strategy: unsharded, every worker sees all of it.
      extra["stacking"] = stack_halves(explain_model, eval_ds)
    throughput.write_summary(log_dir, speed.summary(
        history.history, model=hp.model, attention=hp.attention,
        parameters=explain_model.count_params(), train_examples=train_examples,
        strategy=type(strategy).__name__, replicas=replicas,
        precision_policy=policy or "float32", **extra))
    signatures.export_saved_model(explain_model, tf_transform_output, hp, export_dir)
  wait_for_workers(strategy, role)
