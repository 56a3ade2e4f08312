"""Chooses the tf.distribute strategy the model is built and trained under."""

import json
import os

import tensorflow as tf
from absl import logging


class StrategyUnavailableError(RuntimeError):
  """The requested strategy cannot run here (no TPU, no GPU, no TF_CONFIG, ...)."""


def _tpu_configured() -> bool:
  # Constructing TPUClusterResolver() with no hint queries the GCE metadata server, which
  # hangs off Google Cloud; only try when a TPU is named or a TPU VM's devices exist.
  return bool(os.environ.get("TPU_NAME")) or os.path.exists("/dev/accel0") or bool(
      os.environ.get("COLAB_TPU_ADDR"))


def _tpu_strategy() -> tf.distribute.Strategy:
  if not _tpu_configured():
    raise StrategyUnavailableError(
        "no TPU configured: set TPU_NAME to your TPU's name or grpc:// address, or run on a "
        "Cloud TPU VM; use --strategy auto to fall back to GPU/CPU")
  try:
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
        tpu=os.environ.get("TPU_NAME", "local" if os.path.exists("/dev/accel0") else None))
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
  except (ValueError, RuntimeError, tf.errors.OpError) as e:
    raise StrategyUnavailableError(
        f"no TPU reachable ({e}); set TPU_NAME to your TPU's name or address, run on a "
        "TPU VM, or use --strategy auto") from e
  return tf.distribute.TPUStrategy(resolver)


def make_strategy(name: str = "auto") -> tf.distribute.Strategy:
  """Returns the strategy named ``name``.

  * ``auto``: TPUStrategy when a TPU is configured and resolves, MirroredStrategy for >1
    GPU, OneDeviceStrategy on the one GPU, else TensorFlow's default (CPU) strategy.
  * ``default``: ``tf.distribute.get_strategy()`` (no distribution).
  * ``one_device``: the first GPU, else the CPU.
  * ``mirrored``: MirroredStrategy over all local GPUs (or the CPU when there are none).
  * ``multi_worker``: MultiWorkerMirroredStrategy configured by ``$TF_CONFIG``.
  * ``tpu``: TPUStrategy via TPUClusterResolver (``$TPU_NAME`` or a TPU VM).

  Raises:
    StrategyUnavailableError: ``tpu`` without a reachable TPU, ``multi_worker`` without
      ``TF_CONFIG``.
    ValueError: an unknown name.
  """
  gpus = tf.config.list_logical_devices("GPU")
  if name == "auto":
    if _tpu_configured():
      try:
        return _tpu_strategy()
      except StrategyUnavailableError as e:
        logging.warning("TPU configured but not usable, falling back: %s", e)
    if len(gpus) > 1:
      return tf.distribute.MirroredStrategy()
    if len(gpus) == 1:
      return tf.distribute.OneDeviceStrategy(gpus[0].name)
    return tf.distribute.get_strategy()
  if name == "default":
    return tf.distribute.get_strategy()
  if name == "one_device":
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
  if name == "mirrored":
    return tf.distribute.MirroredStrategy()
  if name == "multi_worker":
    try:
      cluster = json.loads(os.environ["TF_CONFIG"])["cluster"]
    except (KeyError, ValueError) as e:
      raise StrategyUnavailableError(
          "--strategy multi_worker needs TF_CONFIG with a 'cluster' spec (see "
          "https://www.tensorflow.org/guide/distributed_training#TF_CONFIG)") from e
    logging.info("MultiWorkerMirroredStrategy over cluster %s", cluster)
    return tf.distribute.MultiWorkerMirroredStrategy()
  if name == "tpu":
    return _tpu_strategy()
  raise ValueError(f"unknown strategy {name!r}")
