"""Training speed as the benchmark and the Trainer report it: a Keras callback timing
epochs and steady-state steps, and the JSON summary it writes.

Keras's own logs give neither: ``History`` has no times and the TensorBoard callback's
profiler is per-batch tracing, not a throughput figure. Both the Trainer (``run_fn``) and
the plain-Keras reference of ``make bench-models`` use this callback, so their examples/s
are the same measurement.
"""

import json
import os
import time
from typing import Any

import tensorflow as tf
import tf_keras as keras

SUMMARY_FILE = "training_summary.json"


class ThroughputCallback(keras.callbacks.Callback):
  """Times every epoch and the steady-state training steps.

  Steady state excludes the first ``warmup_steps`` training steps of the run (tf.function
  tracing, tf.data start-up), and validation: the clock runs from the end of step
  ``warmup_steps`` to the end of each epoch's last training step, and restarts at the
  next epoch's first step.

  Args:
    global_batch_size: examples per training step (all replicas); the last, partial
      batch of an epoch is counted as full, so pass ``drop_remainder`` data or accept an
      overestimate of at most one batch per epoch.
    warmup_steps: steps left out of the steady-state figure.

  Attributes (after training): ``epoch_seconds`` (list of float, wall seconds of each
  epoch including validation), ``steady_steps`` and ``steady_seconds``.
  """

  def __init__(self, global_batch_size: int, warmup_steps: int = 5):
    super().__init__()
    self.global_batch_size = global_batch_size
    self.warmup_steps = warmup_steps
    self.epoch_seconds: list[float] = []
    self.steady_steps = 0
    self.steady_seconds = 0.0
    self._steps = 0
    self._epoch_start = 0.0
    self._clock: float | None = None

  def on_epoch_begin(self, epoch, logs=None):
    self._epoch_start = time.perf_counter()
    self._clock = None

  def on_train_batch_end(self, batch, logs=None):
    self._steps += 1
    now = time.perf_counter()
    if self._steps <= self.warmup_steps:
      return
    if self._clock is not None:
      self.steady_steps += 1
      self.steady_seconds += now - self._clock
    self._clock = now

  def on_test_begin(self, logs=None):
    self._clock = None  # validation time is not training time

  def on_epoch_end(self, epoch, logs=None):
    self.epoch_seconds.append(time.perf_counter() - self._epoch_start)

  @property
  def examples_per_second(self) -> float | None:
    """Steady-state training examples/s, or None before any steady step."""
    if not self.steady_steps or self.steady_seconds <= 0:
      return None
    return self.steady_steps * self.global_batch_size / self.steady_seconds

  def summary(self, history: dict[str, list[float]] | None = None, **extra: Any) -> dict[str, Any]:
    """The JSON-able summary: epochs, seconds_per_epoch (list), mean_seconds_per_epoch,
    examples_per_second (steady state), global_batch_size, the Keras ``history`` and any
    ``extra`` fields."""
    epochs = len(self.epoch_seconds)
    return {
      "epochs": epochs,
      "seconds_per_epoch": [round(s, 3) for s in self.epoch_seconds],
      "mean_seconds_per_epoch": (round(sum(self.epoch_seconds) / epochs, 3) if epochs else None),
      "examples_per_second": (
        round(self.examples_per_second, 2) if self.examples_per_second else None
      ),
      "steady_steps": self.steady_steps,
      "global_batch_size": self.global_batch_size,
      "history": {k: [float(v) for v in values] for k, values in (history or {}).items()},
      **extra,
    }


def write_summary(directory: str, summary: dict[str, Any], file_name: str = SUMMARY_FILE) -> str:
  """Writes ``summary`` as ``directory/file_name`` (``training_summary.json`` unless told;
  temp file + rename, so a reader never sees half a file) and returns its path."""
  tf.io.gfile.makedirs(directory)
  path = os.path.join(directory, file_name)
  temp = path + ".tmp"
  with tf.io.gfile.GFile(temp, "w") as f:
    f.write(json.dumps(summary, indent=2, sort_keys=True))
  tf.io.gfile.rename(temp, path, overwrite=True)
  return path


def read_summary(directory: str, file_name: str = SUMMARY_FILE) -> dict[str, Any]:
  """Reads ``directory/file_name`` (``training_summary.json`` unless told).

  Raises:
    FileNotFoundError: no summary there.
  """
  path = os.path.join(directory, file_name)
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(f"no {file_name} in {directory}")
  with tf.io.gfile.GFile(path) as f:
    return json.loads(f.read())
