"""``serving.apis``: TF Serving's messages built without TensorFlow, and the client's
tensor conversion, checked against the real generated modules and ``tf.make_ndarray``."""

import dataclasses
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import descriptor_pool
from tensorflow.core.example import example_pb2
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import (
  classification_pb2,
  get_model_metadata_pb2,
  get_model_status_pb2,
  predict_pb2,
)

from serving import apis, client

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# The message classes ``Messages`` exposes (its other fields are enums).
_MESSAGE_NAMES = [f.name for f in dataclasses.fields(apis.Messages) if f.type is type]


# --- no TensorFlow ------------------------------------------------------------------------


def test_client_imports_and_builds_requests_without_tensorflow():
  code = textwrap.dedent("""
      import json, sys
      import serving.client as client
      from serving import apis
      c = client.SentimentClient("127.0.0.1:1", retries=0)
      client.text_example("a review")
      m = apis.messages()
      request = m.PredictRequest()
      apis.fill_tensor(request.inputs["text"], ["a", b"b"])
      apis.tensor_to_numpy(request.inputs["text"])
      c.close()
      print(json.dumps(sorted(name for name in sys.modules
                              if name.split(".")[0] in ("tensorflow", "tensorflow_serving"))))
  """)
  env = {**os.environ, "TF_USE_LEGACY_KERAS": "1"}
  done = subprocess.run(
    [sys.executable, "-c", code],
    cwd=_ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=120,
    check=False,
  )
  assert done.returncode == 0, done.stderr
  assert json.loads(done.stdout.strip().splitlines()[-1]) == []


# --- the same descriptors as the real modules ---------------------------------------------


@pytest.mark.parametrize("name", _MESSAGE_NAMES)
def test_descriptors_are_the_real_modules(name):
  cls = getattr(apis.messages(), name)
  # The real modules imported above registered their files in the default pool.
  real_pool = descriptor_pool.Default()
  assert cls.DESCRIPTOR.name == name
  real = real_pool.FindMessageTypeByName(cls.DESCRIPTOR.full_name)
  assert cls.DESCRIPTOR.file.serialized_pb == real.file.serialized_pb
  # Every file it depends on, directly or not (tsl's included), is the real one too.
  pending, seen = [cls.DESCRIPTOR.file], set()
  while pending:
    file = pending.pop()
    if file.name in seen:
      continue
    seen.add(file.name)
    assert file.serialized_pb == real_pool.FindFileByName(file.name).serialized_pb, file.name
    pending.extend(file.dependencies)


def test_descriptors_match_the_named_modules():
  m = apis.messages()
  assert m.PredictRequest.DESCRIPTOR.file.serialized_pb == predict_pb2.DESCRIPTOR.serialized_pb
  assert (
    m.GetModelMetadataResponse.DESCRIPTOR.file.serialized_pb
    == get_model_metadata_pb2.DESCRIPTOR.serialized_pb
  )
  assert (
    m.GetModelStatusResponse.DESCRIPTOR.file.serialized_pb
    == get_model_status_pb2.DESCRIPTOR.serialized_pb
  )
  assert m.TensorProto.DESCRIPTOR.file.serialized_pb == tensor_pb2.DESCRIPTOR.serialized_pb
  assert m.Example.DESCRIPTOR.file.serialized_pb == example_pb2.DESCRIPTOR.serialized_pb
  assert (
    m.ClassificationRequest.DESCRIPTOR.file.serialized_pb
    == classification_pb2.DESCRIPTOR.serialized_pb
  )


def test_messages_are_built_once_in_a_private_pool():
  assert apis.messages() is apis.messages()
  m = apis.messages()
  assert m.PredictRequest is not predict_pb2.PredictRequest
  assert m.PredictRequest.DESCRIPTOR.file.pool is not descriptor_pool.Default()
  with pytest.raises(dataclasses.FrozenInstanceError):
    m.PredictRequest = None
  with pytest.raises(TypeError):
    m.data_types["DT_FLOAT"] = 0
  assert dict(m.data_types) == dict(types_pb2.DataType.items())
  assert dict(m.model_version_states) == {
    v: k for k, v in get_model_status_pb2.ModelVersionStatus.State.items()
  }


# --- wire compatibility ---------------------------------------------------------------------


