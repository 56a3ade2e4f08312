"""The ML Metadata lookups the progress display and the run summary share.

TFX's orchestrators record each component's executions under a context of type ``node``
named ``<pipeline name>.<node id>``; both readers go through that context, so a poll costs
one small query per component however many runs the store already holds.
"""

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

NODE_CONTEXT_TYPE = "node"


def node_executions(
  store: metadata_store.MetadataStore, pipeline_name: str, node_id: str, since_ms: int
) -> list[metadata_store_pb2.Execution]:
  """Executions of one component created at or after ``since_ms`` (ms since epoch), oldest
  first; empty when the component has not been registered yet."""
  context = store.get_context_by_type_and_name(NODE_CONTEXT_TYPE, f"{pipeline_name}.{node_id}")
  if context is None:
    return []
  executions = [
    e for e in store.get_executions_by_context(context.id) if e.create_time_since_epoch >= since_ms
  ]
  return sorted(executions, key=lambda e: e.id)


def execution_seconds(execution: metadata_store_pb2.Execution) -> float:
  """Wall seconds from an execution's registration to its last update."""
  return (execution.last_update_time_since_epoch - execution.create_time_since_epoch) / 1e3


def execution_outputs(
  store: metadata_store.MetadataStore, execution_id: int
) -> dict[str, list[metadata_store_pb2.Artifact]]:
  """An execution's output artifacts by output key (``model``, ``blessing``, ...); a cached
  execution lists the artifacts it reused."""
  events = store.get_events_by_execution_ids([execution_id])
  by_key: dict[str, list[int]] = {}
  for event in events:
    if event.type in (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT):
      key = event.path.steps[0].key if event.path.steps else ""
      by_key.setdefault(key, []).append(event.artifact_id)
  return {k: list(store.get_artifacts_by_id(ids)) for k, ids in by_key.items()}


def custom_property(artifact: metadata_store_pb2.Artifact, name: str) -> int | str | None:
  """An artifact's int or string custom property (``blessed``, ``pushed_version``, ...);
  None when it has none by that name."""
  value = artifact.custom_properties.get(name)
  if value is None:
    return None
  return value.int_value if value.HasField("int_value") else value.string_value


def executions_by_node(store: metadata_store.MetadataStore, pipeline_name: str) -> dict[int, str]:
  """Execution id -> node id for every execution of ``pipeline_name``'s components (one
  query per component)."""
  prefix = f"{pipeline_name}."
  nodes = {}
  for context in store.get_contexts_by_type(NODE_CONTEXT_TYPE):
    if context.name.startswith(prefix):
      for execution in store.get_executions_by_context(context.id):
        nodes[execution.id] = context.name[len(prefix) :]
  return nodes


def float_properties(artifact: metadata_store_pb2.Artifact, prefix: str) -> dict[str, float]:
  """An artifact's float custom properties whose names start with ``prefix``, keyed by the
  rest of the name (``failure_rate_contrast`` -> ``contrast`` for ``failure_rate_``)."""
  return {
    name[len(prefix) :]: value.double_value
    for name, value in artifact.custom_properties.items()
    if name.startswith(prefix) and value.HasField("double_value")
  }
