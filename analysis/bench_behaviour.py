"""``make bench-behaviour``: the behavioural suite's failure rates, golden-test accuracy and
calibration of the previous default model against the current one, over seeds.

For each configuration and seed it trains through the pipeline up to the Trainer on the
full train split (``analysis.bench_models.train_through_pipeline``: 90% train, 10% eval for
early stopping and the temperature fit), then, with the exported SavedModel's
``predict_text``:

* scores the behavioural suite (``behaviour.suite.build_suite(suite_seed)``, 900 cases)
  into per-capability failure rates (``behaviour.scoring``);
* predicts the whole golden ``test`` split (25,000 reviews) for its accuracy and expected
  calibration error (15 bins, ``models.calibration``) of the served probabilities, and of
  the uncalibrated ones (the served ones with the Trainer's temperature taken out), so
  ECE before and after temperature scaling come from the same model.

Configurations: ``previous`` is the default model before the behavioural work
(``PREVIOUS_DEFAULTS``: no negation or contrast scope marking, no negation
counterfactuals, no temperature scaling); ``current`` is
``HParams()``'s defaults plus any ``--hparam`` overrides. Results go to ``--output``
(``outputs/bench/behaviour.json``) after every run; runs already there with the same
hyperparameters are kept and not repeated, so an interrupted benchmark resumes. It never
tunes anything on the test split: nothing read from it feeds back into training.
"""

import json
import os
import platform
import time
import types
from collections.abc import Mapping
from typing import Any

import click
import numpy as np

from analysis.bench_models import _load, _mean_std, _save, train_through_pipeline
from core import environment
from models.hparams import HParams, parse_overrides

# The default model before the behavioural work: no negation or contrast scope marking, no
# name masking, no negation counterfactuals, no temperature scaling.
PREVIOUS_DEFAULTS = types.MappingProxyType(
  {
    "negation_scope": False,
    "contrast_scope": False,
    "mask_names": False,
    "negation_views": 0.0,
    "temperature_scaling": False,
  }
)
# The targets for the new default: mean golden-test accuracy, the highest failure
# rate of the negation and contrast capabilities and of the invariance tests, and ECE.
TARGETS = types.MappingProxyType(
  {"accuracy": 0.910, "negation_and_contrast": 0.20, "invariance": 0.05, "ece": 0.02}
)
NEGATION_AND_CONTRAST = (
  "negated_positive",
  "negated_negative",
  "not_at_all",
  "double_negation",
  "contrast",
)


def golden_test_scores(
  model_dir: str, temperature: float, split: str, tfds_data_dir: str | None
) -> dict[str, Any]:
  """Accuracy and ECE of ``model_dir``'s ``predict_text`` on a TFDS split.

  Args:
    model_dir: a SavedModel directory.
    temperature: the T the export applies (1.0 for none); the uncalibrated probabilities
      are recovered as sigmoid(logit(p) * T).
    split: TFDS split spec.
    tfds_data_dir: TFDS data dir (None: the default).

  Returns:
    ``{"examples", "accuracy", "ece", "ece_uncalibrated", "nll", "nll_uncalibrated",
    "seconds"}`` (ECE and NLL of the served and of the uncalibrated probabilities).
  """
  from analysis.evaluation import load_reviews
  from components.behaviour_validator import saved_model_predictor
  from models import calibration

  reviews = load_reviews(split, tfds_data_dir)
  predict = saved_model_predictor(model_dir)
  start = time.perf_counter()
  texts = [text for text, _ in reviews]
  labels = np.array([label for _, label in reviews])
  served = np.concatenate([predict(texts[i : i + 256]) for i in range(0, len(texts), 256)])
  raw = calibration.scale(served, 1.0 / temperature)
  return {
    "examples": len(reviews),
    "accuracy": float(np.mean((served >= 0.5) == labels)),
    "ece": calibration.expected_calibration_error(served, labels),
    "ece_uncalibrated": calibration.expected_calibration_error(raw, labels),
    "nll": calibration.negative_log_likelihood(served, labels),
    "nll_uncalibrated": calibration.negative_log_likelihood(raw, labels),
    "seconds": round(time.perf_counter() - start, 1),
  }


