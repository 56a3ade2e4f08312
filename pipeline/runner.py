"""Runners: where outputs go, which orchestrator runs the pipeline, and the run summary.

``create_pipeline()`` stays pure; this module owns paths (``OutputPaths``), MLMD's
connection, the orchestrator (TFX's LocalDagRunner or BeamDagRunner) and Beam's defaults.
"""

import dataclasses
import os
import time
from typing import List, Optional, Sequence

from tfx import v1 as tfx
from tfx.orchestration.beam.beam_dag_runner import BeamDagRunner

from pipeline import summary as summary_lib
from pipeline.progress import ComponentProgress

RUNNERS = ("local", "beam")
MODEL_NAME = "imdb_sentiment"


@dataclasses.dataclass(frozen=True)
class OutputPaths:
  """The layout under one output directory (``outputs/`` by default)."""
  output_dir: str = "outputs"

  @property
  def metadata_path(self) -> str:
    """SQLite file of the ML Metadata store."""
    return os.path.join(self.output_dir, "metadata.sqlite")

  @property
  def pipeline_root(self) -> str:
    return os.path.join(self.output_dir, "pipeline_root")

  @property
  def serving_model_dir(self) -> str:
    """TF Serving model base path: the Pusher writes ``<version>/`` in here."""
    return os.path.join(self.output_dir, "serving_model", MODEL_NAME)

  @property
  def summary_path(self) -> str:
    return os.path.join(self.output_dir, "run_summary.json")


def default_beam_pipeline_args(cpu_count: Optional[int] = None) -> List[str]:
  """DirectRunner options: multi-processing with one worker per core when there are >1
  cores, in-memory otherwise."""
  cpu_count = cpu_count or os.cpu_count() or 1
  if cpu_count > 1:
    return ["--direct_running_mode=multi_processing", f"--direct_num_workers={cpu_count}"]
  return ["--direct_running_mode=in_memory", "--direct_num_workers=1"]


def merge_beam_args(defaults: Sequence[str], overrides: Sequence[str]) -> List[str]:
  """``overrides`` win over ``defaults`` option by option (``--name=value`` or ``--flag``)."""
  name = lambda arg: arg.split("=", 1)[0]
  overridden = {name(a) for a in overrides}
  return [a for a in defaults if name(a) not in overridden] + list(overrides)


def orchestrator(runner: str):
  """The TFX runner object for ``runner`` (``local`` or ``beam``).

  Raises:
    ValueError: an unknown runner name.
  """
  if runner == "local":
    return tfx.orchestration.LocalDagRunner()
  if runner == "beam":
    return BeamDagRunner()
  raise ValueError(f"unknown runner {runner!r}; choose one of {', '.join(RUNNERS)}")


def run_pipeline(pipeline: tfx.dsl.Pipeline, runner: str = "local",
                 show_progress: bool = True) -> summary_lib.RunSummary:
  """Runs ``pipeline`` to completion and reads back what it did from MLMD.

  Raises:
    whatever the failing component raised (the run stops at the first failure).
  """
  node_ids = [node.id for node in pipeline.components]
  name = pipeline.pipeline_info.pipeline_name
  started_ms = int(time.time() * 1000)
  progress = None
  if show_progress:
    progress = ComponentProgress(pipeline.metadata_connection_config, name, node_ids,
                                 started_ms).start()
  try:
    orchestrator(runner).run(pipeline)
  finally:
    if progress:
      progress.stop()
  return summary_lib.summarize(pipeline.metadata_connection_config, name, node_ids,
                               started_ms)
