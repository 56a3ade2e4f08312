"""Fingerprints of the project code each component runs, for TFX's cache.

TFX reuses an execution when its inputs and exec properties are unchanged. Given a
``module_file``, TFX packages the user module into a wheel whose name carries a hash of its
contents, so changed code misses the cache. This project passes ``preprocessing_fn`` and
``run_fn`` as import paths into the installed packages instead (one code base for the
pipeline, the tests and the serving code), and an import path carries no such hash: after
a change to the model code, a run with unchanged data and hyperparameters would be handed
the cached Trainer's old model. The runners therefore put these fingerprints into the
components' ``custom_config`` (``create_pipeline(code_versions=...)``).

A component's fingerprint covers exactly the project modules its entry module imports,
directly or through others, found in the import graph that ``grimp`` (import-linter's
engine) builds from the source: editing the warmup-request builder that ``run_fn`` reaches
through ``models.signatures`` re-runs the Trainer; editing ``analysis.explain``, which no
component imports, re-runs nothing. Imports inside functions count too (grimp reads every
import statement), so the fingerprint may cover a module a run does not execute, never
the other way round.
"""

import hashlib
import importlib.util
import types
from collections.abc import Iterable

import grimp

# The packages of this project (the import-linter contract's root packages).
PROJECT_PACKAGES = ("cli", "analysis", "pipeline", "components", "models", "serving", "core")
# The module TFX runs for each fingerprinted component.
ENTRY_MODULES = types.MappingProxyType(
  {
    "transform": "models.preprocessing",  # preprocessing_fn
    "pretraining": "components.embedding_trainer",  # the EmbeddingTrainer's executor
    "trainer": "models.trainer",  # run_fn
  }
)


def code_versions() -> dict[str, str]:
  """``{"transform": ..., "pretraining": ..., "trainer": ...}``: the fingerprint of the
  project modules each component's entry module (``ENTRY_MODULES``) runs
  (``modules_run_by``), as importable from ``sys.path`` now.

  Raises:
    FileNotFoundError: a module of the graph has no source file.
  """
  graph = grimp.build_graph(*PROJECT_PACKAGES, cache_dir=None)
  return {
    name: fingerprint(modules_run_by(graph, module)) for name, module in ENTRY_MODULES.items()
  }


def modules_run_by(graph: grimp.ImportGraph, module: str) -> set[str]:
  """``module``, every project module it imports directly or indirectly, and the packages
  holding them (whose ``__init__`` runs first)."""
  modules = {module} | graph.find_upstream_modules(module)
  packages = {".".join(m.split(".")[:i]) for m in modules for i in range(1, m.count(".") + 1)}
  return modules | packages


def fingerprint(modules: Iterable[str]) -> str:
  """SHA-256 (hex, first 16 digits) of the source files of ``modules``, each with its
  module name, in sorted order.

  Raises:
    FileNotFoundError: a module has no source file.
  """
  digest = hashlib.sha256()
  for name in sorted(modules):
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
      raise FileNotFoundError(f"no source file for module {name}")
    with open(spec.origin, "rb") as f:
      content = f.read()
    digest.update(f"{name}\0{len(content)}\0".encode())
    digest.update(content)
  return digest.hexdigest()[:16]
