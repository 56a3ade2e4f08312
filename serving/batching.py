"""Server-side batching of concurrent requests, with TF Serving's batching parameters.

TF Serving's batching is C++ inside ``tensorflow_model_server``; no Python library gives
the same behaviour to a Python server, hence this module. It follows TF Serving's batching
guide (https://github.com/tensorflow/serving/blob/master/tensorflow_serving/batching/README.md):

* requests (tasks) join the open batch until it holds ``max_batch_size`` examples or
  ``batch_timeout_micros`` have passed since its first task;
* closed batches wait in a queue of at most ``max_enqueued_batches``; a task that would
  need a batch beyond that is refused with UNAVAILABLE, as TF Serving does;
* ``num_batch_threads`` threads run batches concurrently;
* a batch is padded (by repeating its first example) up to the next of
  ``allowed_batch_sizes``, and the padding is dropped from the outputs;
* a task larger than ``max_batch_size`` is INVALID_ARGUMENT unless
  ``enable_large_batch_splitting`` is set, in which case it runs as its own batches.

Tasks join one batch only when their non-batch dimensions and dtypes agree
(``pad_variable_length_inputs`` is not implemented: this project's signatures have no
variable-length inputs), so one odd request can never fail other requests' batch.
"""

import collections
import concurrent.futures
import dataclasses
import itertools
import threading
import time
from collections.abc import Callable, Mapping, Sequence

import grpc
import numpy as np

from serving import errors

RunFn = Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]


@dataclasses.dataclass(frozen=True)
class BatchingOptions:
  """TF Serving's ``BatchingParameters`` that this server implements.

  Attributes:
    max_batch_size: most examples in one batch.
    batch_timeout_s: seconds a batch waits for more tasks after its first one.
    max_enqueued_batches: closed batches that may wait for a thread.
    num_batch_threads: batches run concurrently.
    allowed_batch_sizes: increasing sizes to pad batches to; the last must equal
      ``max_batch_size`` (TF Serving's rule). Empty: no padding.
    enable_large_batch_splitting: run a task above ``max_batch_size`` in several batches
      instead of refusing it.

  Raises (constructor):
    ValueError: a value out of range or ``allowed_batch_sizes`` inconsistent.
  """

  max_batch_size: int = 32
  batch_timeout_s: float = 0.005
  max_enqueued_batches: int = 100
  num_batch_threads: int = 2
  allowed_batch_sizes: Sequence[int] = ()
  enable_large_batch_splitting: bool = False

  def __post_init__(self):
    if self.max_batch_size < 1:
      raise ValueError(f"max_batch_size must be >= 1, got {self.max_batch_size}")
    if self.batch_timeout_s < 0:
      raise ValueError(f"batch_timeout_micros must be >= 0, got {self.batch_timeout_s}")
    if self.max_enqueued_batches < 1 or self.num_batch_threads < 1:
      raise ValueError("max_enqueued_batches and num_batch_threads must be >= 1")
    sizes = list(self.allowed_batch_sizes)
    if sizes:
      if any(b <= a for a, b in itertools.pairwise(sizes)) or sizes[0] < 1:
        raise ValueError(f"allowed_batch_sizes must increase, got {sizes}")
      if sizes[-1] != self.max_batch_size:
        raise ValueError(
          f"the last allowed_batch_sizes entry ({sizes[-1]}) must equal "
          f"max_batch_size ({self.max_batch_size})"
        )

  @classmethod
  def from_proto(cls, params) -> "BatchingOptions":
    """From a ``tensorflow.serving.BatchingParameters`` message; unset fields keep TF
    Serving's defaults (max_batch_size 1000, timeout 0, 1000 enqueued batches)."""

    def wrapped(field, default):
      return getattr(params, field).value if params.HasField(field) else default

    return cls(
      max_batch_size=wrapped("max_batch_size", 1000),
      batch_timeout_s=wrapped("batch_timeout_micros", 0) / 1e6,
      max_enqueued_batches=wrapped("max_enqueued_batches", 1000),
      num_batch_threads=wrapped("num_batch_threads", 2),
      allowed_batch_sizes=tuple(params.allowed_batch_sizes),
      enable_large_batch_splitting=bool(wrapped("enable_large_batch_splitting", False)),
    )


class _Task:
  __slots__ = ("future", "inputs", "key", "size")

  def __init__(self, inputs: Mapping[str, np.ndarray], size: int, key):
    self.inputs = inputs
    self.size = size
    self.key = key
    self.future = concurrent.futures.Future()


def _task_key(inputs: Mapping[str, np.ndarray]):
  return tuple(sorted((k, v.dtype.str, v.shape[1:]) for k, v in inputs.items()))


