"""One loaded model version (a servable, in TF Serving's terms) and request validation.

Validation follows what TF Serving answers for the same requests
(``tensorflow_serving/servables/tensorflow/predict_util.cc`` and ``classifier.cc``):
an unknown signature is FAILED_PRECONDITION; missing or extra input keys, a wrong dtype, a
wrong rank or a malformed TensorProto are INVALID_ARGUMENT, each naming the input.
"""

import contextlib
import gc
import os
import threading
from collections.abc import Mapping

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow.python.tools import saved_model_utils

from serving import errors


class RuntimeLock:
  """A readers-writer lock around TensorFlow's process-wide eager runtime.

  Running restored functions (shared) while ``tf.saved_model.load`` registers a new
  version's functions, or while an unloaded version's functions are freed (exclusive),
  crashed the process (a segfault seen in this project's version-switch tests). TF Serving
  does the same work in C++; in Python the safe order is: loads and frees wait for running
  calls, and calls wait while a load or free is under way (a pause of about a second for
  a load, no request dropped). Writers have priority so a load cannot starve.
  """

  def __init__(self):
    self._cond = threading.Condition()
    self._readers = 0
    self._writer = False
    self._writers_waiting = 0

  @contextlib.contextmanager
  def shared(self):
    with self._cond:
      while self._writer or self._writers_waiting:
        self._cond.wait()
      self._readers += 1
    try:
      yield
    finally:
      with self._cond:
        self._readers -= 1
        if self._readers == 0:
          self._cond.notify_all()

  @contextlib.contextmanager
  def exclusive(self):
    with self._cond:
      self._writers_waiting += 1
      while self._writer or self._readers:
        self._cond.wait()
      self._writers_waiting -= 1
      self._writer = True
    try:
      yield
    finally:
      with self._cond:
        self._writer = False
        self._cond.notify_all()


# TensorFlow's eager context is one per process, so its guard is too.
RUNTIME_LOCK = RuntimeLock()

DEFAULT_SIGNATURE = "serving_default"
CLASSIFY_METHOD_NAME = "tensorflow/serving/classify"
REGRESS_METHOD_NAME = "tensorflow/serving/regress"


def _shape_str(shape) -> str:
  return "[" + ",".join(str(d) for d in shape) + "]"


