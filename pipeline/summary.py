"""What a pipeline run did, read back from ML Metadata after it ends.

Everything here comes from MLMD and the artifacts it points to (TFMA's metrics and
validation result, the ModelBlessing and PushedModel custom properties), not from log
scraping, so a summary is true for any orchestrator that wrote the same store.
"""

import dataclasses
import json

import tensorflow_model_analysis as tfma
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tensorflow_model_analysis.slicer import slicer_lib

from behaviour import suite
from core import features
from pipeline import mlmd_queries


@dataclasses.dataclass
class ComponentRun:
  """One component's latest execution: node id, MLMD state name, wall seconds."""

  node_id: str
  state: str
  seconds: float


@dataclasses.dataclass
class RunSummary:
  """The outcome of one pipeline run.

  Attributes:
    components: per-component executions in pipeline order (executions created at or
      after the run's start).
    metrics: the candidate's metrics on the golden test split (name -> value;
      ``evaluation_metrics``).
    span_metrics: with spans, its metrics on the newest span's eval reviews
      (``newest_span_metrics``); empty without.
    blessed: the blessing the Pusher acted on: the BehaviourValidator's (the Evaluator's
      and the behavioural suite's together) when it ran, else the Evaluator's; None if
      neither ran.
    blessing_reasons: why not: the Evaluator's failed validations, then each capability
      over its threshold with failing cases (empty when blessed).
    pushed_path: where the Pusher wrote the model, None if nothing was pushed.
    behaviour: capability -> ``{"candidate": failure rate, "baseline": the serving
      model's or None}`` on the behavioural suite; empty when the validator did not run.
  """

  components: list[ComponentRun]
  metrics: dict[str, float]
  blessed: bool | None
  blessing_reasons: list[str]
  pushed_path: str | None
  span_metrics: dict[str, float] = dataclasses.field(default_factory=dict)
  behaviour: dict[str, dict[str, float | None]] = dataclasses.field(default_factory=dict)

  def to_json(self) -> str:
    return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

  def format(self, components: bool = True) -> str:
    """A human-readable multi-line report.

    Args:
      components: list each component's state and seconds (a console that showed the
        progress lines has seen them); without, one line counts them.
    """
    lines = ["", "Pipeline run summary"]
    total = sum(c.seconds for c in self.components)
    if components:
      for c in self.components:
        lines.append(f"  {c.node_id:<32} {c.state:<9} {c.seconds:8.1f} s")
      lines.append(f"  {'total':<32} {'':<9} {total:8.1f} s")
    else:
      states = {}
      for c in self.components:
        states[c.state.lower()] = states.get(c.state.lower(), 0) + 1
      counts = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
      lines.append(f"Components: {len(self.components)} ({counts}), {total:.1f} s in all")
    if self.metrics:
      accuracy = self.metrics.get("binary_accuracy", float("nan"))
      auc = self.metrics.get("auc", float("nan"))
      examples = int(self.metrics.get("example_count", 0))
      lines.append(f"Test split: accuracy {accuracy:.4f}, AUC {auc:.4f} ({examples} examples)")
    if self.span_metrics:
      accuracy = self.span_metrics.get("binary_accuracy", float("nan"))
      examples = int(self.span_metrics.get("example_count", 0))
      lines.append(f"Newest span's eval: accuracy {accuracy:.4f} ({examples} examples)")
    if self.behaviour:
      lines.extend(format_behaviour(self.behaviour))
    if self.blessed is None:
      lines.append("Blessing: the Evaluator did not run")
    elif self.blessed:
      lines.append("Blessing: BLESSED (all thresholds met)")
    else:
      lines.append("Blessing: NOT blessed: " + "; ".join(self.blessing_reasons))
    lines.append(
      f"Pushed to: {self.pushed_path}"
      if self.pushed_path
      else "Pushed: nothing (model not blessed, already serving, Pusher cached or skipped)"
    )
    return "\n".join(lines)


