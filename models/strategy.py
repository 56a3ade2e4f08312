"""Chooses the tf.distribute strategy the model is built and trained under, and, for
multi-worker training, which worker is the chief and where each worker writes.

Multi-worker training (``--strategy multi_worker``) follows TensorFlow's multi-worker Keras
guide (https://www.tensorflow.org/tutorials/distribute/multi_worker_with_keras): every
worker runs the same ``run_fn`` with its own ``$TF_CONFIG``; the chief (task type
``chief``, or ``worker`` 0 when the cluster has no chief) writes the model and the logs;
the other workers run the same writes into a temporary directory that is removed
afterwards (``worker_write_dir``). See deploy/multi_worker.md.
"""

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import tensorflow as tf
import tf_keras as keras
from absl import logging

# The task types that train under MultiWorkerMirroredStrategy. TensorFlow's TF_CONFIG also
# knows "ps" (ParameterServerStrategy) and "evaluator" (a side-car evaluation task); neither
# runs this Trainer.
TRAINING_TASK_TYPES = ("chief", "worker")


class StrategyUnavailableError(RuntimeError):
  """The requested strategy cannot run here (no TPU, no GPU, no TF_CONFIG, ...)."""


def _tpu_configured() -> bool:
  # Constructing TPUClusterResolver() with no hint queries the GCE metadata server, which
  # hangs off Google Cloud; only try when a TPU is named or a TPU VM's devices exist.
  return (
    bool(os.environ.get("TPU_NAME"))
    or os.path.exists("/dev/accel0")
    or bool(os.environ.get("COLAB_TPU_ADDR"))
  )


def _tpu_strategy() -> tf.distribute.Strategy:
  if not _tpu_configured():
    raise StrategyUnavailableError(
      "no TPU configured: set TPU_NAME to your TPU's name or grpc:// address, or run on a "
      "Cloud TPU VM; use --strategy auto to fall back to GPU/CPU"
    )
  try:
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
      tpu=os.environ.get("TPU_NAME", "local" if os.path.exists("/dev/accel0") else None)
    )
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
  except (ValueError, RuntimeError, tf.errors.OpError) as e:
    raise StrategyUnavailableError(
      f"no TPU reachable ({e}); set TPU_NAME to your TPU's name or address, run on a "
      "TPU VM, or use --strategy auto"
    ) from e
  return tf.distribute.TPUStrategy(resolver)


def _multi_worker_strategy() -> tf.distribute.MultiWorkerMirroredStrategy:
  """MultiWorkerMirroredStrategy over the cluster in ``$TF_CONFIG``, checked first."""
  try:
    config = json.loads(os.environ["TF_CONFIG"])
    cluster = config["cluster"]
    role = role_from_tf_config(config)
  except (KeyError, TypeError, ValueError) as e:
    raise StrategyUnavailableError(
      "--strategy multi_worker needs TF_CONFIG with a 'cluster' spec and this worker's "
      f"'task' ({type(e).__name__}: {e}; see "
      "https://www.tensorflow.org/guide/distributed_training#TF_CONFIG)"
    ) from e
  logging.info("MultiWorkerMirroredStrategy over cluster %s as %s", cluster, role)
  return tf.distribute.MultiWorkerMirroredStrategy()


def make_strategy(name: str = "auto") -> tf.distribute.Strategy:
  """Returns the strategy named ``name``.

  * ``auto``: TPUStrategy when a TPU is configured and resolves, MirroredStrategy for >1
    GPU, OneDeviceStrategy on the one GPU, else TensorFlow's default (CPU) strategy.
  * ``default``: ``tf.distribute.get_strategy()`` (no distribution).
  * ``one_device``: the first GPU, else the CPU.
  * ``mirrored``: MirroredStrategy over all local GPUs; with none, over all logical CPU
    devices (one unless ``tf.config.set_logical_device_configuration`` split the CPU).
  * ``multi_worker``: MultiWorkerMirroredStrategy configured by ``$TF_CONFIG``.
  * ``tpu``: TPUStrategy via TPUClusterResolver (``$TPU_NAME`` or a TPU VM).

  Raises:
    StrategyUnavailableError: ``tpu`` without a reachable TPU, ``multi_worker`` without
      ``TF_CONFIG`` or with one ``role_from_tf_config`` rejects.
    ValueError: an unknown name.
  """
  if name == "multi_worker":
    # First, before anything lists devices: MultiWorkerMirroredStrategy configures the
    # collective ops, which TensorFlow allows only before its runtime is initialized
    # (tf.config.list_logical_devices initializes it: "Collective ops must be configured
    # at program startup").
    return _multi_worker_strategy()
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
    if gpus:
      return tf.distribute.MirroredStrategy()
    return tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")])
  if name == "tpu":
    return _tpu_strategy()
  raise ValueError(f"unknown strategy {name!r}")


