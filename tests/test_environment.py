"""The process environment of the entry points (core.environment) and what the command
line imports before a command runs."""

import subprocess
import sys

from core import environment


def test_configure_forces_legacy_keras_and_keeps_the_callers_settings():
  environ = {"TF_USE_LEGACY_KERAS": "0", "TF_CPP_MIN_LOG_LEVEL": "0"}
  configured = environment.configure(environ)
  assert environ["TF_USE_LEGACY_KERAS"] == "1"
  assert environ["TF_CPP_MIN_LOG_LEVEL"] == "0"  # the caller's choice stays
  assert environ["PYTHONWARNINGS"] == "ignore::FutureWarning"
  assert configured == environ


def _modules_after(statement: str) -> set:
  script = f"import sys; {statement}; print('\\n'.join(sorted(sys.modules)))"
  done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
  return set(done.stdout.split())


def test_the_command_line_imports_no_tensorflow_before_a_command_runs():
  # `imdb-tfx --help`, `imdb-tfx run --help` and the client commands start from here.
  modules = _modules_after("import cli.main")
  heavy = {"tensorflow", "tfx", "apache_beam", "tensorflow_serving", "grpc"}
  assert not heavy & {name.split(".")[0] for name in modules}


def test_a_run_imports_neither_tfx_v1_nor_the_google_cloud_clients_of_its_extensions():
  # `from tfx import v1` imports every TFX extension, Vertex AI's client library among
  # them (about 3 s per process); the pipeline, its components and the Trainer's module
  # import TFX's modules directly.
  modules = _modules_after(
    "from core import environment; environment.configure(); "
    "import pipeline.pipeline, pipeline.runner, models.trainer"
  )
  assert "pipeline.pipeline" in modules and "tfx.components" in modules
  assert not {"tfx.v1", "google.cloud.aiplatform"} & modules
