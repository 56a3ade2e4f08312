"""``imdb-tfx``: run the pipeline, evaluate a pushed model on a TFDS split, serve it with
the development server compatible with TF Serving's gRPC API, and query a server.

This module is an entry point: it sets ``TF_USE_LEGACY_KERAS=1`` before anything imports
TensorFlow, because tf.Transform 1.16 works only with Keras 2 (``tf_keras``).
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# TensorFlow's C++ INFO/WARNING lines (graph shape notes, oneDNN) drown the progress lines.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import warnings  # pylint: disable=wrong-import-position

# google-cloud-aiplatform (a TFX dependency) warns about Python 3.10 on every import; the
# environment variable carries the filter into Beam's worker processes.
warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\.")
os.environ.setdefault("PYTHONWARNINGS", "ignore::FutureWarning")

import json  # pylint: disable=wrong-import-position
import sys  # pylint: disable=wrong-import-position

import click  # pylint: disable=wrong-import-position

from models.hparams import ATTENTIONS, HParams, MODELS, STRATEGIES  # pylint: disable=C0413
from pipeline import beam_profiles  # pylint: disable=wrong-import-position
from pipeline import remote  # pylint: disable=wrong-import-position
from pipeline.cli_options import blessing_options, parse_hparams  # pylint: disable=C0413
from pipeline.cli_options import split_options, training_options  # pylint: disable=C0413
from pipeline.beam_profiles import ENVIRONMENT_TYPES  # pylint: disable=wrong-import-position
from pipeline.beam_profiles import PROFILES as BEAM_PROFILES  # pylint: disable=C0413
from pipeline.kubeflow import compile_group  # pylint: disable=wrong-import-position
from pipeline.pipeline import NODE_IDS  # pylint: disable=wrong-import-position
from pipeline.runner import RUNNERS  # pylint: disable=wrong-import-position


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main():
  """IMDB sentiment TFX pipeline: TFDS -> TFDV -> tf.Transform -> attention model ->
  TFMA blessing -> TF Serving model directory."""


@main.command()
@click.option("--runner", type=click.Choice(RUNNERS), default="local", show_default=True,
              help="Orchestrator: TFX LocalDagRunner or BeamDagRunner.")
@click.option("--beam-profile", type=click.Choice(tuple(BEAM_PROFILES)), default="direct",
              show_default=True,
              help="Where the Beam-powered components (StatisticsGen, Transform, Evaluator) "
              "run: direct = DirectRunner here; portable = a Beam job service "
              "(--beam-endpoint embed runs Beam's own in-process); flink; spark; dataflow. "
              "See the README's 'Scaling out'.")
@click.option("--beam-endpoint", default=None,
              help="portable: job service host:port or 'embed'; flink: Flink master "
              "host:8081; spark: Spark master spark://host:7077.")
@click.option("--beam-environment-type", type=click.Choice(ENVIRONMENT_TYPES),
              default=None, help="Where Beam's SDK workers run [default: DOCKER for "
              "flink/spark and a remote job service, LOOPBACK for --beam-endpoint embed].")
@click.option("--beam-sdk-image", default=None,
              help="SDK worker image with the project installed, pinned by tag or digest "
              "(docker build -f deploy/Dockerfile --target beam-sdk).")
@click.option("--beam-environment-config", default=None,
              help="EXTERNAL: the worker pool's host:port; PROCESS: Beam's JSON command.")
@click.option("--beam-parallelism", type=click.IntRange(min=1), default=None,
              help="direct: worker processes; flink: --parallelism; portable/spark: SDK "
              "workers per worker; dataflow: --max_num_workers.")
@click.option("--beam-project", default=None, help="dataflow: Google Cloud project.")
@click.option("--beam-region", default=None, help="dataflow: region, e.g. europe-west4.")
@click.option("--beam-temp-location", default=None,
              help="dataflow: gs://BUCKET/tmp for Dataflow's temporary files.")
@click.option("--beam-arg", "beam_args", multiple=True, metavar="--OPTION=VALUE",
              help="A raw Beam pipeline option (repeatable); wins over the profile's.")
@click.option("--pipeline-root", default=None,
              help="Artifact root [default: OUTPUT_DIR/pipeline_root]; shared storage such "
              "as gs://BUCKET/PATH when Beam's workers run off this machine.")
@click.option("--until", "last_node", type=click.Choice(NODE_IDS + ("ImportSchemaGen",)),
              default=None, help="Run the pipeline only up to this component, e.g. "
              "Transform for the data components alone.")
@click.option("--model", type=click.Choice(MODELS), default="lstm_attention",
              show_default=True, help="Model builder.")
@click.option("--attention", type=click.Choice(ATTENTIONS), default=HParams.attention,
              show_default=True, help="Score function of the attention pooling: additive "
              "(Bahdanau), dot (Luong) or scaled_dot (Vaswani).")
@click.option("--mixed-precision", is_flag=True, help="Train with mixed_float16 on GPU or "
              "mixed_bfloat16 on TPU (refused on CPU); the output layer stays float32.")
@click.option("--strategy", type=click.Choice(STRATEGIES), default="auto", show_default=True,
              help="tf.distribute strategy; auto = TPU if resolvable, Mirrored for >1 GPU, "
              "one GPU, else the default CPU strategy.")
@training_options
@split_options
@click.option("--tfds-data-dir", type=click.Path(file_okay=False), default=None,
              help="TFDS data directory [default: $TFDS_DATA_DIR, else ~/tensorflow_datasets].")
@click.option("--download/--no-download", default=False, show_default=True,
              help="Let TFDS download imdb_reviews when it is not prepared.")
@click.option("--schema-path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Curated schema.pbtxt to import instead of inferring one "
              "(pipeline/schema/schema.pbtxt is the checked-in one).")
@blessing_options
@click.option("--output-dir", type=click.Path(file_okay=False), default="outputs",
              show_default=True,
              help="Holds metadata.sqlite, pipeline_root/, serving_model/imdb_sentiment/.")
@click.option("--no-cache", is_flag=True, help="Re-run every component instead of reusing "
              "cached executions.")
@click.option("--quiet", is_flag=True, help="No per-component progress lines.")
def run(runner, beam_profile, beam_endpoint, beam_environment_type, beam_sdk_image,
        beam_environment_config, beam_parallelism, beam_project, beam_region,
        beam_temp_location, beam_args, pipeline_root, last_node, model, attention,
        mixed_precision, epochs, strategy,
        hparams, train_split, test_split, eval_percent, unlabelled_split, tfds_data_dir,
        download, schema_path, min_accuracy, max_accuracy_drop, output_dir, no_cache, quiet):
  """Run the whole pipeline and push a blessed model to the serving directory."""
  from components.imdb_example_gen import prepare_builder  # pylint: disable=import-outside-toplevel
  from pipeline import code_version  # pylint: disable=import-outside-toplevel
  from pipeline import runner as runner_lib  # pylint: disable=import-outside-toplevel
  from pipeline.pipeline import check_last_node, create_pipeline  # pylint: disable=C0415
  from tfx import v1 as tfx  # pylint: disable=import-outside-toplevel

  overrides = {"model": model, "attention": attention, "epochs": epochs,
               "strategy": strategy, "mixed_precision": mixed_precision,
               **parse_hparams(hparams)}
  paths = runner_lib.OutputPaths(os.path.abspath(output_dir))
  if pipeline_root and not remote.is_remote_uri(pipeline_root):
    pipeline_root = os.path.abspath(pipeline_root)
  pipeline_root = pipeline_root or paths.pipeline_root
  try:
    hp = HParams.from_custom_config({"hparams": overrides})
    pipeline_beam_args = beam_profiles.beam_args_for(beam_profile, beam_profiles.BeamSettings(
        endpoint=beam_endpoint, environment_type=beam_environment_type,
        sdk_image=beam_sdk_image, environment_config=beam_environment_config,
        parallelism=beam_parallelism, project=beam_project, region=beam_region,
        temp_location=beam_temp_location, pipeline_root=pipeline_root), beam_args)
    check_last_node(last_node, curated_schema=bool(schema_path),
                    pretraining=hp.pretrains_embeddings)
    # Fail before anything is written when the data is missing or a split spec is bad.
    prepare_builder(tfds_data_dir, train_split, test_split, download,
                    unlabelled_split=unlabelled_split if hp.pretrains_embeddings else "")
  except (ValueError, FileNotFoundError) as e:
    raise click.ClickException(str(e)) from e

  os.makedirs(paths.output_dir, exist_ok=True)
  pipeline = create_pipeline(
      pipeline_root=pipeline_root, serving_model_dir=paths.serving_model_dir,
      metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
          paths.metadata_path),
      hparams=hp, train_split=train_split, test_split=test_split, eval_percent=eval_percent,
      unlabelled_split=unlabelled_split,
      tfds_data_dir=os.path.abspath(tfds_data_dir) if tfds_data_dir else None,
      download=download, schema_path=os.path.abspath(schema_path) if schema_path else None,
      min_accuracy=min_accuracy, max_accuracy_drop=max_accuracy_drop,
      beam_pipeline_args=pipeline_beam_args, enable_cache=not no_cache, last_node=last_node,
      code_versions=code_version.code_versions())
  result = runner_lib.run_pipeline(pipeline, runner, show_progress=not quiet)
  with open(paths.summary_path, "w", encoding="utf-8") as f:
    f.write(result.to_json())
  click.echo(result.format())
  click.echo(f"Summary written to {paths.summary_path}")


@main.command()
@click.option("--model-dir", type=click.Path(exists=True, file_okay=False),
              default=os.path.join("outputs", "serving_model", "imdb_sentiment"),
              show_default=True,
              help="A SavedModel, or a TF Serving model directory (its latest version is used).")
@click.option("--split", default="test", show_default=True, help="TFDS split spec to score.")
@click.option("--tfds-data-dir", type=click.Path(file_okay=False), default=None,
              help="TFDS data directory [default: $TFDS_DATA_DIR].")
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def evaluate(model_dir, split, tfds_data_dir, batch_size, as_json):
  """Score a pushed model's predict_text signature on a TFDS imdb_reviews split."""
  from models import evaluation  # pylint: disable=import-outside-toplevel
  try:
    result = evaluation.evaluate_saved_model(model_dir, split, tfds_data_dir, batch_size)
  except (ValueError, FileNotFoundError) as e:
    raise click.ClickException(str(e)) from e
  if as_json:
    click.echo(json.dumps(result, indent=2))
  else:
    click.echo(f"{result['model_path']}: accuracy {result['accuracy']:.4f} on "
               f"{result['examples']} examples of '{split}' "
               f"({result['examples_per_second']:.0f} examples/s)")