def accelerator(strategy: tf.distribute.Strategy) -> str | None:
  """What ``strategy``'s model computes on: ``"tpu"`` for a ``TPUStrategy``, ``"gpu"`` when
  a GPU is visible, None on CPUs alone."""
  if isinstance(strategy, tf.distribute.TPUStrategy):
    return "tpu"
  if tf.config.list_logical_devices("GPU"):
    return "gpu"
  return None


def precision_policy(strategy: tf.distribute.Strategy, mixed_precision: bool) -> str | None:
  """The Keras mixed-precision policy to train ``strategy``'s model under.

  Mixed precision (Micikevicius et al. 2018; TensorFlow's mixed precision guide,
  https://www.tensorflow.org/guide/mixed_precision) computes in 16 bits and keeps
  variables in float32: ``mixed_bfloat16`` on TPU, ``mixed_float16`` (with loss scaling,
  which Keras's compile adds) on GPU. The model builders keep the output layer in float32.

  Returns:
    None when ``mixed_precision`` is False (float32 throughout), else the policy name.

  Raises:
    StrategyUnavailableError: mixed precision asked for with neither a TPU strategy nor a
      visible GPU (float16 on CPU is slower than float32, not faster).
  """
  if not mixed_precision:
    return None
  kind = accelerator(strategy)
  if kind == "tpu":
    return "mixed_bfloat16"
  if kind == "gpu":
    return "mixed_float16"
  raise StrategyUnavailableError(
    "mixed_precision needs a GPU (mixed_float16) or a TPU (mixed_bfloat16); none is "
    "visible here: drop --hparam mixed_precision=true to train in float32"
  )


@contextlib.contextmanager
def keras_precision_policy(policy: str | None) -> Iterator[None]:
  """Sets Keras's global dtype policy to ``policy`` for the block (None: unchanged) and
  restores the previous one afterwards, also on error."""
  if policy is None:
    yield
    return
  previous = keras.mixed_precision.global_policy()
  keras.mixed_precision.set_global_policy(policy)
  try:
    yield
  finally:
    keras.mixed_precision.set_global_policy(previous)


@dataclasses.dataclass(frozen=True)
class WorkerRole:
  """This process's place in the training cluster.

  Attributes:
    task_type: ``"chief"`` or ``"worker"`` in a multi-worker cluster; None when training
      on one machine (no cluster).
    task_id: the task's index among the tasks of its type; None with no cluster.
    num_workers: training tasks in the cluster (chief + workers); 1 with no cluster.
    is_chief: whether this worker writes the model and the logs: the ``chief`` task,
      ``worker`` 0 when the cluster has no chief, or the only process.
  """

  task_type: str | None = None
  task_id: int | None = None
  num_workers: int = 1
  is_chief: bool = True


SINGLE_WORKER = WorkerRole()


def role_in_cluster(
  cluster: Mapping[str, Sequence[str]], task_type: str | None, task_id: int | None
) -> WorkerRole:
  """The role of task ``task_type``/``task_id`` in ``cluster``.

  Args:
    cluster: a TF_CONFIG ``cluster`` spec, job name -> list of ``host:port``, e.g.
      ``{"worker": ["w0:2222", "w1:2222"]}`` or ``{"chief": [...], "worker": [...]}``.
    task_type: this task's job name; None (or an empty ``cluster``) means no cluster.
    task_id: this task's index in ``cluster[task_type]``.

  Returns:
    ``SINGLE_WORKER`` for an empty cluster, else the ``WorkerRole`` (the chief is the
    ``chief`` task, or ``worker`` 0 when there is none, as in TensorFlow's
    ``multi_worker_util.is_chief``).

  Raises:
    ValueError: the cluster has a job other than ``chief``/``worker`` (``ps``,
      ``evaluator``: not MultiWorkerMirroredStrategy training), more than one chief, or
      no task type; the task type is not a training job of the cluster; the index is
      missing, not an integer, or out of range.
  """
  cluster = {job: list(tasks) for job, tasks in dict(cluster or {}).items()}
  if not cluster:
    return SINGLE_WORKER
  others = sorted(set(cluster) - set(TRAINING_TASK_TYPES))
  if others:
    raise ValueError(
      f"cluster has job(s) {others}; MultiWorkerMirroredStrategy trains on "
      f"{' and '.join(TRAINING_TASK_TYPES)} tasks only"
    )
  if len(cluster.get("chief", [])) > 1:
    raise ValueError(f"cluster has {len(cluster['chief'])} chief tasks; at most one")
  if task_type is None:
    raise ValueError(f"TF_CONFIG has a cluster {cluster} but no task type for this worker")
  if task_type not in cluster:
    raise ValueError(
      f"task type {task_type!r} is not a job of the cluster (jobs: {sorted(cluster)})"
    )
  if isinstance(task_id, bool) or not isinstance(task_id, int):
    raise ValueError(f"task index must be an integer, got {task_id!r}")
  if not 0 <= task_id < len(cluster[task_type]):
    raise ValueError(
      f"task index {task_id} out of range: the cluster has "
      f"{len(cluster[task_type])} {task_type!r} task(s)"
    )
  is_chief = task_type == "chief" or (
    task_type == "worker" and task_id == 0 and "chief" not in cluster
  )
  return WorkerRole(
    task_type=task_type,
    task_id=task_id,
    num_workers=sum(len(tasks) for tasks in cluster.values()),
    is_chief=is_chief,
  )


