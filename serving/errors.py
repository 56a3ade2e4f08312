"""The error type of the development server: a gRPC status code and a message."""

import types

import grpc
import tensorflow as tf


class ServingError(Exception):
  """A request failed with ``code`` (a ``grpc.StatusCode``, the codes TF Serving uses) and
  ``message`` (what was wrong, for the caller)."""

  def __init__(self, code: grpc.StatusCode, message: str):
    super().__init__(message)
    self.code = code
    self.message = message

  def __repr__(self):
    return f"ServingError({self.code.name}, {self.message!r})"


def not_found(message: str) -> ServingError:
  return ServingError(grpc.StatusCode.NOT_FOUND, message)


def invalid_argument(message: str) -> ServingError:
  return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def failed_precondition(message: str) -> ServingError:
  return ServingError(grpc.StatusCode.FAILED_PRECONDITION, message)


_CODES_BY_VALUE = types.MappingProxyType({code.value[0]: code for code in grpc.StatusCode})


def from_tf_error(error: tf.errors.OpError) -> ServingError:
  """TensorFlow's error codes are numbered as gRPC's (both follow google.rpc.Code), so a
  failed model run keeps its code, as in TF Serving."""
  code = _CODES_BY_VALUE.get(error.error_code, grpc.StatusCode.INTERNAL)
  return ServingError(code, error.message)
