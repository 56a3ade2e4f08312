"""One run at a time per output directory (pipeline.run_lock, `imdb-tfx run`'s lock)."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from click.testing import CliRunner

from pipeline import run_lock

_HOLD = textwrap.dedent(
  """
  import sys, time
  from pipeline import run_lock
  with run_lock.RunLock(sys.argv[1], command="imdb-tfx run --seed 42", log="/tmp/x.log"):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
  """
)


def _hold_in_subprocess(output_dir, seconds: float) -> subprocess.Popen:
  """A separate process holding ``output_dir``'s lock for ``seconds``; returns once held."""
  process = subprocess.Popen(
    [sys.executable, "-c", _HOLD, str(output_dir), str(seconds)],
    stdout=subprocess.PIPE,
    text=True,
    cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
  )
  assert process.stdout.readline().strip() == "held"
  return process


def test_a_second_run_is_refused_with_the_holder_named(tmp_path):
  holder = _hold_in_subprocess(tmp_path, 30)
  try:
    with (
      pytest.raises(run_lock.RunInProgressError) as refused,
      run_lock.RunLock(str(tmp_path), command="second"),
    ):
      pytest.fail("the lock was taken twice")
    assert refused.value.holder.pid == holder.pid
    assert refused.value.holder.command == "imdb-tfx run --seed 42"
    message = str(refused.value)
    assert f"pid {holder.pid}" in message and "imdb-tfx run --seed 42" in message
    assert "/tmp/x.log" in message and "--wait" in message
  finally:
    holder.kill()
    holder.wait()


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
  holder = _hold_in_subprocess(tmp_path, 60)
  holder.send_signal(signal.SIGKILL)
  holder.wait()
  # The file is still there, describing the dead run, but the kernel released its flock.
  assert os.path.exists(tmp_path / run_lock.LOCK_FILE)
  with run_lock.RunLock(str(tmp_path), command="next") as lock:
    assert run_lock.read_holder(lock.path).pid == os.getpid()
  assert run_lock.read_holder(str(tmp_path / run_lock.LOCK_FILE)) is None


def test_a_waiting_run_starts_when_the_holder_finishes(tmp_path):
  holder = _hold_in_subprocess(tmp_path, 1.5)
  held_since = time.monotonic()
  seen = []
  with run_lock.RunLock(
    str(tmp_path), command="waiter", wait_seconds=None, poll_seconds=0.05, on_wait=seen.append
  ) as lock:
    assert time.monotonic() - held_since >= 1.0  # it waited for the holder's sleep
    assert run_lock.read_holder(lock.path).command == "waiter"
  assert len(seen) == 1 and seen[0].pid == holder.pid
  assert holder.wait() == 0


def test_a_bounded_wait_gives_up(tmp_path):
  holder = _hold_in_subprocess(tmp_path, 30)
  try:
    started = time.monotonic()
    with (
      pytest.raises(run_lock.RunInProgressError),
      run_lock.RunLock(str(tmp_path), command="x", wait_seconds=0.3, poll_seconds=0.05),
    ):
      pass
    assert time.monotonic() - started >= 0.3
  finally:
    holder.kill()
    holder.wait()


def test_the_lock_excludes_within_one_process_too(tmp_path):
  """flock belongs to the open file, so two RunLocks in one process exclude each other
  (two runs driven from one Python process, e.g. a notebook, are serialised too)."""
  with (
    run_lock.RunLock(str(tmp_path), command="first"),
    pytest.raises(run_lock.RunInProgressError),
    run_lock.RunLock(str(tmp_path), command="second"),
  ):
    pass
  with run_lock.RunLock(str(tmp_path), command="third"):
    pass


def test_imdb_tfx_run_refuses_while_another_run_holds_the_output_dir(tmp_path):
  from cli import main as cli

  output_dir = tmp_path / "out"
  lock = run_lock.RunLock(str(output_dir), command="imdb-tfx run --seed 7")
  with lock:
    result = CliRunner().invoke(
      cli.main,
      ["run", "--output-dir", str(output_dir), "--train-split", "train[:1%]", "--no-report"],
    )
  assert result.exit_code == 1, result.output
  assert f"another run is using {output_dir}" in result.output
  assert f"pid {os.getpid()}" in result.output and "imdb-tfx run --seed 7" in result.output
  # Refused before anything was written: no log, no store, no summary.
  assert sorted(os.listdir(output_dir)) == [run_lock.LOCK_FILE]


def test_a_lease_keeps_runs_out_until_released(tmp_path):
  """A DAG run's lease (many processes over time) makes the directory busy like a
  running process does; only its owner releases it, and a stale one is taken over."""
  dag_run = "Airflow DAG run imdb_sentiment/scheduled__1"
  lease = run_lock.take_lease(str(tmp_path), dag_run)
  assert lease.lease == str(tmp_path / run_lock.LEASE_FILE)
  assert run_lock.read_lease(str(tmp_path)).command == dag_run
  # The lock itself is free again (the taking process is gone), the lease is not.
  with (
    pytest.raises(run_lock.RunInProgressError) as refused,
    run_lock.RunLock(str(tmp_path), command="imdb-tfx run"),
  ):
    pytest.fail("ran despite the lease")
  message = str(refused.value)
  assert dag_run in message and f"delete {lease.lease}" in message
  # The DAG run's retried first task takes its own lease again; a later task of it
  # releases; another run cannot release it.
  assert run_lock.take_lease(str(tmp_path), dag_run, wait_seconds=0).command == dag_run
  assert not run_lock.release_lease(str(tmp_path), "Airflow DAG run imdb_sentiment/other")
  assert run_lock.read_lease(str(tmp_path)) is not None
  assert run_lock.release_lease(str(tmp_path), dag_run)
  assert run_lock.read_lease(str(tmp_path)) is None
  with run_lock.RunLock(str(tmp_path), command="imdb-tfx run"):
    pass


def test_a_new_dag_run_waits_for_a_live_lease_and_takes_over_a_stale_one(tmp_path):
  run_lock.take_lease(str(tmp_path), "Airflow DAG run d/first")
  with pytest.raises(run_lock.RunInProgressError):
    run_lock.take_lease(
      str(tmp_path), "Airflow DAG run d/second", wait_seconds=0.2, poll_seconds=0.05
    )
  ended = {"Airflow DAG run d/first"}
  second = run_lock.take_lease(
    str(tmp_path), "Airflow DAG run d/second", is_stale=lambda lease: lease.command in ended
  )
  assert run_lock.read_lease(str(tmp_path)).command == second.command


def test_a_dag_run_waits_while_imdb_tfx_run_holds_the_lock(tmp_path):
  holder = _hold_in_subprocess(tmp_path, 1.0)
  seen = []
  lease = run_lock.take_lease(
    str(tmp_path), "Airflow DAG run d/r", wait_seconds=None, poll_seconds=0.05, on_wait=seen.append
  )
  assert [h.pid for h in seen] == [holder.pid]
  assert lease.command == "Airflow DAG run d/r"
  assert holder.wait() == 0
