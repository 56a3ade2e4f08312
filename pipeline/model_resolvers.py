"""What a run of spans compares with, starts from and is judged against, each bounded by
an artifact of the run, so that a run with nothing new resolves exactly what the run that
first saw its newest span resolved. Two resolver strategies pick, like TFX's
``LatestBlessedModelStrategy``, the newest Model with a positive ModelBlessing; one
resolver op picks the drift check's baseline.

- ``ServingAtArrivalStrategy``: the model that was serving when the newest span's Examples
  arrived (its blessing registered in ML Metadata before them). The drift check reads its
  vocabulary and the Trainer warm-starts from it.
- ``PreviousBlessedModelStrategy``: the newest blessed model other than the candidate, the
  Evaluator's and the BehaviourValidator's baseline.
- ``PublishedBefore``: the statistics and Examples of the last span that passed the drift
  check before this span arrived, the DistributionValidator's and DriftGate's baseline.

Why our own: TFX's strategy and ops (``LatestCreateTime``) resolve whatever is newest when
the run starts. A run after a push, on spans already trained on, then sees a new serving
model and a newer validated span, so the drift check, the warm-started training and the
Evaluator run again, and the Evaluator compares the pushed model with itself. Bounded as
here, every node of such a run is served from the cache (TFX's cache keys on input
artifacts). TFX 1.16 has no strategy or resolver op that bounds the choice by another
artifact (``ops.LatestPolicyModel`` chooses by policy only).
Kubeflow's compiler runs only TFX's own strategies, so the pipeline without spans (the one
Kubeflow compiles) keeps ``LatestBlessedModelStrategy``.

The two strategies only bound their inputs, then let ``LatestBlessedModelStrategy`` pick
(blessed: the ModelBlessing's ``blessed`` custom property is 1, and its
``current_model_id`` names the Model). "Before" compares ML Metadata ids, which every
backend (SQLite, PostgreSQL, MySQL) assigns in increasing order as artifacts are
registered; creation times would depend on the clocks of the machines the tasks ran on.
"""

from collections.abc import Mapping, Sequence

from tfx import types
from tfx.dsl.components.common import resolver
from tfx.dsl.input_resolution import resolver_op
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import (
  LatestBlessedModelStrategy,
)
from tfx.types import standard_artifacts

MODEL = "model"
MODEL_BLESSING = "model_blessing"
# The bounding channels' keys.
ARRIVED_EXAMPLES = "arrived_examples"
CANDIDATE = "candidate"


def latest_blessed(
  models: Sequence[types.Artifact], blessings: Sequence[types.Artifact]
) -> dict[str, list[types.Artifact]]:
  """TFX's ``LatestBlessedModelStrategy`` on the given, already bounded, artifacts: the
  newest Model with a positive ModelBlessing (a model blessed twice: its newest blessing).

  Returns:
    ``{"model": [Model], "model_blessing": [ModelBlessing]}``, or both lists empty when no
    model qualifies (a first run: nothing to compare with or start from).
  """
  return LatestBlessedModelStrategy().resolve_artifacts(
    None,  # the strategy reads nothing from ML Metadata itself
    {MODEL: list(models), MODEL_BLESSING: sorted(blessings, key=lambda b: b.id)},
  )


def _checked(input_dict: Mapping[str, Sequence[types.Artifact]], bound_key: str) -> None:
  """Raises ValueError unless ``input_dict`` has exactly the Model, ModelBlessing and bound
  channels, of those types (a wiring mistake in ``create_pipeline``)."""
  expected = {MODEL, MODEL_BLESSING, bound_key}
  if set(input_dict) != expected:
    raise ValueError(f"expected the input channels {sorted(expected)}, got {sorted(input_dict)}")
  for key, kind in (
    (MODEL, standard_artifacts.Model),
    (MODEL_BLESSING, standard_artifacts.ModelBlessing),
  ):
    wrong = [a.type_name for a in input_dict[key] if not isinstance(a, kind)]
    if wrong:
      raise ValueError(f"channel {key!r} holds {wrong[0]} artifacts, not {kind.TYPE_NAME}")


