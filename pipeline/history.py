"""The history of a pipeline's runs, read back from ML Metadata: per run, the span it
ingested, the rows refused, the drift check, the window trained on, the candidate's test
accuracy, the blessing and the version pushed (``imdb-tfx history``).

Why our own: TFX records all of this in MLMD but gives no per-run view of it; the MLMD
queries here follow TFX's own contexts (``pipeline_run`` per run, ``node`` per
component).
"""

import dataclasses
import datetime
import json

from ml_metadata.proto import metadata_store_pb2

from pipeline import mlmd_queries
from pipeline.summary import (
  behaviour_rates,
  behaviour_reasons,
  evaluation_metrics,
  newest_span_metrics,
  validation_failures,
)

_FAILED = metadata_store_pb2.Execution.FAILED
_STATES = {
  metadata_store_pb2.Execution.COMPLETE: "ran",
  metadata_store_pb2.Execution.CACHED: "cached",
  metadata_store_pb2.Execution.FAILED: "failed",
  metadata_store_pb2.Execution.RUNNING: "interrupted",
}


@dataclasses.dataclass(frozen=True)
class RunRecord:
  """One pipeline run as MLMD recorded it.

  Attributes:
    run_id: TFX's pipeline run id.
    started: when its first execution was registered (seconds since the epoch, UTC).
    span, version: of the Examples the run's ReviewExampleGen published (or reused); None
      without spans (TFDS) or when ingestion failed.
    reviews, rejected: rows kept and refused by the ingestion (None without spans).
    drift: ``passed``, ``drift`` (DriftGate stopped the run) or None (no check ran).
    window: the spans Transform read (empty when Transform did not run, or without spans).
    trainer: ``ran``, ``cached``, ``failed``, ``interrupted`` or None (never reached).
    warm_start: the serving model version (the directory name the Pusher wrote) the
      Trainer started from; None when it trained from scratch or did not run.
    accuracy: the candidate's ``binary_accuracy`` on the golden test split.
    auc: its ``auc`` (ROC) there.
    span_accuracy: its ``binary_accuracy`` on the newest span's eval reviews (None
      without spans).
    blessed: the verdict the Pusher acted on: the BehaviourValidator's (Evaluator and
      behavioural suite together) when it ran, else the Evaluator's; None when neither
      ran.
    not_blessed: why not, each failed threshold (``summary.validation_failures``) and
      each capability over its threshold (``summary.behaviour_reasons``).
    behaviour_failure_rate: the candidate's share of failing cases of the behavioural
      suite (None when the validator did not run).
    behaviour: capability -> ``{"candidate", "baseline"}`` failure rates
      (``summary.behaviour_rates``).
    pushed_version: the serving version the Pusher wrote (None: nothing pushed).
    failed_at: the component whose execution failed, if one did.
  """

  run_id: str
  started: float
  span: int | None = None
  version: int | None = None
  reviews: int | None = None
  rejected: int | None = None
  drift: str | None = None
  window: tuple[int, ...] = ()
  trainer: str | None = None
  warm_start: str | None = None
  accuracy: float | None = None
  auc: float | None = None
  span_accuracy: float | None = None
  blessed: bool | None = None
  not_blessed: tuple[str, ...] = ()
  behaviour_failure_rate: float | None = None
  behaviour: dict = dataclasses.field(default_factory=dict)
  pushed_version: str | None = None
  failed_at: str | None = None


def read_history(
  connection_config: metadata_store_pb2.ConnectionConfig, pipeline_name: str
) -> list[RunRecord]:
  """Every run of ``pipeline_name`` in the store, oldest first.

  Raises:
    FileNotFoundError: a SQLite store that does not exist (nothing has run there).
  """
  store = mlmd_queries.open_store(connection_config)
  node_of = mlmd_queries.executions_by_node(store, pipeline_name)
  records = []
  for run_id, executions in mlmd_queries.run_executions(store, pipeline_name, node_of).items():
    by_node = {node_of[e.id]: e for e in executions}
    records.append(_record(store, run_id, executions, by_node))
  return sorted(records, key=lambda r: r.started)


