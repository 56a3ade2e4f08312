"""TF Serving config protos that the `tensorflow-serving-api` pip package does not ship.

Why this module exists: `tensorflow-serving-api` 2.16.1 carries `model_server_config_pb2`
(the `--model_config_file` format) but not the messages behind two other
`tensorflow_model_server` flags:

* `--batching_parameters_file`: `tensorflow.serving.BatchingParameters`, defined upstream in
  `tensorflow_serving/servables/tensorflow/session_bundle_config.proto`;
* `--monitoring_config_file`: `tensorflow.serving.MonitoringConfig` and
  `tensorflow.serving.PrometheusConfig`, defined upstream in
  `tensorflow_serving/config/monitoring_config.proto`;
* `--ssl_config_file`: `tensorflow.serving.SSLConfig`, defined upstream in
  `tensorflow_serving/config/ssl_config.proto`.

To check the text-format files under `deploy/` the way the real server reads them, this
module builds those messages at import time from `FileDescriptorProto`s with the upstream
package, message names, field names, numbers and types. Text format is keyed by field names
and message/wrapper structure, so a file that parses here parses identically in
`tensorflow_model_server`, and an unknown field or a scalar given where upstream has a
wrapper message (`max_batch_size: 32` instead of `max_batch_size { value: 32 }`) is rejected
by both.

Revisions mirrored (checked by reading the sources, not generated from them):

* `MonitoringConfig` / `PrometheusConfig`: tensorflow/serving
  `tensorflow_serving/config/monitoring_config.proto` at commit
  021efbd3281aa815cab0b35eab6d6d25249c12d4 (unchanged for many releases).
* `SSLConfig`: tensorflow/serving `tensorflow_serving/config/ssl_config.proto` at commit
  4bc435b55ae46a03192ba0191e3bd76d5cf5e17c.
* `BatchingParameters` fields 1-9: the protoc-gen-go output of TF Serving's
  `session_bundle_config.proto` in airenas/go-tf-serving-protogen at commit
  250dc8797a4d0521484d55e97e3505b3de848c60 (a TF Serving 2.14/2.15-era generation; the exact
  upstream tag was not visible), cross-checked against tensorflow/serving at commit
  03f8b6b5fceec0df896da1e85d02b101b4ff2b7a (fields 1-7) and against
  `bundle_factory_util.h`, which reads `enable_large_batch_splitting` as a `BoolValue` and
  `max_execution_batch_size` as an `Int64Value`. The exact 2.16 revision of the proto could
  not be read; if 2.16 added fields after 9, a file using them is rejected here (safe side).

Only these messages are mirrored, not the rest of `session_bundle_config.proto` (which would
pull in TensorFlow's `config.proto`). They live in a private `DescriptorPool`, so they can
never clash with a later `tensorflow-serving-api` that ships the real `_pb2` modules. Wrapper
fields therefore hold this pool's copies of `google.protobuf.Int64Value` etc.: read them
with `.value` and set them with `msg.max_batch_size.value = 32` (assigning a
`wrappers_pb2.Int64Value` instance from the default pool raises `TypeError`).
"""

import os
from collections.abc import Callable
from typing import TypeVar

from google.protobuf import (
  descriptor_pb2,
  descriptor_pool,
  message_factory,
  text_format,
  wrappers_pb2,
)
from google.protobuf import message as message_lib
from tensorflow_serving.config import model_server_config_pb2

__all__ = [
  "BatchingParameters",
  "MonitoringConfig",
  "PrometheusConfig",
  "SSLConfig",
  "load_batching_parameters",
  "load_model_server_config",
  "load_monitoring_config",
  "load_ssl_config",
  "parse_batching_parameters",
  "parse_model_server_config",
  "parse_monitoring_config",
  "server_credentials",
]

_FieldProto = descriptor_pb2.FieldDescriptorProto

_PACKAGE = "tensorflow.serving"
_WRAPPERS_FILE = "google/protobuf/wrappers.proto"
_SESSION_BUNDLE_CONFIG_FILE = "tensorflow_serving/servables/tensorflow/session_bundle_config.proto"
_MONITORING_CONFIG_FILE = "tensorflow_serving/config/monitoring_config.proto"
_SSL_CONFIG_FILE = "tensorflow_serving/config/ssl_config.proto"

