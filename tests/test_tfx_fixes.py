"""The workarounds of pipeline.tfx_fixes: TFX's cached-output lookup independent of the
order a store returns rows in, execution results without backslashes, and fresh output
directories for a resumed execution."""

import os
import pathlib

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
  with tfx_fixes.workarounds():
    fixed = cache_utils._get_outputs_of_execution(shuffled, execution_id)
    assert [a.uri for a in fixed["examples"]] == ["/examples"]
  assert cache_utils._get_outputs_of_execution is original


def test_execution_results_are_written_without_backslashes():
  from google.protobuf import json_format
  from ml_metadata.proto import metadata_store_pb2
  from tfx.orchestration.portable.mlmd import execution_lib
  from tfx.proto.orchestration import execution_result_pb2

  message = 'drift in 1 feature of span 3:\n  "label": 0.39 > 0.1 (C:\\spans)\t\x1b[0m'
  result = execution_result_pb2.ExecutionResult(code=2, result_message=message)
  execution = metadata_store_pb2.Execution()
  # TFX's own JSON escapes the line break, the quotes and the backslash.
  execution_lib.set_execution_result(result, execution)
  assert "\\" in execution.custom_properties["__execution_result__"].string_value
  original = execution_lib.set_execution_result
  with tfx_fixes.workarounds():
    execution_lib.set_execution_result(result, execution)
  assert execution_lib.set_execution_result is original
  text = execution.custom_properties["__execution_result__"].string_value
  assert "\\" not in text
  back = json_format.Parse(text, execution_result_pb2.ExecutionResult())
  assert back.code == 2
  assert back.result_message == (
    "drift in 1 feature of span 3:\u2028  \u201dlabel\u201d: 0.39 > 0.1 (C:\u29f5spans)  [0m"
  )


def test_output_dirs_of_a_resumed_execution_start_empty(tmp_path):
  from tfx.orchestration.portable import outputs_utils
  from tfx.types import standard_artifacts

  # A killed try left half a model; a value artifact's file; a new execution's URI.
  model, count, new = (
    standard_artifacts.Model(),
    standard_artifacts.Integer(),
    (standard_artifacts.Model()),
  )
  model.uri = str(tmp_path / "Trainer" / "model" / "7")
  (tmp_path / "Trainer" / "model" / "7" / "variables").mkdir(parents=True)
  (tmp_path / "Trainer" / "model" / "7" / "variables" / "half-written").write_text("x")
  count.uri = str(tmp_path / "Gate" / "count" / "7" / "value")
  (tmp_path / "Gate" / "count" / "7").mkdir(parents=True)
  (tmp_path / "Gate" / "count" / "7" / "value").write_text("12")
  new.uri = str(tmp_path / "Trainer" / "model" / "8")
  original = outputs_utils.make_output_dirs
  with tfx_fixes.workarounds():
    outputs_utils.make_output_dirs({"model": [model, new], "count": [count]})
  assert outputs_utils.make_output_dirs is original
  assert os.listdir(model.uri) == [] and os.listdir(new.uri) == []
  assert pathlib.Path(count.uri).read_text() == ""
