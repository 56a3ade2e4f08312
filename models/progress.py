"""The Trainer's progress on standard output.

Why our own and not Keras's ``ProgbarLogger``: Keras's bar redraws one line with carriage
returns, and the pipeline's progress lines, written from another thread
(``pipeline.progress``), cut it in the middle. This callback draws its bar with tqdm, whose
``tqdm.write`` (which those lines use) prints above the bar and redraws it.
"""

import sys
import time
from typing import TextIO

import tf_keras as keras
import tqdm

# Steps between two updates of the bar's loss and accuracy.
_POSTFIX_EVERY = 10


class TrainingProgress(keras.callbacks.Callback):
  """Per-step progress bar on a terminal, one line per epoch anywhere.

  On a terminal (``stream.isatty()``) each epoch draws a tqdm bar of its training steps,
  with the running loss and accuracy; the bar is removed at the epoch's end. Elsewhere (a
  log file, Airflow's task log) nothing is printed during an epoch. Either way each epoch
  ends with one line: ``Trainer epoch 2/3: 81.2 s, loss 0.3112, accuracy 0.8721,
  val_loss 0.2811, val_accuracy 0.8890``.

  Args:
    epochs: the most epochs ``fit`` runs (early stopping may end sooner).
    steps_per_epoch: training steps per epoch.
    stream: where to write (default: ``sys.stdout`` when training starts).
    name: what the lines start with.
  """

  def __init__(
    self, epochs: int, steps_per_epoch: int, stream: TextIO | None = None, name: str = "Trainer"
  ):
    super().__init__()
    self.epochs = epochs
    self.steps_per_epoch = steps_per_epoch
    self.name = name
    self.lines = []
    self._stream = stream
    self._bar: tqdm.tqdm | None = None
    self._started = 0.0

  @property
  def stream(self) -> TextIO:
    return self._stream or sys.stdout

  def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
    self._started = time.perf_counter()
    if _isatty(self.stream):
      self._bar = tqdm.tqdm(
        total=self.steps_per_epoch,
        file=self.stream,
        unit="step",
        desc=f"{self.name} epoch {epoch + 1}/{self.epochs}",
        leave=False,
        dynamic_ncols=True,
      )

  def on_train_batch_end(self, batch: int, logs: dict[str, float] | None = None) -> None:
    if self._bar is None:
      return
    self._bar.update(1)
    if logs and batch % _POSTFIX_EVERY == 0:
      self._bar.set_postfix({k: f"{float(v):.4f}" for k, v in logs.items()}, refresh=False)

  def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
    if self._bar is not None:
      self._bar.close()
      self._bar = None
    metrics = ", ".join(f"{k} {float(v):.4f}" for k, v in sorted((logs or {}).items()) if k != "lr")
    line = (
      f"{self.name} epoch {epoch + 1}/{self.epochs}: "
      f"{time.perf_counter() - self._started:.1f} s, {metrics}"
    )
    self.lines.append(line)
    tqdm.tqdm.write(line, file=self.stream)
    self.stream.flush()

  def on_train_end(self, logs: dict[str, float] | None = None) -> None:
    if self._bar is not None:
      self._bar.close()
      self._bar = None


def _isatty(stream: TextIO) -> bool:
  isatty = getattr(stream, "isatty", None)
  return bool(isatty and isatty())