class Servable:
  """A SavedModel version loaded with ``tf.saved_model.load``.

  Attributes:
    name: the model name; version: the numeric version (int); path: its directory.
    signature_defs: SignatureDef protos from ``saved_model.pb`` (tag ``serve``), exactly
      what GetModelMetadata returns.

  Raises (constructor):
    OSError / ValueError / tf.errors.OpError: the directory does not hold a loadable
      SavedModel with the ``serve`` tag.
  """

  def __init__(self, name: str, version: int, path: str):
    self.name = name
    self.version = version
    self.path = path
    meta_graph = saved_model_utils.get_meta_graph_def(path, "serve")
    self.signature_defs: dict[str, meta_graph_pb2.SignatureDef] = dict(meta_graph.signature_def)
    with RUNTIME_LOCK.exclusive():
      self._loaded = tf.saved_model.load(path, tags=["serve"])
    self._functions = {
      key: self._loaded.signatures[key]
      for key in self.signature_defs
      if key in self._loaded.signatures
    }
    self._batchers = {}
    self._lock = threading.Lock()
    self._users = 0
    self._idle = threading.Condition(self._lock)

  def signature(self, signature_name: str) -> meta_graph_pb2.SignatureDef:
    """The SignatureDef, or FAILED_PRECONDITION naming the known ones (TF Serving's code)."""
    name = signature_name or DEFAULT_SIGNATURE
    if name not in self.signature_defs or name not in self._functions:
      raise errors.failed_precondition(
        f'Serving signature key "{name}" not found. The model {self.name} version '
        f"{self.version} has {sorted(self._functions)}."
      )
    return self.signature_defs[name]

  def validate_inputs(
    self, signature_name: str, inputs: Mapping[str, tensor_pb2.TensorProto]
  ) -> dict[str, np.ndarray]:
    """TensorProtos -> NumPy arrays, checked against the signature's inputs.

    Raises:
      ServingError: FAILED_PRECONDITION for an unknown signature; INVALID_ARGUMENT for
        missing/extra keys, wrong dtype, wrong rank or fixed dimension, malformed tensors,
        or inputs whose batch sizes differ.
    """
    signature = self.signature(signature_name)
    expected = set(signature.inputs)
    sent = set(inputs)
    if sent != expected:
      raise errors.invalid_argument(
        f"input size does not match signature: {len(sent)}!={len(expected)} "
        f"len({sorted(sent)}) != len({sorted(expected)}). Sent extra: "
        f"{sorted(sent - expected)}. Missing but required: {sorted(expected - sent)}."
      )
    arrays = {}
    for key, proto in inputs.items():
      info = signature.inputs[key]
      want = tf.dtypes.as_dtype(info.dtype)
      if proto.dtype != info.dtype:
        got = tf.dtypes.as_dtype(proto.dtype).name if proto.dtype else "DT_INVALID"
        raise errors.invalid_argument(
          f"input '{key}' of signature '{signature_name or DEFAULT_SIGNATURE}' expects "
          f"dtype {want.name} but got {got}"
        )
      try:
        array = tf.make_ndarray(proto)
      except Exception as e:  # malformed content: wrong byte count, bad shape
        raise errors.invalid_argument(f"input '{key}' is not a valid TensorProto: {e}") from e
      if not info.tensor_shape.unknown_rank:
        dims = [d.size for d in info.tensor_shape.dim]
        if array.ndim != len(dims) or any(d >= 0 and d != got for d, got in zip(dims, array.shape)):
          raise errors.invalid_argument(
            f"input '{key}' of signature '{signature_name or DEFAULT_SIGNATURE}' expects "
            f"shape {_shape_str(dims)} (-1 = any) but got {_shape_str(array.shape)}"
          )
      arrays[key] = array
    batch_sizes = {a.shape[0] for a in arrays.values() if a.ndim}
    if len(batch_sizes) > 1:
      raise errors.invalid_argument(f"inputs have different batch sizes {sorted(batch_sizes)}")
    return arrays

  def output_keys(self, signature_name: str, output_filter: list[str]) -> list[str]:
    """The outputs to return: all, or ``output_filter`` (each must be an output)."""
    signature = self.signature(signature_name)
    for key in output_filter:
      if key not in signature.outputs:
        raise errors.invalid_argument(
          f"output tensor alias not found in signature: {key} Outputs expected to be in "
          f"the set {sorted(signature.outputs)}."
        )
    return list(output_filter) or sorted(signature.outputs)

  def run(self, signature_name: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Runs a signature on validated inputs; returns every output as a NumPy array.

    Raises:
      ServingError: the model failed; the code is the TensorFlow error's code.
    """
    function = self._functions[signature_name or DEFAULT_SIGNATURE]
    with RUNTIME_LOCK.shared():
      try:
        outputs = function(**{k: tf.constant(v) for k, v in inputs.items()})
      except tf.errors.OpError as e:
        raise errors.from_tf_error(e) from e
      return {k: v.numpy() for k, v in outputs.items()}

  def batcher(self, signature_name: str, factory):
    """The batch scheduler of one signature of this version, created on first use by
    ``factory(run_fn)``."""
    with self._lock:
      if signature_name not in self._batchers:
        self._batchers[signature_name] = factory(lambda inputs: self.run(signature_name, inputs))
      return self._batchers[signature_name]

  def acquire(self) -> None:
    """Marks one request as using this version (``ModelManager`` calls it under its lock,
    so a version being unloaded is never handed out)."""
    with self._lock:
      self._users += 1

  def release(self) -> None:
    with self._lock:
      self._users -= 1
      if self._users == 0:
        self._idle.notify_all()

  def close(self) -> None:
    """Waits for the requests using this version, stops its batch schedulers (queued work
    finishes first), then frees its functions under the runtime's exclusive lock."""
    with self._lock:
      while self._users:
        self._idle.wait()
      batchers, self._batchers = list(self._batchers.values()), {}
    for batcher in batchers:
      batcher.close()
    with RUNTIME_LOCK.exclusive():
      self._functions = {}
      self._loaded = None
      gc.collect()


def version_dir_problem(path: str) -> str | None:
  """Why ``path`` is not (yet) a complete SavedModel directory, or None when it is.

  Complete means: ``saved_model.pb`` (or ``.pbtxt``) is present (TFX's Pusher copies it
  last, after variables and assets) and, when there is a ``variables/`` directory, its
  ``variables.index`` and every ``variables.data-NNNNN-of-MMMMM`` shard are present.
  A file still being written is caught by the caller comparing two listings.
  """
  if not any(
    os.path.isfile(os.path.join(path, name)) for name in ("saved_model.pb", "saved_model.pbtxt")
  ):
    return "no saved_model.pb yet"
  variables = os.path.join(path, "variables")
  if os.path.isdir(variables):
    names = os.listdir(variables)
    if "variables.index" not in names:
      return "variables/variables.index is missing"
    shards = [n for n in names if n.startswith("variables.data-")]
    if not shards:
      return "variables/ has no data shard"
    try:
      total = int(shards[0].rsplit("-of-", 1)[1])
    except (IndexError, ValueError):
      return f"unexpected shard name {shards[0]}"
    if len({n for n in shards if n.endswith(f"-of-{total:05d}")}) < total:
      return f"{len(shards)} of {total} variable shards present"
  return None


def dir_fingerprint(path: str):
  """(relative path, size in bytes, mtime in ns) of every file under ``path``, sorted."""
  entries = []
  for root, _, files in os.walk(path):
    for name in files:
      full = os.path.join(root, name)
      try:
        stat = os.stat(full)
      except FileNotFoundError:
        continue
      entries.append((os.path.relpath(full, path), stat.st_size, stat.st_mtime_ns))
  return tuple(sorted(entries))
