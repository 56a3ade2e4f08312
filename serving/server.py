"""A development server compatible with TF Serving's gRPC API (not TF Serving itself).

Production serves the pushed model with TF Serving (``tensorflow_model_server`` or its
Docker image; see ``deploy/``). Neither can be installed on the machines this project is
developed and tested on, so ``imdb-tfx serve`` implements the same gRPC services over the
same model directory layout, with ``tensorflow-serving-api``'s generated stubs and protos:

* ``tensorflow.serving.PredictionService``: ``Predict`` (any signature), ``Classify``
  (signatures whose ``method_name`` is ``tensorflow/serving/classify``),
  ``GetModelMetadata`` (``signature_def``). ``Regress`` and ``MultiInference`` answer
  UNIMPLEMENTED.
* ``tensorflow.serving.ModelService``: ``GetModelStatus``. ``HandleReloadConfigRequest``
  answers UNIMPLEMENTED.

Models run with TensorFlow in this process (``tf.saved_model.load``). Status codes follow
TF Serving's: NOT_FOUND for an unknown model/version/label, FAILED_PRECONDITION for an
unknown signature, INVALID_ARGUMENT for bad inputs, RESOURCE_EXHAUSTED for a message over
``grpc.max_receive_message_length``, UNAVAILABLE when the batching queue is full.
"""

import concurrent.futures
import logging
import os
import threading
import time
from collections.abc import Sequence

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import any_pb2
from tensorflow_serving.apis import (
  classification_pb2,
  get_model_metadata_pb2,
  get_model_status_pb2,
  model_service_pb2_grpc,
  predict_pb2,
  prediction_service_pb2_grpc,
)

from core import warmup
from serving import errors
from serving.batching import BatchingOptions, BatchScheduler
from serving.model_manager import ModelManager, ModelSource
from serving.servable import CLASSIFY_METHOD_NAME, DEFAULT_SIGNATURE, REGRESS_METHOD_NAME, Servable

LOG = logging.getLogger("imdb_tfx.serve")
# TF Serving accepts messages up to 2 GiB - 1 unless --grpc_channel_arguments says less.
DEFAULT_MAX_MESSAGE_BYTES = 2**31 - 1


def parse_channel_arguments(text: str) -> list[tuple[str, object]]:
  """``--grpc_channel_arguments`` ("k1=v1,k2=v2", as TF Serving) -> gRPC server options;
  integer values become ints.

  Raises:
    ValueError: an entry without ``=``.
  """
  options = []
  for item in filter(None, (part.strip() for part in text.split(","))):
    if "=" not in item:
      raise ValueError(f"--grpc_channel_arguments entry {item!r} is not KEY=VALUE")
    key, value = (s.strip() for s in item.split("=", 1))
    try:
      options.append((key, int(value)))
    except ValueError:
      options.append((key, value))
  return options


class _Inference:
  """Runs validated requests on servables, through a batch scheduler when enabled."""

  def __init__(self, batching: BatchingOptions | None):
    self._batching = batching

  def run(
    self, servable: Servable, signature_name: str, inputs: dict[str, np.ndarray]
  ) -> dict[str, np.ndarray]:
    if self._batching is None:
      return servable.run(signature_name, inputs)
    batcher = servable.batcher(
      signature_name, lambda run_fn: BatchScheduler(run_fn, self._batching)
    )
    return batcher.submit(inputs)

  def predict(
    self, servable: Servable, request: predict_pb2.PredictRequest
  ) -> predict_pb2.PredictResponse:
    signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
    inputs = servable.validate_inputs(signature_name, request.inputs)
    keys = servable.output_keys(signature_name, list(request.output_filter))
    outputs = self.run(servable, signature_name, inputs)
    response = predict_pb2.PredictResponse()
    _fill_model_spec(response.model_spec, servable, signature_name)
    for key in keys:
      response.outputs[key].CopyFrom(tf.make_tensor_proto(outputs[key]))
    return response

  def classify(
    self, servable: Servable, request: classification_pb2.ClassificationRequest
  ) -> classification_pb2.ClassificationResponse:
    signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
    signature = servable.signature(signature_name)
    if signature.method_name != CLASSIFY_METHOD_NAME:
      raise errors.invalid_argument(
        f"Expected classification signature method_name to be {CLASSIFY_METHOD_NAME}. "
        f"Was: {signature.method_name} (signature '{signature_name}')"
      )
    if len(signature.inputs) != 1:
      raise errors.invalid_argument(
        f"classification signature '{signature_name}' must have exactly one input"
      )
    serialized = _serialized_examples(request)
    input_key = next(iter(signature.inputs))
    outputs = self.run(servable, signature_name, {input_key: np.array(serialized, dtype=object)})
    classes = outputs.get("classes")
    scores = outputs.get("scores")
    if classes is None and scores is None:
      raise errors.invalid_argument(
        f"classification signature '{signature_name}' has neither 'classes' nor 'scores' outputs"
      )
    response = classification_pb2.ClassificationResponse()
    _fill_model_spec(response.model_spec, servable, signature_name)
    for i in range(len(serialized)):
      row = response.result.classifications.add()
      width = (classes if classes is not None else scores).shape[1]
      for j in range(width):
        item = row.classes.add()
        if classes is not None:
          item.label = classes[i, j].decode("utf-8", "replace")
        if scores is not None:
          item.score = float(scores[i, j])
    return response


