"""``imdb-tfx run``: build the pipeline from the options and run it here."""

import os
import sys
import time
import traceback

import click

from cli.console import RunConsole
from cli.options import (
  blessing_options,
  parse_behaviour_thresholds,
  parse_hparams,
  span_options,
  split_options,
  training_options,
)
from models.hparams import ATTENTIONS, MODELS, STRATEGIES, HParams
from pipeline import beam_profiles, collector, layout, remote, run_lock


@click.command()
@click.option(
  "--runner",
  type=click.Choice(layout.RUNNERS),
  default="local",
  show_default=True,
  help="Orchestrator: TFX LocalDagRunner or BeamDagRunner.",
)
@click.option(
  "--beam-profile",
  type=click.Choice(tuple(beam_profiles.PROFILES)),
  default="direct",
  show_default=True,
  help="Where the Beam-powered components (StatisticsGen, Transform, Evaluator) "
  "run: direct = DirectRunner here; portable = a Beam job service "
  "(--beam-endpoint embed runs Beam's own in-process); flink; spark; dataflow. "
  "See the README's 'Scaling out'.",
)
@click.option(
  "--beam-endpoint",
  default=None,
  help="portable: job service host:port or 'embed'; flink: Flink master "
  "host:8081; spark: Spark master spark://host:7077.",
)
@click.option(
  "--beam-environment-type",
  type=click.Choice(beam_profiles.ENVIRONMENT_TYPES),
  default=None,
  help="Where Beam's SDK workers run [default: DOCKER for "
  "flink/spark and a remote job service, LOOPBACK for --beam-endpoint embed].",
)
@click.option(
  "--beam-sdk-image",
  default=None,
  help="SDK worker image with the project installed, pinned by tag or digest "
  "(docker build -f deploy/Dockerfile --target beam-sdk).",
)
@click.option(
  "--beam-environment-config",
  default=None,
  help="EXTERNAL: the worker pool's host:port; PROCESS: Beam's JSON command.",
)
@click.option(
  "--beam-parallelism",
  type=click.IntRange(min=1),
  default=None,
  help="direct: worker threads; flink: --parallelism; portable/spark: SDK "
  "workers per worker; dataflow: --max_num_workers.",
)
@click.option("--beam-project", default=None, help="dataflow: Google Cloud project.")
@click.option("--beam-region", default=None, help="dataflow: region, e.g. europe-west4.")
@click.option(
  "--beam-temp-location",
  default=None,
  help="dataflow: gs://BUCKET/tmp for Dataflow's temporary files.",
)
@click.option(
  "--beam-arg",
  "beam_args",
  multiple=True,
  metavar="--OPTION=VALUE",
  help="A raw Beam pipeline option (repeatable); wins over the profile's.",
)
@click.option(
  "--pipeline-root",
  default=None,
  help="Artifact root [default: OUTPUT_DIR/pipeline_root]; shared storage such "
  "as gs://BUCKET/PATH when Beam's workers run off this machine.",
)
@click.option(
  "--until",
  "last_node",
  type=click.Choice((*layout.NODE_IDS, "ImportSchemaGen")),
  default=None,
  help="Run the pipeline only up to this component, e.g. Transform for the data components alone.",
)
@click.option(
  "--model",
  type=click.Choice(MODELS),
  default="lstm_attention",
  show_default=True,
  help="Model builder.",
)
@click.option(
  "--attention",
  type=click.Choice(ATTENTIONS),
  default=HParams.attention,
  show_default=True,
  help="Score function of the attention pooling: additive "
  "(Bahdanau), dot (Luong) or scaled_dot (Vaswani).",
)
@click.option(
  "--mixed-precision",
  is_flag=True,
  help="Train with mixed_float16 on GPU or "
  "mixed_bfloat16 on TPU (refused on CPU); the output layer stays float32.",
)
@click.option(
  "--strategy",
  type=click.Choice(STRATEGIES),
  default="auto",
  show_default=True,
  help="tf.distribute strategy; auto = TPU if resolvable, Mirrored for >1 GPU, "
  "one GPU, else the default CPU strategy.",
)
@training_options
@split_options
@span_options
@click.option(
  "--span",
  type=click.IntRange(min=0),
  default=None,
  help="With --input-base: ingest this span [default: the latest].",
)
@click.option(
  "--tfds-data-dir",
  type=click.Path(file_okay=False),
  default=None,
  help="TFDS data directory [default: $TFDS_DATA_DIR, else ~/tensorflow_datasets].",
)
@click.option(
  "--download/--no-download",
  default=False,
  show_default=True,
  help="Let TFDS download imdb_reviews when it is not prepared.",
)
@click.option(
  "--schema-path",
  type=click.Path(exists=True, dir_okay=False),
  default=None,
  help="Curated schema.pbtxt to import instead of inferring one "
  "(pipeline/schema/schema.pbtxt is the checked-in one).",
)
@blessing_options
@click.option(
  "--output-dir",
  type=click.Path(file_okay=False),
  default="outputs",
  show_default=True,
  help="Holds metadata.sqlite, pipeline_root/, serving_model/imdb_sentiment/.",
)
@click.option(
  "--no-cache", is_flag=True, help="Re-run every component instead of reusing cached executions."
)
@click.option(
  "--no-report",
  is_flag=True,
  help="Do not write the HTML run report (OUTPUT_DIR/reports/<run id>/index.html).",
)
@click.option(
  "--wait",
  is_flag=True,
  help="When another run is using OUTPUT_DIR, wait for it to finish instead of refusing "
  "(one run at a time per output directory: see the README's 'Runs on one output "
  "directory').",
)
@click.option("--quiet", is_flag=True, help="No per-component progress lines.")
@click.option(
  "--verbose",
  is_flag=True,
  help="Show everything on the console: TensorFlow, "
  "absl and Beam logs too (otherwise they go to OUTPUT_DIR/logs/run-*.log).",
)
def run(
  runner,
  beam_profile,
  beam_endpoint,
  beam_environment_type,
  beam_sdk_image,
  beam_environment_config,
  beam_parallelism,
  beam_project,
  beam_region,
  beam_temp_location,
  beam_args,
  pipeline_root,
  last_node,
  model,
  attention,
  mixed_precision,
  epochs,
  strategy,
  hparams,
  train_split,
  test_split,
  eval_percent,
  unlabelled_split,
  spans,
  tfds_data_dir,
  download,
  schema_path,
  min_accuracy,
  max_accuracy_drop,
  behaviour_thresholds,
  output_dir,
  no_cache,
  no_report,
  wait,
  quiet,
  verbose,
):
  """Run the whole pipeline and push a blessed model to the serving directory.

  The console shows each component's start and end, the Trainer's progress and the
  summary; the rest goes to a log per run, whose path the summary prints.
  """
  started = time.time()
  paths = layout.OutputPaths(os.path.abspath(output_dir))
  if pipeline_root and not remote.is_remote_uri(pipeline_root):
    pipeline_root = os.path.abspath(pipeline_root)
  pipeline_root = pipeline_root or paths.pipeline_root
  overrides = {
    "model": model,
    "attention": attention,
    "epochs": epochs,
    "strategy": strategy,
    "mixed_precision": mixed_precision,
    **parse_hparams(hparams),
  }
  # The collector stays off while the libraries load and the report is written; the run
  # turns it on (pipeline.collector).
  with RunConsole(verbose) as console, collector.paused():
    # Everything is checked before anything is written; TensorFlow's import noise waits in
    # the console's spool meanwhile.
    try:
      hp = HParams.from_custom_config({"hparams": overrides})
      thresholds = parse_behaviour_thresholds(behaviour_thresholds)
      pipeline_beam_args = beam_profiles.beam_args_for(
        beam_profile,
        beam_profiles.BeamSettings(
          endpoint=beam_endpoint,
          environment_type=beam_environment_type,
          sdk_image=beam_sdk_image,
          environment_config=beam_environment_config,
          parallelism=beam_parallelism,
          project=beam_project,
          region=beam_region,
          temp_location=beam_temp_location,
          pipeline_root=pipeline_root,
        ),
        beam_args,
      )
      layout.check_last_node(
        last_node,
        curated_schema=bool(schema_path),
        pretraining=hp.pretrains_embeddings,
        spans=spans is not None,
      )
      _check_data(
        tfds_data_dir,
        "" if spans else train_split,
        test_split,
        download,
        unlabelled_split if hp.pretrains_embeddings else "",
      )
      from pipeline import metadata_store  # not at the top: it loads ML Metadata

      metadata_store.check_connection(metadata_store.connection_config(paths.output_dir))
    except (ValueError, FileNotFoundError, ConnectionError) as e:
      raise click.ClickException(str(e)) from e
    lock = run_lock.RunLock(
      paths.output_dir,
      command=" ".join(["imdb-tfx", *sys.argv[1:]]),
      log="" if verbose else paths.log_path(started),
      wait_seconds=None if wait else 0.0,
      on_wait=lambda holder: click.echo(
        f"Waiting for the run using {paths.output_dir} to finish: "
        f"{holder.describe() if holder else 'it has not described itself yet'}",
        file=console.out,
      ),
    )
    try:
      with lock:
        _run_locked(
          paths,
          started,
          console,
          runner=runner,
          quiet=quiet,
          no_report=no_report,
          pipeline_root=pipeline_root,
          hparams=hp,
          train_split=train_split,
          test_split=test_split,
          eval_percent=eval_percent,
          unlabelled_split=unlabelled_split,
          tfds_data_dir=os.path.abspath(tfds_data_dir) if tfds_data_dir else None,
          download=download,
          schema_path=os.path.abspath(schema_path) if schema_path else None,
          min_accuracy=min_accuracy,
          max_accuracy_drop=max_accuracy_drop,
          behaviour_thresholds=thresholds,
          beam_pipeline_args=pipeline_beam_args,
          enable_cache=not no_cache,
          last_node=last_node,
          spans=spans,
        )
    except run_lock.RunInProgressError as e:
      raise click.ClickException(str(e)) from e


