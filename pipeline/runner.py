"""Runners: which orchestrator runs the pipeline here, and the run summary.

``create_pipeline()`` stays pure; this module runs it with TFX's LocalDagRunner or
BeamDagRunner and reads back from MLMD what the run did (``pipeline.layout`` holds the
output directory's layout, ``pipeline.beam_profiles`` Beam's options).
"""

import contextlib
import gc
import time
from collections.abc import Iterator
from typing import TextIO

from tfx.orchestration import pipeline as tfx_pipeline
from tfx.orchestration.beam.beam_dag_runner import BeamDagRunner
from tfx.orchestration.local.local_dag_runner import LocalDagRunner

from pipeline import summary as summary_lib
from pipeline import tfx_fixes
from pipeline.layout import RUNNERS
from pipeline.progress import ComponentProgress


def orchestrator(runner: str):
  """The TFX runner object for ``runner`` (``local`` or ``beam``).

  Raises:
    ValueError: an unknown runner name.
  """
  if runner == "local":
    return LocalDagRunner()
  if runner == "beam":
    return BeamDagRunner()
  raise ValueError(f"unknown runner {runner!r}; choose one of {', '.join(RUNNERS)}")


@contextlib.contextmanager
def imports_frozen() -> Iterator[None]:
  """Within the block, Python's cyclic garbage collector leaves alone every object that
  exists when it starts (``gc.freeze``; ``gc.unfreeze`` after): by then, the modules of
  TensorFlow, TFX, Beam, TFMA and TFDV that the pipeline's components import, which live
  as long as the process.

  Why: a full collection (generation 2) walks every tracked object, and with those
  modules loaded one took 0.25-0.54 s, holding the GIL, so the components' Python
  threads and the orchestrator waited meanwhile: a full run had 9 of them while its
  components ran, 3.2 s in all; with the block, 29 shorter ones, 1.6 s (``gc.callbacks``,
  one run each, 2-core machine). Objects the components create are still collected.
  Nothing is collected later than without the block except cyclic garbage that already
  existed when it started, which ``gc.unfreeze`` hands back.
  """
  gc.freeze()
  try:
    yield
  finally:
    gc.unfreeze()


def run_pipeline(
  pipeline: tfx_pipeline.Pipeline,
  runner: str = "local",
  show_progress: bool = True,
  stream: TextIO | None = None,
) -> summary_lib.RunSummary:
  """Runs ``pipeline`` to completion and reads back what it did from MLMD.

  Args:
    pipeline: the pipeline (``create_pipeline()``).
    runner: ``local`` (TFX's LocalDagRunner) or ``beam`` (BeamDagRunner).
    show_progress: print a line as each component starts and ends
      (``pipeline.progress.ComponentProgress``).
    stream: where the progress lines go (default: stdout).

  Raises:
    whatever the failing component raised (the run stops at the first failure).
  """
  node_ids = [node.id for node in pipeline.components]
  name = pipeline.pipeline_info.pipeline_name
  started_ms = int(time.time() * 1000)
  progress = None
  if show_progress:
    progress = ComponentProgress(
      pipeline.metadata_connection_config, name, node_ids, started_ms, stream=stream
    ).start()
  try:
    with tfx_fixes.workarounds(), imports_frozen():  # TFX and ML Metadata defects
      orchestrator(runner).run(pipeline)
  finally:
    if progress:
      progress.stop()
  return summary_lib.summarize(pipeline.metadata_connection_config, name, node_ids, started_ms)
