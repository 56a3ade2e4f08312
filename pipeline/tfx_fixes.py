"""A workaround for a TFX 1.16 defect that ML Metadata on PostgreSQL exposes.

TFX's portable launcher reads a cached execution's outputs in
``tfx.orchestration.portable.cache_utils._get_outputs_of_execution``: it lists the
execution's OUTPUT events, fetches their artifacts with ``get_artifacts_by_id`` and their
types with ``get_artifact_types_by_id``, and zips the three lists, assuming each fetch
returns rows in the order of the ids it was given. SQLite happens to; PostgreSQL does not
(an updated row moves in the heap). A cached component with two outputs then publishes
them under each other's keys: seen here as ReviewExampleGen's rejected rows published as
its ``examples``, so StatisticsGen found no Examples and the scheduled run failed.

``ordered_cached_outputs()`` swaps in a version that matches artifacts and types to
events by id, for as long as a node runs. It changes nothing else, and nothing when the
store already returns rows in order. Python has no other hook into TFX's cache lookup,
hence the swap; remove it once TFX fixes ``_get_outputs_of_execution``.
"""

import collections
import contextlib

from ml_metadata.proto import metadata_store_pb2


def get_outputs_of_execution(metadata_handle, execution_id: int):
  """What TFX's ``cache_utils._get_outputs_of_execution`` returns (output key -> list of
  TFX artifacts of the execution's OUTPUT events; None when one of them is not LIVE),
  with artifacts and types matched to events by id rather than by position."""
  from tfx.types import artifact_utils

  store = metadata_handle.store
  events = [
    e
    for e in store.get_events_by_execution_ids([execution_id])
    if e.type == metadata_store_pb2.Event.OUTPUT
  ]
  artifacts = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in events])}
  if any(a.state != metadata_store_pb2.Artifact.LIVE for a in artifacts.values()):
    return None
  types = {t.id: t for t in store.get_artifact_types_by_id({a.type_id for a in artifacts.values()})}
  result = collections.defaultdict(list)
  for event in events:
    artifact = artifacts[event.artifact_id]
    result[event.path.steps[0].key].append(
      artifact_utils.deserialize_artifact(types[artifact.type_id], artifact)
    )
  return result


@contextlib.contextmanager
def ordered_cached_outputs():
  """While active, TFX's cache lookup uses ``get_outputs_of_execution``."""
  from tfx.orchestration.portable import cache_utils

  original = cache_utils._get_outputs_of_execution
  cache_utils._get_outputs_of_execution = get_outputs_of_execution
  try:
    yield
  finally:
    cache_utils._get_outputs_of_execution = original
