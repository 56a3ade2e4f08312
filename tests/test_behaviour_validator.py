"""Tests of components.behaviour_validator: the thresholds it accepts, how it judges, and
its executor on a real exported SavedModel (tests/tiny_model.py)."""

import json
import os
import shutil

import pytest
import tiny_model
from tfx.types import standard_artifacts

from behaviour import scoring, suite
from components import behaviour_validator as bv

# --- thresholds and judging -----------------------------------------------------------


def test_parse_thresholds_accepts_known_capabilities_and_nothing():
  assert bv.parse_thresholds("") == {}
  assert bv.parse_thresholds('{"contrast": 0.2, "inv_typo": 0}') == {
    "contrast": 0.2,
    "inv_typo": 0.0,
  }


@pytest.mark.parametrize(
  "text, message",
  [
    ("{contrast: 0.2}", "not JSON"),
    ("[0.2]", "JSON object"),
    ('{"sarcasm": 0.1}', "no capability 'sarcasm'"),
    ('{"contrast": 1.5}', r"contrast must be a failure rate in \[0, 1\], got 1.5"),
    ('{"contrast": true}', "contrast must be a failure rate"),
    ('{"contrast": "0.2"}', "contrast must be a failure rate"),
  ],
)
def test_parse_thresholds_names_the_problem(text, message):
  with pytest.raises(ValueError, match=message):
    bv.parse_thresholds(text)


def _report(**rates):
  return scoring.Report(
    tuple(
      scoring.CapabilityResult(name, suite.MFT, 100, round(rate * 100), rate)
      for name, rate in rates.items()
    )
  )


def test_judge_shows_three_failing_cases_of_each_capability():
  examples = tuple(
    {"text": f"Case {i}.", "perturbed": None, "expected": 1, "p": 0.1 * i, "p_perturbed": None}
    for i in range(5)
  )
  inv = ({"text": "A.", "perturbed": "a", "expected": None, "p": 0.9, "p_perturbed": 0.2},)
  report = scoring.Report(
    (
      scoring.CapabilityResult("contrast", suite.MFT, 10, 5, 0.5, examples),
      scoring.CapabilityResult("inv_casing", suite.INV, 10, 1, 0.1, inv),
    )
  )
  blessed, reasons = bv.judge(report, {"contrast": 0.2, "inv_casing": 0.0}, True)
  assert not blessed
  assert reasons == [
    'contrast 0.500 > 0.200, e.g. "Case 0." p=0.00, "Case 1." p=0.10, "Case 2." p=0.20',
    'inv_casing 0.100 > 0.000, e.g. "A." p=0.90 -> "a" p=0.20',
  ]


def test_judge_needs_the_evaluator_and_every_threshold():
  report = _report(contrast=0.3, negated_negative=0.1)
  assert bv.judge(report, {}, evaluator_blessed=True) == (True, [])
  assert bv.judge(report, {"contrast": 0.3}, True) == (True, [])  # at the threshold passes
  assert bv.judge(report, {"contrast": 0.2, "negated_negative": 0.2}, True) == (
    False,
    ["contrast 0.300 > 0.200"],
  )
  assert bv.judge(report, {"contrast": 0.2}, evaluator_blessed=False) == (
    False,
    ["the Evaluator did not bless the model", "contrast 0.300 > 0.200"],
  )


# --- the executor on a real SavedModel ------------------------------------------------


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
  return tiny_model.export_tiny_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def tiny_rates(tiny_export):
  """The tiny model's report, scored directly (not through the component)."""
  return scoring.score(suite.build_suite(0), bv.saved_model_predictor(tiny_export.export_dir))


def _model(root, export_dir, name, artifact_id):
  model = standard_artifacts.Model()
  model.uri = str(root / name)
  if os.path.isdir(export_dir):
    shutil.copytree(export_dir, os.path.join(model.uri, "Format-Serving"))
  else:  # no SavedModel at all
    os.makedirs(os.path.join(model.uri, "Format-Serving"))
  model.id = artifact_id
  return model


