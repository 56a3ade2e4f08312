"""Runs a sentiment predictor over behavioural test cases and reports failure rates.

The failure rules are CheckList's (Ribeiro, Wu, Guestrin and Singh, "Beyond Accuracy:
Behavioral Testing of NLP Models with CheckList", ACL 2020), with a review labelled positive
when p(positive) >= ``DECISION_THRESHOLD``:

* MFT: the predicted label differs from ``Case.expected``.
* INV: the predicted labels of ``Case.text`` and ``Case.perturbed`` differ.
* DIR: p(positive) of the perturbed text moves against ``Case.expected`` (1 = up, 0 = down)
  by more than ``DIR_TOLERANCE``: ``p_perturbed < p - tol`` for 1, ``p_perturbed > p + tol``
  for 0.

Usage::

  cases = suite.build_suite(seed=0)
  report = scoring.score(cases, predict)  # predict(texts) -> p(positive), float [n]
  report.failure_rates                    # {capability name: failure rate}
"""

import dataclasses
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from behaviour.suite import DIR_TOLERANCE, INV, MFT, TEST_TYPES, Case

# A review is positive when p(positive) is at least this (the served model's threshold).
DECISION_THRESHOLD = 0.5
# Failing cases kept per capability in a report.
MAX_EXAMPLES = 10

Predictor = Callable[[Sequence[str]], Any]
_EXAMPLE_KEYS = ("text", "perturbed", "expected", "p", "p_perturbed")
_RESULT_KEYS = ("name", "test_type", "cases", "failures", "failure_rate", "examples")


@dataclasses.dataclass(frozen=True)
class CapabilityResult:
  """The outcome of one capability's cases.

  Attributes:
    name: the capability.
    test_type: ``MFT``, ``INV`` or ``DIR``.
    cases: number of cases, > 0.
    failures: number of failing cases, 0..cases.
    failure_rate: ``failures / cases``.
    examples: up to ``max_examples`` failing cases, in case order, each a dict with keys
      ``text``, ``perturbed`` (None for MFT), ``expected`` (None for INV), ``p`` and
      ``p_perturbed`` (None for MFT): the probabilities are p(positive), Python floats.
  """

  name: str
  test_type: str
  cases: int
  failures: int
  failure_rate: float
  examples: tuple[dict[str, Any], ...] = ()


@dataclasses.dataclass(frozen=True)
class Report:
  """Failure rates of a predictor on a behavioural suite, one result per capability.

  Attributes:
    capabilities: the results, in the order the capabilities first appear in the cases.
  """

  capabilities: tuple[CapabilityResult, ...]

  @property
  def failure_rates(self) -> dict[str, float]:
    """Capability name -> failure rate in [0, 1]."""
    return {result.name: result.failure_rate for result in self.capabilities}

  @property
  def overall_failure_rate(self) -> float:
    """Failing cases over all cases, every case weighing the same (0.0 with no cases)."""
    cases = sum(result.cases for result in self.capabilities)
    return sum(result.failures for result in self.capabilities) / cases if cases else 0.0

  def failed_capabilities(self, thresholds: Mapping[str, float]) -> list[str]:
    """The capabilities whose failure rate is above their threshold.

    Args:
      thresholds: capability name -> highest acceptable failure rate, in [0, 1].
        Capabilities without a threshold are not checked.

    Returns:
      Their names, in report order.

    Raises:
      ValueError: for a threshold of a capability not in the report, or outside [0, 1].
    """
    rates = self.failure_rates
    unknown = sorted(set(thresholds) - set(rates))
    if unknown:
      raise ValueError(f"thresholds for capabilities not in the report: {unknown}")
    for name, threshold in thresholds.items():
      if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold of {name} must be in [0, 1], got {threshold}")
    return [name for name, rate in rates.items() if name in thresholds and rate > thresholds[name]]

  def to_json(self) -> str:
    """The report as a JSON object ``{"capabilities": [...]}``, read back by ``from_json``."""
    return json.dumps(
      {"capabilities": [dataclasses.asdict(result) for result in self.capabilities]}, indent=2
    )

  @classmethod
  def from_json(cls, text: str) -> "Report":
    """Reads a report written by ``to_json``.

    Raises:
      ValueError: if ``text`` is not such a report (bad JSON, missing or unknown keys).
    """
    try:
      data = json.loads(text)
      results = data["capabilities"]
      if set(data) != {"capabilities"} or not isinstance(results, list):
        raise ValueError("expected an object with one list, 'capabilities'")
      capabilities = []
      for result in results:
        if set(result) != set(_RESULT_KEYS):
          raise ValueError(f"a capability result has keys {sorted(result)}")
        examples = tuple(dict(example) for example in result["examples"])
        if any(set(example) != set(_EXAMPLE_KEYS) for example in examples):
          raise ValueError(f"an example of {result['name']} has the wrong keys")
        capabilities.append(CapabilityResult(**{**result, "examples": examples}))
    except (json.JSONDecodeError, KeyError, TypeError) as e:
      raise ValueError(f"not a behavioural test report: {e}") from e
    return cls(tuple(capabilities))


