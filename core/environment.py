"""The process environment every entry point sets before TensorFlow is imported.

Entry points (the ``imdb-tfx`` command line, the benchmarks run with ``python -m``, the
test session's ``conftest.py``, the Airflow DAG module) call ``configure()`` first; nothing
here runs at import time. Child processes (Beam's worker processes, servers started by the
tests) inherit the variables.
"""

import os
import types
import warnings
from collections.abc import MutableMapping

# tf.Transform 1.16 works only with Keras 2: ``tf.keras`` must resolve to ``tf_keras``,
# which TensorFlow 2.16 decides from this variable when it is imported.
LEGACY_KERAS = types.MappingProxyType({"TF_USE_LEGACY_KERAS": "1"})
# Defaults a caller's environment may override: TensorFlow's C++ INFO lines (oneDNN
# notes, CUDA probing on a machine without a GPU) are not printed; google-cloud-aiplatform
# and google-api-core (TFX dependencies) warn about Python 3.10 on every import, and
# PYTHONWARNINGS carries that filter into Beam's worker processes.
DEFAULTS = types.MappingProxyType(
  {"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONWARNINGS": "ignore::FutureWarning"}
)


def configure(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
  """Sets the variables above in ``environ`` (default: ``os.environ``, and then this
  process's warning filter too).

  ``TF_USE_LEGACY_KERAS`` is forced to 1 (any other value breaks tf.Transform); the
  others are set only where the environment does not have them yet.

  Returns:
    the variables as they now are in ``environ``.
  """
  target = os.environ if environ is None else environ
  target.update(LEGACY_KERAS)
  for key, value in DEFAULTS.items():
    target.setdefault(key, value)
  if environ is None:
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\.")
  return {key: target[key] for key in (*LEGACY_KERAS, *DEFAULTS)}
