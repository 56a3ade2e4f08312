"""``imdb-tfx schedule airflow`` and ``imdb-tfx compile kubeflow``: the same pipeline for
an orchestrator that runs it on a schedule."""

import dataclasses
import os

import click

from cli.options import (
  blessing_options,
  parse_behaviour_thresholds,
  parse_hparams,
  span_options,
  split_options,
  training_options,
)
from pipeline import layout


@click.group()
def schedule():
  """Scheduled runs of the pipeline in an orchestrator."""


@schedule.command("airflow")
@click.option(
  "--output",
  "output_file",
  type=click.Path(dir_okay=False),
  default=None,
  help="Write the DAG module here (e.g. $AIRFLOW_HOME/dags/imdb_sentiment.py); default: print it.",
)
@click.option(
  "--output-dir",
  type=click.Path(file_okay=False),
  default="outputs",
  show_default=True,
  help="Pipeline outputs on the Airflow workers (made "
  "absolute): pipeline_root/, serving_model/, SQLite MLMD.",
)
@click.option(
  "--schedule",
  "schedule_",
  default="@daily",
  show_default=True,
  help="Cron expression ('0 3 * * *') or Airflow preset ('@daily', '@weekly').",
)
@click.option(
  "--retries",
  type=click.IntRange(min=0),
  default=2,
  show_default=True,
  help="Retries of a failed component task.",
)
@click.option(
  "--retry-delay",
  type=click.FloatRange(min=0),
  default=300.0,
  show_default=True,
  help="Seconds between a task's failure and its retry.",
)
@training_options
@split_options
@span_options
@click.option(
  "--tfds-data-dir",
  default=None,
  help="TFDS data directory on the workers [default: their $TFDS_DATA_DIR].",
)
@click.option("--download/--no-download", default=False, show_default=True)
@blessing_options
@click.option(
  "--beam-arg",
  "beam_args",
  multiple=True,
  metavar="--OPTION=VALUE",
  help="Beam option for the Beam-powered components (repeatable).",
)
def schedule_airflow(
  output_file,
  output_dir,
  schedule_,
  retries,
  retry_delay,
  epochs,
  hparams,
  train_split,
  test_split,
  eval_percent,
  unlabelled_split,
  spans,
  tfds_data_dir,
  download,
  min_accuracy,
  max_accuracy_drop,
  behaviour_thresholds,
  beam_args,
):
  """Print or write the Airflow 2.x DAG module (a task per TFX node, run by TFX's portable
  launcher): the schedule, max_active_runs=1, retries, no catch-up; MLMD on SQLite, or
  PostgreSQL or MySQL from the workers' IMDB_TFX_MLMD_POSTGRES_* or IMDB_TFX_MLMD_MYSQL_*
  environment variables. With --input-base each scheduled run ingests the newest span (all
  cached when none arrived)."""
  from pipeline import airflow_dag

  kwargs = dict(
    output_dir=os.path.abspath(output_dir),
    schedule=schedule_,
    retries=retries,
    retry_delay_seconds=retry_delay,
    hparams={"epochs": epochs, **parse_hparams(hparams)},
    train_split=train_split,
    test_split=test_split,
    eval_percent=eval_percent,
    unlabelled_split=unlabelled_split,
    tfds_data_dir=os.path.abspath(tfds_data_dir) if tfds_data_dir else None,
    download=download,
    min_accuracy=min_accuracy,
    max_accuracy_drop=max_accuracy_drop,
    behaviour_thresholds=parse_behaviour_thresholds(behaviour_thresholds),
    beam_args=list(beam_args),
  )
  if spans:
    kwargs["spans"] = dataclasses.asdict(spans)
  try:
    source = airflow_dag.render_dag_file(**kwargs)
  except ValueError as e:
    raise click.ClickException(str(e)) from e
  if not output_file:
    click.echo(source, nl=False)
    return
  directory = os.path.dirname(os.path.abspath(output_file))
  os.makedirs(directory, exist_ok=True)
  os.makedirs(kwargs["output_dir"], exist_ok=True)  # the DAG refuses a missing one
  tmp = output_file + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    f.write(source)
  os.replace(tmp, output_file)  # Airflow's DAG parser never sees half a file
  click.echo(f"DAG imdb_sentiment written to {output_file} (schedule {schedule_})")