def _predictions(texts: Sequence[str], predict: Predictor, batch_size: int) -> dict[str, float]:
  """p(positive) of each text, from ``predict`` on batches of at most ``batch_size``."""
  probabilities: dict[str, float] = {}
  for start in range(0, len(texts), batch_size):
    batch = list(texts[start : start + batch_size])
    output = np.asarray(predict(batch))
    if output.dtype.kind not in "biuf":
      raise ValueError(f"predict returned {output.dtype} values; expected floats")
    if output.shape != (len(batch),):
      raise ValueError(
        f"predict returned shape {output.shape} for {len(batch)} texts; expected ({len(batch)},)"
      )
    output = output.astype(np.float64)
    if not np.all(np.isfinite(output)):
      raise ValueError(f"predict returned non-finite probabilities: {output[~np.isfinite(output)]}")
    if np.any((output < 0.0) | (output > 1.0)):
      outside = output[(output < 0.0) | (output > 1.0)]
      raise ValueError(f"predict returned probabilities outside [0, 1]: {outside}")
    probabilities.update(zip(batch, output.tolist()))
  return probabilities


def _label(p: float) -> int:
  return int(p >= DECISION_THRESHOLD)


def _fails(case: Case, p: float, p_perturbed: float | None, tolerance: float) -> bool:
  if case.test_type == MFT:
    return _label(p) != case.expected
  assert p_perturbed is not None  # Case guarantees a perturbation for INV and DIR
  if case.test_type == INV:
    return _label(p) != _label(p_perturbed)
  if case.expected == 1:
    return p_perturbed < p - tolerance
  return p_perturbed > p + tolerance


def score(
  cases: Iterable[Case],
  predict: Predictor,
  batch_size: int = 256,
  max_examples: int = MAX_EXAMPLES,
  dir_tolerance: float = DIR_TOLERANCE,
) -> Report:
  """Predicts every text of ``cases`` once and counts the failures of each capability.

  Args:
    cases: the test cases (``suite.build_suite()``), grouped or not by capability.
    predict: maps a list of n review strings to p(positive) of each, array-like of shape
      [n], finite floats in [0, 1]. Called on batches of the distinct texts (originals and
      perturbations together, each predicted exactly once).
    batch_size: most texts per ``predict`` call, >= 1.
    max_examples: failing cases kept per capability, >= 0.
    dir_tolerance: how far a DIR case's p(positive) may move the wrong way, >= 0.

  Returns:
    A ``Report`` with one result per capability, in the order they first appear.

  Raises:
    ValueError: if ``cases`` is empty, a capability mixes test types, ``batch_size``,
      ``max_examples`` or ``dir_tolerance`` is out of range, or ``predict`` returns
      something else than finite floats in [0, 1] of shape [n] (the message names which).
  """
  cases = tuple(cases)
  if not cases:
    raise ValueError("no cases to score")
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  if max_examples < 0:
    raise ValueError(f"max_examples must be >= 0, got {max_examples}")
  if not (dir_tolerance >= 0 and math.isfinite(dir_tolerance)):
    raise ValueError(f"dir_tolerance must be finite and >= 0, got {dir_tolerance}")
  by_capability: dict[str, list[Case]] = {}
  for case in cases:
    if case.test_type not in TEST_TYPES:
      raise ValueError(f"unknown test type {case.test_type!r}")
    group = by_capability.setdefault(case.capability, [])
    if group and group[0].test_type != case.test_type:
      raise ValueError(
        f"capability {case.capability} mixes test types {group[0].test_type} and {case.test_type}"
      )
    group.append(case)

  texts = list(dict.fromkeys(text for case in cases for text in (case.text, case.perturbed)))
  texts = [text for text in texts if text is not None]
  p = _predictions(texts, predict, batch_size)

  results = []
  for name, group in by_capability.items():
    failures, examples = 0, []
    for case in group:
      p_text = p[case.text]
      p_perturbed = None if case.perturbed is None else p[case.perturbed]
      if not _fails(case, p_text, p_perturbed, dir_tolerance):
        continue
      failures += 1
      if len(examples) < max_examples:
        examples.append(
          {
            "text": case.text,
            "perturbed": case.perturbed,
            "expected": case.expected,
            "p": p_text,
            "p_perturbed": p_perturbed,
          }
        )
    results.append(
      CapabilityResult(
        name=name,
        test_type=group[0].test_type,
        cases=len(group),
        failures=failures,
        failure_rate=failures / len(group),
        examples=tuple(examples),
      )
    )
  return Report(tuple(results))