def _record(store, run_id, executions, by_node) -> RunRecord:
  """A ``RunRecord`` from one run's executions by node id."""
  fields = {"run_id": run_id, "started": executions[0].create_time_since_epoch / 1e3}
  failed = [node for node, e in by_node.items() if e.last_known_state == _FAILED]
  fields["failed_at"] = failed[0] if failed else None
  if "ReviewExampleGen" in by_node:
    ingestion = by_node["ReviewExampleGen"]
    fields["span"] = _requested_span(ingestion)
    outputs = mlmd_queries.execution_outputs(store, ingestion.id)
    if outputs.get("examples"):
      examples = outputs["examples"][0]
      fields["span"] = examples.properties["span"].int_value
      fields["version"] = examples.properties["version"].int_value
    if outputs.get("rejected_rows"):
      counts = outputs["rejected_rows"][0]
      fields["reviews"] = mlmd_queries.custom_property(counts, "num_reviews")
      fields["rejected"] = mlmd_queries.custom_property(counts, "num_rejected")
  if "DriftGate" in by_node:
    fields["drift"] = "drift" if by_node["DriftGate"].last_known_state == _FAILED else "passed"
  if "Transform" in by_node:
    fields["window"] = _input_spans(store, by_node["Transform"].id, "examples")
  if "Trainer" in by_node:
    fields["trainer"] = _STATES.get(by_node["Trainer"].last_known_state, "?")
    fields["warm_start"] = _warm_start_version(store, by_node)
  if "Evaluator" in by_node:
    outputs = mlmd_queries.execution_outputs(store, by_node["Evaluator"].id)
    if outputs.get("evaluation"):
      uri = outputs["evaluation"][0].uri
      golden = evaluation_metrics(uri)
      fields["accuracy"] = golden.get("binary_accuracy")
      fields["auc"] = golden.get("auc")
      fields["span_accuracy"] = newest_span_metrics(uri).get("binary_accuracy")
    if outputs.get("blessing"):
      blessed = mlmd_queries.custom_property(outputs["blessing"][0], "blessed")
      fields["blessed"] = None if blessed is None else bool(blessed)
      if blessed == 0 and outputs.get("evaluation"):
        fields["not_blessed"] = tuple(validation_failures(outputs["evaluation"][0].uri))
  if "BehaviourValidator" in by_node:
    outputs = mlmd_queries.execution_outputs(store, by_node["BehaviourValidator"].id)
    if outputs.get("report"):
      report = outputs["report"][0]
      fields["behaviour"] = behaviour_rates(report)
      overall = report.custom_properties.get("overall_failure_rate")
      fields["behaviour_failure_rate"] = overall.double_value if overall else None
    if outputs.get("behaviour_blessing"):
      blessing = outputs["behaviour_blessing"][0]
      fields["blessed"] = bool(mlmd_queries.custom_property(blessing, "blessed"))
      fields["not_blessed"] = fields.get("not_blessed", ()) + tuple(behaviour_reasons(blessing))
  if "Pusher" in by_node:
    outputs = mlmd_queries.execution_outputs(store, by_node["Pusher"].id)
    pushed = outputs.get("pushed_model", [None])[0]
    cached = by_node["Pusher"].last_known_state == metadata_store_pb2.Execution.CACHED
    if pushed is not None and not cached and mlmd_queries.custom_property(pushed, "pushed"):
      fields["pushed_version"] = mlmd_queries.custom_property(pushed, "pushed_version")
  return RunRecord(**fields)


def _requested_span(ingestion) -> int | None:
  """The span a ReviewExampleGen execution was asked for (``--span``: its static
  ``range_config``), kept for a failed ingestion, which publishes nothing; None for the
  latest span, which TFX's driver records only when the ingestion succeeds."""
  config = mlmd_queries.custom_property(ingestion, "range_config")
  if not config:
    return None
  static = json.loads(config).get("static_range", {})
  return static.get("start_span_number")


def _warm_start_version(store, by_node) -> str | None:
  """The pushed version of the model the run's Trainer warm-started from: the model its
  ``base_model`` is, or (with the word2vec pretraining) the EmbeddingTrainer was given as
  ``warm_start_model``; None when there is none or it was never pushed."""
  for node, key in (("EmbeddingTrainer", "warm_start_model"), ("Trainer", "base_model")):
    if node not in by_node:
      continue
    events = [
      e
      for e in store.get_events_by_execution_ids([by_node[node].id])
      if e.type == metadata_store_pb2.Event.INPUT and e.path.steps and e.path.steps[0].key == key
    ]
    models = store.get_artifacts_by_id([e.artifact_id for e in events])
    if models and models[0].type_id == _model_type_id(store):
      return _pushed_version(store, models[0].id)
  return None


def _model_type_id(store) -> int:
  return store.get_artifact_type("Model").id


def _pushed_version(store, model_id: int) -> str | None:
  """The version the Pusher wrote for the Model ``model_id`` (None: never pushed)."""
  for execution in store.get_executions_by_id(
    {e.execution_id for e in store.get_events_by_artifact_ids([model_id])}
  ):
    outputs = mlmd_queries.execution_outputs(store, execution.id)
    for pushed in outputs.get("pushed_model", []):
      if mlmd_queries.custom_property(pushed, "pushed"):
        return mlmd_queries.custom_property(pushed, "pushed_version")
  return None


def _input_spans(store, execution_id: int, key: str) -> tuple[int, ...]:
  """The ``span`` properties of an execution's input artifacts under ``key``, sorted."""
  events = [
    e
    for e in store.get_events_by_execution_ids([execution_id])
    if e.type == metadata_store_pb2.Event.INPUT and e.path.steps and e.path.steps[0].key == key
  ]
  artifacts = store.get_artifacts_by_id([e.artifact_id for e in events])
  return tuple(sorted(a.properties["span"].int_value for a in artifacts if "span" in a.properties))


def format_history(records: list[RunRecord]) -> str:
  """A plain-text table of ``records``, a run to a line; ``-`` where a value is absent."""
  header = ("started (UTC)", "span", "reviews", "refused", "drift", "window", "trainer")
  header += ("from", "test acc", "span acc", "suite fail", "blessed", "pushed")
  header += ("failed at / why",)
  rows = [header]
  for r in records:
    rows.append(
      (
        datetime.datetime.fromtimestamp(r.started, datetime.timezone.utc).strftime(
          "%Y-%m-%d %H:%M:%S"
        ),
        "-" if r.span is None else f"{r.span}" + ("" if r.version is None else f".v{r.version}"),
        _text(r.reviews),
        _text(r.rejected),
        _text(r.drift),
        ",".join(map(str, r.window)) or "-",
        _text(r.trainer),
        _text(r.warm_start),
        "-" if r.accuracy is None else f"{r.accuracy:.4f}",
        "-" if r.span_accuracy is None else f"{r.span_accuracy:.4f}",
        "-" if r.behaviour_failure_rate is None else f"{r.behaviour_failure_rate:.3f}",
        "-" if r.blessed is None else ("yes" if r.blessed else "no"),
        _text(r.pushed_version),
        # The capability and its rate, without the failing cases the summary quotes.
        _text(r.failed_at or "; ".join(w.split(", e.g. ")[0] for w in r.not_blessed) or None),
      )
    )
  widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
  return "\n".join(
    "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows
  )


def _text(value) -> str:
  return "-" if value is None else str(value)
