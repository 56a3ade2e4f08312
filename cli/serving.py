"""``imdb-tfx serve``, ``predict`` and ``status``: the development server compatible with
TF Serving's gRPC API, and its client. The client commands import grpcio and the TF
Serving messages only (``serving.apis``), never TensorFlow, so they answer in about a
second."""

import json

import click

from core import contract

_DEV_SERVER_NOTE = (
  "This is a DEVELOPMENT server compatible with TF Serving's gRPC API "
  "(tensorflow.serving.PredictionService and ModelService), for local work and tests. "
  "It is not TF Serving: production serves the same model directory with "
  "tensorflow_model_server (see deploy/)."
)
_BOOL = dict(type=click.BOOL, is_flag=False, flag_value=True, show_default=True)


@click.command(
  help="Serve a TF Serving model directory over TF Serving's gRPC API.\n\n"
  + _DEV_SERVER_NOTE
  + " Flags are tensorflow_model_server's, so the same "
  "command line works against either."
)
@click.option(
  "--port",
  type=click.IntRange(0, 65535),
  default=8500,
  show_default=True,
  help="gRPC port (0: pick a free one and print it).",
)
@click.option(
  "--model_name",
  default="default",
  show_default=True,
  help="Model name clients use (with --model_base_path).",
)
@click.option(
  "--model_base_path",
  type=click.Path(file_okay=False),
  default=None,
  help="Directory of numeric version subdirectories; its latest is served.",
)
@click.option(
  "--model_config_file",
  type=click.Path(exists=True, dir_okay=False),
  default=None,
  help="ModelServerConfig text proto (model_config_list with "
  "version policies and labels); instead of --model_name/--model_base_path.",
)
@click.option(
  "--model_config_file_poll_wait_seconds",
  type=int,
  default=0,
  show_default=True,
  help="Re-read --model_config_file this often (0: never).",
)
@click.option(
  "--file_system_poll_wait_seconds",
  type=int,
  default=1,
  show_default=True,
  help="Seconds between polls for new versions (0: once at start, <0: never).",
)
@click.option(
  "--enable_batching", default=False, **_BOOL, help="Batch concurrent requests on the server."
)
@click.option(
  "--batching_parameters_file",
  type=click.Path(exists=True, dir_okay=False),
  default=None,
  help="BatchingParameters text proto (with --enable_batching).",
)
@click.option(
  "--enable_model_warmup",
  default=True,
  **_BOOL,
  help="Run assets.extra/tf_serving_warmup_requests before a version is AVAILABLE.",
)
@click.option(
  "--grpc_channel_arguments",
  default="",
  help="Comma-separated gRPC server arguments, e.g. grpc.max_receive_message_length=4194304.",
)
@click.option(
  "--grpc_max_threads",
  type=click.IntRange(min=1),
  default=64,
  show_default=True,
  help="Request handler threads.",
)
@click.option(
  "--ssl_config_file",
  type=click.Path(exists=True, dir_okay=False),
  default=None,
  help="SSLConfig text proto (server_key, server_cert PEM): serve over TLS.",
)
@click.option(
  "--rest_api_port",
  type=int,
  default=0,
  show_default=True,
  help="Accepted for compatibility; the REST API is not implemented here.",
)
@click.option(
  "--monitoring_config_file",
  default=None,
  help="Accepted for compatibility; monitoring is not implemented here.",
)
@click.option(
  "--bind_address",
  default="0.0.0.0",
  show_default=True,
  help="Address to listen on (not a TF Serving flag; TF Serving binds all).",
)
@click.option(
  "--shutdown_grace_seconds",
  type=click.FloatRange(min=0),
  default=10.0,
  show_default=True,
  help="On SIGTERM/SIGINT, how long in-flight requests may finish (not a TF Serving flag).",
)
def serve(
  port,
  model_name,
  model_base_path,
  model_config_file,
  model_config_file_poll_wait_seconds,
  file_system_poll_wait_seconds,
  enable_batching,
  batching_parameters_file,
  enable_model_warmup,
  grpc_channel_arguments,
  grpc_max_threads,
  ssl_config_file,
  rest_api_port,
  monitoring_config_file,
  bind_address,
  shutdown_grace_seconds,
):
  from serving import serve_main

  try:
    options = serve_main.ServeOptions(
      port=port,
      model_name=model_name,
      model_base_path=model_base_path,
      model_config_file=model_config_file,
      model_config_file_poll_wait_seconds=model_config_file_poll_wait_seconds,
      file_system_poll_wait_seconds=file_system_poll_wait_seconds,
      enable_batching=enable_batching,
      batching_parameters_file=batching_parameters_file,
      enable_model_warmup=enable_model_warmup,
      grpc_channel_arguments=grpc_channel_arguments,
      grpc_max_threads=grpc_max_threads,
      ssl_config_file=ssl_config_file,
      bind_address=bind_address,
      shutdown_grace_seconds=shutdown_grace_seconds,
    )
    click.echo(_DEV_SERVER_NOTE, err=True)
    if rest_api_port:
      click.echo(
        f"warning: --rest_api_port={rest_api_port} ignored: only the gRPC API is implemented",
        err=True,
      )
    if monitoring_config_file:
      click.echo(
        "warning: --monitoring_config_file ignored: monitoring is not implemented", err=True
      )
    serve_main.serve_forever(options)
  except (ValueError, FileNotFoundError, OSError) as e:
    raise click.ClickException(str(e)) from e