def _batch_size(inputs: Mapping[str, np.ndarray]) -> int:
  sizes = {v.shape[0] for v in inputs.values() if v.ndim}
  if len(sizes) != 1 or any(v.ndim == 0 for v in inputs.values()):
    raise errors.invalid_argument(
      "batching needs every input to have the same leading (batch) dimension"
    )
  return sizes.pop()


class BatchScheduler:
  """Runs ``run_fn`` on batches merged from concurrent ``submit`` calls.

  ``run_fn`` takes and returns ``{name: array}`` whose leading dimension is the batch.
  """

  def __init__(self, run_fn: RunFn, options: BatchingOptions):
    self._run_fn = run_fn
    self._options = options
    self._cond = threading.Condition()
    self._open: list[_Task] = []
    self._open_size = 0
    self._open_since = 0.0
    self._ready = collections.deque()
    self._closed = False
    self._threads = [
      threading.Thread(target=self._loop, daemon=True, name=f"batch-{i}")
      for i in range(options.num_batch_threads)
    ]
    for thread in self._threads:
      thread.start()

  def submit(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Runs one request's inputs as part of a batch; blocks until its outputs are ready.

    Raises:
      ServingError: INVALID_ARGUMENT (task too large, inputs without a common batch
        dimension), UNAVAILABLE (queue full or scheduler closed), or the model's error.
    """
    size = _batch_size(inputs)
    limit = self._options.max_batch_size
    if size > limit:
      if not self._options.enable_large_batch_splitting:
        raise errors.invalid_argument(
          f"Task size {size} is larger than maximum input batch size {limit}"
        )
      parts = [
        self.submit({k: v[i : i + limit] for k, v in inputs.items()}) for i in range(0, size, limit)
      ]
      return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    task = _Task(inputs, size, _task_key(inputs))
    with self._cond:
      if self._closed:
        raise errors.ServingError(grpc.StatusCode.UNAVAILABLE, "the servable is being unloaded")
      if self._open and (self._open_size + size > limit or task.key != self._open[0].key):
        self._close_open_batch()
      if not self._open:
        if len(self._ready) >= self._options.max_enqueued_batches:
          raise errors.ServingError(
            grpc.StatusCode.UNAVAILABLE,
            "The batch scheduling queue to which this task was submitted is full",
          )
        self._open_since = time.monotonic()
      self._open.append(task)
      self._open_size += size
      if self._open_size >= limit or self._options.batch_timeout_s == 0:
        self._close_open_batch()
      self._cond.notify_all()
    return task.future.result()

  def _close_open_batch(self) -> None:
    if self._open:
      self._ready.append(self._open)
      self._open, self._open_size = [], 0

  def _next_batch(self) -> list[_Task] | None:
    with self._cond:
      while True:
        if self._ready:
          return self._ready.popleft()
        if self._open:
          remaining = self._open_since + self._options.batch_timeout_s - time.monotonic()
          if remaining <= 0 or self._closed:
            self._close_open_batch()
            continue
          self._cond.wait(remaining)
        elif self._closed:
          return None
        else:
          self._cond.wait()

  def _loop(self) -> None:
    while True:
      batch = self._next_batch()
      if batch is None:
        return
      self._run_batch(batch)

  def _padded_size(self, size: int) -> int:
    for allowed in self._options.allowed_batch_sizes:
      if allowed >= size:
        return allowed
    return size

  def _run_batch(self, batch: list[_Task]) -> None:
    total = sum(t.size for t in batch)
    padded = self._padded_size(total)
    try:
      merged = {}
      for key in batch[0].inputs:
        parts = [t.inputs[key] for t in batch]
        if padded > total:
          parts.append(np.repeat(parts[0][:1], padded - total, axis=0))
        merged[key] = np.concatenate(parts) if len(parts) > 1 else parts[0]
      outputs = self._run_fn(merged)
      for key, value in outputs.items():
        if value.ndim == 0 or value.shape[0] != padded:
          raise errors.ServingError(
            grpc.StatusCode.INTERNAL,
            f"output '{key}' has shape {list(value.shape)}; batching needs a leading "
            f"batch dimension of {padded}",
          )
    except Exception as e:  # every task of the batch gets the error
      for task in batch:
        task.future.set_exception(e)
      return
    start = 0
    for task in batch:
      task.future.set_result({k: v[start : start + task.size] for k, v in outputs.items()})
      start += task.size

  def close(self) -> None:
    """Runs what is queued, then stops the threads; later ``submit`` calls are refused."""
    with self._cond:
      self._closed = True
      self._close_open_batch()
      self._cond.notify_all()
    for thread in self._threads:
      if thread is not threading.current_thread():
        thread.join()
