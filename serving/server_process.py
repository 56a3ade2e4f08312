"""``imdb-tfx serve`` as a child process, for the serving benchmark and the e2e test."""

import queue
import subprocess
import sys
import threading
import time
from collections.abc import Sequence


class ServerProcess:
  """``imdb-tfx serve --port=0 --bind_address=127.0.0.1 ARGS`` in a child process.

  The constructor returns once the server has loaded its models and printed its port
  (``self.port``); its stderr goes to ``log_path``.

  Raises (constructor):
    RuntimeError: the server exited or did not start within ``timeout_s`` seconds.
  """

  def __init__(self, args: Sequence[str], log_path: str, timeout_s: float = 300):
    self._log = open(log_path, "w", encoding="utf-8")  # noqa: SIM115 - closed by stop()
    self.proc = subprocess.Popen(
      [sys.executable, "-m", "cli.main", "serve", "--port=0", "--bind_address=127.0.0.1", *args],
      stdout=subprocess.PIPE,
      stderr=self._log,
      text=True,
    )
    lines = queue.Queue()
    threading.Thread(
      target=lambda: [lines.put(line) for line in self.proc.stdout], daemon=True
    ).start()
    deadline = time.monotonic() + timeout_s
    self.port = None
    while self.port is None:
      if time.monotonic() > deadline or self.proc.poll() is not None:
        self.stop()
        raise RuntimeError(f"imdb-tfx serve did not start; see {log_path}")
      try:
        line = lines.get(timeout=1)
      except queue.Empty:
        continue
      if line.startswith("serving on port "):
        self.port = int(line.split()[-1])

  def stop(self) -> None:
    """SIGTERM (graceful), then SIGKILL after 60 s."""
    if self.proc.poll() is None:
      self.proc.terminate()
      try:
        self.proc.wait(60)
      except subprocess.TimeoutExpired:
        self.proc.kill()
    self._log.close()
