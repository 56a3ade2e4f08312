"""The span pipeline's resolver strategies (pipeline.model_resolvers) on artifacts with ML
Metadata ids, in the order a sequence of runs registers them."""

import pytest
from tfx.types import standard_artifacts

from pipeline.model_resolvers import (
  PreviousBlessedModelStrategy,
  PublishedBefore,
  ServingAtArrivalStrategy,
)


def _artifact(kind, artifact_id, **custom):
  artifact = kind()
  artifact.id = artifact_id
  for key, value in custom.items():
    artifact.set_int_custom_property(key, value)
  return artifact


def _model(artifact_id):
  return _artifact(standard_artifacts.Model, artifact_id)


def _blessing(artifact_id, model, blessed=1):
  return _artifact(
    standard_artifacts.ModelBlessing, artifact_id, blessed=blessed, current_model_id=model.id
  )


def _examples(artifact_id):
  return _artifact(standard_artifacts.Examples, artifact_id)


# Run 1 ingests span 1 (examples 10), trains model 11, blesses it (12); run 2 ingests span 2
# (20), trains 21, blesses it (22); run 3 ingests span 3 (30), trains 31, which the suite
# stops (32, not blessed).
SPAN_1, SPAN_2, SPAN_3 = _examples(10), _examples(20), _examples(30)
M1, M2, M3 = _model(11), _model(21), _model(31)
BLESSINGS = [_blessing(12, M1), _blessing(22, M2), _blessing(32, M3, blessed=0)]
MODELS = [M3, M1, M2]  # in no particular order, as a query may return them


def _ids(result):
  return [a.id for a in result["model"]], [a.id for a in result["model_blessing"]]


@pytest.mark.parametrize(
  "arrived, expected",
  [
    ([SPAN_1], ([], [])),  # nothing blessed before the first span
    ([SPAN_2], ([11], [12])),  # run 2, and a later run with nothing new: run 1's model
    ([SPAN_3], ([21], [22])),  # run 3: run 2's model (run 3's own is not blessed)
    ([SPAN_1, SPAN_2], ([11], [12])),  # the newest of several
  ],
)
def test_serving_at_arrival_is_the_model_blessed_before_the_newest_examples(arrived, expected):
  result = ServingAtArrivalStrategy().resolve_artifacts(
    None, {"model": MODELS, "model_blessing": BLESSINGS, "arrived_examples": arrived}
  )
  assert _ids(result) == expected
  assert result["arrived_examples"] == arrived  # every input key comes back, as TFX expects


@pytest.mark.parametrize(
  "candidate, expected",
  [
    ([M2], ([11], [12])),  # the candidate is the serving model: the one it was judged against
    ([M3], ([21], [22])),  # a new candidate: the serving model
    ([_model(41)], ([21], [22])),
    ([M1], ([21], [22])),
    ([], ([21], [22])),
  ],
)
def test_baseline_is_the_newest_blessed_model_but_the_candidate(candidate, expected):
  result = PreviousBlessedModelStrategy().resolve_artifacts(
    None, {"model": MODELS, "model_blessing": BLESSINGS, "candidate": candidate}
  )
  assert _ids(result) == expected
  assert result["candidate"] == candidate


def test_nothing_blessed_resolves_nothing():
  result = PreviousBlessedModelStrategy().resolve_artifacts(
    None, {"model": [M1], "model_blessing": [_blessing(12, M1, blessed=0)], "candidate": [M2]}
  )
  assert _ids(result) == ([], [])


def test_a_model_blessed_again_counts_with_its_newest_blessing():
  blessings = [_blessing(12, M1), _blessing(25, M1)]
  result = ServingAtArrivalStrategy().resolve_artifacts(
    None, {"model": [M1], "model_blessing": blessings, "arrived_examples": [SPAN_3]}
  )
  assert _ids(result) == ([11], [25])


@pytest.mark.parametrize(
  "input_dict, message",
  [
    ({"model": [], "model_blessing": []}, "expected the input channels"),
    (
      {"model": [SPAN_1], "model_blessing": [], "arrived_examples": []},
      "channel 'model' holds Examples artifacts",
    ),
  ],
)
def test_miswired_channels_are_refused(input_dict, message):
  with pytest.raises(ValueError, match=message):
    ServingAtArrivalStrategy().resolve_artifacts(None, input_dict)


def _statistics(artifact_id):
  return _artifact(standard_artifacts.ExampleStatistics, artifact_id)


# Span 1's statistics (10) validated (11); span 2's (20) validated (21); span 3's (30)
# stopped for drift (no validated copy); span 4's (40) validated (41).
VALIDATED = [_statistics(11), _statistics(21), _statistics(41)]


@pytest.mark.parametrize(
  "published, arrived, expected",
  [
    ([], [10], [10]),  # the first span: compared with itself
    (VALIDATED[:1], [20], [11]),
    (VALIDATED[:2], [30], [21]),
    (VALIDATED[:2], [40], [21]),  # not span 3, which drifted
    (VALIDATED, [40], [21]),  # span 4 checked again: what it was compared with then
    (VALIDATED, [], []),
  ],
)
def test_drift_baseline_is_the_last_span_validated_before_this_one(published, arrived, expected):
  op = PublishedBefore.create()
  result = op.apply({"published": published, "arrived": [_statistics(i) for i in arrived]})
  assert [a.id for a in result] == expected
