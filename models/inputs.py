"""The Trainer's input pipeline: Transform's transformed Examples as tf.data datasets of
token ids and labels, batched (by review length, optionally) and sharded for
multi-worker training."""

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

# tfx.v1.components.DataAccessor, imported from its module: `from tfx import v1` also
# imports every TFX extension (Vertex AI's client library: ~9 s), which each training
# worker would pay for at startup.
from tfx.components.trainer.fn_args_utils import DataAccessor
from tfx_bsl.public import tfxio

from core import features


def count_records(file_patterns: list[str]) -> int:
  """Number of records in GZIP TFRecord files matching ``file_patterns`` (a fast pass that
  parses nothing)."""
  files = [f for pattern in file_patterns for f in tf.io.gfile.glob(pattern)]
  dataset = tf.data.TFRecordDataset(files, compression_type="GZIP")
  return int(dataset.reduce(tf.constant(0, tf.int64), lambda n, _: n + 1))


def count_files(file_patterns: list[str]) -> int:
  """Number of distinct files matching ``file_patterns``."""
  return len({f for pattern in file_patterns for f in tf.io.gfile.glob(pattern)})


def auto_shard_policy(num_files: int, num_workers: int) -> tf.data.experimental.AutoShardPolicy:
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


def bucket_by_length(
  dataset: tf.data.Dataset, batch_size: int, max_length: int, buckets: int
) -> tf.data.Dataset:
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

  def length(x, y):
    return tf.reduce_sum(tf.cast(x[features.TOKENS_KEY] > 0, tf.int32))

  dataset = dataset.bucket_by_sequence_length(
    length, bucket_boundaries=boundaries, bucket_batch_sizes=[batch_size] * (len(boundaries) + 1)
  )

  def cut(x, y):
    tokens = x[features.TOKENS_KEY]
    longest = tf.reduce_max(tf.reduce_sum(tf.cast(tokens > 0, tf.int32), axis=1))
    keep = tf.minimum(tf.maximum(-(-longest // width), 1) * width, max_length)
    return {features.TOKENS_KEY: tokens[:, :keep]}, y

  return dataset.map(cut, num_parallel_calls=tf.data.AUTOTUNE)


def make_dataset(
  file_patterns: list[str],
  data_accessor: DataAccessor,
  tf_transform_output: tft.TFTransformOutput,
  batch_size: int,
  shuffle: bool,
  repeat: bool,
  seed: int,
  drop_remainder: bool = False,
  shard_policy: tf.data.experimental.AutoShardPolicy | None = None,
  length_buckets: int = 0,
  max_length: int | None = None,
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
      batch_size=batch_size,
      label_key=features.LABEL_KEY,
      shuffle=shuffle,
      shuffle_seed=seed,
      num_epochs=None if repeat else 1,
      drop_final_batch=drop_remainder,
    ),
    tf_transform_output.transformed_metadata.schema,
  )
  dataset = dataset.map(
    lambda x, y: (
      {features.TOKENS_KEY: x[features.TOKENS_KEY]},
      tf.reshape(tf.cast(y, tf.float32), [-1, 1]),
    ),
    num_parallel_calls=tf.data.AUTOTUNE,
  )
  if length_buckets >= 2:
    dataset = bucket_by_length(dataset.unbatch(), batch_size, max_length, length_buckets)
  return _finish(dataset, shard_policy)


def make_mixed_dataset(
  groups: list[tuple[list[str], float]],
  data_accessor: DataAccessor,
  tf_transform_output: tft.TFTransformOutput,
  batch_size: int,
  seed: int,
  drop_remainder: bool = False,
  shard_policy: tf.data.experimental.AutoShardPolicy | None = None,
  length_buckets: int = 0,
  max_length: int | None = None,
  views: tuple[tf.data.Dataset, float] | None = None,
) -> tf.data.Dataset:
  """Endless shuffled training batches, as ``make_dataset``'s, whose reviews come from
  several groups of files: each review from group ``i`` with probability ``weight_i /
  sum(weights)`` (tf.data's ``sample_from_datasets``, seeded), for experience replay of
  older spans beside the newest one.

  The sampling is per review, and ONE batching stage (``bucket_by_length`` with
  ``length_buckets`` >= 2, else a plain batch) follows it, so
  every step's gradient mixes the groups, as experience replay's (Rolnick et al. 2019)
  does, where sampling whole batches of separately bucketed groups would alternate
  between them from step to step.

  Args:
    groups: ``(file_patterns, weight)`` pairs, weights > 0.
    views: ``(dataset, weight)``: an endless dataset of unbatched elements as the files'
      (``({"tokens": int64 [max_length]}, float32 [1])``, e.g. ``views_dataset``) sampled
      beside the groups with that weight, > 0.
    other arguments: as ``make_dataset``'s.

  Raises:
    ValueError: no group, or a weight <= 0.
  """
  weights = [weight for _, weight in groups] + ([views[1]] if views else [])
  if not groups or any(weight <= 0 for weight in weights):
    raise ValueError(f"need at least one group of files, each with a weight > 0: {groups}")
  parts = [
    make_dataset(
      patterns,
      data_accessor,
      tf_transform_output,
      batch_size,
      shuffle=True,
      repeat=True,
      seed=seed + i,
    ).unbatch()
    for i, (patterns, _) in enumerate(groups)
  ]
  if views:
    parts.append(views[0])
  dataset = tf.data.Dataset.sample_from_datasets(
    parts, weights=[float(weight) for weight in weights], seed=seed
  )
  if length_buckets >= 2:
    dataset = bucket_by_length(dataset, batch_size, max_length, length_buckets)
  else:
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
  return _finish(dataset, shard_policy)


def views_dataset(tokens: np.ndarray, labels: np.ndarray, max_length: int, seed: int):
  """An endless, shuffled dataset of training views (``models.counterfactuals``) shaped as
  ``make_dataset``'s unbatched elements.

  Args:
    tokens: int64 [views, width] token ids, width <= max_length, right-padded with 0.
    labels: [views] 0 or 1.
    max_length: the width the views are padded to.
    seed: the shuffle's seed.

  Returns:
    ``({"tokens": int64 [max_length]}, float32 [1])`` elements, repeated forever.

  Raises:
    ValueError: no views, or views wider than max_length.
  """
  tokens = np.asarray(tokens, np.int64)
  if not len(tokens) or tokens.shape[1] > max_length:
    raise ValueError(f"need at least one view of width <= {max_length}, got {tokens.shape}")
  padded = np.pad(tokens, [(0, 0), (0, max_length - tokens.shape[1])])
  dataset = tf.data.Dataset.from_tensor_slices(
    ({features.TOKENS_KEY: padded}, np.asarray(labels, np.float32).reshape(-1, 1))
  )
  return dataset.shuffle(len(padded), seed=seed, reshuffle_each_iteration=True).repeat()


def _finish(
  dataset: tf.data.Dataset, shard_policy: tf.data.experimental.AutoShardPolicy | None
) -> tf.data.Dataset:
  """Prefetches ``dataset``, turns tf.data's autotuning off (``without_autotuning``) and
  sets its auto-shard policy (None: tf.data's default)."""
  dataset = without_autotuning(dataset.prefetch(tf.data.AUTOTUNE))
  if shard_policy is None:
    return dataset
  options = tf.data.Options()
  options.experimental_distribute.auto_shard_policy = shard_policy
  return dataset.with_options(options)


def without_autotuning(dataset: tf.data.Dataset) -> tf.data.Dataset:
  """``dataset`` with tf.data's autotuning off (``tf.data.Options().autotune.enabled``).

  Without autotuning, ``AUTOTUNE`` parallelism is one call per core and the prefetch
  buffer grows as the consumer needs (tf.data's legacy autotuning). With it, the end of an
  iteration (deleting the iterator) can wait for autotuning's optimization thread with
  every core idle (py-spy: ``RootDataset::Iterator::~Iterator`` joining it), 2026-12-05 on
  the 2-core machine, one component alone on a full run's artifacts:

  * the Trainer's endless training dataset, as ``fit`` returned: 24-31 s in 3 of 6 runs
    with autotuning, in none of 4 without; its epochs took as long without it (60.6-63.1
    s and 54.7-57.1 s, against 60.4-64.9 s and 56.2-61.5 s in 4 runs with it);
  * the EmbeddingTrainer's read of the 50,000 unlabelled reviews through the
    TransformGraph (``models.pretraining``): 24.1-24.9 s in 17 of 41 runs with
    autotuning, 9-10 s of them after the last batch with the cores idle, 15.1-17.1 s in
    the others; 15.7-16.2 s in 6 of 6 runs without.
  """
  options = tf.data.Options()
  options.autotune.enabled = False
  return dataset.with_options(options)