@main.command()
@click.argument("reviews", nargs=-1)
@click.option("--model-dir", type=click.Path(exists=True, file_okay=False),
              default=os.path.join("outputs", "serving_model", "imdb_sentiment"),
              show_default=True,
              help="A SavedModel, or a TF Serving model directory (its latest version is used).")
@click.option("--from-split", default=None, metavar="SPLIT",
              help="Also explain the reviews of this TFDS imdb_reviews split spec, e.g. "
              "'test[:2]'.")
@click.option("--tfds-data-dir", type=click.Path(file_okay=False), default=None,
              help="TFDS data directory for --from-split [default: $TFDS_DATA_DIR].")
@click.option("--output-dir", type=click.Path(file_okay=False),
              default=os.path.join("outputs", "explain"), show_default=True,
              help="Where review_<i>.png and review_<i>.html are written.")
@click.option("--top", type=click.IntRange(min=1), default=8, show_default=True,
              help="Most attended words to print per review.")
def explain(reviews, model_dir, from_split, tfds_data_dir, output_dir, top):
  """Render the attention over each review's words as a PNG heatmap and an HTML page."""
  from models import explain as explain_lib  # pylint: disable=import-outside-toplevel
  reviews = list(reviews)
  try:
    if from_split:
      from models.evaluation import load_reviews  # pylint: disable=import-outside-toplevel
      reviews += [text for text, _ in load_reviews(from_split, tfds_data_dir)]
    if not reviews:
      raise ValueError("give a review text, or --from-split")
    explanations = explain_lib.explain(model_dir, reviews)
  except (ValueError, FileNotFoundError) as e:
    raise click.ClickException(str(e)) from e
  paths = explain_lib.write_explanations(explanations, output_dir)
  for i, e in enumerate(explanations):
    words = ", ".join(f"{t} {w:.3f}" for t, w in e.top_tokens(top))
    click.echo(f"[{i}] {e.sentiment} ({e.probability:.3f}): {words}")
    click.echo(f"    {paths[2 * i]}\n    {paths[2 * i + 1]}")


