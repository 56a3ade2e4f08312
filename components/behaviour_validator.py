"""BehaviourValidator: the candidate model through the behavioural test suite, and a
blessing that holds only when the Evaluator blessed it and every capability with a
threshold stays within it.

Why a component of our own: TFMA's metrics are aggregates over labelled examples, and
TFX has no component that runs generated test cases (CheckList's MFT/INV/DIR tests,
Ribeiro et al. 2020, ``behaviour``) through a model and gates on their failure rates.
It runs after the Evaluator and before the Pusher, takes the Evaluator's ModelBlessing
and writes a ModelBlessing of its own in TFX's form (``blessed``, ``current_model_id``
and the ``BLESSED``/``NOT_BLESSED`` marker file), so the Pusher and TFX's
``LatestBlessedModelStrategy`` read it as they read the Evaluator's.

Outputs:

* ``report`` (``BehaviourReport``): ``candidate.json`` (``behaviour.scoring.Report``) and,
  with a baseline model, ``baseline.json``; custom properties ``failure_rate_<capability>``
  and ``baseline_failure_rate_<capability>`` (floats in [0, 1]), ``overall_failure_rate``,
  ``failed_capabilities`` (comma-separated, "" for none);
* ``behaviour_blessing`` (ModelBlessing): ``blessed`` 1/0 and ``reasons`` (why not, "" when blessed).
"""

import json
import os
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import tensorflow as tf
from tfx import types
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts
from tfx.utils import io_utils, path_utils

from behaviour import scoring, suite
from core import contract

CANDIDATE_FILE = "candidate.json"
BASELINE_FILE = "baseline.json"
# TFX's ModelBlessing marker files and custom properties (as the Evaluator writes them).
BLESSED_FILE, NOT_BLESSED_FILE = "BLESSED", "NOT_BLESSED"
BATCH_SIZE = 256
# Failing cases a reason shows per capability.
SHOWN_FAILURES = 3


class BehaviourReport(types.Artifact):
  """Failure rates of a model on the behavioural test suite (module docstring)."""

  # Namespaced: Kubeflow V2's compiler takes a custom type's name as a KFP schema title,
  # which must read ``<namespace>.<Name>``.
  TYPE_NAME = "imdb_tfx.BehaviourReport"


def parse_thresholds(text: str) -> dict[str, float]:
  """``{"capability": highest failure rate, ...}`` from JSON; "" is no thresholds.

  Raises:
    ValueError: not a JSON object, a capability the suite does not have, or a threshold
      outside [0, 1]; the message names it.
  """
  if not text.strip():
    return {}
  try:
    thresholds = json.loads(text)
  except json.JSONDecodeError as e:
    raise ValueError(f"behaviour thresholds are not JSON: {e}: {text!r}") from e
  if not isinstance(thresholds, dict):
    raise ValueError(f"behaviour thresholds must be a JSON object, got {text!r}")
  known = [capability.name for capability in suite.CAPABILITIES]
  for name, value in thresholds.items():
    if name not in known:
      raise ValueError(f"no capability {name!r} in the behavioural suite; known: {known}")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
      raise ValueError(f"the threshold of {name} must be a failure rate in [0, 1], got {value!r}")
  return {name: float(value) for name, value in thresholds.items()}


def saved_model_predictor(export_dir: str) -> Callable[[Sequence[str]], np.ndarray]:
  """p(positive) of raw reviews through a SavedModel's ``predict_text`` signature.

  Returns:
    ``predict(texts)`` -> float32 [len(texts)].

  Raises:
    KeyError: the SavedModel has no ``predict_text`` signature.
  """
  signature = tf.saved_model.load(export_dir).signatures[contract.PREDICT_TEXT]

  def predict(texts: Sequence[str]) -> np.ndarray:
    outputs = signature(text=tf.constant(list(texts), dtype=tf.string))
    return outputs[contract.PROBABILITIES].numpy().reshape(-1)

  return predict


def judge(
  report: scoring.Report, thresholds: Mapping[str, float], evaluator_blessed: bool
) -> tuple[bool, list[str]]:
  """Blessed when the Evaluator blessed the model and no capability passes its threshold.

  Returns:
    ``(blessed, reasons)``: one reason per capability over its threshold, with up to
    ``SHOWN_FAILURES`` of its failing cases (``'contrast 0.850 > 0.200, e.g. "The plot was
    dull, but the film was superb." p=0.08'``), and one when the Evaluator did not bless.
  """
  rates = report.failure_rates
  results = {result.name: result for result in report.capabilities}
  reasons = [] if evaluator_blessed else ["the Evaluator did not bless the model"]
  for name in report.failed_capabilities(thresholds):
    reason = f"{name} {rates[name]:.3f} > {thresholds[name]:.3f}"
    shown = [_case_text(case) for case in results[name].examples[:SHOWN_FAILURES]]
    reasons.append(reason + (", e.g. " + ", ".join(shown) if shown else ""))
  return not reasons, reasons


