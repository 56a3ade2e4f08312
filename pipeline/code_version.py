"""Fingerprints of the project code that Transform and the Trainer run, for TFX's cache.

TFX reuses an execution when its inputs and exec properties are unchanged. Given a
``module_file``, TFX packages the user module into a wheel whose name carries a hash of its
contents, so changed code misses the cache. This project passes ``preprocessing_fn`` and
``run_fn`` as import paths into the installed ``models`` package instead (one package for
the pipeline, the tests and the serving code), and an import path carries no such hash:
after a change to the model code, a run with unchanged data and hyperparameters would be
handed the cached Trainer's old model. The runners therefore put these fingerprints into
the components' ``custom_config`` (``create_pipeline(code_versions=...)``).
"""

import hashlib
import os
from typing import Dict, Iterable, Optional

import models

# What preprocessing_fn imports from the project; a change anywhere else in models/
# leaves Transform's cache valid.
TRANSFORM_MODULES = ("features.py", "hparams.py", "preprocessing.py")
# What the EmbeddingTrainer (models.pretraining) imports from the project.
PRETRAINING_MODULES = ("features.py", "hparams.py", "pretraining.py", "throughput.py")


def fingerprint(directory: str, names: Iterable[str]) -> str:
  """SHA-256 (hex, first 16 digits) of the files ``names`` in ``directory``, each with its
  name, in sorted order.

  Raises:
    FileNotFoundError: a file of ``names`` is missing.
  """
  digest = hashlib.sha256()
  for name in sorted(names):
    with open(os.path.join(directory, name), "rb") as f:
      content = f.read()
    digest.update(f"{name}\0{len(content)}\0".encode())
    digest.update(content)
  return digest.hexdigest()[:16]


def code_versions(models_dir: Optional[str] = None) -> Dict[str, str]:
  """``{"transform": ..., "pretraining": ..., "trainer": ...}``: the fingerprint of the
  modules ``preprocessing_fn`` runs (``TRANSFORM_MODULES``), of those the
  ``EmbeddingTrainer`` runs (``PRETRAINING_MODULES``) and of every module of the ``models``
  package (``run_fn`` and all it imports from the project).

  Args:
    models_dir: the ``models`` package directory; None = the imported one.

  Raises:
    FileNotFoundError: a module of ``TRANSFORM_MODULES`` or ``PRETRAINING_MODULES`` is
      missing.
  """
  models_dir = models_dir or os.path.dirname(os.path.abspath(models.__file__))
  every_module = [name for name in os.listdir(models_dir) if name.endswith(".py")]
  return {"transform": fingerprint(models_dir, TRANSFORM_MODULES),
          "pretraining": fingerprint(models_dir, PRETRAINING_MODULES),
          "trainer": fingerprint(models_dir, every_module)}