@main.group()
def schedule():
  """Scheduled runs of the pipeline in an orchestrator."""


@schedule.command("airflow")
@click.option("--output", "output_file", type=click.Path(dir_okay=False), default=None,
              help="Write the DAG module here (e.g. $AIRFLOW_HOME/dags/imdb_sentiment.py); "
              "default: print it.")
@click.option("--output-dir", type=click.Path(file_okay=False), default="outputs",
              show_default=True, help="Pipeline outputs on the Airflow workers (made "
              "absolute): pipeline_root/, serving_model/, SQLite MLMD.")
@click.option("--schedule", "schedule_", default="@daily", show_default=True,
              help="Cron expression ('0 3 * * *') or Airflow preset ('@daily', '@weekly').")
@click.option("--retries", type=click.IntRange(min=0), default=2, show_default=True,
              help="Retries of a failed component task (5 minutes apart).")
@training_options
@split_options
@click.option("--tfds-data-dir", default=None,
              help="TFDS data directory on the workers [default: their $TFDS_DATA_DIR].")
@click.option("--download/--no-download", default=False, show_default=True)
@blessing_options
@click.option("--beam-arg", "beam_args", multiple=True, metavar="--OPTION=VALUE",
              help="Beam option for the Beam-powered components (repeatable).")
def schedule_airflow(output_file, output_dir, schedule_, retries, epochs, hparams,
                     train_split, test_split, eval_percent, unlabelled_split, tfds_data_dir,
                     download, min_accuracy, max_accuracy_drop, beam_args):
  """Print or write the Airflow 2.x DAG module (TFX's AirflowDagRunner): the schedule,
  max_active_runs=1, retries, no catch-up; MLMD on SQLite, or MySQL from the workers'
  IMDB_TFX_MLMD_MYSQL_* environment variables."""
  from pipeline import airflow_dag  # pylint: disable=import-outside-toplevel
  kwargs = dict(output_dir=os.path.abspath(output_dir), schedule=schedule_, retries=retries,
                hparams={"epochs": epochs, **parse_hparams(hparams)},
                train_split=train_split, test_split=test_split, eval_percent=eval_percent,
                unlabelled_split=unlabelled_split,
                tfds_data_dir=os.path.abspath(tfds_data_dir) if tfds_data_dir else None,
                download=download, min_accuracy=min_accuracy,
                max_accuracy_drop=max_accuracy_drop, beam_args=list(beam_args))
  try:
    source = airflow_dag.render_dag_file(**kwargs)
  except ValueError as e:
    raise click.ClickException(str(e)) from e
  if not output_file:
    click.echo(source, nl=False)
    return
  directory = os.path.dirname(os.path.abspath(output_file))
  os.makedirs(directory, exist_ok=True)
  tmp = output_file + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    f.write(source)
  os.replace(tmp, output_file)  # Airflow's DAG parser never sees half a file
  click.echo(f"DAG imdb_sentiment written to {output_file} (schedule {schedule_})")


