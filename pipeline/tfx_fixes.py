"""Workarounds for TFX 1.16 and ml-metadata 1.16 defects, active while a node runs
(``workarounds()``, used by ``imdb-tfx run`` and each Airflow task).

Cached outputs in any order. TFX's portable launcher reads a cached execution's outputs in
``tfx.orchestration.portable.cache_utils._get_outputs_of_execution``: it lists the
execution's OUTPUT events, fetches their artifacts with ``get_artifacts_by_id`` and their
types with ``get_artifact_types_by_id``, and zips the three lists, assuming each fetch
returns rows in the order of the ids it was given. SQLite happens to; PostgreSQL does not
(an updated row moves in the heap). A cached component with two outputs then publishes
them under each other's keys: seen here as ReviewExampleGen's rejected rows published as
its ``examples``, so StatisticsGen found no Examples and the scheduled run failed.
``get_outputs_of_execution`` matches artifacts and types to events by id. It changes
nothing else, and nothing when the store already returns rows in order.

Backslashes. ml-metadata 1.16's PostgreSQL backend quotes a string that holds a backslash
twice (``'E'back\\slash...'``, a syntax error), so such a property cannot be written.
TFX writes the ExecutionResult of a failed execution as JSON, whose escapes are
backslashes (``\n``, ``\"``): publishing the failure fails, and the execution stays
RUNNING in ML Metadata, so ``imdb-tfx history`` could not tell a drift stop from a run
still going. ``set_execution_result`` writes that JSON without backslashes: in the stored
message, line breaks, quotes and backslashes become look-alike characters (the full
message stays in the task's log).

Half-written outputs. A retried Airflow task resumes its node's execution in the DAG run
(TFX's launcher reuses an unfinished execution of the same node and run), so it writes to
the same output URIs. When the first try was killed, nothing removed what it had half
written (TFX removes output directories only when an executor raises), and the retry's
model would sit among those files. ``make_fresh_output_dirs`` empties them first.

Python has no other hook into any of these, hence the swaps; remove each once TFX or
ml-metadata fixes it.
"""

import collections
import contextlib
import copy
import functools
import types

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


# What JSON would escape with a backslash, as characters it leaves alone: U+2028 (line
# separator), U+201D (right double quotation mark), U+29F5 (reverse solidus operator);
# other control characters become spaces.
_LOOK_ALIKES = types.MappingProxyType(
  {
    **dict.fromkeys(range(0x20), " "),
    ord("\n"): "\u2028",
    ord('"'): "\u201d",
    ord("\\"): "\u29f5",
  }
)


def set_execution_result(execution_result, execution: metadata_store_pb2.Execution) -> None:
  """TFX's ``execution_lib.set_execution_result``: stores ``execution_result``
  (``ExecutionResult``) as JSON in the execution's ``__execution_result__`` custom
  property, here with no backslash in it (the result message's line breaks, quotes and
  backslashes as look-alikes, ``metadata_details`` dropped when it would need one)."""
  from google.protobuf import json_format

  result = copy.deepcopy(execution_result)
  result.result_message = result.result_message.translate(_LOOK_ALIKES)
  try:
    text = json_format.MessageToJson(result, ensure_ascii=False)
  except TypeError:  # an Any that cannot be converted, as TFX handles it
    text = None
  if text is None or "\\" in text:
    result.ClearField("metadata_details")
    text = json_format.MessageToJson(result, ensure_ascii=False)
  execution.custom_properties["__execution_result__"].string_value = text


def make_fresh_output_dirs(output_dict, make_output_dirs) -> None:
  """TFX's ``outputs_utils.make_output_dirs`` (passed as ``make_output_dirs``: a directory
  per output artifact, an empty file per value artifact), after removing what is already
  at those URIs: nothing for a new execution (its URIs are new), a killed try's files for
  a resumed one."""
  from tfx.dsl.io import fileio

  for artifacts in output_dict.values():
    for artifact in artifacts:
      if artifact.is_external or not fileio.exists(artifact.uri):
        continue
      if fileio.isdir(artifact.uri):
        fileio.rmtree(artifact.uri)
      else:
        fileio.remove(artifact.uri)
  make_output_dirs(output_dict)


@contextlib.contextmanager
def workarounds():
  """While active, TFX's cache lookup uses ``get_outputs_of_execution``, its execution
  results are written by ``set_execution_result`` and its output directories made by
  ``make_fresh_output_dirs``."""
  from tfx.orchestration.portable import cache_utils, outputs_utils
  from tfx.orchestration.portable.mlmd import execution_lib

  swaps = [
    (cache_utils, "_get_outputs_of_execution", get_outputs_of_execution),
    (execution_lib, "set_execution_result", set_execution_result),
    (
      outputs_utils,
      "make_output_dirs",
      functools.partial(make_fresh_output_dirs, make_output_dirs=outputs_utils.make_output_dirs),
    ),
  ]
  originals = [(module, name, getattr(module, name)) for module, name, _ in swaps]
  for module, name, replacement in swaps:
    setattr(module, name, replacement)
  try:
    yield
  finally:
    for module, name, original in originals:
      setattr(module, name, original)