def _in_suite_order(names) -> list[str]:
  """``names`` in the suite's order of capabilities (JSON sorts them), unknown ones last."""
  from behaviour import suite

  order = [c.name for c in suite.CAPABILITIES]
  return sorted(names, key=lambda n: (order.index(n) if n in order else len(order), n))


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
  """Per configuration: mean and standard deviation over seeds of every capability's
  failure rate, of the accuracy and of the ECEs; and the targets checked for ``current``."""
  configs: dict[str, Any] = {}
  for name in sorted({run["config"] for run in runs}):
    mine = [run for run in runs if run["config"] == name]
    capabilities = _in_suite_order(mine[0]["failure_rates"])
    configs[name] = {
      "seeds": [run["seed"] for run in mine],
      "failure_rates": {
        c: _mean_std([run["failure_rates"][c] for run in mine]) for c in capabilities
      },
      "overall_failure_rate": _mean_std([run["overall_failure_rate"] for run in mine]),
      **{
        key: _mean_std([run["test"][key] for run in mine])
        for key in ("accuracy", "ece", "ece_uncalibrated")
      },
    }
  current = configs.get("current")
  targets = {}
  if current:
    rates = current["failure_rates"]
    worst_negation = max(rates[c]["mean"] for c in NEGATION_AND_CONTRAST if c in rates)
    worst_invariance = max(
      (rates[c]["mean"] for c in rates if c.startswith("inv_")), default=float("nan")
    )
    targets = {
      "accuracy": {"value": current["accuracy"]["mean"], "target": TARGETS["accuracy"]},
      "negation_and_contrast": {
        "value": worst_negation,
        "target": TARGETS["negation_and_contrast"],
      },
      "invariance": {"value": worst_invariance, "target": TARGETS["invariance"]},
      "ece": {"value": current["ece"]["mean"], "target": TARGETS["ece"]},
    }
    for target in targets.values():
      ok = target["value"] >= target["target"] if target is targets["accuracy"] else None
      if ok is None:
        ok = target["value"] <= target["target"]
      target["met"] = bool(ok)
  return {"configs": configs, "targets": targets}


def markdown_table(result: Mapping[str, Any]) -> str:
  """The README's table: one row per capability, one column per configuration (mean +-
  standard deviation over seeds), then accuracy and ECE rows."""
  configs = result["configs"]
  names = [n for n in ("previous", "current") if n in configs]
  counts = {n: len(configs[n]["seeds"]) for n in names}
  header = "| | " + " | ".join(f"{n} ({k} seed{'s' * (k != 1)})" for n, k in counts.items()) + " |"
  lines = [header, "|---|" + "---|" * len(names)]

  def cell(stat: Mapping[str, float | None]) -> str:
    return f"{stat['mean']:.3f} ± {stat['std']:.3f}"

  for capability in configs[names[0]]["failure_rates"]:
    lines.append(
      f"| {capability} | "
      + " | ".join(cell(configs[n]["failure_rates"][capability]) for n in names)
      + " |"
    )
  for key, label in (
    ("overall_failure_rate", "all cases"),
    ("accuracy", "golden-test accuracy"),
    ("ece_uncalibrated", "golden-test ECE, uncalibrated"),
    ("ece", "golden-test ECE, served"),
  ):
    lines.append(f"| {label} | " + " | ".join(cell(configs[n][key]) for n in names) + " |")
  return "\n".join(lines)