_DEV_SERVER_NOTE = (
    "This is a DEVELOPMENT server compatible with TF Serving's gRPC API "
    "(tensorflow.serving.PredictionService and ModelService), for local work and tests. "
    "It is not TF Serving: production serves the same model directory with "
    "tensorflow_model_server (see deploy/).")
_BOOL = dict(type=click.BOOL, is_flag=False, flag_value=True, show_default=True)


@main.command(help="Serve a TF Serving model directory over TF Serving's gRPC API.\n\n"
              + _DEV_SERVER_NOTE + " Flags are tensorflow_model_server's, so the same "
              "command line works against either.")
@click.option("--port", type=click.IntRange(0, 65535), default=8500, show_default=True,
              help="gRPC port (0: pick a free one and print it).")
@click.option("--model_name", default="default", show_default=True,
              help="Model name clients use (with --model_base_path).")
@click.option("--model_base_path", type=click.Path(file_okay=False), default=None,
              help="Directory of numeric version subdirectories; its latest is served.")
@click.option("--model_config_file", type=click.Path(exists=True, dir_okay=False),
              default=None, help="ModelServerConfig text proto (model_config_list with "
              "version policies and labels); instead of --model_name/--model_base_path.")
@click.option("--model_config_file_poll_wait_seconds", type=int, default=0,
              show_default=True, help="Re-read --model_config_file this often (0: never).")