# (name, number, label, type, type_name) for every field, in upstream declaration order.
_BATCHING_PARAMETERS_FIELDS = (
  (
    "max_batch_size",
    1,
    _FieldProto.LABEL_OPTIONAL,
    _FieldProto.TYPE_MESSAGE,
    ".google.protobuf.Int64Value",
  ),
  (
    "batch_timeout_micros",
    2,
    _FieldProto.LABEL_OPTIONAL,
    _FieldProto.TYPE_MESSAGE,
    ".google.protobuf.Int64Value",
  ),
  (
    "max_enqueued_batches",
    3,
    _FieldProto.LABEL_OPTIONAL,
    _FieldProto.TYPE_MESSAGE,
    ".google.protobuf.Int64Value",
  ),
  (
    "num_batch_threads",
    4,
    _FieldProto.LABEL_OPTIONAL,
    _FieldProto.TYPE_MESSAGE,
    ".google.protobuf.Int64Value",
  ),
  (
    "thread_pool_name",
    5,
    _FieldProto.LABEL_OPTIONAL,
    _FieldProto.TYPE_MESSAGE,
    ".google.protobuf.StringValue",
  ),
  (
    "enable_large_batch_splitting",
    8,
    _FieldProto.LABEL_OPTIONAL,
    _FieldProto.TYPE_MESSAGE,
    ".google.protobuf.BoolValue",
  ),
  (
    "max_execution_batch_size",
    9,
    _FieldProto.LABEL_OPTIONAL,
    _FieldProto.TYPE_MESSAGE,
    ".google.protobuf.Int64Value",
  ),
  ("allowed_batch_sizes", 6, _FieldProto.LABEL_REPEATED, _FieldProto.TYPE_INT64, None),
  ("pad_variable_length_inputs", 7, _FieldProto.LABEL_OPTIONAL, _FieldProto.TYPE_BOOL, None),
)

_PROMETHEUS_CONFIG_FIELDS = (
  ("enable", 1, _FieldProto.LABEL_OPTIONAL, _FieldProto.TYPE_BOOL, None),
  ("path", 2, _FieldProto.LABEL_OPTIONAL, _FieldProto.TYPE_STRING, None),
)

_SSL_CONFIG_FIELDS = (
  ("server_key", 1, _FieldProto.LABEL_OPTIONAL, _FieldProto.TYPE_STRING, None),
  ("server_cert", 2, _FieldProto.LABEL_OPTIONAL, _FieldProto.TYPE_STRING, None),
  ("custom_ca", 3, _FieldProto.LABEL_OPTIONAL, _FieldProto.TYPE_STRING, None),
  ("client_verify", 4, _FieldProto.LABEL_OPTIONAL, _FieldProto.TYPE_BOOL, None),
)

_MONITORING_CONFIG_FIELDS = (
  (
    "prometheus_config",
    1,
    _FieldProto.LABEL_OPTIONAL,
    _FieldProto.TYPE_MESSAGE,
    ".tensorflow.serving.PrometheusConfig",
  ),
)


def _add_message(file_proto: descriptor_pb2.FileDescriptorProto, name: str, fields) -> None:
  """Appends a message type called `name` with `fields` to `file_proto`."""
  message_proto = file_proto.message_type.add(name=name)
  for field_name, number, label, field_type, type_name in fields:
    field = message_proto.field.add(name=field_name, number=number, label=label, type=field_type)
    if type_name is not None:
      field.type_name = type_name


def _build_pool() -> descriptor_pool.DescriptorPool:
  """A private descriptor pool holding wrappers.proto and the mirrored TF Serving messages.

  Files go in serialized (`AddSerializedFile`), which every protobuf release since 3.x
  accepts; `DescriptorPool.Add` is deprecated.
  """
  pool = descriptor_pool.DescriptorPool()

  wrappers = descriptor_pb2.FileDescriptorProto()
  wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
  pool.AddSerializedFile(wrappers.SerializeToString())

  session_bundle = descriptor_pb2.FileDescriptorProto(
    name=_SESSION_BUNDLE_CONFIG_FILE, package=_PACKAGE, syntax="proto3", dependency=[_WRAPPERS_FILE]
  )
  _add_message(session_bundle, "BatchingParameters", _BATCHING_PARAMETERS_FIELDS)
  pool.AddSerializedFile(session_bundle.SerializeToString())

  monitoring = descriptor_pb2.FileDescriptorProto(
    name=_MONITORING_CONFIG_FILE, package=_PACKAGE, syntax="proto3"
  )
  _add_message(monitoring, "PrometheusConfig", _PROMETHEUS_CONFIG_FIELDS)
  _add_message(monitoring, "MonitoringConfig", _MONITORING_CONFIG_FIELDS)
  pool.AddSerializedFile(monitoring.SerializeToString())

  ssl = descriptor_pb2.FileDescriptorProto(name=_SSL_CONFIG_FILE, package=_PACKAGE, syntax="proto3")
  _add_message(ssl, "SSLConfig", _SSL_CONFIG_FIELDS)
  pool.AddSerializedFile(ssl.SerializeToString())
  return pool


_POOL = _build_pool()


def _message_class(full_name: str):
  """The concrete message class for `full_name` in the private pool (any protobuf 3.20+)."""
  descriptor = _POOL.FindMessageTypeByName(full_name)
  if hasattr(message_factory, "GetMessageClass"):  # protobuf >= 4.21
    return message_factory.GetMessageClass(descriptor)
  return message_factory.MessageFactory(_POOL).GetPrototype(descriptor)