def _case_text(case: Mapping) -> str:
  """One failing case as a reason shows it: ``"text" p=0.08``, and for INV and DIR cases
  ``-> "perturbed" p=0.91`` after it (p = p(positive))."""
  text = f"{json.dumps(case['text'])} p={case['p']:.2f}"
  if case.get("perturbed") is not None:
    text += f" -> {json.dumps(case['perturbed'])} p={case['p_perturbed']:.2f}"
  return text


def _write_blessing(blessing, model, baseline_model, blessed: bool, reasons: list[str]) -> None:
  io_utils.write_string_file(
    os.path.join(blessing.uri, BLESSED_FILE if blessed else NOT_BLESSED_FILE), ""
  )
  blessing.set_int_custom_property("blessed", int(blessed))
  blessing.set_string_custom_property("reasons", "; ".join(reasons))
  blessing.set_string_custom_property("current_model", model.uri)
  blessing.set_int_custom_property("current_model_id", model.id)
  if baseline_model is not None:
    blessing.set_string_custom_property("baseline_model", baseline_model.uri)
    blessing.set_int_custom_property("baseline_model_id", baseline_model.id)


def _record(report_artifact, name: str, prefix: str, report: scoring.Report) -> None:
  io_utils.write_string_file(os.path.join(report_artifact.uri, name), report.to_json())
  for capability, rate in report.failure_rates.items():
    report_artifact.set_float_custom_property(f"{prefix}failure_rate_{capability}", rate)
  report_artifact.set_float_custom_property(
    f"{prefix}overall_failure_rate", report.overall_failure_rate
  )


@component
def BehaviourValidator(  # noqa: N802 - TFX names a component (a function here) like a class
  model: InputArtifact[standard_artifacts.Model],
  model_blessing: InputArtifact[standard_artifacts.ModelBlessing],
  report: OutputArtifact[BehaviourReport],
  behaviour_blessing: OutputArtifact[standard_artifacts.ModelBlessing],
  baseline_model: InputArtifact[standard_artifacts.Model] = None,
  thresholds: Parameter[str] = "",
  suite_seed: Parameter[int] = 0,
) -> None:
  """Scores the candidate (and the baseline, for comparison) on the behavioural suite and
  blesses the candidate when the Evaluator did and every threshold holds.

  Args:
    model: the Trainer's Model (``Format-Serving`` SavedModel with ``predict_text``).
    model_blessing: the Evaluator's ModelBlessing of ``model``.
    report: output BehaviourReport (module docstring).
    behaviour_blessing: output ModelBlessing, what the Pusher reads. Not ``blessing``, the
      Evaluator's key: Airflow's legacy launcher names an artifact ``<key>:<run id>``, and
      MLMD refuses two ModelBlessings of one name.
    baseline_model: optional, the model serving now (shown beside the candidate; its
      rates gate nothing).
    thresholds: JSON ``{"capability": highest failure rate in [0, 1]}``; capabilities
      without one are reported, never gating; "" gates on the Evaluator alone.
    suite_seed: the seed of ``behaviour.suite.build_suite``.

  Raises:
    ValueError: bad ``thresholds`` (before any model is loaded), or a model whose
      ``predict_text`` returns no probabilities in [0, 1].
  """
  gates = parse_thresholds(thresholds)
  cases = suite.build_suite(suite_seed)
  candidate = scoring.score(
    cases, saved_model_predictor(path_utils.serving_model_dir(model.uri)), BATCH_SIZE
  )
  _record(report, CANDIDATE_FILE, "", candidate)
  if baseline_model is not None:
    baseline = scoring.score(
      cases, saved_model_predictor(path_utils.serving_model_dir(baseline_model.uri)), BATCH_SIZE
    )
    _record(report, BASELINE_FILE, "baseline_", baseline)
  evaluator_blessed = bool(model_blessing.get_int_custom_property("blessed"))
  blessed, reasons = judge(candidate, gates, evaluator_blessed)
  report.set_string_custom_property(
    "failed_capabilities", ",".join(candidate.failed_capabilities(gates))
  )
  _write_blessing(behaviour_blessing, model, baseline_model, blessed, reasons)
