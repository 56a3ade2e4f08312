"""``imdb-tfx serve``: builds the development server from tensorflow_model_server's flags
and runs it until SIGTERM/SIGINT."""

import dataclasses
import logging
import os
import signal
import threading

from serving import tf_serving_protos
from serving.batching import BatchingOptions
from serving.model_manager import ModelSource, sources_from_config, sources_from_flags
from serving.server import DevServer, parse_channel_arguments

LOG = logging.getLogger("imdb_tfx.serve")


@dataclasses.dataclass(frozen=True)
class ServeOptions:
  """tensorflow_model_server's flags that the development server implements (same names
  and meanings), plus ``bind_address`` and ``shutdown_grace_seconds``."""

  port: int = 8500
  model_name: str = "default"
  model_base_path: str | None = None
  model_config_file: str | None = None
  model_config_file_poll_wait_seconds: int = 0
  file_system_poll_wait_seconds: int = 1
  enable_batching: bool = False
  batching_parameters_file: str | None = None
  enable_model_warmup: bool = True
  grpc_channel_arguments: str = ""
  grpc_max_threads: int = 64
  ssl_config_file: str | None = None
  bind_address: str = "0.0.0.0"
  shutdown_grace_seconds: float = 10.0


def model_sources(options: ServeOptions) -> list[ModelSource]:
  """The served models from ``--model_config_file`` or ``--model_name/--model_base_path``.

  Raises:
    ValueError: neither or both given, or the config file is invalid.
  """
  if bool(options.model_config_file) == bool(options.model_base_path):
    raise ValueError("give either --model_config_file or --model_base_path (with --model_name)")
  if options.model_config_file:
    config = tf_serving_protos.load_model_server_config(options.model_config_file)
    # Relative base paths are relative to the working directory, as in tensorflow_model_server.
    return sources_from_config(config, os.getcwd())
  return sources_from_flags(options.model_name, options.model_base_path)


def batching_options(options: ServeOptions) -> BatchingOptions | None:
  """None without ``--enable_batching``; else the parameters file's values over TF
  Serving's defaults.

  Raises:
    ValueError: the parameters file does not parse or its values are inconsistent.
  """
  if not options.enable_batching:
    if options.batching_parameters_file:
      LOG.warning("--batching_parameters_file is ignored without --enable_batching")
    return None
  if not options.batching_parameters_file:
    return BatchingOptions.from_proto(tf_serving_protos.BatchingParameters())
  params = tf_serving_protos.load_batching_parameters(options.batching_parameters_file)
  try:
    return BatchingOptions.from_proto(params)
  except ValueError as e:
    raise ValueError(f"{options.batching_parameters_file}: {e}") from e


def build_server(options: ServeOptions) -> DevServer:
  """The configured, not yet started, server.

  Raises:
    ValueError: bad flags or config files. OSError: the port cannot be bound.
  """
  credentials = None
  if options.ssl_config_file:
    credentials = tf_serving_protos.server_credentials(
      tf_serving_protos.load_ssl_config(options.ssl_config_file)
    )
  return DevServer(
    model_sources(options),
    port=options.port,
    host=options.bind_address,
    poll_seconds=options.file_system_poll_wait_seconds,
    batching=batching_options(options),
    channel_arguments=parse_channel_arguments(options.grpc_channel_arguments),
    max_workers=options.grpc_max_threads,
    enable_warmup=options.enable_model_warmup,
    credentials=credentials,
  )


def serve_forever(options: ServeOptions) -> None:
  """Starts the server, re-reads the model config file when asked to, and on SIGTERM or
  SIGINT stops taking requests, lets in-flight ones finish and returns."""
  # absl (imported by TensorFlow) owns the root logger; the server logs on its own handler.
  logger = logging.getLogger("imdb_tfx")
  if not logger.handlers:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
  server = build_server(options)
  stop = threading.Event()
  for sig in (signal.SIGTERM, signal.SIGINT):
    signal.signal(sig, lambda signum, _: stop.set())
  server.start()
  print(f"serving on port {server.port}", flush=True)
  wait = options.model_config_file_poll_wait_seconds
  while not stop.wait(wait if options.model_config_file and wait > 0 else None):
    try:
      server.manager.set_sources(model_sources(options))
    except ValueError as e:
      LOG.error("keeping the current models: %s", e)
  LOG.info(
    "shutting down: letting in-flight requests finish (up to %.0f s)",
    options.shutdown_grace_seconds,
  )
  server.stop(options.shutdown_grace_seconds)
  LOG.info("stopped")
