"""TFX's Pusher, that does not push a model already serving.

On unchanged data a run is cached up to the Trainer, so its candidate is the Model the
previous run pushed; the resolver now returns that same Model as the baseline, the
Evaluator compares it with itself and blesses it, and TFX's Pusher would copy it into the
TF Serving model directory again as a new version: TF Serving would then load a second,
identical servable, once per scheduled run. This executor first compares the candidate
with the newest version in the model directory and, when they are the same SavedModel,
records the push as not done (``pushed`` 0, ``already_serving_version`` the version)
instead. TFX's Pusher has no such check, hence this subclass; everything else (the
blessing check, the versioning, the copy that writes ``saved_model.pb`` last) is TFX's.
"""

import hashlib
import os

from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

ALREADY_SERVING_KEY = "already_serving_version"
# The files that identify a SavedModel: its graph and signatures, and its variables' index
# (which holds each variable's checksum, so it differs whenever a weight does).
_IDENTITY_FILES = ("saved_model.pb", os.path.join("variables", "variables.index"))


def latest_version(model_dir: str) -> str | None:
  """The newest version folder (the largest integer name) of a TF Serving model
  directory, or None when it has none (or does not exist)."""
  if not fileio.isdir(model_dir):
    return None
  versions = [v.rstrip("/") for v in fileio.listdir(model_dir) if v.rstrip("/").isdigit()]
  return max(versions, key=int) if versions else None


def fingerprint(saved_model_dir: str) -> str | None:
  """SHA-256 over the SavedModel's identity files (hex), or None when one is missing."""
  digest = hashlib.sha256()
  for name in _IDENTITY_FILES:
    path = os.path.join(saved_model_dir, name)
    if not fileio.exists(path):
      return None
    with fileio.open(path, "rb") as f:
      digest.update(f.read())
  return digest.hexdigest()


class Executor(pusher_executor.Executor):
  """TFX's Pusher executor, which skips a blessed model identical to the newest version
  already in a filesystem destination (see the module docstring)."""

  def Do(self, input_dict, output_dict, exec_properties) -> None:  # noqa: N802 (TFX's name)
    serving = self._serving_version_of_candidate(input_dict, exec_properties)
    if serving is None:
      super().Do(input_dict, output_dict, exec_properties)
      return
    model_push = artifact_utils.get_single_instance(
      output_dict[standard_component_specs.PUSHED_MODEL_KEY]
    )
    self._MarkNotPushed(model_push)
    model_push.set_string_custom_property(ALREADY_SERVING_KEY, serving)

  def _serving_version_of_candidate(self, input_dict, exec_properties) -> str | None:
    """The version already serving the blessed candidate, or None (push as usual)."""
    if not self.CheckBlessing(input_dict):
      return None
    destination = pusher_pb2.PushDestination()
    proto_utils.json_to_proto(
      exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination
    )
    if destination.WhichOneof("destination") != "filesystem":
      return None
    base = destination.filesystem.base_directory
    version = latest_version(base)
    if version is None:
      return None
    candidate = fingerprint(self.GetModelPath(input_dict))
    if candidate is None or candidate != fingerprint(os.path.join(base, version)):
      return None
    return version