def _client_options(f):
  """Options shared by the gRPC client commands."""
  decorators = [
    click.option(
      "--server",
      default="localhost:8500",
      show_default=True,
      help="host:port of TF Serving's (or imdb-tfx serve's) gRPC port.",
    ),
    click.option("--model-name", default=contract.MODEL_NAME, show_default=True),
    click.option(
      "--model-version", type=int, default=None, help="Ask this version (default: the latest)."
    ),
    click.option(
      "--version-label",
      default=None,
      help="Ask the version with this label, e.g. stable or canary.",
    ),
    click.option(
      "--timeout",
      type=click.FloatRange(min=0, min_open=True),
      default=10.0,
      show_default=True,
      help="Deadline of each attempt, seconds.",
    ),
    click.option(
      "--retries",
      type=click.IntRange(min=0),
      default=3,
      show_default=True,
      help="Retries on UNAVAILABLE / DEADLINE_EXCEEDED (with backoff).",
    ),
    click.option(
      "--max-message-mb",
      type=click.FloatRange(min=0, min_open=True),
      default=64.0,
      show_default=True,
      help="Largest gRPC message sent or received, MiB.",
    ),
    click.option(
      "--tls-ca",
      type=click.Path(exists=True, dir_okay=False),
      default=None,
      help="PEM CA certificate: connect with TLS (default: plaintext).",
    ),
    click.option(
      "--tls-server-name",
      default=None,
      help="Name to verify in the server certificate (default: the host).",
    ),
    click.option(
      "--wait-ready",
      type=click.FloatRange(min=0),
      default=0.0,
      show_default=True,
      help="First wait up to this many seconds for an AVAILABLE version (GetModelStatus).",
    ),
    click.option("--json", "as_json", is_flag=True, help="Print JSON."),
  ]
  for decorator in reversed(decorators):
    f = decorator(f)
  return f


def _make_client(
  *,
  server,
  model_name,
  model_version,
  version_label,
  timeout,
  retries,
  max_message_mb,
  tls_ca,
  tls_server_name,
  wait_ready,
):
  """A ``serving.client.SentimentClient`` from the ``_client_options`` (but ``--json``).

  Raises:
    click.ClickException: bad options, or no version became AVAILABLE in ``wait_ready``.
  """
  from serving.client import SentimentClient

  try:
    client = SentimentClient(
      server,
      model_name,
      version=model_version,
      version_label=version_label,
      timeout_s=timeout,
      retries=retries,
      max_message_bytes=int(max_message_mb * 2**20),
      tls_ca=tls_ca,
      tls_server_name=tls_server_name,
    )
    if wait_ready:
      client.wait_until_ready(wait_ready)
  except (ValueError, TimeoutError) as e:
    raise click.ClickException(str(e)) from e
  return client


