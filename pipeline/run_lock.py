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

A scheduled run is many processes over time (one per Airflow task), so no process can
hold the ``flock`` for all of it. Its first task takes a *lease* instead: under the lock,
it writes ``OUTPUT_DIR/run.lease`` naming its DAG run, and its last task removes it. A
lock holder meeting a lease treats the directory as busy, so ``imdb-tfx run`` refuses
(or waits) while a DAG run holds it, and a DAG run's first task waits while
``imdb-tfx run`` holds the lock. A lease outlives its processes by design; the lease
taker decides when one is stale (a DAG run no longer running: ``is_stale``).
"""

import dataclasses
import fcntl
import json
import os
import socket
import time

LOCK_FILE = "run.lock"
LEASE_FILE = "run.lease"


@dataclasses.dataclass(frozen=True)
class LockHolder:
  """The run holding the lock.

  Attributes:
    pid: its process id.
    host: the machine it runs on (``socket.gethostname()``).
    started: when it took the lock, seconds since the epoch.
    command: its command line, or for a lease the DAG run (``Airflow DAG run
      imdb_sentiment/<run id>``).
    log: its log file ("" when it keeps none).
    lease: the lease file when the holder is a lease rather than a live process ("").
  """

  pid: int
  host: str
  started: float
  command: str
  log: str = ""
  lease: str = ""

  def describe(self) -> str:
    """One line naming the run, e.g. ``pid 4242 on host, since 2026-12-01 11:03:02: ...``
    (a lease: ``Airflow DAG run ..., since ...; lease: OUTPUT_DIR/run.lease``)."""
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started))
    log = f"; log: {self.log}" if self.log else ""
    if self.lease:
      return f"{self.command}, since {since}{log}; lease: {self.lease}"
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
    stale = (
      f" If that DAG run is no longer running, delete {holder.lease}."
      if holder and holder.lease
      else ""
    )
    super().__init__(
      f"another run is using {os.path.dirname(path)} ({who}). Wait for it to finish, "
      f"pass --wait to start when it has, or use another --output-dir.{stale}"
    )


def read_holder(path: str) -> LockHolder | None:
  """The holder described in the lock (or lease) file ``path``; None when the file is
  missing, empty (no run holds it, or the holder has not written itself yet) or
  unreadable."""
  try:
    with open(path, encoding="utf-8") as f:
      text = f.read()
    return LockHolder(**json.loads(text)) if text.strip() else None
  except (OSError, ValueError, TypeError):
    return None


def read_lease(output_dir: str) -> LockHolder | None:
  """The lease on ``output_dir`` (``LockHolder.lease`` set), or None."""
  path = os.path.join(output_dir, LEASE_FILE)
  holder = read_holder(path)
  return dataclasses.replace(holder, lease=path) if holder else None


def take_lease(output_dir: str, command: str, log: str = "", **lock_kwargs) -> LockHolder:
  """Writes the lease on ``output_dir`` for ``command`` (a DAG run), under the lock: it
  waits (``RunLock``'s ``wait_seconds``, ``poll_seconds``, ``on_wait``) for a run holding
  the lock or another live lease (``is_stale`` decides). Taking one's own lease again (a
  retried first task) succeeds. Written whole (a temporary file renamed into place).

  Returns:
    the lease.

  Raises:
    RunInProgressError: the directory stayed busy for ``wait_seconds``.
  """
  with RunLock(output_dir, command, log, lease_owner=command, **lock_kwargs) as lock:
    path = os.path.join(os.path.dirname(lock.path), LEASE_FILE)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
      json.dump(dataclasses.asdict(lock.holder), f)
    os.replace(path + ".tmp", path)
  return dataclasses.replace(lock.holder, lease=path)


def release_lease(output_dir: str, command: str) -> bool:
  """Removes the lease on ``output_dir`` if ``command`` holds it; returns whether it did.
  Taken under the lock, so it never removes a lease another run is writing."""
  with RunLock(output_dir, command, wait_seconds=None, is_stale=lambda lease: True):
    lease = read_lease(output_dir)
    if lease is None or lease.command != command:
      return False
    os.remove(lease.lease)
    return True


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
    lease_owner: the command whose lease does not count as busy (the lease's own
      taker); any other live lease does.
    is_stale: called with a lease; True lets this run ignore it (its DAG run ended
      without releasing it). Default: every lease is live.

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
    lease_owner: str | None = None,
    is_stale=None,
  ):
    self.path = os.path.join(output_dir, LOCK_FILE)
    self._command = command
    self._log = log
    self._wait_seconds = wait_seconds
    self._poll_seconds = poll_seconds
    self._on_wait = on_wait
    self._lease_owner = lease_owner
    self._is_stale = is_stale
    self._fd = None
    self.holder: LockHolder | None = None  # this run, once it holds the lock

  def __enter__(self) -> "RunLock":
    os.makedirs(os.path.dirname(self.path), exist_ok=True)
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      self._acquire(fd)
    except BaseException:
      os.close(fd)
      raise
    holder = LockHolder(os.getpid(), socket.gethostname(), time.time(), self._command, self._log)
    self.holder = holder
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
      holder = self._try(fd)
      if holder is True:
        return
      if deadline is not None and time.monotonic() >= deadline:
        raise RunInProgressError(self.path, holder)
      if not waiting and self._on_wait is not None:
        self._on_wait(holder)
      waiting = True
      time.sleep(self._poll_seconds)

  def _try(self, fd: int):
    """True when this run now holds the lock and no live lease stands in its way; else
    the busy directory's holder (the lock's, or the lease's), or None when unknown."""
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      return read_holder(self.path)
    lease = read_lease(os.path.dirname(self.path))
    if (
      lease is None
      or lease.command == self._lease_owner
      or (self._is_stale is not None and self._is_stale(lease))
    ):
      return True
    fcntl.flock(fd, fcntl.LOCK_UN)
    return lease
