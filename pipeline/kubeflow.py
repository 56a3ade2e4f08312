"""Kubeflow Pipelines v2 / Vertex AI Pipelines: compile the pipeline into a pipeline spec.

``compile_kubeflow_v2()`` turns the one ``create_pipeline()`` into the pipeline spec that
TFX's ``KubeflowV2DagRunner`` writes (``imdb-tfx compile kubeflow``). Every component runs
in one container image, built from ``deploy/Dockerfile``; the spec names the command
(``python -m tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor``) and the
arguments of each container itself. Submission and recurring schedules (Vertex AI's
``PipelineJob``, the ``kfp`` client) are in ``deploy/kubeflow.md``.

The compiler needs the ``kfp-pipeline-spec`` package (TFX's ``kfp`` extra); without it TFX
leaves ``KubeflowV2DagRunner`` out of ``tfx.v1.orchestration.experimental`` and compiling
raises ``ImportError`` saying so.

The spec is written with pipeline spec schema 2.1.0 (constants as ``google.protobuf.Value``),
which both Vertex AI Pipelines and the open-source Kubeflow Pipelines v2 backend read.
"""

import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from tfx import v1 as tfx

from models.hparams import HParams
from pipeline import code_version
from pipeline.beam_profiles import merge_beam_args
from pipeline.layout import UNLABELLED_SPLIT, OutputPaths
from pipeline.pipeline import create_pipeline
from pipeline.remote import check_image, is_remote_uri

# Kubeflow V2 pipeline (and MLMD context) names must match [a-z0-9][a-z0-9-]{0,127}: the
# local runs' "imdb_sentiment" is not allowed.
KUBEFLOW_PIPELINE_NAME = "imdb-sentiment"
DEFAULT_OUTPUT = OutputPaths().kubeflow_spec_path
# Where deploy/Dockerfile copies the project's sources (its WORKDIR in the image).
CONTAINER_PROJECT_DIR = "/opt/imdb-tfx"
# The Beam-powered components run inside their container with the DirectRunner: one worker
# process per core of whatever machine the task lands on (0 = os.cpu_count() at run time).
# The setup file is the image's copy of the project's: the DirectRunner ignores it, and it
# stops TFX from packaging itself before each component (beam_profiles.project_setup_args).
CONTAINER_BEAM_ARGS = (
  "--direct_running_mode=multi_processing",
  "--direct_num_workers=0",
  f"--setup_file={CONTAINER_PROJECT_DIR}/setup.py",
)

_PIPELINE_NAME_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,127}")


def check_remote_uri(path: str | None, what: str) -> None:
  """Checks that ``path`` is a remote URI.

  Args:
    path: the path to check.
    what: what the path is, for the message (e.g. ``"pipeline_root"``).

  Raises:
    ValueError: ``path`` is empty, a local path or a ``file://`` URI.
  """
  if not is_remote_uri(path or ""):
    raise ValueError(
      f"{what} must be a remote URI such as gs://BUCKET/PATH, got {path!r}: on Kubeflow "
      "Pipelines and Vertex AI every component runs in its own container, which cannot "
      "see a local directory"
    )


def _dag_runner_classes():
  """``(KubeflowV2DagRunner, KubeflowV2DagRunnerConfig)`` from ``tfx.v1``.

  Raises:
    ImportError: the ``kfp-pipeline-spec`` package is not installed.
  """
  experimental = tfx.orchestration.experimental
  if not hasattr(experimental, "KubeflowV2DagRunner"):
    raise ImportError(
      "TFX's KubeflowV2DagRunner needs the kfp-pipeline-spec package (TFX's 'kfp' extra), "
      "which is not installed: pip install 'kfp-pipeline-spec>=0.2.2'"
    )
  return experimental.KubeflowV2DagRunner, experimental.KubeflowV2DagRunnerConfig


