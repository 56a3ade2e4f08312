"""Unit tests of the behavioural (CheckList) suite: the generated cases of behaviour.suite
(counts, determinism, what each perturbation changes) and behaviour.scoring's failure
counts, batching, output checks and report, against a tiny lexicon predictor."""

import collections
import hashlib
import json
import math
import os
import random
import re
import subprocess
import sys

import numpy as np
import pytest

from behaviour import scoring, suite
from behaviour.suite import DIR, INV, MFT, Case

CASES = suite.build_suite(seed=0)
BY_CAPABILITY = collections.defaultdict(list)
for _case in CASES:
  BY_CAPABILITY[_case.capability].append(_case)
CAPABILITY_TYPES = {capability.name: capability.test_type for capability in suite.CAPABILITIES}


def _of_type(test_type):
  return [name for name, kind in CAPABILITY_TYPES.items() if kind == test_type]


# --- build_suite ----------------------------------------------------------------------


def test_every_capability_has_40_to_80_cases_and_the_suite_at_least_500():
  assert list(BY_CAPABILITY) == [capability.name for capability in suite.CAPABILITIES]
  for name, cases in BY_CAPABILITY.items():
    assert 40 <= len(cases) <= 80, name
    assert {case.test_type for case in cases} == {CAPABILITY_TYPES[name]}
  assert len(CASES) >= 500


def test_capabilities_are_unique_snake_case_with_known_types():
  names = [capability.name for capability in suite.CAPABILITIES]
  assert len(set(names)) == len(names) == 15
  assert all(re.fullmatch(r"[a-z]+(_[a-z]+)*", name) for name in names)
  assert collections.Counter(CAPABILITY_TYPES.values()) == {MFT: 7, INV: 6, DIR: 2}
  assert all(capability.description.endswith(".") for capability in suite.CAPABILITIES)


def test_suite_is_deterministic_per_seed_and_changes_with_the_seed():
  assert suite.build_suite(0) == CASES
  other = suite.build_suite(1)
  assert other == suite.build_suite(1) and other != CASES
  # Every capability with more candidates than cases draws another sample.
  for name in CAPABILITY_TYPES:
    assert {c.text for c in other if c.capability == name} != {
      c.text for c in BY_CAPABILITY[name]
    }, name


