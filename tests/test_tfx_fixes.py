"""TFX's cached-output lookup, made independent of the order a store returns rows in
(pipeline.tfx_fixes)."""

from ml_metadata import metadata_store as mlmd
from ml_metadata.proto import metadata_store_pb2

from pipeline import tfx_fixes


class _ShuffledStore:
  """An MLMD store that returns artifacts and types in reverse order, as PostgreSQL may."""

  def __init__(self, store):
    self._store = store

  def __getattr__(self, name):
    return getattr(self._store, name)

  def get_artifacts_by_id(self, ids):
    return list(reversed(self._store.get_artifacts_by_id(ids)))

  def get_artifact_types_by_id(self, ids):
    return list(reversed(self._store.get_artifact_types_by_id(ids)))


class _Handle:
  def __init__(self, store):
    self.store = store


def _execution_with_two_outputs():
  config = metadata_store_pb2.ConnectionConfig()
  config.fake_database.SetInParent()
  store = mlmd.MetadataStore(config)
  examples_type = store.put_artifact_type(metadata_store_pb2.ArtifactType(name="Examples"))
  rejected_type = store.put_artifact_type(metadata_store_pb2.ArtifactType(name="RejectedRows"))
  live = metadata_store_pb2.Artifact.LIVE
  rejected_id, examples_id = store.put_artifacts(
    [
      metadata_store_pb2.Artifact(type_id=rejected_type, uri="/rejected", state=live),
      metadata_store_pb2.Artifact(type_id=examples_type, uri="/examples", state=live),
    ]
  )
  execution_type = store.put_execution_type(metadata_store_pb2.ExecutionType(name="Gen"))
  [execution_id] = store.put_executions([metadata_store_pb2.Execution(type_id=execution_type)])
  events = []
  for key, artifact_id in (("rejected_rows", rejected_id), ("examples", examples_id)):
    event = metadata_store_pb2.Event(
      type=metadata_store_pb2.Event.OUTPUT, artifact_id=artifact_id, execution_id=execution_id
    )
    event.path.steps.add().key = key
    event.path.steps.add().index = 0
    events.append(event)
  store.put_events(events)
  return store, execution_id


def test_cached_outputs_keep_their_keys_whatever_the_row_order():
  store, execution_id = _execution_with_two_outputs()
  outputs = tfx_fixes.get_outputs_of_execution(_Handle(_ShuffledStore(store)), execution_id)
  assert {key: [a.uri for a in artifacts] for key, artifacts in outputs.items()} == {
    "examples": ["/examples"],
    "rejected_rows": ["/rejected"],
  }
  assert outputs["examples"][0].type_name == "Examples"


def test_tfx_own_lookup_is_swapped_only_inside_the_context():
  from tfx.orchestration.portable import cache_utils

  original = cache_utils._get_outputs_of_execution
  store, execution_id = _execution_with_two_outputs()
  shuffled = _Handle(_ShuffledStore(store))
  # TFX's own lookup pairs rows by position: on a shuffled store it swaps the keys.
  swapped = original(shuffled, execution_id)
  assert [a.uri for a in swapped["examples"]] == ["/rejected"]
  with tfx_fixes.ordered_cached_outputs():
    fixed = cache_utils._get_outputs_of_execution(shuffled, execution_id)
    assert [a.uri for a in fixed["examples"]] == ["/examples"]
  assert cache_utils._get_outputs_of_execution is original