def role_from_tf_config(tf_config: str | Mapping[str, Any] | None) -> WorkerRole:
  """The role a ``TF_CONFIG`` value gives this process.

  Args:
    tf_config: the JSON text of ``$TF_CONFIG`` (or it parsed), e.g.
      ``{"cluster": {"worker": ["w0:2222", "w1:2222"]}, "task": {"type": "worker",
      "index": 1}}``. None, ``""`` or a config with no ``cluster`` means one machine.
      Other keys (Vertex AI adds ``job`` and ``environment``) are ignored.

  Returns:
    ``SINGLE_WORKER`` without a cluster, else ``role_in_cluster``'s answer.

  Raises:
    ValueError: the text is not a JSON object, or ``role_in_cluster`` rejects it.
  """
  if tf_config is None or (isinstance(tf_config, str) and not tf_config.strip()):
    return SINGLE_WORKER
  if isinstance(tf_config, str):
    try:
      tf_config = json.loads(tf_config)
    except ValueError as e:
      raise ValueError(f"TF_CONFIG is not valid JSON: {e}") from e
  if not isinstance(tf_config, Mapping):
    raise ValueError(f"TF_CONFIG must be a JSON object, got {tf_config!r}")
  task = tf_config.get("task") or {}
  if not isinstance(task, Mapping):
    raise ValueError(f"TF_CONFIG 'task' must be an object, got {task!r}")
  return role_in_cluster(tf_config.get("cluster") or {}, task.get("type"), task.get("index"))


def worker_role(strategy: tf.distribute.Strategy) -> WorkerRole:
  """This process's role under ``strategy``: from the cluster resolver (TF_CONFIG) of a
  ``MultiWorkerMirroredStrategy``; ``SINGLE_WORKER`` for every other strategy.

  Raises:
    ValueError: as ``role_in_cluster``.
  """
  resolver = getattr(strategy, "cluster_resolver", None)
  if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
    return SINGLE_WORKER
  return role_in_cluster(resolver.cluster_spec().as_dict(), resolver.task_type, resolver.task_id)


@contextlib.contextmanager
def worker_write_dir(path: str, role: WorkerRole) -> Iterator[str]:
  """Yields the directory this worker writes what belongs in ``path`` to.

  The chief (or the only worker) writes to ``path`` itself, which is yielded unchanged and
  never removed. Every other worker must still run the same writes, as TensorFlow's
  multi-worker guide prescribes (saving can read distributed variables with collective
  ops, which wait for every worker), but into a new local temporary directory
  (``tempfile.mkdtemp`` under ``$TMPDIR``, named ``workertemp_<type>_<index>_*``) that is
  deleted with everything in it when the block exits, on success or error.
  """
  if role.is_chief:
    yield path
    return
  temp_dir = tempfile.mkdtemp(prefix=f"workertemp_{role.task_type}_{role.task_id}_")
  logging.info(
    "Task %s %s is not the chief: writing %s into %s (removed afterwards)",
    role.task_type,
    role.task_id,
    path,
    temp_dir,
  )
  try:
    yield temp_dir
  finally:
    shutil.rmtree(temp_dir, ignore_errors=True)


def wait_for_workers(strategy: tf.distribute.Strategy, role: WorkerRole) -> None:
  """Blocks until every worker of a multi-worker cluster has called it (an all-reduce of
  one float32 scalar per replica); returns at once with a single worker.

  ``run_fn`` calls it after the export, so no worker returns before the chief's SavedModel
  is complete: TFX's Trainer executor checks, on every worker, that ``serving_model_dir``
  exists once ``run_fn`` returns, and on shared storage a non-chief could otherwise look
  before the chief has written anything.

  Raises:
    RuntimeError: the all-reduce did not count ``strategy.num_replicas_in_sync`` replicas.
    tf.errors.OpError: a worker failed or is unreachable (from the collective op).
  """
  if role.num_workers <= 1:
    return
  replicas = strategy.num_replicas_in_sync
  total = strategy.reduce(
    tf.distribute.ReduceOp.SUM, strategy.run(lambda: tf.constant(1.0)), axis=None
  )
  if round(float(total)) != replicas:
    raise RuntimeError(f"barrier counted {float(total)} replicas, expected {replicas}")
  logging.info("All %d workers (%d replicas) have finished", role.num_workers, replicas)
