"""analysis.bench_vs_tfx: timing a child process and where a run's cores sat idle."""

import sys

from analysis import bench_vs_tfx

# A child that keeps one core busy for about a second, then says so.
BUSY = "import time\nend = time.process_time() + 1.0\nwhile time.process_time() < end: pass\nprint('done')"


def test_timed_measures_the_child_and_samples_its_process_tree(tmp_path):
  log = tmp_path / "child.log"
  figures, sampler, _ = bench_vs_tfx.timed([sys.executable, "-c", BUSY], str(log))
  assert figures["exit_status"] == 0
  assert figures["cpu_s"] >= 0.9
  assert figures["wall_s"] >= 0.9
  assert figures["cpu_percent"] > 0
  assert len(sampler.samples) >= 1 and sampler.samples[-1][3] > 0  # CPU seconds sampled
  assert log.read_text().strip().endswith("done")


def test_timed_reports_a_failing_child(tmp_path):
  figures, _, _ = bench_vs_tfx.timed(
    [sys.executable, "-c", "raise SystemExit(3)"], str(tmp_path / "l")
  )
  assert figures["exit_status"] == 3


def test_component_cpu_gives_idle_core_seconds(monkeypatch):
  measured = {
    "ImdbExampleGen": {"seconds": 20.0, "cpu_percent": 115.0},
    "SchemaGen": {"seconds": 0.0, "cpu_percent": None},
    "Trainer": {"seconds": 100.0, "cpu_percent": 180.0},
  }
  monkeypatch.setattr(bench_vs_tfx, "measure_run", lambda *args: measured)
  monkeypatch.setattr(bench_vs_tfx.os, "cpu_count", lambda: 2)
  assert bench_vs_tfx.component_cpu("unused", None, 0) == {
    "ImdbExampleGen": {"seconds": 20.0, "cpu_percent": 115.0, "idle_core_s": 17.0},
    "SchemaGen": {"seconds": 0.0, "cpu_percent": None, "idle_core_s": None},
    "Trainer": {"seconds": 100.0, "cpu_percent": 180.0, "idle_core_s": 20.0},
  }
