"""Unit tests of analysis.bench_behaviour's aggregation and table (no training)."""

import pytest

from analysis import bench_behaviour


def _run(config, seed, rates, accuracy, ece, ece_raw):
  return {
    "config": config,
    "seed": seed,
    "failure_rates": rates,
    "overall_failure_rate": sum(rates.values()) / len(rates),
    "test": {"accuracy": accuracy, "ece": ece, "ece_uncalibrated": ece_raw},
  }


RUNS = [
  _run(
    "previous", 42, {"contrast": 0.8, "inv_typo": 0.1, "negated_negative": 1.0}, 0.91, 0.05, 0.05
  ),
  _run(
    "current", 42, {"contrast": 0.2, "inv_typo": 0.0, "negated_negative": 0.1}, 0.92, 0.01, 0.04
  ),
  _run(
    "current", 7, {"contrast": 0.1, "inv_typo": 0.04, "negated_negative": 0.2}, 0.90, 0.03, 0.05
  ),
]


def test_aggregate_means_and_deviations_per_configuration():
  result = bench_behaviour.aggregate(RUNS)
  current = result["configs"]["current"]
  assert current["seeds"] == [42, 7]
  assert current["failure_rates"]["contrast"]["mean"] == pytest.approx(0.15)
  assert current["failure_rates"]["contrast"]["std"] == pytest.approx(0.0707107, rel=1e-5)
  assert current["accuracy"]["mean"] == pytest.approx(0.91)
  assert result["configs"]["previous"]["ece"] == {"mean": 0.05, "std": 0.0}


def test_aggregate_checks_the_targets_on_the_current_configuration():
  targets = bench_behaviour.aggregate(RUNS)["targets"]
  assert targets["accuracy"] == {"value": pytest.approx(0.91), "target": 0.91, "met": True}
  # The worst negation or contrast capability: negated_negative at 0.15 mean.
  assert targets["negation_and_contrast"]["value"] == pytest.approx(0.15)
  assert targets["negation_and_contrast"]["met"] is True
  assert targets["invariance"]["value"] == pytest.approx(0.02)
  assert targets["ece"]["value"] == pytest.approx(0.02) and targets["ece"]["met"] is True
  worse = [
    *RUNS,
    _run("current", 1, {"contrast": 0.9, "inv_typo": 0.3, "negated_negative": 0.9}, 0.8, 0.2, 0.2),
  ]
  targets = bench_behaviour.aggregate(worse)["targets"]
  assert not any(target["met"] for target in targets.values())


def test_markdown_table_has_a_row_per_capability_and_the_test_figures():
  table = bench_behaviour.markdown_table(bench_behaviour.aggregate(RUNS)).splitlines()
  assert table[0] == "| | previous (1 seed) | current (2 seeds) |"
  assert "| contrast | 0.800 ± 0.000 | 0.150 ± 0.071 |" in table
  assert "| golden-test accuracy | 0.910 ± 0.000 | 0.910 ± 0.014 |" in table
  assert len(table) == 2 + 3 + 4