@click.option("--file_system_poll_wait_seconds", type=int, default=1, show_default=True,
              help="Seconds between polls for new versions (0: once at start, <0: never).")
@click.option("--enable_batching", default=False, **_BOOL,
              help="Batch concurrent requests on the server.")
@click.option("--batching_parameters_file", type=click.Path(exists=True, dir_okay=False),
              default=None, help="BatchingParameters text proto (with --enable_batching).")
@click.option("--enable_model_warmup", default=True, **_BOOL,
              help="Run assets.extra/tf_serving_warmup_requests before a version is "
              "AVAILABLE.")
@click.option("--grpc_channel_arguments", default="", help="Comma-separated gRPC server "
              "arguments, e.g. grpc.max_receive_message_length=4194304.")
@click.option("--grpc_max_threads", type=click.IntRange(min=1), default=64,
              show_default=True, help="Request handler threads.")
@click.option("--ssl_config_file", type=click.Path(exists=True, dir_okay=False),
              default=None, help="SSLConfig text proto (server_key, server_cert PEM): "
              "serve over TLS.")
@click.option("--rest_api_port", type=int, default=0, show_default=True,
              help="Accepted for compatibility; the REST API is not implemented here.")
@click.option("--monitoring_config_file", default=None,
              help="Accepted for compatibility; monitoring is not implemented here.")
@click.option("--bind_address", default="0.0.0.0", show_default=True,
              help="Address to listen on (not a TF Serving flag; TF Serving binds all).")
@click.option("--shutdown_grace_seconds", type=click.FloatRange(min=0), default=10.0,
              show_default=True, help="On SIGTERM/SIGINT, how long in-flight requests may "
              "finish (not a TF Serving flag).")
