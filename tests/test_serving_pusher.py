"""The Pusher that does not push a model already serving (components.serving_pusher)."""

import os
import types

import pytest
from tfx.components.pusher import executor as pusher_executor
from tfx.proto import pusher_pb2
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

from components import serving_pusher


def _saved_model(directory, weights: bytes) -> str:
  """A stand-in SavedModel: the two files its identity is read from."""
  os.makedirs(os.path.join(directory, "variables"))
  with open(os.path.join(directory, "saved_model.pb"), "wb") as f:
    f.write(b"graph")
  with open(os.path.join(directory, "variables", "variables.index"), "wb") as f:
    f.write(weights)
  return directory


def _push(tmp_path, name: str, weights: bytes, serving_dir: str, blessed: int = 1):
  model = standard_artifacts.Model()
  model.uri = str(tmp_path / name)
  _saved_model(os.path.join(model.uri, "Format-Serving"), weights)
  blessing = standard_artifacts.ModelBlessing()
  blessing.uri = str(tmp_path / f"{name}-blessing")
  blessing.set_int_custom_property("blessed", blessed)
  pushed = standard_artifacts.PushedModel()
  pushed.uri = str(tmp_path / f"{name}-pushed")
  destination = pusher_pb2.PushDestination(
    filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=serving_dir)
  )
  serving_pusher.Executor().Do(
    {"model": [model], "model_blessing": [blessing]},
    {"pushed_model": [pushed]},
    {"push_destination": proto_utils.proto_to_json(destination)},
  )
  return pushed


def test_a_model_already_serving_is_not_pushed_again(tmp_path, monkeypatch):
  clock = iter([1000.0, 2000.0, 3000.0])
  # The Pusher's own clock only (its version names): patching time.time itself would
  # hand these values to every other caller in the process too.
  monkeypatch.setattr(pusher_executor, "time", types.SimpleNamespace(time=lambda: next(clock)))
  serving = str(tmp_path / "serving" / "imdb_sentiment")

  first = _push(tmp_path, "m1", b"weights-1", serving)
  assert first.get_int_custom_property("pushed") == 1
  assert sorted(os.listdir(serving)) == ["1000"]

  # The same model again (a run on unchanged data): recorded, not copied.
  again = _push(tmp_path, "m1-again", b"weights-1", serving)
  assert again.get_int_custom_property("pushed") == 0
  assert again.get_string_custom_property(serving_pusher.ALREADY_SERVING_KEY) == "1000"
  assert sorted(os.listdir(serving)) == ["1000"]

  # A model with other weights is pushed as a new version, as by TFX's Pusher.
  second = _push(tmp_path, "m2", b"weights-2", serving)
  assert second.get_int_custom_property("pushed") == 1
  assert sorted(os.listdir(serving)) == ["1000", "2000"]
  # An unblessed model is not pushed, and not called serving either.
  refused = _push(tmp_path, "m3", b"weights-2", serving, blessed=0)
  assert refused.get_int_custom_property("pushed") == 0
  assert not refused.has_custom_property(serving_pusher.ALREADY_SERVING_KEY)


@pytest.mark.parametrize(
  ("names", "latest"), [([], None), (["3", "20", "100", "tmp"], "100"), (["x"], None)]
)
def test_latest_version_is_the_largest_number(tmp_path, names, latest):
  for name in names:
    (tmp_path / name).mkdir()
  assert serving_pusher.latest_version(str(tmp_path)) == latest
  assert serving_pusher.latest_version(str(tmp_path / "missing")) is None


def test_fingerprint_follows_the_weights(tmp_path):
  a = _saved_model(str(tmp_path / "a"), b"w1")
  b = _saved_model(str(tmp_path / "b"), b"w1")
  c = _saved_model(str(tmp_path / "c"), b"w2")
  assert serving_pusher.fingerprint(a) == serving_pusher.fingerprint(b)
  assert serving_pusher.fingerprint(a) != serving_pusher.fingerprint(c)
  assert serving_pusher.fingerprint(str(tmp_path)) is None
