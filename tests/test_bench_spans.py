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