def serve(port, model_name, model_base_path, model_config_file,
          model_config_file_poll_wait_seconds, file_system_poll_wait_seconds,
          enable_batching, batching_parameters_file, enable_model_warmup,
          grpc_channel_arguments, grpc_max_threads, ssl_config_file, rest_api_port,
          monitoring_config_file, bind_address, shutdown_grace_seconds):
  from serving import serve_main  # pylint: disable=import-outside-toplevel
  try:
    options = serve_main.ServeOptions(
        port=port, model_name=model_name, model_base_path=model_base_path,
        model_config_file=model_config_file,
        model_config_file_poll_wait_seconds=model_config_file_poll_wait_seconds,
        file_system_poll_wait_seconds=file_system_poll_wait_seconds,
        enable_batching=enable_batching, batching_parameters_file=batching_parameters_file,
        enable_model_warmup=enable_model_warmup,
        grpc_channel_arguments=grpc_channel_arguments, grpc_max_threads=grpc_max_threads,
        ssl_config_file=ssl_config_file, bind_address=bind_address,
        shutdown_grace_seconds=shutdown_grace_seconds)
    click.echo(_DEV_SERVER_NOTE, err=True)
    if rest_api_port:
      click.echo(f"warning: --rest_api_port={rest_api_port} ignored: only the gRPC API is "
                 "implemented", err=True)
    if monitoring_config_file:
      click.echo("warning: --monitoring_config_file ignored: monitoring is not "
                 "implemented", err=True)
    serve_main.serve_forever(options)
  except (ValueError, FileNotFoundError, OSError) as e:
    raise click.ClickException(str(e)) from e


def _client_options(f):
  """Options shared by the gRPC client commands."""
  decorators = [
      click.option("--server", default="localhost:8500", show_default=True,
                   help="host:port of TF Serving's (or imdb-tfx serve's) gRPC port."),
      click.option("--model-name", default="imdb_sentiment", show_default=True),
      click.option("--model-version", type=int, default=None,
                   help="Ask this version (default: the latest)."),
      click.option("--version-label", default=None, help="Ask the version with this label, "
                   "e.g. stable or canary."),
      click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=10.0,
                   show_default=True, help="Deadline of each attempt, seconds."),
      click.option("--retries", type=click.IntRange(min=0), default=3, show_default=True,
                   help="Retries on UNAVAILABLE / DEADLINE_EXCEEDED (with backoff)."),
      click.option("--max-message-mb", type=click.FloatRange(min=0, min_open=True),
                   default=64.0, show_default=True,
                   help="Largest gRPC message sent or received, MiB."),
      click.option("--tls-ca", type=click.Path(exists=True, dir_okay=False), default=None,
                   help="PEM CA certificate: connect with TLS (default: plaintext)."),
      click.option("--tls-server-name", default=None,
                   help="Name to verify in the server certificate (default: the host)."),
      click.option("--wait-ready", type=click.FloatRange(min=0), default=0.0,
                   show_default=True, help="First wait up to this many seconds for an "
                   "AVAILABLE version (GetModelStatus)."),
      click.option("--json", "as_json", is_flag=True, help="Print JSON."),
  ]
  for decorator in reversed(decorators):
    f = decorator(f)
  return f


def _make_client(server, model_name, model_version, version_label, timeout, retries,
                 max_message_mb, tls_ca, tls_server_name, wait_ready):
  from serving.client import SentimentClient  # pylint: disable=import-outside-toplevel
  try:
    client = SentimentClient(server, model_name, version=model_version,
                             version_label=version_label, timeout_s=timeout,
                             retries=retries, max_message_bytes=int(max_message_mb * 2**20),
                             tls_ca=tls_ca, tls_server_name=tls_server_name)
    if wait_ready:
      client.wait_until_ready(wait_ready)
  except (ValueError, TimeoutError) as e:
    raise click.ClickException(str(e)) from e
  return client


@main.command()
@click.argument("reviews", nargs=-1)
@click.option("--file", "review_file", type=click.File("r", encoding="utf-8"), default=None,
              help="Read reviews from this file, one per line ('-' = stdin).")
@click.option("--signature", type=click.Choice(["predict_text", "serving_default",
                                                "classify"]),
              default="predict_text", show_default=True,
              help="predict_text (raw text, with attention), serving_default "
              "(tf.Example) or classify (TF Serving's Classify API).")
@click.option("--top-tokens", type=click.IntRange(min=0), default=5, show_default=True,
              help="Most attended tokens to print per review (predict_text).")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True,
              help="Reviews per request (a batching server refuses requests above its "
              "max_batch_size).")
