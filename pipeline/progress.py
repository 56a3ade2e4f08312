"""Live progress of a pipeline run: which component is running and for how long.

Why our own: TFX's runners report progress only as INFO log lines, whose level the
Beam-powered components reset while they run. Instead this watches ML Metadata (the
record every TFX orchestrator keeps): a background thread polls each component's node
context for executions of this run and prints one line when a component starts, a
heartbeat while it runs (after 1, 2, 4 ... minutes), and one line with its wall time (and
whether it was cached) when it ends.
"""

import sys
import threading
import time
import types
from collections.abc import Callable
from typing import TextIO

import tqdm
from ml_metadata import errors as mlmd_errors
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipeline import mlmd_queries

_TERMINAL = types.MappingProxyType(
  {
    metadata_store_pb2.Execution.COMPLETE: "finished",
    metadata_store_pb2.Execution.CACHED: "cached",
    metadata_store_pb2.Execution.FAILED: "FAILED",
    metadata_store_pb2.Execution.CANCELED: "canceled",
  }
)


class ComponentProgress:
  """Prints component start/finish lines of one run by polling its MLMD store.

  Args:
    connection_config: the run's MLMD connection.
    pipeline_name: the pipeline's name (node contexts are ``<pipeline>.<node id>``).
    component_ids: node ids in pipeline order, for "[i/n]" counters.
    since_ms: only executions created at or after this time (ms since epoch) count.
    stream: where to print (default stdout). Lines go through ``tqdm.write``, so a
      progress bar on the same stream (the Trainer's, on a terminal) is redrawn below
      them instead of being cut.
    poll_seconds: polling period.
    heartbeat_seconds: print "still running" after this many seconds of a component's
      run, then after twice, four times ... as many; 0 = never.
    clock: wall clock in seconds since epoch (tests inject a fake one).
  """

  def __init__(
    self,
    connection_config: metadata_store_pb2.ConnectionConfig,
    pipeline_name: str,
    component_ids: list[str],
    since_ms: int,
    stream: TextIO | None = None,
    poll_seconds: float = 2.0,
    heartbeat_seconds: float = 60.0,
    clock: Callable[[], float] = time.time,
  ):
    self._config = connection_config
    self._pipeline_name = pipeline_name
    self._ids = list(component_ids)
    self._since_ms = since_ms
    self._stream = stream or sys.stdout
    self._poll = poll_seconds
    self._heartbeat = heartbeat_seconds
    self._clock = clock
    self._store = None
    self._started: dict[int, float] = {}  # execution id -> seconds since epoch
    self._next_beat: dict[int, float] = {}  # execution id -> elapsed s of its next beat
    self._done: set = set()
    self._stop = threading.Event()
    self._thread: threading.Thread | None = None
    self.lines: list[str] = []

  def _print(self, line: str) -> None:
    self.lines.append(line)
    tqdm.tqdm.write(line, file=self._stream)
    self._stream.flush()

  def _position(self, node: str) -> str:
    width = len(str(len(self._ids)))
    index = self._ids.index(node) + 1 if node in self._ids else 0
    return f"[{index:>{width}}/{len(self._ids)}]"

  def poll_once(self) -> None:
    """Reads new and changed executions once and prints what changed."""
    try:
      if self._store is None:
        self._store = metadata_store.MetadataStore(self._config)
      executions = [
        (execution, node)
        for node in self._ids
        for execution in mlmd_queries.node_executions(
          self._store, self._pipeline_name, node, self._since_ms
        )
      ]
    except (mlmd_errors.StatusError, RuntimeError):
      # Store busy, or its file not created yet (MetadataStore's constructor raises
      # RuntimeError then): try again next poll.
      return
    for execution, node in sorted(executions, key=lambda pair: pair[0].id):
      if execution.id in self._done:
        continue
      if execution.id not in self._started:
        self._started[execution.id] = execution.create_time_since_epoch / 1e3
        if execution.last_known_state not in _TERMINAL:
          self._print(f"{self._position(node)} {node} running ...")
      if execution.last_known_state in _TERMINAL:
        self._done.add(execution.id)
        self._print(
          f"{self._position(node)} {node} {_TERMINAL[execution.last_known_state]} "
          f"in {mlmd_queries.execution_seconds(execution):.1f} s"
        )
      elif self._heartbeat > 0:
        elapsed = self._clock() - self._started[execution.id]
        due = self._next_beat.get(execution.id, self._heartbeat)
        if elapsed >= due:
          # Geometric spacing (1, 2, 4, 8 ... heartbeats): a long component shows it is
          # alive without filling a log with a line per minute.
          while due <= elapsed:
            due *= 2
          self._next_beat[execution.id] = due
          self._print(f"{self._position(node)} {node} still running, {elapsed:.0f} s elapsed")

  def _loop(self) -> None:
    while not self._stop.wait(self._poll):
      self.poll_once()

  def start(self) -> "ComponentProgress":
    """Starts polling in a daemon thread."""
    self._thread = threading.Thread(target=self._loop, name="mlmd-progress", daemon=True)
    self._thread.start()
    return self

  def stop(self) -> None:
    """Stops polling after one last poll, so the final component's line is printed."""
    self._stop.set()
    if self._thread:
      self._thread.join()
    self.poll_once()