def _run_locked(paths, started, console, *, runner, quiet, no_report, **pipeline_kwargs):
  """The run proper, while it holds the output directory's lock: builds the pipeline,
  runs it, writes its report and its summaries (``run_summary.json``, the latest run's,
  and ``summaries/run-<start>.json``, this run's)."""
  log_path = console.keep_log(paths.log_path(started))
  pipeline = _pipeline(paths, **pipeline_kwargs)
  try:
    result = _run(pipeline, runner, quiet, console, log_path)
  except click.ClickException:  # a failed run's report shows where and why it stopped
    report = None if no_report else _report(paths, started, console)
    if report:
      click.echo(f"Report: {report}", file=console.out)
    raise
  report = None if no_report else _report(paths, started, console)
  summary_path = paths.run_summary_path(started)
  os.makedirs(os.path.dirname(summary_path), exist_ok=True)
  for path in (summary_path, paths.summary_path):
    with open(path, "w", encoding="utf-8") as f:
      f.write(result.to_json())
  click.echo(result.format(components=quiet), file=console.out)
  click.echo(f"Summary written to {summary_path}", file=console.out)
  if report:
    click.echo(f"Report: {report}", file=console.out)
  if log_path:
    click.echo(f"Log: {log_path}", file=console.out)


def _report(paths: layout.OutputPaths, started: float, console: RunConsole) -> str | None:
  """Writes the report of the run that started at ``started`` (seconds since the epoch)
  and returns its path; a report that cannot be written is a warning on the console
  (with the traceback in the log), never the run's failure."""
  from analysis.report import collect, page
  from pipeline import metadata_store

  config = metadata_store.connection_config(paths.output_dir)
  try:
    run_ids = collect.run_ids(config, layout.PIPELINE_NAME, since=started)
    if not run_ids:
      return None
    path = page.write_run_report(config, layout.PIPELINE_NAME, run_ids[-1], paths.reports_dir)
  except Exception as e:  # the run's outcome stands whatever the report does
    traceback.print_exc()
    click.echo(f"Report not written: {type(e).__name__}: {e}", file=console.out)
    return None
  return path