def test_predict_request_parses_with_the_real_class():
  m = apis.messages()
  ours = m.PredictRequest()
  ours.model_spec.name = "imdb_sentiment"
  ours.model_spec.signature_name = "predict_text"
  ours.model_spec.version.value = 3
  apis.fill_tensor(ours.inputs["text"], np.array(["a great film", b"\xff bytes"], dtype=object))
  ours.output_filter.append("probabilities")
  real = predict_pb2.PredictRequest()
  real.model_spec.name = "imdb_sentiment"
  real.model_spec.signature_name = "predict_text"
  real.model_spec.version.value = 3
  real.inputs["text"].CopyFrom(
    tf.make_tensor_proto(np.array(["a great film", b"\xff bytes"], dtype=object))
  )
  real.output_filter.append("probabilities")
  assert predict_pb2.PredictRequest.FromString(ours.SerializeToString()) == real
  assert m.PredictRequest.FromString(real.SerializeToString()) == ours
  assert apis.string_tensor(["a great film", b"\xff bytes"]) == ours.inputs["text"]


@pytest.mark.parametrize(
  "value",
  [
    np.array([[0.25, -1.5, 3.0], [1e-8, 0.0, 2.0]], dtype=np.float32),
    np.array([1.0, 2.5], dtype=np.float64),
    np.array([[1, -2], [3, 2**40]], dtype=np.int64),
    np.array([7, -7, 0], dtype=np.int32),
    np.array([b"a", "b\u00e9", b""], dtype=object),
    np.array([], dtype=object),
    np.array(1.5, dtype=np.float32),
    np.array([1.0], dtype=np.float32),
    np.array([[3]], dtype=np.int64),
    ["a", b"b\x00"],
  ],
)
def test_fill_tensor_encodes_as_make_tensor_proto(value):
  ours = apis.messages().TensorProto()
  apis.fill_tensor(ours, value)
  assert tensor_pb2.TensorProto.FromString(ours.SerializeToString()) == tf.make_tensor_proto(value)


def _float_val_tensor():
  tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[0.5, 0.25])
  tensor.tensor_shape.dim.add().size = 4  # TensorFlow's compact form: the last repeats
  return tensor


def _real_response():
  response = predict_pb2.PredictResponse()
  response.model_spec.name = "imdb_sentiment"
  response.model_spec.version.value = 2
  outputs = {
    "probabilities": tf.make_tensor_proto(np.array([0.1, 0.9], dtype=np.float32)),
    "label": tf.make_tensor_proto(np.array([0, 1], dtype=np.int64)),
    "tokens": tf.make_tensor_proto(np.array([[b"great", b""], [b"bad", b"film"]], dtype=object)),
    "attention_weights": tf.make_tensor_proto(np.array([[1.0, 0.0], [0.5, 0.5]], dtype=np.float32)),
    "doubles": tf.make_tensor_proto(np.array([1.0, -2.0], dtype=np.float64)),
    "ints": tf.make_tensor_proto(np.array([[3, 4, 5]], dtype=np.int32)),
    "compact": _float_val_tensor(),
    "int64_val": tensor_pb2.TensorProto(dtype=types_pb2.DT_INT64, int64_val=[5, 6]),
    "empty": tf.make_tensor_proto(np.zeros([0, 8], dtype=np.float32)),
  }
  outputs["int64_val"].tensor_shape.dim.add().size = 2
  for key, tensor in outputs.items():
    response.outputs[key].CopyFrom(tensor)
  return response


def test_real_predict_response_reads_back_as_make_ndarray():
  real = _real_response()
  assert real.outputs["probabilities"].tensor_content  # the tensor_content path is tested
  ours = apis.messages().PredictResponse.FromString(real.SerializeToString())
  assert ours.model_spec.version.value == 2
  for key, tensor in real.outputs.items():
    expected = tf.make_ndarray(tensor)
    for got in (apis.tensor_to_numpy(ours.outputs[key]), apis.tensor_to_numpy(tensor)):
      assert got.dtype == expected.dtype, key
      assert got.shape == expected.shape, key
      np.testing.assert_array_equal(got, expected, err_msg=key)


def test_tensor_to_numpy_errors():
  tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_HALF)
  with pytest.raises(TypeError, match="DT_HALF"):
    apis.tensor_to_numpy(tensor)
  tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[1.0, 2.0, 3.0])
  tensor.tensor_shape.dim.add().size = 2
  with pytest.raises(ValueError, match="float_val holds 3"):
    apis.tensor_to_numpy(tensor)
  tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_content=b"\0" * 12)
  tensor.tensor_shape.dim.add().size = 2
  with pytest.raises(ValueError, match="tensor_content holds 3"):
    apis.tensor_to_numpy(tensor)
  with pytest.raises(TypeError, match="bool"):
    apis.fill_tensor(apis.messages().TensorProto(), np.array([True]))
  with pytest.raises(TypeError, match="int"):
    apis.fill_tensor(apis.messages().TensorProto(), np.array([b"a", 1], dtype=object))


