"""One pipeline run at a time per output directory.

Two runs on one ML Metadata store and one serving directory race: each resolves its
baseline before the other has blessed anything, so both push without being compared with
each other, and a summary read "since the run started" mixes the two runs' executions.
``imdb-tfx run`` therefore holds an exclusive lock on ``OUTPUT_DIR/run.lock`` for its
whole run; a second run refuses, naming the one that holds it, or waits for it
(``--wait``).

The lock is the kernel's ``flock(2)`` on that file, not the file's existence: it is
released when the holding process exits, however it exits (SIGKILL included), so a
crashed run never leaves a stale lock behind. The file itself only describes the holder
(JSON: pid, host, start time, command, log) for the refusal's message. ``flock`` covers
one machine (and is unreliable on NFS); runs on several machines sharing one database
server need a lock in that database instead. Python's standard library has no
cross-process lock with a holder description, hence this module.
"""

import dataclasses
import fcntl
import json
import os
import socket
import time

LOCK_FILE = "run.lock"


@dataclasses.dataclass(frozen=True)
class LockHolder:
  """The run holding the lock.

  Attributes:
    pid: its process id.
    host: the machine it runs on (``socket.gethostname()``).
    started: when it took the lock, seconds since the epoch.
    command: its command line.
    log: its log file ("" when it keeps none).
  """

  pid: int
  host: str
  started: float
  command: str
  log: str = ""

  def describe(self) -> str:
    """One line naming the run, e.g. ``pid 4242 on host, since 2026-12-01 11:03:02: ...``."""
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started))
    log = f"; log: {self.log}" if self.log else ""
    return f"pid {self.pid} on {self.host}, since {since}: {self.command}{log}"


class RunInProgressError(RuntimeError):
  """Another run holds the output directory's lock.

  Attributes:
    path: the lock file.
    holder: the holding run, or None when it has not described itself yet.
  """

  def __init__(self, path: str, holder: LockHolder | None):
    self.path = path
    self.holder = holder
    who = holder.describe() if holder else "a run that has not described itself yet"
    super().__init__(
      f"another run is using {os.path.dirname(path)} ({who}). Wait for it to finish, "
      "pass --wait to start when it has, or use another --output-dir."
    )


def read_holder(path: str) -> LockHolder | None:
  """The holder described in the lock file ``path``; None when the file is missing, empty
  (no run holds it, or the holder has not written itself yet) or unreadable."""
  try:
    with open(path, encoding="utf-8") as f:
      text = f.read()
    return LockHolder(**json.loads(text)) if text.strip() else None
  except (OSError, ValueError, TypeError):
    return None


class RunLock:
  """Context manager holding ``OUTPUT_DIR/run.lock`` exclusively for a run.

  Args:
    output_dir: the output directory (created when missing).
    command: the holder's command line, shown to a refused run.
    log: the holder's log file, shown to a refused run.
    wait_seconds: how long to wait for a running run to finish, seconds; 0 refuses at
      once, None waits for as long as it takes.
    poll_seconds: how often a waiting run retries, seconds.
    on_wait: called once with the holder (or None) when the lock is busy and this run
      starts waiting.

  Raises (on entering):
    RunInProgressError: another run holds the lock after ``wait_seconds``.
    OSError: the output directory or the lock file cannot be created.
  """

  def __init__(
    self,
    output_dir: str,
    command: str,
    log: str = "",
    wait_seconds: float | None = 0.0,
    poll_seconds: float = 1.0,
    on_wait=None,
  ):
    self.path = os.path.join(output_dir, LOCK_FILE)
    self._command = command
    self._log = log
    self._wait_seconds = wait_seconds
    self._poll_seconds = poll_seconds
    self._on_wait = on_wait
    self._fd = None

  def __enter__(self) -> "RunLock":
    os.makedirs(os.path.dirname(self.path), exist_ok=True)
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      self._acquire(fd)
    except BaseException:
      os.close(fd)
      raise
    holder = LockHolder(os.getpid(), socket.gethostname(), time.time(), self._command, self._log)
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(dataclasses.asdict(holder)).encode("utf-8"), 0)
    self._fd = fd
    return self

  def __exit__(self, *exc) -> None:
    if self._fd is None:
      return
    os.ftruncate(self._fd, 0)  # no stale description for the next reader
    fcntl.flock(self._fd, fcntl.LOCK_UN)
    os.close(self._fd)
    self._fd = None

  def _acquire(self, fd: int) -> None:
    deadline = None if self._wait_seconds is None else time.monotonic() + self._wait_seconds
    waiting = False
    while True:
      try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
      except BlockingIOError:
        pass
      if deadline is not None and time.monotonic() >= deadline:
        raise RunInProgressError(self.path, read_holder(self.path))
      if not waiting and self._on_wait is not None:
        self._on_wait(read_holder(self.path))
      waiting = True
      time.sleep(self._poll_seconds)