BatchingParameters = _message_class("tensorflow.serving.BatchingParameters")
BatchingParameters.__doc__ = (
  "`tensorflow.serving.BatchingParameters`: the `--batching_parameters_file` format."
)
PrometheusConfig = _message_class("tensorflow.serving.PrometheusConfig")
PrometheusConfig.__doc__ = (
  "`tensorflow.serving.PrometheusConfig`: Prometheus export switch and HTTP path."
)
MonitoringConfig = _message_class("tensorflow.serving.MonitoringConfig")
MonitoringConfig.__doc__ = (
  "`tensorflow.serving.MonitoringConfig`: the `--monitoring_config_file` format."
)

SSLConfig = _message_class("tensorflow.serving.SSLConfig")
SSLConfig.__doc__ = "`tensorflow.serving.SSLConfig`: the `--ssl_config_file` format (PEM strings)."

_Message = TypeVar("_Message", bound=message_lib.Message)


def _parse(text: str | bytes, message: _Message, source: str) -> _Message:
  """Parses text-format `text` into `message`, as a ValueError naming `source` on failure."""
  type_name = message.DESCRIPTOR.full_name
  try:
    text_format.Parse(text, message)
  except text_format.ParseError as err:
    line, column = err.GetLine(), err.GetColumn()
    detail = str(err)
    if line is not None:
      prefix = f"{line}:{column} : "
      if detail.startswith(prefix):
        detail = detail[len(prefix) :]
      where = f"{source}:{line}:{column}"
    else:
      where = source
    raise ValueError(f"{where}: not a valid {type_name} text proto: {detail}") from err
  return message


def parse_batching_parameters(text: str, source: str = "<text>") -> BatchingParameters:
  """Parses the text format that `--batching_parameters_file` takes.

  Args:
    text: text-format `tensorflow.serving.BatchingParameters`.
    source: what to call the text in error messages (a file name, usually).

  Returns:
    The parsed message.

  Raises:
    ValueError: the text is not valid (syntax error, unknown field, wrong value type); the
      message names `source`, the line and the column.
  """
  return _parse(text, BatchingParameters(), source)


def parse_monitoring_config(text: str, source: str = "<text>") -> MonitoringConfig:
  """Parses the text format that `--monitoring_config_file` takes.

  Args:
    text: text-format `tensorflow.serving.MonitoringConfig`.
    source: what to call the text in error messages.

  Returns:
    The parsed message.

  Raises:
    ValueError: the text is not valid; the message names `source`, the line and the column.
  """
  return _parse(text, MonitoringConfig(), source)


def parse_model_server_config(
  text: str, source: str = "<text>"
) -> model_server_config_pb2.ModelServerConfig:
  """Parses the text format that `--model_config_file` takes (the pip package's own proto).

  Args:
    text: text-format `tensorflow.serving.ModelServerConfig`.
    source: what to call the text in error messages.

  Returns:
    The parsed message.

  Raises:
    ValueError: the text is not valid; the message names `source`, the line and the column.
  """
  return _parse(text, model_server_config_pb2.ModelServerConfig(), source)


def _load(path: str | os.PathLike, parse: Callable[[str, str], _Message]) -> _Message:
  """Reads `path` as UTF-8 and parses it with `parse`, naming the path in every error."""
  path = os.fspath(path)
  with open(path, "rb") as f:  # FileNotFoundError (with the path) passes through.
    raw = f.read()
  try:
    text = raw.decode("utf-8")
  except UnicodeDecodeError as err:
    raise ValueError(f"{path}: not UTF-8 text: {err}") from err
  return parse(text, path)


def load_batching_parameters(path: str | os.PathLike) -> BatchingParameters:
  """Reads a `--batching_parameters_file`; ValueError (naming `path`) if it is invalid."""
  return _load(path, parse_batching_parameters)


def load_monitoring_config(path: str | os.PathLike) -> MonitoringConfig:
  """Reads a `--monitoring_config_file`; ValueError (naming `path`) if it is invalid."""
  return _load(path, parse_monitoring_config)


def load_model_server_config(
  path: str | os.PathLike,
) -> model_server_config_pb2.ModelServerConfig:
  """Reads a `--model_config_file`; ValueError (naming `path`) if it is invalid."""
  return _load(path, parse_model_server_config)


def parse_ssl_config(text: str, source: str = "<text>") -> SSLConfig:
  """Parses a text-format `tensorflow.serving.SSLConfig`.

  Raises:
    ValueError: the text does not parse, or `server_key` / `server_cert` is empty.
  """
  config = _parse(text, SSLConfig(), source)
  if not config.server_key or not config.server_cert:
    raise ValueError(f"{source}: an SSLConfig needs both server_key and server_cert (PEM)")
  return config


def load_ssl_config(path: str | os.PathLike) -> SSLConfig:
  """Reads and parses an `--ssl_config_file`; errors name `path`."""
  return _load(path, parse_ssl_config)


def server_credentials(config: SSLConfig):
  """gRPC server credentials from an SSLConfig, as TF Serving builds them: the key pair,
  and with `client_verify` the `custom_ca` clients must present certificates from."""
  import grpc

  return grpc.ssl_server_credentials(
    [(config.server_key.encode(), config.server_cert.encode())],
    root_certificates=config.custom_ca.encode() if config.custom_ca else None,
    require_client_auth=config.client_verify,
  )