def _run(root, export_dir, evaluator_blessed=True, baseline=False, thresholds=""):
  evaluator_blessing = standard_artifacts.ModelBlessing()
  evaluator_blessing.set_int_custom_property("blessed", int(evaluator_blessed))
  inputs = {
    "model": [_model(root, export_dir, "candidate", 7)],
    "model_blessing": [evaluator_blessing],
  }
  if baseline:
    inputs["baseline_model"] = [_model(root, export_dir, "baseline", 3)]
  outputs = {
    "report": [bv.BehaviourReport()],
    "behaviour_blessing": [standard_artifacts.ModelBlessing()],
  }
  for key, (artifact,) in outputs.items():
    artifact.uri = str(root / key)
    os.makedirs(artifact.uri)
  executor = bv.BehaviourValidator.EXECUTOR_SPEC.executor_class()
  executor.Do(inputs, outputs, {"thresholds": thresholds, "suite_seed": 0})
  return outputs["report"][0], outputs["behaviour_blessing"][0]


def test_validator_reports_the_suite_and_blesses_what_the_evaluator_blessed(
  tmp_path, tiny_export, tiny_rates
):
  report, blessing = _run(tmp_path, tiny_export.export_dir, baseline=True)
  expected = tiny_rates
  with open(os.path.join(report.uri, bv.CANDIDATE_FILE)) as f:
    written = scoring.Report.from_json(f.read())
  assert written == expected
  assert len(written.capabilities) == len(suite.CAPABILITIES)
  for name, rate in expected.failure_rates.items():
    assert report.get_float_custom_property(f"failure_rate_{name}") == pytest.approx(rate)
    # The baseline is the same SavedModel here, so its rates are the candidate's.
    assert report.get_float_custom_property(f"baseline_failure_rate_{name}") == pytest.approx(rate)
  assert os.path.exists(os.path.join(report.uri, bv.BASELINE_FILE))
  assert report.get_string_custom_property("failed_capabilities") == ""
  assert blessing.get_int_custom_property("blessed") == 1
  assert blessing.get_int_custom_property("current_model_id") == 7
  assert blessing.get_int_custom_property("baseline_model_id") == 3
  assert os.listdir(blessing.uri) == [bv.BLESSED_FILE]


def test_validator_refuses_a_capability_over_its_threshold(tmp_path, tiny_export, tiny_rates):
  rates = tiny_rates.failure_rates
  worst = max(rates, key=rates.get)
  assert rates[worst] > 0  # an untrained model fails some cases
  thresholds = json.dumps({worst: rates[worst] / 2, "inv_casing": 1.0})
  report, blessing = _run(tmp_path, tiny_export.export_dir, thresholds=thresholds)
  assert report.get_string_custom_property("failed_capabilities") == worst
  assert blessing.get_int_custom_property("blessed") == 0
  reason = f"{worst} {rates[worst]:.3f} > {rates[worst] / 2:.3f}, e.g. "
  reasons = blessing.get_string_custom_property("reasons")
  assert reasons.startswith(reason)
  # Three failing cases, each quoted with its probability.
  (failing,) = [r for r in tiny_rates.capabilities if r.name == worst]
  for case in failing.examples[:3]:
    assert json.dumps(case["text"]) + f" p={case['p']:.2f}" in reasons
  assert reasons.count(" p=") >= 3
  assert os.listdir(blessing.uri) == [bv.NOT_BLESSED_FILE]
  assert not os.path.exists(os.path.join(report.uri, bv.BASELINE_FILE))


def test_validator_never_blesses_what_the_evaluator_did_not(tmp_path, tiny_export):
  _, blessing = _run(tmp_path, tiny_export.export_dir, evaluator_blessed=False)
  assert blessing.get_int_custom_property("blessed") == 0
  assert "the Evaluator did not bless" in blessing.get_string_custom_property("reasons")


def test_validator_checks_thresholds_before_loading_any_model(tmp_path):
  with pytest.raises(ValueError, match="no capability 'sarcasm'"):
    _run(tmp_path, str(tmp_path / "no_model"), thresholds='{"sarcasm": 0.1}')