def compile_kubeflow_v2(pipeline: tfx.dsl.Pipeline, image: str, output_path: str) -> dict[str, Any]:
  """Compiles ``pipeline`` with TFX's ``KubeflowV2DagRunner`` into a pipeline spec file.

  A ``.json`` output is the ``PipelineJob`` (``pipelineSpec`` plus ``runtimeConfig`` with
  the pipeline root): the template Vertex AI's ``PipelineJob(template_path=...)`` takes.
  A ``.yaml``/``.yml`` output is the bare ``PipelineSpec``: the package the ``kfp`` client's
  ``create_run_from_pipeline_package`` / ``create_recurring_run`` take.

  Args:
    pipeline: a ``tfx.dsl.Pipeline`` whose root is remote and whose metadata connection is
      None (Kubeflow and Vertex AI supply ML Metadata), named as Kubeflow requires
      (``[a-z0-9][a-z0-9-]{0,127}``, e.g. ``KUBEFLOW_PIPELINE_NAME``).
    image: the pinned image every component runs in (built from ``deploy/Dockerfile``).
    output_path: the file to write (local or remote), ending in .json, .yaml or .yml.

  Returns:
    the compiled ``PipelineJob`` as a dict (what a ``.json`` output holds).

  Raises:
    ValueError: an unpinned image, a local pipeline root, a metadata connection, a name
      Kubeflow refuses, or an output path with another extension.
    ImportError: the ``kfp-pipeline-spec`` package is not installed.
  """
  check_image(image)
  info = pipeline.pipeline_info
  check_remote_uri(info.pipeline_root, "pipeline_root")
  if pipeline.metadata_connection_config is not None:
    raise ValueError(
      "the pipeline has a metadata connection config; build it with "
      "metadata_connection_config=None: Kubeflow Pipelines and Vertex AI supply ML Metadata"
    )
  if not _PIPELINE_NAME_RE.fullmatch(info.pipeline_name):
    raise ValueError(
      f"pipeline name {info.pipeline_name!r} is not allowed on Kubeflow: use lowercase "
      f"letters, digits and '-' (pattern [a-z0-9][a-z0-9-]{{0,127}}), e.g. "
      f"{KUBEFLOW_PIPELINE_NAME!r}"
    )
  if not output_path or not output_path.endswith((".json", ".yaml", ".yml")):
    raise ValueError(
      f"output path {output_path!r} must end in .json (PipelineJob, for Vertex AI) or "
      ".yaml (PipelineSpec, for the kfp client)"
    )

  dag_runner_class, config_class = _dag_runner_classes()
  if not is_remote_uri(output_path):
    output_path = os.path.abspath(output_path)
  output_dir, output_filename = os.path.split(output_path)
  dag_runner = dag_runner_class(
    config=config_class(default_image=image, use_pipeline_spec_2_1=True),
    output_dir=output_dir,
    output_filename=output_filename,
  )
  return dag_runner.run(pipeline)


def executor_images(pipeline_job: dict[str, Any]) -> dict[str, str]:
  """Executor label -> image of the container executors in a compiled ``PipelineJob``."""
  executors = pipeline_job["pipelineSpec"]["deploymentSpec"]["executors"]
  return {
    label: spec["container"]["image"] for label, spec in executors.items() if "container" in spec
  }


def compile_pipeline(
  *,
  image: str,
  pipeline_root: str,
  serving_model_dir: str,
  output_path: str = DEFAULT_OUTPUT,
  hparams: Mapping[str, Any] | None = None,
  train_split: str = "train",
  test_split: str = "test",
  eval_percent: int = 10,
  unlabelled_split: str = UNLABELLED_SPLIT,
  tfds_data_dir: str | None = None,
  download: bool = False,
  min_accuracy: float = 0.85,
  max_accuracy_drop: float = 0.01,
  behaviour_thresholds: Mapping[str, float] | None = None,
  beam_args: Sequence[str] = (),
) -> tuple[tfx.dsl.Pipeline, dict[str, Any]]:
  """Builds ``create_pipeline()`` for Kubeflow and compiles it into ``output_path``
  (``compile_kubeflow_v2``).

  Args:
    image: the pinned image every component runs in.
    pipeline_root, serving_model_dir, tfds_data_dir: remote URIs (``gs://...``) every
      container can reach; ``tfds_data_dir`` may be None with ``download``.
    hparams: ``HParams`` overrides, as ``imdb-tfx run --hparam``.
    beam_args: Beam options over the in-container DirectRunner's
      (``CONTAINER_BEAM_ARGS``).
    The rest: as ``create_pipeline()``.

  Returns:
    ``(pipeline, pipeline_job)``: the pipeline compiled and the ``PipelineJob`` dict.

  Raises:
    ValueError: bad hyperparameters, a local path, no dataset, or what
      ``compile_kubeflow_v2`` refuses.
    ImportError: the ``kfp-pipeline-spec`` package is not installed.
  """
  hp = HParams.from_custom_config({"hparams": dict(hparams or {})})
  check_remote_uri(serving_model_dir, "--serving-model-dir")
  if tfds_data_dir:
    check_remote_uri(tfds_data_dir, "--tfds-data-dir")
  elif not download:
    raise ValueError(
      "give --tfds-data-dir gs://... (a prepared TFDS directory) or "
      "--download: the pipeline image holds no dataset"
    )
  pipeline = create_pipeline(
    pipeline_root=pipeline_root,
    serving_model_dir=serving_model_dir,
    metadata_connection_config=None,
    pipeline_name=KUBEFLOW_PIPELINE_NAME,
    hparams=hp,
    train_split=train_split,
    test_split=test_split,
    eval_percent=eval_percent,
    unlabelled_split=unlabelled_split,
    tfds_data_dir=tfds_data_dir,
    download=download,
    min_accuracy=min_accuracy,
    max_accuracy_drop=max_accuracy_drop,
    behaviour_thresholds=behaviour_thresholds,
    beam_pipeline_args=merge_beam_args(CONTAINER_BEAM_ARGS, beam_args),
    code_versions=code_version.code_versions(),
  )
  pipeline_job = compile_kubeflow_v2(pipeline, image, output_path)
  return pipeline, pipeline_job