def test_suite_does_not_depend_on_the_process_and_imports_no_tensorflow():
  code = (
    "import sys, hashlib\n"
    "from behaviour import scoring, suite\n"
    "assert 'tensorflow' not in sys.modules\n"
    "print(hashlib.sha256(repr(suite.build_suite(0)).encode()).hexdigest())\n"
  )
  env = {**os.environ, "PYTHONHASHSEED": "12345"}
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  out = subprocess.run(
    [sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, check=True
  )
  assert out.stdout.strip() == hashlib.sha256(repr(CASES).encode()).hexdigest()


def test_texts_do_not_repeat_within_a_capability():
  for name, cases in BY_CAPABILITY.items():
    texts = [case.text for case in cases]
    assert len(set(texts)) == len(texts), name


def test_mft_cases_have_labels_and_mixed_capabilities_are_balanced():
  for name in _of_type(MFT):
    cases = BY_CAPABILITY[name]
    assert all(case.expected in (0, 1) and case.perturbed is None for case in cases)
    labels = collections.Counter(case.expected for case in cases)
    if name == "negated_positive":
      assert labels == {0: len(cases)}
    elif name == "negated_negative":
      assert labels == {1: len(cases)}
    else:
      assert labels[0] == labels[1] == len(cases) // 2, name


def test_mft_texts_carry_their_capabilitys_construction():
  for case in BY_CAPABILITY["negated_positive"] + BY_CAPABILITY["negated_negative"]:
    assert re.search(r"\b(not|never)\b|n't\b", case.text), case.text
  assert all(case.text.endswith(" at all.") for case in BY_CAPABILITY["not_at_all"])
  # Two negations: negators, or a negator and a negative word or construction.
  negation = r"\b(?:not|never|nothing|impossible|hard|anything but|fail\w*|disappoint\w*)\b|n't\b"
  for case in BY_CAPABILITY["double_negation"]:
    assert len(re.findall(negation, case.text, re.IGNORECASE)) >= 2, case.text
  for case in BY_CAPABILITY["contrast"]:
    assert re.search(r", (but|yet) |^(Although|Even though) ", case.text), case.text
  for case in BY_CAPABILITY["short_review"]:
    assert 1 <= len(case.text.split()) <= 6, case.text


def test_inv_and_dir_cases_have_a_different_perturbed_text():
  for name in _of_type(INV) + _of_type(DIR):
    for case in BY_CAPABILITY[name]:
      assert case.perturbed and case.perturbed != case.text
      assert case.expected is None if case.test_type == INV else case.expected in (0, 1)


@pytest.mark.parametrize(
  ("name", "lexicon"), [("inv_names", suite.NAMES), ("inv_titles", suite.TITLES)]
)
def test_name_and_title_swaps_change_only_the_entity(name, lexicon):
  for case in BY_CAPABILITY[name]:
    before = [entity for entity in lexicon if entity in case.text]
    after = [entity for entity in lexicon if entity in case.perturbed]
    assert len(before) == len(after) == 1 and before != after, case
    assert case.text.replace(before[0], after[0]) == case.perturbed


def test_number_changes_change_only_the_number():
  for case in BY_CAPABILITY["inv_numbers"]:
    assert re.sub(r"\d+", "#", case.text) == re.sub(r"\d+", "#", case.perturbed)
    assert re.findall(r"\d+", case.text) != re.findall(r"\d+", case.perturbed)
    assert len(re.findall(r"\d+", case.text)) == 1


def test_casing_changes_only_the_case():
  casings = collections.Counter()
  for case in BY_CAPABILITY["inv_casing"]:
    assert case.perturbed.lower() == case.text.lower() and case.perturbed != case.text
    if case.perturbed.isupper():
      casings["upper"] += 1
    elif case.perturbed.islower():
      casings["lower"] += 1
    else:
      assert all(word[0].isupper() for word in case.perturbed.split()), case
      casings["title"] += 1
  assert set(casings) == {"upper", "lower", "title"}


def test_punctuation_changes_only_the_trailing_punctuation():
  kinds = set()
  for case in BY_CAPABILITY["inv_punctuation"]:
    assert case.text.rstrip(".!") == case.perturbed.rstrip(".!")
    kinds.add((case.text[-1] in ".!", case.perturbed[len(case.text.rstrip(".!")) :]))
  # Removing the period, "!", "!!", and adding a missing period all occur.
  assert kinds == {(True, ""), (True, "!"), (True, "!!"), (False, ".")}


def _adjacent_swap(original, perturbed):
  """The index i where ``perturbed`` is ``original`` with characters i, i+1 swapped, or None."""
  if len(original) != len(perturbed):
    return None
  diff = [i for i, (a, b) in enumerate(zip(original, perturbed)) if a != b]
  if len(diff) != 2 or diff[1] != diff[0] + 1:
    return None
  i = diff[0]
  return i if (original[i], original[i + 1]) == (perturbed[i + 1], perturbed[i]) else None


def test_typo_is_one_adjacent_swap_in_a_neutral_word():
  for case in BY_CAPABILITY["inv_typo"]:
    i = _adjacent_swap(case.text, case.perturbed)
    assert i is not None, case
    word = re.search(r"[a-z]+", case.text[case.text.rfind(" ", 0, i) + 1 :]).group()
    assert word in suite.NEUTRAL_WORDS, (word, case)
  assert _adjacent_swap("film", "flim") == 1 and _adjacent_swap("film", "milf") is None


def test_typo_raises_without_a_neutral_word():
  assert suite.typo("Great film.", random.Random(0)) in {
    "Great iflm.",
    "Great flim.",
    "Great fiml.",
  }
  with pytest.raises(ValueError, match="no neutral word"):
    suite.typo("Loved it!", random.Random(0))


@pytest.mark.parametrize(
  ("name", "direction", "additions"),
  [
    ("dir_add_positive", 1, suite.POSITIVE_ADDITIONS),
    ("dir_add_negative", 0, suite.NEGATIVE_ADDITIONS),
  ],
)
def test_dir_appends_a_sentence_of_its_direction(name, direction, additions):
  for case in BY_CAPABILITY[name]:
    assert case.expected == direction
    assert case.perturbed.startswith(case.text + " ")
    assert case.perturbed[len(case.text) + 1 :] in additions


def test_case_refuses_fields_that_do_not_fit_its_type():
  with pytest.raises(ValueError, match="test_type"):
    Case("c", "mfx", "text", 1)
  with pytest.raises(ValueError, match="expected 0 or 1"):
    Case("c", MFT, "text")
  with pytest.raises(ValueError, match="expected 0 or 1"):
    Case("c", MFT, "text", True)
  with pytest.raises(ValueError, match="no perturbed"):
    Case("c", MFT, "text", 1, "other")
  with pytest.raises(ValueError, match="different from text"):
    Case("c", INV, "text", perturbed="text")
  with pytest.raises(ValueError, match="no expected"):
    Case("c", INV, "text", 1, "other")
  with pytest.raises(ValueError, match="direction"):
    Case("c", DIR, "text", perturbed="text more")


# --- score ----------------------------------------------------------------------------

WEIGHTS = {"good": 2.0, "great": 2.0, "bad": -2.0, "awful": -2.0, "fine": 0.2, "meh": -0.2}


def _sigmoid(x):
  return 1.0 / (1.0 + math.exp(-x))


def _lexicon_p(text):
  return _sigmoid(sum(WEIGHTS.get(word, 0.0) for word in re.findall(r"[a-z]+", text.lower())))


class LexiconPredictor:
  """p(positive) = sigmoid(sum of word weights); records each batch it is called on."""

  def __init__(self):
    self.batches = []

  def __call__(self, texts):
    self.batches.append(list(texts))
    return np.array([_lexicon_p(text) for text in texts], np.float32)


HAND_CASES = (
  # MFT: p("a film") = 0.5 reads positive; "a film" with label 0 fails.
  Case("m", MFT, "a good film", 1),
  Case("m", MFT, "a bad film", 0),
  Case("m", MFT, "not good", 0),  # fails
  Case("m", MFT, "a film", 1),
  Case("m", MFT, "a film", 0),  # fails
  # INV: the label flips in 2 of 4.
  Case("i", INV, "good film", perturbed="good movie"),
  Case("i", INV, "good film", perturbed="bad film"),  # fails
  Case("i", INV, "awful film", perturbed="awful film!!"),
  Case("i", INV, "great", perturbed="great bad bad"),  # fails
  # DIR up: a drop of 0.02 is tolerated, one of 0.38 is not.
  Case("up", DIR, "good", 1, "good meh"),
  Case("up", DIR, "good", 1, "good bad"),  # fails
  Case("up", DIR, "a film", 1, "a film great"),
  # DIR down: a rise of 0.02 is tolerated, one of 0.38 is not.
  Case("down", DIR, "bad", 0, "bad fine"),
  Case("down", DIR, "bad", 0, "bad good"),  # fails
  Case("down", DIR, "a film", 0, "a film awful"),
)


def test_score_counts_the_failures_of_each_test_type():
  report = scoring.score(HAND_CASES, LexiconPredictor())
  assert [(r.name, r.test_type, r.cases, r.failures) for r in report.capabilities] == [
    ("m", MFT, 5, 2),
    ("i", INV, 4, 2),
    ("up", DIR, 3, 1),
    ("down", DIR, 3, 1),
  ]
  assert report.failure_rates == pytest.approx({"m": 0.4, "i": 0.5, "up": 1 / 3, "down": 1 / 3})
  assert report.overall_failure_rate == pytest.approx(6 / 15)


def test_score_keeps_failing_examples_with_their_probabilities():
  report = scoring.score(HAND_CASES, LexiconPredictor())
  m, i, up, _ = report.capabilities
  assert [e["text"] for e in m.examples] == ["not good", "a film"]
  assert m.examples[0] == {
    "text": "not good",
    "perturbed": None,
    "expected": 0,
    "p": pytest.approx(_sigmoid(2.0)),
    "p_perturbed": None,
  }
  assert [(e["text"], e["perturbed"]) for e in i.examples] == [
    ("good film", "bad film"),
    ("great", "great bad bad"),
  ]
  assert up.examples[0]["p"] == pytest.approx(_sigmoid(2.0))
  assert up.examples[0]["p_perturbed"] == pytest.approx(0.5)
  assert all(type(e["p"]) is float for e in m.examples + i.examples)
  one = scoring.score(HAND_CASES, LexiconPredictor(), max_examples=1)
  assert [(r.failures, len(r.examples)) for r in one.capabilities] == [
    (2, 1),
    (2, 1),
    (1, 1),
    (1, 1),
  ]


def test_score_respects_the_dir_tolerance():
  # With no tolerance, the 0.02 moves fail too.
  strict = scoring.score(HAND_CASES, LexiconPredictor(), dir_tolerance=0.0)
  assert strict.failure_rates["up"] == strict.failure_rates["down"] == pytest.approx(2 / 3)
  lax = scoring.score(HAND_CASES, LexiconPredictor(), dir_tolerance=0.5)
  assert lax.failure_rates["up"] == lax.failure_rates["down"] == 0.0


def test_score_predicts_each_unique_text_once_in_batches():
  predictor = LexiconPredictor()
  scoring.score(HAND_CASES, predictor, batch_size=4)
  unique = {text for case in HAND_CASES for text in (case.text, case.perturbed) if text}
  predicted = [text for batch in predictor.batches for text in batch]
  assert sorted(predicted) == sorted(unique)  # each once
  assert len(unique) == 19
  assert [len(batch) for batch in predictor.batches] == [4, 4, 4, 4, 3]


def test_score_on_the_whole_suite():
  predictor = LexiconPredictor()
  report = scoring.score(CASES, predictor)
  assert [r.name for r in report.capabilities] == list(CAPABILITY_TYPES)
  assert [r.cases for r in report.capabilities] == [len(BY_CAPABILITY[n]) for n in CAPABILITY_TYPES]
  assert all(len(batch) <= 256 for batch in predictor.batches)
  predicted = [text for batch in predictor.batches for text in batch]
  assert len(predicted) == len(set(predicted))
  # A predictor that always says 0.5 (positive): MFT fails exactly the negative cases,
  # INV and DIR never fail.
  constant = scoring.score(CASES, lambda texts: np.full(len(texts), 0.5))
  for result in constant.capabilities:
    negatives = sum(case.expected == 0 for case in BY_CAPABILITY[result.name])
    assert result.failures == (negatives if result.test_type == MFT else 0), result.name
    assert len(result.examples) == min(result.failures, scoring.MAX_EXAMPLES)


@pytest.mark.parametrize(
  ("predict", "match"),
  [
    (lambda texts: np.full((len(texts), 1), 0.5), r"shape \(4, 1\) for 4 texts"),
    (lambda texts: np.full(len(texts) + 1, 0.5), r"shape \(5,\)"),
    (lambda texts: np.array([0.5, np.nan, 0.5, 0.5]), "non-finite"),
    (lambda texts: np.array([0.5, 0.5, 1.5, 0.5]), r"outside \[0, 1\]"),
    (lambda texts: np.array([0.5, -0.1, 0.5, 0.5]), r"outside \[0, 1\]"),
    (lambda texts: ["0.5"] * len(texts), "expected floats"),
  ],
)
def test_score_refuses_bad_predictor_outputs(predict, match):
  cases = [Case("m", MFT, text, 1) for text in ("a", "b", "c", "d")]
  with pytest.raises(ValueError, match=match):
    scoring.score(cases, predict)


def test_score_refuses_bad_arguments():
  predictor = LexiconPredictor()
  with pytest.raises(ValueError, match="no cases"):
    scoring.score([], predictor)
  with pytest.raises(ValueError, match="batch_size"):
    scoring.score(HAND_CASES, predictor, batch_size=0)
  with pytest.raises(ValueError, match="mixes test types"):
    scoring.score([Case("x", MFT, "a", 1), Case("x", INV, "a", perturbed="b")], predictor)
  assert predictor.batches == []


# --- Report ---------------------------------------------------------------------------


def test_report_json_round_trip():
  report = scoring.score(HAND_CASES, LexiconPredictor())
  text = report.to_json()
  assert scoring.Report.from_json(text) == report
  data = json.loads(text)
  assert [r["name"] for r in data["capabilities"]] == ["m", "i", "up", "down"]
  assert data["capabilities"][0]["failure_rate"] == 0.4
  with pytest.raises(ValueError, match="not a behavioural test report"):
    scoring.Report.from_json("not json")
  with pytest.raises(ValueError, match="keys"):
    scoring.Report.from_json('{"capabilities": [{"name": "m"}]}')


def test_failed_capabilities_are_those_above_their_threshold():
  report = scoring.score(HAND_CASES, LexiconPredictor())  # m 0.4, i 0.5, up/down 1/3
  assert report.failed_capabilities({"m": 0.5, "i": 0.4, "up": 0.2}) == ["i", "up"]
  assert report.failed_capabilities({"i": 0.5, "m": 0.4}) == []  # equal is not above
  assert report.failed_capabilities({}) == []
  with pytest.raises(ValueError, match=r"not in the report: \['typo'\]"):
    report.failed_capabilities({"m": 0.5, "typo": 0.1})
  with pytest.raises(ValueError, match=r"in \[0, 1\]"):
    report.failed_capabilities({"m": 1.5})