def _fill_model_spec(spec, servable: Servable, signature_name: str) -> None:
  spec.name = servable.name
  spec.version.value = servable.version
  spec.signature_name = signature_name


def _serialized_examples(request: classification_pb2.ClassificationRequest) -> list[bytes]:
  """``Input.example_list`` or ``example_list_with_context`` (context features merged into
  each example, as TF Serving does) -> serialized tf.Examples."""
  kind = request.input.WhichOneof("kind")
  if kind == "example_list":
    examples = list(request.input.example_list.examples)
  elif kind == "example_list_with_context":
    context = request.input.example_list_with_context.context
    examples = []
    for example in request.input.example_list_with_context.examples:
      merged = tf.train.Example()
      merged.CopyFrom(context)
      merged.MergeFrom(example)
      examples.append(merged)
  else:
    raise errors.invalid_argument(
      "Input is empty: set input.example_list or input.example_list_with_context"
    )
  if not examples:
    raise errors.invalid_argument("Input is empty: the example list has no examples")
  return [e.SerializeToString() for e in examples]


def _model_spec_target(spec) -> tuple[str, int | None, str | None]:
  if not spec.name:
    raise errors.invalid_argument("model_spec.name is missing")
  version = spec.version.value if spec.HasField("version") else None
  label = spec.version_label if spec.WhichOneof("version_choice") == "version_label" else None
  return spec.name, version, label


def _answer(context: grpc.ServicerContext, handler):
  """Runs ``handler()``; a ServingError becomes its status code, anything else INTERNAL
  (logged), so one bad request never takes the server down."""
  try:
    return handler()
  except errors.ServingError as e:
    context.abort(e.code, e.message)
  except Exception as e:  # an unexpected failure is INTERNAL for this request only
    LOG.exception("request failed")
    context.abort(grpc.StatusCode.INTERNAL, f"{type(e).__name__}: {e}")


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
  """``tensorflow.serving.PredictionService``."""

  def __init__(self, manager: ModelManager, inference: _Inference):
    self._manager = manager
    self._inference = inference

  def _servable(self, spec):
    """Context manager holding the request's servable loaded while it runs."""
    return self._manager.servable(*_model_spec_target(spec))

  def Predict(self, request, context):
    return _answer(context, lambda: self._predict(request))

  def _predict(self, request):
    with self._servable(request.model_spec) as servable:
      return self._inference.predict(servable, request)

  def Classify(self, request, context):
    return _answer(context, lambda: self._classify(request))

  def _classify(self, request):
    with self._servable(request.model_spec) as servable:
      return self._inference.classify(servable, request)

  def Regress(self, request, context):
    return _answer(context, lambda: self._regress(request))

  def _regress(self, request):
    with self._servable(request.model_spec) as servable:
      signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
      method = servable.signature(signature_name).method_name
    if method != REGRESS_METHOD_NAME:
      raise errors.invalid_argument(
        f"Expected regression signature method_name to be {REGRESS_METHOD_NAME}. Was: {method}"
      )
    raise errors.ServingError(
      grpc.StatusCode.UNIMPLEMENTED, "Regress is not implemented by this development server"
    )

  def GetModelMetadata(self, request, context):
    return _answer(context, lambda: self._metadata(request))

  def _metadata(self, request):
    fields = list(request.metadata_field)
    if fields != ["signature_def"]:
      raise errors.invalid_argument(
        f"Metadata field(s) {fields} not supported; only ['signature_def'] is."
      )
    servable = self._manager.get_servable(*_model_spec_target(request.model_spec))
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = servable.name
    response.model_spec.version.value = servable.version
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    for key, signature in servable.signature_defs.items():
      signature_map.signature_def[key].CopyFrom(signature)
    packed = any_pb2.Any()
    packed.Pack(signature_map)
    response.metadata["signature_def"].CopyFrom(packed)
    return response


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
  """``tensorflow.serving.ModelService``: GetModelStatus."""

  def __init__(self, manager: ModelManager):
    self._manager = manager

  def GetModelStatus(self, request, context):
    return _answer(context, lambda: self._status(request))

  def _status(self, request):
    name, version, label = _model_spec_target(request.model_spec)
    if label:
      version = self._manager.get_servable(name, label=label).version
    response = get_model_status_pb2.GetModelStatusResponse()
    response.model_version_status.extend(self._manager.statuses(name, version))
    return response