def test_metadata_any_unpacks_into_the_private_signature_map():
  real_map = get_model_metadata_pb2.SignatureDefMap()
  signature = real_map.signature_def["predict_text"]
  signature.method_name = "tensorflow/serving/predict"
  signature.inputs["text"].dtype = types_pb2.DT_STRING
  signature.inputs["text"].tensor_shape.dim.add().size = -1
  real = get_model_metadata_pb2.GetModelMetadataResponse()
  real.model_spec.version.value = 1
  real.metadata["signature_def"].Pack(real_map)
  m = apis.messages()
  ours = m.GetModelMetadataResponse.FromString(real.SerializeToString())
  unpacked = m.SignatureDefMap()
  assert ours.metadata["signature_def"].Unpack(unpacked)
  assert unpacked.SerializeToString() == real_map.SerializeToString()
  assert unpacked.signature_def["predict_text"].inputs["text"].dtype == tf.string.as_datatype_enum


def test_text_example_is_a_tf_example():
  for text in ("a great film", b"\xff raw bytes"):
    expected = tf.train.Example(
      features=tf.train.Features(
        feature={
          "text": tf.train.Feature(
            bytes_list=tf.train.BytesList(
              value=[text.encode("utf-8") if isinstance(text, str) else text]
            )
          )
        }
      )
    )
    assert example_pb2.Example.FromString(client.text_example(text)) == expected


# --- malformed generated modules ------------------------------------------------------------

_HEADER = "from google.protobuf import descriptor_pool as _descriptor_pool\n"


@pytest.mark.parametrize(
  "source,match",
  [
    (_HEADER + "X = 1\n", "expected exactly one"),
    (
      _HEADER + "DESCRIPTOR = _descriptor_pool.Default().AddSerializedFile(b'')\n"
      "OTHER = _descriptor_pool.Default().AddSerializedFile(b'')\n",
      "expected exactly one",
    ),
    (
      _HEADER + "DESCRIPTOR = _descriptor_pool.Default().AddSerializedFile('text')\n",
      "not a bytes literal",
    ),
    (
      _HEADER + "DESCRIPTOR = _descriptor_pool.Default().AddSerializedFile(make())\n",
      "not a bytes literal",
    ),
    (
      _HEADER + "DESCRIPTOR = _descriptor_pool.Default().AddSerializedFile(b'\\xff\\xff')\n",
      "not a FileDescriptorProto",
    ),
    # a.proto depends on b.proto but imports no module for it.
    (
      _HEADER + "DESCRIPTOR = _descriptor_pool.Default().AddSerializedFile("
      "b'\\n\\x07a.proto\\x1a\\x07b.proto')\n",
      "imports no module as b__pb2",
    ),
    ("def broken(:\n", "cannot read generated module"),
  ],
)
def test_malformed_generated_module_is_named(tmp_path, source, match):
  path = tmp_path / "broken_pb2.py"
  path.write_text(source, encoding="utf-8")
  with pytest.raises(apis.GeneratedModuleError, match=match) as raised:
    apis.read_generated_module(str(path))
  assert str(path) in str(raised.value)


def test_generated_module_is_read_like_the_real_one():
  generated = apis.read_generated_module(apis.module_path(predict_pb2.__name__))
  assert generated.path == predict_pb2.__file__
  assert generated.serialized == predict_pb2.DESCRIPTOR.serialized_pb
  assert generated.proto_file == "tensorflow_serving/apis/predict.proto"
  assert generated.dependencies == (
    ("tensorflow/core/framework/tensor.proto", "tensorflow.core.framework.tensor_pb2"),
    ("tensorflow_serving/apis/model.proto", "tensorflow_serving.apis.model_pb2"),
  )
  assert apis.module_alias("tsl/protobuf/error_codes.proto") == (
    "tsl_dot_protobuf_dot_error__codes__pb2"
  )
  with pytest.raises(apis.GeneratedModuleError, match="no package"):
    apis.module_path("no_such_package_here.thing_pb2")