def format_behaviour(rates: dict[str, dict[str, float | None]]) -> list[str]:
  """Lines of the behavioural suite's failure rates, candidate / serving model, three
  capabilities to a line."""
  has_baseline = any(r.get("baseline") is not None for r in rates.values())
  lines = [
    "Behaviour suite failure rates"
    + (" (candidate / serving model):" if has_baseline else " (candidate):")
  ]
  cells = []
  for name, rate in rates.items():
    cell = f"{name} {rate['candidate']:.3f}"
    if has_baseline:
      baseline = rate.get("baseline")
      cell += " / " + ("-" if baseline is None else f"{baseline:.3f}")
    cells.append(cell)
  width = max(len(cell) for cell in cells)
  for start in range(0, len(cells), 3):
    lines.append("  " + "  ".join(cell.ljust(width) for cell in cells[start : start + 3]).rstrip())
  return lines


def behaviour_rates(report: metadata_store_pb2.Artifact) -> dict[str, dict[str, float | None]]:
  """capability -> ``{"candidate", "baseline"}`` failure rates from a BehaviourReport's
  custom properties (``components.behaviour_validator``), in the suite's order."""
  candidate = mlmd_queries.float_properties(report, "failure_rate_")
  baseline = mlmd_queries.float_properties(report, "baseline_failure_rate_")
  return {
    c.name: {"candidate": candidate[c.name], "baseline": baseline.get(c.name)}
    for c in suite.CAPABILITIES
    if c.name in candidate
  }


def behaviour_reasons(blessing: metadata_store_pb2.Artifact) -> list[str]:
  """The BehaviourValidator's reasons for not blessing, without the one that repeats the
  Evaluator's verdict (whose own failures the summary lists)."""
  text = mlmd_queries.custom_property(blessing, "reasons") or ""
  return [r for r in text.split("; ") if r and not r.startswith("the Evaluator did not")]


def slice_metrics(evaluation_uri: str) -> dict[tuple, dict[str, float]]:
  """The candidate model's metrics per slice from an Evaluator's ModelEvaluation
  (``tfma.load_metrics``; diffs against the baseline are left out), keyed by TFMA's slice
  key: ``()`` overall, ``(("length_bucket", "0512+"),)``, ``(("span", 3),)``."""
  by_slice: dict[tuple, dict[str, float]] = {}
  for per_slice in tfma.load_metrics(evaluation_uri):
    metrics = by_slice.setdefault(slicer_lib.deserialize_slice_key(per_slice.slice_key), {})
    for item in per_slice.metric_keys_and_values:
      key = item.key
      if key.is_diff or key.model_name not in ("", "candidate"):
        continue
      if item.value.HasField("double_value"):
        metrics[key.name] = item.value.double_value.value
  return by_slice


def evaluation_metrics(evaluation_uri: str) -> dict[str, float]:
  """The candidate's metrics on the golden test split: the ``span:0`` slice in a pipeline
  of spans (whose Evaluator also reads the newest span's eval reviews), else the overall
  slice."""
  by_slice = slice_metrics(evaluation_uri)
  return by_slice.get(((features.SPAN_KEY, features.GOLDEN_SPAN),)) or by_slice.get((), {})


def newest_span_metrics(evaluation_uri: str) -> dict[str, float]:
  """The candidate's metrics on the newest span's eval reviews: the highest ``span:N``
  slice (N > 0); empty without spans."""
  spans = {
    key[0][1]: metrics
    for key, metrics in slice_metrics(evaluation_uri).items()
    if len(key) == 1 and key[0][0] == features.SPAN_KEY and key[0][1] != features.GOLDEN_SPAN
  }
  return spans[max(spans)] if spans else {}


def _slice_name(slice_key) -> str:
  """``length_bucket:0512+`` or ``Overall`` (TFMA's own slice-key formatting)."""
  return slicer_lib.stringify_slice_key(slicer_lib.deserialize_slice_key(slice_key))


def value_bound_text(threshold) -> str | None:
  """A TFMA MetricThreshold's value bound as text (``>= 0.85``, ``>= 0.8 and <= 1``);
  None without one."""
  if not threshold.HasField("value_threshold"):
    return None
  bound = threshold.value_threshold
  pieces = []
  if bound.HasField("lower_bound"):
    pieces.append(f">= {bound.lower_bound.value:g}")
  if bound.HasField("upper_bound"):
    pieces.append(f"<= {bound.upper_bound.value:g}")
  return " and ".join(pieces) or None


def _threshold_text(threshold) -> str:
  value = value_bound_text(threshold)
  if value is not None:
    return value
  if threshold.HasField("change_threshold"):
    change = threshold.change_threshold
    return f"change vs baseline {change.absolute.value:+g} or better"
  return "threshold"


