"""One pipeline run's executions and artifacts, read from ML Metadata, and the artifact
loaders the report's sections use.

A run and its components are found as ``pipeline.mlmd_queries.run_executions`` finds
them, for the orchestrators on TFX's IR and for Airflow's legacy launcher alike. A
cached execution lists the artifacts it reused, so the report of an all-cached run shows
the artifacts that run used.
"""

import dataclasses
import json
import os

import tensorflow_data_validation as tfdv
from ml_metadata.proto import metadata_store_pb2
from tensorflow_metadata.proto.v0 import anomalies_pb2, statistics_pb2

from pipeline import mlmd_queries


@dataclasses.dataclass(frozen=True)
class NodeRun:
  """One component's execution in a run.

  Attributes:
    node_id: the component's id (``Trainer``).
    state: MLMD's state name: ``COMPLETE``, ``CACHED``, ``FAILED``, ``RUNNING``.
    seconds: wall seconds from registration to last update.
    properties: the execution's properties (TFX's exec properties: ``eval_config``,
      ``thresholds``, ...), ints, floats or strings.
    inputs, outputs: artifacts by input / output key.
  """

  node_id: str
  state: str
  seconds: float
  properties: dict[str, int | float | str]
  inputs: dict[str, list[metadata_store_pb2.Artifact]]
  outputs: dict[str, list[metadata_store_pb2.Artifact]]

  def output(self, key: str) -> metadata_store_pb2.Artifact | None:
    """The first artifact under output ``key``, None when there is none."""
    return (self.outputs.get(key) or [None])[0]

  def input(self, key: str) -> metadata_store_pb2.Artifact | None:
    """The first artifact under input ``key``, None when there is none."""
    return (self.inputs.get(key) or [None])[0]


@dataclasses.dataclass(frozen=True)
class RunArtifacts:
  """What one pipeline run did.

  Attributes:
    run_id: TFX's pipeline run id.
    pipeline_name: the pipeline's name.
    started: registration time of its first execution, seconds since the epoch (UTC).
    nodes: node id -> its execution, in registration order (the node's latest when it
      was retried within the run).
    type_names: artifact type id -> name (``Examples``, ``Model``, ...).
  """

  run_id: str
  pipeline_name: str
  started: float
  nodes: dict[str, NodeRun]
  type_names: dict[int, str]

  def output(self, node_id: str, key: str) -> metadata_store_pb2.Artifact | None:
    """A node's first output under ``key``; None when the node did not run or wrote none."""
    node = self.nodes.get(node_id)
    return node.output(key) if node else None


def run_ids(
  connection_config: metadata_store_pb2.ConnectionConfig,
  pipeline_name: str,
  since: float | None = None,
) -> list[str]:
  """The ids of the runs of ``pipeline_name`` in the store, oldest first: every run, or
  with ``since`` (seconds since the epoch) those whose first execution was registered at
  or after it.

  Raises:
    FileNotFoundError: a SQLite store that does not exist.
  """
  runs = mlmd_queries.run_executions(mlmd_queries.open_store(connection_config), pipeline_name)
  since_ms = -1 if since is None else since * 1e3
  return [r for r, executions in runs.items() if executions[0].create_time_since_epoch >= since_ms]


def collect_run(
  connection_config: metadata_store_pb2.ConnectionConfig, pipeline_name: str, run_id: str
) -> RunArtifacts:
  """Reads run ``run_id`` of ``pipeline_name`` from the store.

  Raises:
    FileNotFoundError: a SQLite store that does not exist.
    ValueError: no run of that id in the store (the message names the latest ones).
  """
  store = mlmd_queries.open_store(connection_config)
  node_of = mlmd_queries.executions_by_node(store, pipeline_name)
  runs = mlmd_queries.run_executions(store, pipeline_name, node_of)
  if run_id not in runs:
    known = list(runs)[-5:]
    raise ValueError(
      f"no run {run_id!r} of pipeline {pipeline_name!r} in ML Metadata; "
      + (f"the latest: {', '.join(known)}" if known else "it holds no runs")
    )
  executions = runs[run_id]
  nodes = {}
  for execution in executions:
    nodes.pop(node_of[execution.id], None)  # a retried node: its latest execution, last
    nodes[node_of[execution.id]] = NodeRun(
      node_id=node_of[execution.id],
      state=mlmd_queries.state_name(execution),
      seconds=round(mlmd_queries.execution_seconds(execution), 1),
      # TFX's exec properties: custom properties, or properties under Airflow's launcher.
      properties={
        name: _value(v)
        for properties in (execution.properties, execution.custom_properties)
        for name, v in properties.items()
      },
      inputs=mlmd_queries.execution_inputs(store, execution.id),
      outputs=mlmd_queries.execution_outputs(store, execution.id),
    )
  return RunArtifacts(
    run_id=run_id,
    pipeline_name=pipeline_name,
    started=executions[0].create_time_since_epoch / 1e3,
    nodes=nodes,
    type_names={t.id: t.name for t in store.get_artifact_types()},
  )


def split_names(artifact: metadata_store_pb2.Artifact) -> list[str]:
  """The ``split_names`` property of an Examples-like artifact (TFX's
  ``artifact_utils.decode_split_names``)."""
  from tfx.types import artifact_utils

  value = artifact.properties.get("split_names")
  return (
    artifact_utils.decode_split_names(value.string_value) if value and value.string_value else []
  )


def load_statistics(
  artifact: metadata_store_pb2.Artifact,
) -> dict[str, statistics_pb2.DatasetFeatureStatisticsList]:
  """StatisticsGen's ExampleStatistics: split name -> TFDV statistics
  (``Split-<name>/FeatureStats.pb``), splits without a file left out."""
  stats = {}
  for split in split_names(artifact):
    path = os.path.join(artifact.uri, f"Split-{split}", "FeatureStats.pb")
    if os.path.exists(path):
      stats[split] = tfdv.load_stats_binary(path)
  return stats


def load_anomalies(artifact: metadata_store_pb2.Artifact) -> dict[str, anomalies_pb2.Anomalies]:
  """An ExampleAnomalies artifact (ExampleValidator's per split, DistributionValidator's
  per split pair): folder name without its ``Split-`` / ``SplitPair-`` prefix -> TFDV
  Anomalies (``SchemaDiff.pb``), in name order."""
  found = {}
  if not os.path.isdir(artifact.uri):
    return found
  for name in sorted(os.listdir(artifact.uri)):
    path = os.path.join(artifact.uri, name, "SchemaDiff.pb")
    if os.path.exists(path):
      anomalies = anomalies_pb2.Anomalies()
      with open(path, "rb") as f:
        anomalies.ParseFromString(f.read())
      found[name.split("-", 1)[-1]] = anomalies
  return found


def load_json(directory: str, filename: str) -> dict | None:
  """``directory/filename`` as JSON; None when the file does not exist."""
  path = os.path.join(directory, filename)
  if not os.path.exists(path):
    return None
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def _value(value: metadata_store_pb2.Value) -> int | float | str:
  kind = value.WhichOneof("value")
  return getattr(value, kind) if kind in ("int_value", "double_value", "string_value") else ""