def _check_data(tfds_data_dir, train_split, test_split, download, unlabelled_split) -> None:
  """Raises ``FileNotFoundError`` or ``ValueError`` when the TFDS data is missing or a
  split spec is bad (``components.imdb_example_gen.prepare_builder``)."""
  from components.imdb_example_gen import prepare_builder

  prepare_builder(
    tfds_data_dir, train_split, test_split, download, unlabelled_split=unlabelled_split
  )


def _pipeline(paths: layout.OutputPaths, **kwargs):
  """``create_pipeline(**kwargs)`` with this output directory's serving directory, its
  MLMD store (SQLite in it, or the database server the environment names:
  ``pipeline.metadata_store``) and the code fingerprints."""
  from pipeline import code_version, metadata_store
  from pipeline.pipeline import create_pipeline

  os.makedirs(paths.output_dir, exist_ok=True)
  return create_pipeline(
    serving_model_dir=paths.serving_model_dir,
    metadata_connection_config=metadata_store.connection_config(paths.output_dir),
    code_versions=code_version.code_versions(),
    **kwargs,
  )


def _run(pipeline, runner: str, quiet: bool, console: RunConsole, log_path):
  """Runs ``pipeline``; a failure becomes a ``click.ClickException`` naming the error and
  the log, which holds its traceback."""
  from pipeline import runner as runner_lib

  try:
    return runner_lib.run_pipeline(pipeline, runner, show_progress=not quiet, stream=console.out)
  except Exception as e:  # any component's failure: reported, not a console traceback
    traceback.print_exc()  # to the log (standard error is the log while it runs)
    where = f"; the log has its traceback: {log_path}" if log_path else ""
    raise click.ClickException(f"the run failed: {type(e).__name__}: {e}{where}") from e