def validation_failures(evaluation_uri: str) -> list[str]:
  """Readable reasons TFMA did not bless, e.g.
  ``binary_accuracy 0.8012 (Overall) failed >= 0.85``."""
  validation = tfma.load_validation_result(evaluation_uri)
  reasons = []
  for per_slice in validation.metric_validations_per_slice:
    for failure in per_slice.failures:
      value = failure.metric_value
      shown = (
        f"{value.double_value.value:.4f}" if value.HasField("double_value") else str(value).strip()
      )
      kind = "change " if failure.metric_key.is_diff else ""
      reasons.append(
        f"{failure.metric_key.name} {kind}{shown} "
        f"({_slice_name(per_slice.slice_key)}) "
        f"failed {_threshold_text(failure.metric_threshold)}"
      )
  if not reasons and not validation.validation_ok:
    reasons.append(str(validation.validation_details).strip() or "validation failed")
  return reasons


def blessing_verdict(
  evaluation: metadata_store_pb2.Artifact | None,
  evaluator_blessing: metadata_store_pb2.Artifact | None,
  behaviour_blessing: metadata_store_pb2.Artifact | None,
) -> tuple[bool | None, list[str]]:
  """The blessing the Pusher acted on and why not: the BehaviourValidator's when it ran
  (the Evaluator's and the suite's together), else the Evaluator's; None when neither
  ran. The reasons are the Evaluator's failed thresholds, then each capability over its
  threshold."""
  blessed, reasons = None, []
  if evaluator_blessing is not None:
    blessed = bool(mlmd_queries.custom_property(evaluator_blessing, "blessed"))
    if not blessed and evaluation is not None:
      reasons = validation_failures(evaluation.uri)
  if behaviour_blessing is not None:
    blessed = bool(mlmd_queries.custom_property(behaviour_blessing, "blessed"))
    reasons = reasons + behaviour_reasons(behaviour_blessing)
  return blessed, reasons


def pushed_destination(
  pushed_model: metadata_store_pb2.Artifact | None, pusher_cached: bool = False
) -> str | None:
  """Where a Pusher's PushedModel went; None when it pushed nothing, or when the Pusher
  was cached (``pusher_cached``: its PushedModel is an earlier run's push)."""
  if (
    pusher_cached
    or pushed_model is None
    or not mlmd_queries.custom_property(pushed_model, "pushed")
  ):
    return None
  return mlmd_queries.custom_property(pushed_model, "pushed_destination")


def summarize(
  connection_config: metadata_store_pb2.ConnectionConfig,
  pipeline_name: str,
  node_ids: list[str],
  since_ms: int,
) -> RunSummary:
  """Reads the run that started at ``since_ms`` (ms since epoch) back from MLMD."""
  store = metadata_store.MetadataStore(connection_config)
  components, metrics, span_metrics, behaviour = [], {}, {}, {}
  outputs_of = {}
  for node_id in node_ids:
    executions = mlmd_queries.node_executions(store, pipeline_name, node_id, since_ms)
    if not executions:
      continue
    execution = executions[-1]
    seconds = mlmd_queries.execution_seconds(execution)
    components.append(ComponentRun(node_id, mlmd_queries.state_name(execution), round(seconds, 1)))
    outputs_of[node_id] = mlmd_queries.execution_outputs(store, execution.id)

  def output(node_id: str, key: str):
    return (outputs_of.get(node_id, {}).get(key) or [None])[0]

  evaluation = output("Evaluator", "evaluation")
  if evaluation is not None:
    metrics = evaluation_metrics(evaluation.uri)
    span_metrics = newest_span_metrics(evaluation.uri)
  report = output("BehaviourValidator", "report")
  if report is not None and output("BehaviourValidator", "behaviour_blessing") is not None:
    behaviour = behaviour_rates(report)
  blessed, reasons = blessing_verdict(
    evaluation,
    output("Evaluator", "blessing") if evaluation is not None else None,
    output("BehaviourValidator", "behaviour_blessing"),
  )
  pusher_cached = any(c.node_id == "Pusher" and c.state == "CACHED" for c in components)
  pushed = pushed_destination(output("Pusher", "pushed_model"), pusher_cached)
  return RunSummary(components, metrics, blessed, reasons, pushed, span_metrics, behaviour)