def make_warmup_fn(inference: _Inference, enabled: bool = True):
  """``warmup_fn(servable) -> records run`` for ``ModelManager``: replays
  ``assets.extra/tf_serving_warmup_requests`` (Predict and Classify logs) through the same
  path as requests, batching included. Other log kinds fail the load, as in TF Serving.

  Raises (from the returned function):
    ServingError: a warmup request failed; the version is not made AVAILABLE.
  """

  def run_warmup(servable: Servable) -> int:
    path = warmup.warmup_path(servable.path)
    if not enabled or not os.path.exists(path):
      return 0
    count = 0
    try:
      for log in warmup.read_warmup_file(path):
        kind = log.WhichOneof("log_type")
        if kind == "predict_log":
          inference.predict(servable, log.predict_log.request)
        elif kind == "classify_log":
          inference.classify(servable, log.classify_log.request)
        else:
          raise errors.invalid_argument(f"warmup log type {kind} is not supported")
        count += 1
    except (ValueError, errors.ServingError) as e:
      message = e.message if isinstance(e, errors.ServingError) else str(e)
      raise errors.ServingError(
        grpc.StatusCode.INVALID_ARGUMENT, f"warmup request {count} in {path} failed: {message}"
      ) from e
    return count

  return run_warmup


class DevServer:
  """The gRPC server: ``ModelManager`` + servicers on one port.

  Args:
    sources: the served models.
    port: gRPC port; 0 picks a free one (``self.port`` holds it after ``start``).
    host: address to bind ("0.0.0.0" like TF Serving; "127.0.0.1" for local only).
    poll_seconds: ``--file_system_poll_wait_seconds``.
    batching: server-side batching options, or None.
    channel_arguments: extra gRPC server options (``--grpc_channel_arguments``).
    max_workers: request handler threads.
    enable_warmup: replay each version's warmup requests before it is AVAILABLE.
    settle_seconds: a version directory must be unchanged this long before it loads.
    credentials: gRPC server credentials for TLS, or None (plaintext).
  """

  def __init__(
    self,
    sources: Sequence[ModelSource],
    port: int = 8500,
    host: str = "0.0.0.0",
    poll_seconds: float = 1.0,
    batching: BatchingOptions | None = None,
    channel_arguments: Sequence[tuple[str, object]] = (),
    max_workers: int = 64,
    enable_warmup: bool = True,
    settle_seconds: float = 0.5,
    credentials: grpc.ServerCredentials | None = None,
  ):
    self._inference = _Inference(batching)
    self.manager = ModelManager(
      sources, make_warmup_fn(self._inference, enable_warmup), settle_seconds=settle_seconds
    )
    self._poll_seconds = poll_seconds
    options = {
      "grpc.max_receive_message_length": DEFAULT_MAX_MESSAGE_BYTES,
      "grpc.max_send_message_length": DEFAULT_MAX_MESSAGE_BYTES,
    }
    options.update(dict(channel_arguments))
    self._server = grpc.server(
      concurrent.futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc"),
      options=list(options.items()),
      maximum_concurrent_rpcs=None,
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
      PredictionServicer(self.manager, self._inference), self._server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(
      ModelServicer(self.manager), self._server
    )
    address = f"{host}:{port}"
    self.port = (
      self._server.add_secure_port(address, credentials)
      if credentials
      else self._server.add_insecure_port(address)
    )
    if self.port == 0:
      raise OSError(f"could not bind {host}:{port}")
    self._host = host
    self._stopped = threading.Event()

  def start(self) -> None:
    """Loads the models (first poll, warmup included), then starts answering."""
    self._server.start()
    LOG.info("gRPC server listening on %s:%d", self._host, self.port)
    self.manager.start(self._poll_seconds)

  def stop(self, grace_seconds: float = 10.0) -> None:
    """Refuses new RPCs, lets in-flight ones finish for up to ``grace_seconds``, then
    unloads the models."""
    if self._stopped.is_set():
      return
    self._stopped.set()
    self._server.stop(grace_seconds).wait()
    self.manager.stop()

  def wait(self) -> None:
    self._server.wait_for_termination()

  def wait_until_available(self, name: str, timeout_s: float = 60.0) -> int:
    """Blocks until ``name`` has an AVAILABLE version; returns it.

    Raises:
      TimeoutError: none within ``timeout_s`` seconds.
    """
    deadline = time.monotonic() + timeout_s
    while True:
      try:
        return self.manager.get_servable(name).version
      except errors.ServingError as e:
        if time.monotonic() > deadline:
          raise TimeoutError(f"model {name} not available after {timeout_s} s: {e.message}") from e
        time.sleep(0.05)
