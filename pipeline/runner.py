"""Runners: which orchestrator runs the pipeline here, and the run summary.

``create_pipeline()`` stays pure; this module runs it with TFX's LocalDagRunner or
BeamDagRunner and reads back from MLMD what the run did (``pipeline.layout`` holds the
output directory's layout, ``pipeline.beam_profiles`` Beam's options).
"""

import time
from typing import TextIO

from tfx.orchestration import pipeline as tfx_pipeline
from tfx.orchestration.beam.beam_dag_runner import BeamDagRunner
from tfx.orchestration.local.local_dag_runner import LocalDagRunner

from pipeline import collector, tfx_fixes
from pipeline import summary as summary_lib
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
    with tfx_fixes.workarounds(), collector.imports_frozen():  # tfx_fixes: TFX and MLMD defects
      orchestrator(runner).run(pipeline)
  finally:
    if progress:
      progress.stop()
  return summary_lib.summarize(pipeline.metadata_connection_config, name, node_ids, started_ms)
