"""analysis.bench_spans: the comparison of the last span's warm start with the full
retrain of its window."""

import pytest

from analysis.bench_spans import warm_vs_retrain


def _run(span, trainer_seconds, epochs, accuracy):
  return {
    "span": span,
    "components": {"Transform": 0.0, "Trainer": trainer_seconds},
    "trainer": {"epochs": epochs, "seconds_per_epoch": [1.0] * epochs},
    "golden_accuracy": accuracy,
  }


def test_warm_vs_retrain_divides_the_trainer_times():
  assert warm_vs_retrain(_run(5, 54.3, 1, 0.912), _run(5, 129.8, 2, 0.9064)) == {
    "span": 5,
    "trainer_seconds": {"warm": 54.3, "retrain": 129.8},
    "trainer_time_ratio": 0.418,
    "epochs": {"warm": 1, "retrain": 2},
    "golden_accuracy": {"warm": 0.912, "retrain": 0.9064},
  }


def test_warm_vs_retrain_refuses_a_run_that_did_not_train():
  stopped = {"span": 5, "components": {"Trainer": 0.0}}  # cached, or stopped before it
  with pytest.raises(ValueError, match=r"the retrain run \(span 5\) recorded no Trainer time"):
    warm_vs_retrain(_run(5, 54.3, 1, 0.912), stopped)
  with pytest.raises(ValueError, match="the warm run"):
    warm_vs_retrain({"span": 5, "exit_status": 1}, _run(5, 129.8, 2, 0.9064))


def test_resume_takes_the_interrupted_record_only_for_the_same_benchmark(tmp_path):
  import json

  import click

  from analysis.bench_spans import _resumed

  fresh = {"spans": 5, "split": "train", "run_args": ["--min-accuracy=0.8"], "runs": []}
  out_dir, output = tmp_path / "run", tmp_path / "spans.json"
  with pytest.raises(click.ClickException, match="--resume needs"):
    _resumed(str(out_dir), str(output), fresh)
  out_dir.mkdir()
  record = {**fresh, "runs": [_run(1, 53.0, 3, 0.867)]}
  output.write_text(json.dumps(record))
  assert _resumed(str(out_dir), str(output), fresh) == record
  with pytest.raises(click.ClickException, match="measured other spans, run_args"):
    _resumed(str(out_dir), str(output), {**fresh, "spans": 3, "run_args": []})