@click.group("compile")
def compile_group():
  """Compile the pipeline for an orchestrator."""


@compile_group.command("kubeflow")
@click.option(
  "--image",
  required=True,
  help="Pinned pipeline image built from deploy/Dockerfile, e.g. "
  "europe-docker.pkg.dev/PROJECT/REPO/imdb-tfx:0.1.0 (a tag other than 'latest', "
  "or @sha256:...).",
)
@click.option(
  "--pipeline-root",
  required=True,
  help="Remote root of the pipeline's artifacts, e.g. gs://BUCKET/imdb-tfx/root.",
)
@click.option(
  "--serving-model-dir",
  required=True,
  help="Remote TF Serving model directory the Pusher writes <version>/ into, e.g. "
  "gs://BUCKET/serving_model/imdb_sentiment.",
)
@click.option(
  "--output",
  "output_path",
  default=layout.OutputPaths().kubeflow_spec_path,
  show_default=True,
  help="Spec file: .json = PipelineJob (Vertex AI), .yaml = PipelineSpec "
  "(kfp client). Local or gs://.",
)
@training_options
@split_options
@click.option(
  "--tfds-data-dir",
  default=None,
  help="Remote TFDS data directory holding a prepared imdb_reviews, e.g. "
  "gs://BUCKET/tensorflow_datasets. Required unless --download.",
)
@click.option(
  "--download/--no-download",
  default=False,
  show_default=True,
  help="Let the ImdbExampleGen task download imdb_reviews (into --tfds-data-dir, "
  "else the container's own disk, so on every run).",
)
@blessing_options
@click.option(
  "--beam-arg",
  "beam_args",
  multiple=True,
  metavar="--OPTION=VALUE",
  help="Beam option for the Beam-powered components (repeatable); overrides the "
  "in-container DirectRunner defaults (multi_processing, one worker per core). "
  "For scale: --beam-arg=--runner=DataflowRunner --beam-arg=--project=PROJECT "
  "--beam-arg=--region=REGION --beam-arg=--temp_location=gs://BUCKET/tmp.",
)
def kubeflow_command(
  image,
  pipeline_root,
  serving_model_dir,
  output_path,
  epochs,
  hparams,
  train_split,
  test_split,
  eval_percent,
  unlabelled_split,
  tfds_data_dir,
  download,
  min_accuracy,
  max_accuracy_drop,
  behaviour_thresholds,
  beam_args,
):
  """Compile the pipeline for Kubeflow Pipelines v2 / Vertex AI Pipelines (TFX's
  KubeflowV2DagRunner): every component runs in --image. Submit and schedule the spec as
  deploy/kubeflow.md shows."""
  from pipeline import kubeflow

  try:
    pipeline, pipeline_job = kubeflow.compile_pipeline(
      image=image,
      pipeline_root=pipeline_root,
      serving_model_dir=serving_model_dir,
      output_path=output_path,
      hparams={"epochs": epochs, **parse_hparams(hparams)},
      train_split=train_split,
      test_split=test_split,
      eval_percent=eval_percent,
      unlabelled_split=unlabelled_split,
      tfds_data_dir=tfds_data_dir,
      download=download,
      min_accuracy=min_accuracy,
      max_accuracy_drop=max_accuracy_drop,
      behaviour_thresholds=parse_behaviour_thresholds(behaviour_thresholds),
      beam_args=beam_args,
    )
  except (ValueError, ImportError) as e:
    raise click.ClickException(str(e)) from e
  node_ids = [node.id for node in pipeline.components]
  click.echo(f"Kubeflow V2 pipeline spec written to {output_path}")
  click.echo(f"  pipeline {kubeflow.KUBEFLOW_PIPELINE_NAME}, root {pipeline_root}, image {image}")
  click.echo(f"  {len(node_ids)} nodes: {', '.join(node_ids)}")
  click.echo(f"  {len(kubeflow.executor_images(pipeline_job))} container executors")
