"""Test setup: Keras 2 for tf.Transform, the TFDS directory beside the checkout."""

import os
import sys

import pytest

from core import environment

# Before any test module imports TensorFlow.
environment.configure()

_SHARED_TFDS = os.path.abspath(
  os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "tensorflow_datasets")
)


@pytest.fixture(scope="session")
def tfds_data_dir() -> str:
  """The prepared TFDS data dir ($TFDS_DATA_DIR or ../shared/...); skips when absent."""
  path = os.environ.get("TFDS_DATA_DIR") or _SHARED_TFDS
  if not os.path.isdir(os.path.join(path, "imdb_reviews")):
    pytest.skip(f"no prepared imdb_reviews under {path}; set TFDS_DATA_DIR")
  return path


@pytest.fixture(scope="session", autouse=True)
def _keras_unconverted():
  """Keras models trace in tests as in the Trainer (``models.tracing``)."""
  from models import tracing

  tracing.exempt_from_autograph()


@pytest.fixture(scope="session", autouse=True)
def _plain_argv():
  """TFX's BaseBeamExecutor parses all of sys.argv with absl flags (a TODO in TFX 1.16), so
  pytest's own arguments (``-v`` reads as absl's ``--verbosity``) must not reach it."""
  saved = sys.argv
  sys.argv = saved[:1]
  yield
  sys.argv = saved


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory):
  """A tiny exported model (``tiny_model.TinyExport``), built once per session (~15 s)."""
  import tiny_model

  return tiny_model.export_tiny_model(tmp_path_factory.mktemp("tiny_export"))
