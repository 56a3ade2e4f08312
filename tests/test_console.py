"""What a run shows on the console and what goes to its log (cli.console), and the
Trainer's progress lines (models.progress)."""

import io
import subprocess
import sys
import textwrap

import numpy as np
import tf_keras as keras

from models.progress import TrainingProgress

# Runs in a child process: RunConsole moves the process's file descriptors 1 and 2.
_CHILD = textwrap.dedent("""
    import os, subprocess, sys
    from cli.console import RunConsole

    class Holder:
      def __del__(self):
        raise TypeError("ignored at exit")

    with RunConsole(verbose={verbose}) as console:
      os.write(2, b"C++ line before the log is named\\n")
      print("progress line 1")
      console.keep_log(sys.argv[1])
      os.write(1, b"C++ stdout line\\n")
      subprocess.run([sys.executable, "-c", "import sys; sys.stderr.write('worker line\\\\n')"])
      sys.stderr.write("python logging line\\n")
      print("progress line 2", file=console.out)
    print("after the run")
    # As at interpreter exit, when TensorFlow's reports arrive: builtins and module
    # globals are being cleared.
    import builtins, cli.console
    del builtins.open
    cli.console.traceback = None
    holder = Holder()
    del holder
    """)


def _run_child(tmp_path, verbose=False):
  log = tmp_path / "logs" / "run.log"
  done = subprocess.run(
    [sys.executable, "-c", _CHILD.format(verbose=verbose), str(log)],
    capture_output=True,
    text=True,
    check=True,
    cwd=tmp_path.parent,
  )
  return done, log


def test_console_shows_progress_and_the_log_holds_the_rest(tmp_path):
  done, log = _run_child(tmp_path)
  assert done.stdout.splitlines() == ["progress line 1", "progress line 2", "after the run"]
  assert done.stderr == ""
  text = log.read_text()
  for line in (
    "C++ line before the log is named",
    "C++ stdout line",
    "worker line",
    "python logging line",
    "Exception ignored in",
    "TypeError: ignored at exit",
  ):
    assert line in text
  assert "progress line" not in text


def test_verbose_console_shows_everything_and_writes_no_log(tmp_path):
  done, log = _run_child(tmp_path, verbose=True)
  assert "progress line 1" in done.stdout and "C++ stdout line" in done.stdout
  assert "worker line" in done.stderr and "python logging line" in done.stderr
  assert "Exception ignored in" in done.stderr
  assert not log.exists()


def _fit_with_progress(stream, epochs=2):
  model = keras.Sequential([keras.layers.Dense(1, activation="sigmoid", input_shape=(3,))])
  model.compile(
    optimizer="sgd",
    loss="binary_crossentropy",
    metrics=[keras.metrics.BinaryAccuracy(name="accuracy")],
  )
  x = np.random.default_rng(0).normal(size=(32, 3)).astype("float32")
  y = (x[:, 0] > 0).astype("float32")
  progress = TrainingProgress(epochs, steps_per_epoch=4, stream=stream)
  model.fit(
    x, y, batch_size=8, epochs=epochs, validation_data=(x, y), verbose=0, callbacks=[progress]
  )
  return progress


def test_training_progress_prints_one_line_per_epoch_off_a_terminal():
  stream = io.StringIO()
  progress = _fit_with_progress(stream)
  lines = stream.getvalue().splitlines()
  assert lines == progress.lines
  assert len(lines) == 2
  assert lines[0].startswith("Trainer epoch 1/2: ") and lines[1].startswith("Trainer epoch 2/2: ")
  for name in ("accuracy", "loss", "val_accuracy", "val_loss"):
    assert f"{name} " in lines[1]


class _Terminal(io.StringIO):
  def isatty(self):
    return True


def test_training_progress_draws_a_step_bar_on_a_terminal():
  stream = _Terminal()
  _fit_with_progress(stream, epochs=1)
  text = stream.getvalue()
  assert "Trainer epoch 1/1:" in text
  assert "/4 [" in text  # tqdm's bar of the epoch's 4 steps
  assert "\r" in text  # redrawn in place