class ServingAtArrivalStrategy(resolver.ResolverStrategy):
  """The Model that was serving when the newest of ``arrived_examples`` was registered: the
  newest blessed Model whose blessing ML Metadata registered before those Examples.

  Input channels: ``model`` (Model), ``model_blessing`` (ModelBlessing), ``arrived_examples``
  (this run's newest span's Examples: new, or the cached artifact of a span seen before).
  Output: ``model`` and ``model_blessing``, one each, or none before anything was blessed
  (and ``arrived_examples`` as given).
  """

  def resolve_artifacts(self, store, input_dict):
    """Resolves the channels (``store`` is unused: the inputs carry the ids).

    Raises:
      ValueError: the input channels are not the three named above.
    """
    del store  # everything needed is in the artifacts' ids
    _checked(input_dict, ARRIVED_EXAMPLES)
    arrived = list(input_dict[ARRIVED_EXAMPLES])
    if not arrived:
      return {MODEL: [], MODEL_BLESSING: [], ARRIVED_EXAMPLES: []}
    arrival = max(a.id for a in arrived)
    blessings = [b for b in input_dict[MODEL_BLESSING] if b.id < arrival]
    result = latest_blessed(input_dict[MODEL], blessings)
    return {**result, ARRIVED_EXAMPLES: arrived}  # TFX expects every input key back


class PreviousBlessedModelStrategy(resolver.ResolverStrategy):
  """The newest blessed Model other than the ``candidate``: the serving model, unless the
  candidate is itself the serving model (a run on data already trained on, its Trainer
  cached), and then the model it was first judged against.

  Input channels: ``model`` (Model), ``model_blessing`` (ModelBlessing), ``candidate``
  (this run's Trainer's Model). Output: ``model`` and ``model_blessing``, one each, or none
  (and ``candidate`` as given).
  """

  def resolve_artifacts(self, store, input_dict):
    """Resolves the channels (``store`` is unused).

    Raises:
      ValueError: the input channels are not the three named above.
    """
    del store
    _checked(input_dict, CANDIDATE)
    candidates = list(input_dict[CANDIDATE])
    ids = {m.id for m in candidates}
    models = [m for m in input_dict[MODEL] if m.id not in ids]
    result = latest_blessed(models, input_dict[MODEL_BLESSING])
    return {**result, CANDIDATE: candidates}  # TFX expects every input key back


class PublishedBefore(
  resolver_op.ResolverOp,
  # The class path: TFX's orchestrators find an op outside TFX by it.
  canonical_name="pipeline.model_resolvers.PublishedBefore",
  arg_data_types=(resolver_op.DataType.ARTIFACT_MULTIMAP,),
  return_data_type=resolver_op.DataType.ARTIFACT_LIST,
):
  """What a span is compared with for drift: of ``published`` (the validated statistics or
  Examples of the spans that passed the drift check), the newest one registered before
  the oldest of ``arrived`` (this run's statistics or Examples, new or cached); ``arrived``
  itself when none was (the first span, which then passes).

  Bounded by ``arrived`` rather than taking the newest published one, so that a run
  whose span was already checked (cached) resolves the baseline it was checked against
  then, not the span's own validated copy, and the check is cached too.

  Input: ``{"published": [...], "arrived": [...]}``. Output: one artifact, or none when
  nothing arrived.
  """

  def apply(self, input_dict):
    arrived = list(input_dict["arrived"])
    if not arrived:
      return []
    bound = min(a.id for a in arrived)
    before = [a for a in input_dict["published"] if a.id < bound]
    if before:
      return [max(before, key=lambda a: a.id)]
    return [min(arrived, key=lambda a: a.id)]