@click.command()
@click.argument("reviews", nargs=-1)
@click.option(
  "--file",
  "review_file",
  type=click.File("r", encoding="utf-8"),
  default=None,
  help="Read reviews from this file, one per line ('-' = stdin).",
)
@click.option(
  "--signature",
  type=click.Choice(["predict_text", "serving_default", "classify"]),
  default="predict_text",
  show_default=True,
  help="predict_text (raw text, with attention), serving_default "
  "(tf.Example) or classify (TF Serving's Classify API).",
)
@click.option(
  "--top-tokens",
  type=click.IntRange(min=0),
  default=5,
  show_default=True,
  help="Most attended tokens to print per review (predict_text).",
)
@click.option(
  "--batch-size",
  type=click.IntRange(min=1),
  default=32,
  show_default=True,
  help="Reviews per request (a batching server refuses requests above its max_batch_size).",
)
@_client_options
def predict(reviews, review_file, signature, top_tokens, batch_size, as_json, **client_options):
  """Score reviews with a served model over TF Serving's gRPC API (one request per
  --batch-size reviews)."""
  from serving import client as client_lib

  texts = list(reviews) + (client_lib.read_reviews(review_file) if review_file else [])
  if not texts:
    raise click.UsageError("give reviews as arguments or with --file")
  client = _make_client(**client_options)
  chunks = [texts[i : i + batch_size] for i in range(0, len(texts), batch_size)]
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
        rows += [
          {"text": t, "probability": float(p), "model_version": version}
          for t, p in zip(chunk, probabilities)
        ]
      click.echo(
        json.dumps(rows, indent=2)
        if as_json
        else "\n".join(
          f"p(positive)={r['probability']:.4f}  v{r['model_version']}  {r['text']!r}" for r in rows
        )
      )
    else:
      rows = []
      for chunk in chunks:
        results, version = client.classify(chunk)
        rows += [{"text": t, "scores": r, "model_version": version} for t, r in zip(chunk, results)]
      click.echo(
        json.dumps(rows, indent=2)
        if as_json
        else "\n".join(
          "  ".join(f"{label}={score:.4f}" for label, score in r["scores"].items())
          + f"  v{r['model_version']}  {r['text']!r}"
          for r in rows
        )
      )
  except client_lib.ServingRequestError as e:
    raise click.ClickException(str(e)) from e
  finally:
    client.close()


@click.command()
@_client_options
def status(as_json, **client_options):
  """Model versions and their states (GetModelStatus) and signatures (GetModelMetadata)."""
  from serving import client as client_lib

  client = _make_client(**client_options)
  try:
    versions = client.model_status()
    signatures = {}
    if any(v.state == "AVAILABLE" for v in versions):
      _, defs = client.model_metadata()
      signatures = {
        name: {
          "method_name": d.method_name,
          "inputs": sorted(d.inputs),
          "outputs": sorted(d.outputs),
        }
        for name, d in sorted(defs.items())
        if not name.startswith("__")
      }
  except client_lib.ServingRequestError as e:
    raise click.ClickException(str(e)) from e
  finally:
    client.close()
  if as_json:
    click.echo(
      json.dumps({"versions": [vars(v) for v in versions], "signatures": signatures}, indent=2)
    )
    return
  for v in versions:
    error = f"  error {v.error_code}: {v.error_message}" if v.error_code else ""
    click.echo(f"{client_options['model_name']} version {v.version}: {v.state}{error}")
  for name, d in signatures.items():
    click.echo(
      f"  signature {name} ({d['method_name']}): {', '.join(d['inputs'])} -> "
      f"{', '.join(d['outputs'])}"
    )
