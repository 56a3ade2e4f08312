"""What ``imdb-tfx run`` shows on the console, and the per-run log that holds the rest.

A run prints the component progress lines, the Trainer's progress and the summary.
Everything else (TensorFlow's C++ log lines, absl and Python logging, Beam's worker
processes, warnings) goes to a log file per run. Why our own: those writers do not share
one logging system (TensorFlow's C++ code and Beam's worker processes write straight to
file descriptors 1 and 2), so the only place to separate them is the descriptors. While a
``RunConsole`` is open:

* file descriptors 1 and 2 point to the log (at first a spool file, until ``keep_log``
  names the run's log; the spool's content is copied there), so C++ code and child
  processes write into it;
* ``sys.stdout`` is a copy of the original standard output: Python code that prints on
  purpose (the progress lines, Keras's epoch lines, the summary) reaches the console;
* ``sys.stderr`` still writes to descriptor 2 (the log): Python logging and warnings;
* ``sys.unraisablehook`` writes "Exception ignored in ..." reports (TensorFlow's
  ``AtomicFunction.__del__`` at interpreter exit) to the log, and stays installed after
  the console closes, because they arrive when the process ends.

With ``verbose`` nothing is redirected and no log is written.
"""

import contextlib
import io
import os
import shutil
import sys
import tempfile
import traceback
from typing import BinaryIO, TextIO


class RunConsole:
  """A context manager separating a run's console output from its log (module
  docstring).

  Args:
    verbose: show everything on the console; write no log.

  Attributes:
    out: the console stream (also ``sys.stdout`` while open).
    log_path: the log file, once ``keep_log`` named it.
  """

  def __init__(self, verbose: bool = False):
    self.verbose = verbose
    self.out: TextIO = sys.stdout
    self.log_path: str | None = None
    self._sink: BinaryIO | None = None
    self._saved_fds = ()
    self._saved_stdout: TextIO | None = None
    self._format_exception = traceback.format_exception

  def __enter__(self) -> "RunConsole":
    if self.verbose:
      return self
    _flush_standard_streams()
    self._saved_fds = (os.dup(1), os.dup(2))
    self._saved_stdout = sys.stdout
    self.out = io.TextIOWrapper(
      os.fdopen(os.dup(1), "wb"), encoding="utf-8", line_buffering=True, write_through=True
    )
    self._redirect(tempfile.TemporaryFile())
    sys.stdout = self.out
    sys.unraisablehook = self._log_unraisable
    return self

  def keep_log(self, path: str) -> str:
    """From now on writes the log to ``path`` (directories created), starting with what
    was written so far. Returns ``path``; None with ``verbose``."""
    if self.verbose:
      return None
    os.makedirs(os.path.dirname(path), exist_ok=True)
    _flush_standard_streams()
    log = open(path, "ab")  # noqa: SIM115 - stays open for the descriptors 1 and 2
    self._sink.seek(0)
    shutil.copyfileobj(self._sink, log)
    log.flush()
    self._redirect(log)
    self.log_path = path
    return path

  def __exit__(self, *exc_info) -> None:
    if self.verbose:
      return
    _flush_standard_streams()
    os.dup2(self._saved_fds[0], 1)
    os.dup2(self._saved_fds[1], 2)
    for fd in self._saved_fds:
      os.close(fd)
    sys.stdout = self._saved_stdout
    self.out.flush()

  def _redirect(self, sink: BinaryIO) -> None:
    os.dup2(sink.fileno(), 1)
    os.dup2(sink.fileno(), 2)
    if self._sink is not None:
      self._sink.close()
    self._sink = sink

  def _log_unraisable(self, unraisable) -> None:
    """``sys.unraisablehook``: the report goes to the log, or nowhere without one.

    It runs until the process ends, after the interpreter has begun to clear module
    globals and builtins (``open`` is gone by then), so it uses only the log's open file
    and the formatter ``__init__`` kept.
    """
    sink = self._sink
    if not self.log_path or sink is None or sink.closed:
      return
    lines = self._format_exception(
      unraisable.exc_type, unraisable.exc_value, unraisable.exc_traceback
    )
    report = f"Exception ignored in: {unraisable.object!r}\n{''.join(lines)}"
    sink.write(report.encode("utf-8", "replace"))
    sink.flush()


def _flush_standard_streams() -> None:
  for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
    if stream is not None:
      with contextlib.suppress(ValueError):  # a closed stream
        stream.flush()
