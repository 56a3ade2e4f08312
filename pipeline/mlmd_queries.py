"""The ML Metadata lookups the progress display and the run summary share.

TFX's orchestrators record each component's executions under a context of type ``node``
named ``<pipeline name>.<node id>``; both readers go through that context, so a poll costs
one small query per component however many runs the store already holds.
"""

import os
import types

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

NODE_CONTEXT_TYPE = "node"
PIPELINE_CONTEXT_TYPE = "pipeline"
RUN_CONTEXT_TYPE = "pipeline_run"
LEGACY_RUN_CONTEXT_TYPE = "run"


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


_STATE_NAMES = types.MappingProxyType({v: k for k, v in metadata_store_pb2.Execution.State.items()})


def state_name(execution: metadata_store_pb2.Execution) -> str:
  """MLMD's name of an execution's last known state (``COMPLETE``, ``CACHED``, ...)."""
  return _STATE_NAMES.get(execution.last_known_state, "?")


def open_store(
  connection_config: metadata_store_pb2.ConnectionConfig,
) -> metadata_store.MetadataStore:
  """The MLMD store of ``connection_config``.

  Raises:
    FileNotFoundError: a SQLite store that does not exist (MLMD would create an empty
      one; nothing has run there).
  """
  if connection_config.HasField("sqlite") and not os.path.exists(
    connection_config.sqlite.filename_uri
  ):
    raise FileNotFoundError(f"no ML Metadata store at {connection_config.sqlite.filename_uri}")
  return metadata_store.MetadataStore(connection_config)


def execution_seconds(execution: metadata_store_pb2.Execution) -> float:
  """Wall seconds from an execution's registration to its last update."""
  return (execution.last_update_time_since_epoch - execution.create_time_since_epoch) / 1e3


_OUTPUT_EVENTS = (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)
_INPUT_EVENTS = (metadata_store_pb2.Event.INPUT, metadata_store_pb2.Event.DECLARED_INPUT)


def execution_outputs(
  store: metadata_store.MetadataStore, execution_id: int
) -> dict[str, list[metadata_store_pb2.Artifact]]:
  """An execution's output artifacts by output key (``model``, ``blessing``, ...); a cached
  execution lists the artifacts it reused."""
  return _artifacts_by_key(store, execution_id, _OUTPUT_EVENTS)


def execution_inputs(
  store: metadata_store.MetadataStore, execution_id: int
) -> dict[str, list[metadata_store_pb2.Artifact]]:
  """An execution's input artifacts by input key (``examples``, ``baseline_model``, ...)."""
  return _artifacts_by_key(store, execution_id, _INPUT_EVENTS)


def _artifacts_by_key(store, execution_id: int, event_types) -> dict:
  by_key: dict[str, list[int]] = {}
  for event in store.get_events_by_execution_ids([execution_id]):
    if event.type in event_types:
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
  """Execution id -> node id for every execution of ``pipeline_name``'s components: those
  of the orchestrators built on TFX's IR (one ``node`` context per component), and those
  of Airflow's legacy launcher (a ``component_id`` property on each execution of the
  ``pipeline`` context)."""
  prefix = f"{pipeline_name}."
  nodes = {}
  for context in store.get_contexts_by_type(NODE_CONTEXT_TYPE):
    if context.name.startswith(prefix):
      for execution in store.get_executions_by_context(context.id):
        nodes[execution.id] = context.name[len(prefix) :]
  pipeline = store.get_context_by_type_and_name(PIPELINE_CONTEXT_TYPE, pipeline_name)
  if pipeline is not None:
    for execution in store.get_executions_by_context(pipeline.id):
      component = execution.properties.get("component_id")
      if component is not None and component.string_value:
        nodes.setdefault(execution.id, component.string_value)
  return nodes


def run_executions(
  store: metadata_store.MetadataStore,
  pipeline_name: str,
  node_of: dict[int, str] | None = None,
) -> dict[str, list[metadata_store_pb2.Execution]]:
  """Run id -> the executions of ``pipeline_name``'s components in that run, oldest first,
  runs in the order they started. A run is a ``pipeline_run`` context named by the run id
  (orchestrators on TFX's IR), or a legacy ``run`` context named
  ``<pipeline name>.<run id>`` (Airflow's launcher: the run id is the DAG run's).
  ``node_of``: ``executions_by_node``'s map, when the caller has it already."""
  if node_of is None:
    node_of = executions_by_node(store, pipeline_name)
  contexts = [(c.name, c) for c in store.get_contexts_by_type(RUN_CONTEXT_TYPE)]
  prefix = f"{pipeline_name}."
  contexts += [
    (c.name[len(prefix) :], c)
    for c in store.get_contexts_by_type(LEGACY_RUN_CONTEXT_TYPE)
    if c.name.startswith(prefix)
  ]
  runs = {}
  for run_id, context in contexts:
    executions = [e for e in store.get_executions_by_context(context.id) if e.id in node_of]
    if executions:
      runs[run_id] = sorted(executions, key=lambda e: e.id)
  return dict(sorted(runs.items(), key=lambda item: item[1][0].create_time_since_epoch))


def float_properties(artifact: metadata_store_pb2.Artifact, prefix: str) -> dict[str, float]:
  """An artifact's float custom properties whose names start with ``prefix``, keyed by the
  rest of the name (``failure_rate_contrast`` -> ``contrast`` for ``failure_rate_``)."""
  return {
    name[len(prefix) :]: value.double_value
    for name, value in artifact.custom_properties.items()
    if name.startswith(prefix) and value.HasField("double_value")
  }