@click.command()
@click.option("--seeds", default="42,7,1234", show_default=True, help="Comma-separated seeds.")
@click.option(
  "--configs",
  "config_names",
  default="previous,current",
  show_default=True,
  help="Which configurations to train (module docstring).",
)
@click.option(
  "--hparam",
  "hparams",
  multiple=True,
  metavar="KEY=VALUE",
  help="Override for the current configuration (repeatable).",
)
@click.option("--train-split", default="train", show_default=True)
@click.option("--test-split", default="test", show_default=True)
@click.option("--suite-seed", type=int, default=0, show_default=True)
@click.option("--tfds-data-dir", default=None)
@click.option("--work-dir", default="outputs/bench/behaviour", show_default=True)
@click.option("--output", default="outputs/bench/behaviour.json", show_default=True)
def main(
  seeds: str,
  config_names: str,
  hparams: tuple[str, ...],
  train_split: str,
  test_split: str,
  suite_seed: int,
  tfds_data_dir: str | None,
  work_dir: str,
  output: str,
) -> None:
  """Trains each configuration once per seed and scores it (module docstring)."""
  environment.configure()
  from behaviour import scoring, suite
  from components.behaviour_validator import saved_model_predictor

  overrides = {
    "previous": dict(PREVIOUS_DEFAULTS),
    "current": parse_overrides(hparams),
  }
  names = [n.strip() for n in config_names.split(",") if n.strip()]
  unknown = sorted(set(names) - set(overrides))
  if unknown:
    raise click.BadParameter(f"unknown configuration(s) {unknown}; known: {sorted(overrides)}")
  work_dir = os.path.abspath(work_dir)
  result = _load(output)
  settings = {"train_split": train_split, "test_split": test_split, "suite_seed": suite_seed}
  if result.get("settings") != settings:
    result = {"settings": settings, "runs": []}
  result["machine"] = {"platform": platform.platform(), "cpus": os.cpu_count()}
  cases = suite.build_suite(suite_seed)
  for seed in [int(s) for s in seeds.split(",")]:
    for name in names:
      hp = HParams(**{**overrides[name], "seed": seed})
      key = hp.to_custom_config()["hparams"]
      result["runs"] = [
        run
        for run in result["runs"]
        if not (run["config"] == name and run["seed"] == seed and run["hparams"] != key)
      ]
      if any(run["config"] == name and run["hparams"] == key for run in result["runs"]):
        click.echo(f"{name} seed {seed}: already in {output}, skipped")
        continue
      click.echo(f"{name} seed {seed}: training through the pipeline...")
      trained = train_through_pipeline(hp, work_dir, train_split, tfds_data_dir)
      temperature = (trained.get("calibration") or {}).get("temperature", 1.0)
      report = scoring.score(cases, saved_model_predictor(trained["model_dir"]))
      run = {
        "config": name,
        "seed": seed,
        "hparams": key,
        "temperature": temperature,
        "calibration_eval": trained.get("calibration"),
        "failure_rates": report.failure_rates,
        "overall_failure_rate": report.overall_failure_rate,
        "failing_examples": {
          r.name: list(r.examples[:3]) for r in report.capabilities if r.examples
        },
        "test": golden_test_scores(trained["model_dir"], temperature, test_split, tfds_data_dir),
        "epochs": trained["epochs"],
        "mean_seconds_per_epoch": trained["mean_seconds_per_epoch"],
        "pipeline_seconds": trained["pipeline_seconds"],
        "model_dir": trained["model_dir"],
      }
      result["runs"].append(run)
      result.update(aggregate(result["runs"]))
      _save(output, result)
      click.echo(
        f"  test accuracy {run['test']['accuracy']:.4f}, ECE {run['test']['ece']:.4f} "
        f"(uncalibrated {run['test']['ece_uncalibrated']:.4f}), suite failures "
        f"{run['overall_failure_rate']:.3f}: {json.dumps(run['failure_rates'])}"
      )
  if result["runs"]:
    result.update(aggregate(result["runs"]))
    _save(output, result)
    click.echo(markdown_table(result))
    click.echo(json.dumps(result["targets"], indent=2))


if __name__ == "__main__":
  main()