@_client_options
def predict(reviews, review_file, signature, top_tokens, batch_size, server, model_name,
            model_version, version_label, timeout, retries, max_message_mb, tls_ca,
            tls_server_name, wait_ready, as_json):
  """Score reviews with a served model over TF Serving's gRPC API (one request per
  --batch-size reviews)."""
  from serving import client as client_lib  # pylint: disable=import-outside-toplevel
  texts = list(reviews) + (client_lib.read_reviews(review_file) if review_file else [])
  if not texts:
    raise click.UsageError("give reviews as arguments or with --file")
  client = _make_client(server, model_name, model_version, version_label, timeout, retries,
                        max_message_mb, tls_ca, tls_server_name, wait_ready)
  chunks = [texts[i:i + batch_size] for i in range(0, len(texts), batch_size)]
  try:
    if signature == "predict_text":
      predictions = [p for chunk in chunks for p in client.predict_text(chunk)]
      if as_json:
        click.echo(json.dumps([p.to_dict() for p in predictions], indent=2))
      else:
        for p in predictions:
          click.echo(client_lib.format_prediction(p, top_tokens))
    elif signature == "serving_default":
      rows = []
      for chunk in chunks:
        probabilities, version = client.predict_examples(chunk)
        rows += [{"text": t, "probability": float(p), "model_version": version}
                 for t, p in zip(chunk, probabilities)]
      click.echo(json.dumps(rows, indent=2) if as_json else "\n".join(
          f"p(positive)={r['probability']:.4f}  v{r['model_version']}  {r['text']!r}"
          for r in rows))
    else:
      rows = []
      for chunk in chunks:
        results, version = client.classify(chunk)
        rows += [{"text": t, "scores": r, "model_version": version}
                 for t, r in zip(chunk, results)]
      click.echo(json.dumps(rows, indent=2) if as_json else "\n".join(
          "  ".join(f"{label}={score:.4f}" for label, score in r["scores"].items())
          + f"  v{r['model_version']}  {r['text']!r}" for r in rows))
  except client_lib.ServingRequestError as e:
    raise click.ClickException(str(e)) from e
  finally:
    client.close()


@main.command()
@_client_options
def status(server, model_name, model_version, version_label, timeout, retries,
           max_message_mb, tls_ca, tls_server_name, wait_ready, as_json):
  """Model versions and their states (GetModelStatus) and signatures (GetModelMetadata)."""
  from serving import client as client_lib  # pylint: disable=import-outside-toplevel
  client = _make_client(server, model_name, model_version, version_label, timeout, retries,
                        max_message_mb, tls_ca, tls_server_name, wait_ready)
  try:
    versions = client.model_status()
    signatures = {}
    if any(v.state == "AVAILABLE" for v in versions):
      version, defs = client.model_metadata()
      signatures = {name: {"method_name": d.method_name,
                           "inputs": sorted(d.inputs), "outputs": sorted(d.outputs)}
                    for name, d in sorted(defs.items()) if not name.startswith("__")}
  except client_lib.ServingRequestError as e:
    raise click.ClickException(str(e)) from e
  finally:
    client.close()
  if as_json:
    click.echo(json.dumps({"versions": [vars(v) for v in versions],
                           "signatures": signatures}, indent=2))
    return
  for v in versions:
    error = f"  error {v.error_code}: {v.error_message}" if v.error_code else ""
    click.echo(f"{model_name} version {v.version}: {v.state}{error}")
  for name, d in signatures.items():
    click.echo(f"  signature {name} ({d['method_name']}): {', '.join(d['inputs'])} -> "
               f"{', '.join(d['outputs'])}")


# `imdb-tfx compile kubeflow` lives beside its compiler in pipeline/kubeflow.py.
main.add_command(compile_group)


if __name__ == "__main__":
  sys.exit(main())
