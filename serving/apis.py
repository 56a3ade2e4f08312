"""TF Serving's request/response messages without importing TensorFlow.

Why this module exists: the generated modules of ``tensorflow-serving-api``
(``tensorflow_serving.apis.predict_pb2`` and the others) import
``tensorflow.core.framework.tensor_pb2``, and importing anything under ``tensorflow`` runs
TensorFlow's package ``__init__``, which loads the whole framework: ~14 s on this project's
machines before a client could send its first request. The client commands
(``imdb-tfx predict``, ``imdb-tfx status``) need only the message classes.

How it works: each installed generated module (``tensorflow_serving/apis/*_pb2.py``,
``tensorflow/core/**/*_pb2.py``, protoc output for protobuf 3.20) holds its ``.proto``
file's serialized ``FileDescriptorProto`` in exactly one statement::

  DESCRIPTOR = _descriptor_pool.Default().AddSerializedFile(b'...')

and imports the modules of the files it depends on, each under protoc's alias of the
dependency's file name (``tsl/protobuf/error_codes.proto`` is imported as
``from tensorflow.tsl.protobuf import error_codes_pb2 as
tsl_dot_protobuf_dot_error__codes__pb2``: TensorFlow ships the ``tsl`` and ``xla`` protos
inside its own package, so a file's name does not always give its module's path).

``messages()`` locates the package directories with ``importlib.util.find_spec`` (for a
top-level name it only searches ``sys.path``; it imports nothing), reads the generated
modules as text and parses them with ``ast`` (never running them): the bytes literal of
``AddSerializedFile`` (``ast.literal_eval``) is parsed into a ``FileDescriptorProto``,
whose ``dependency`` list is resolved recursively through those imports. The well-known
types (``google/protobuf/*.proto``) come from the cheap ``google.protobuf.*_pb2`` modules'
``DESCRIPTOR.serialized_pb``. Every file is added to a private ``DescriptorPool`` after its
dependencies, and the message classes are built with
``message_factory.MessageFactory(pool).GetPrototype``. The pool is private, so nothing is
registered in protobuf's default pool, where the real generated modules (which the
development server and the tests import) register the same names.

The classes are built from the very ``FileDescriptorProto``s the real modules register, so
their wire format is the same: bytes serialized here parse with the real classes and the
other way round, and a TF Serving server cannot tell the difference.

The module also converts tensors without TensorFlow: ``fill_tensor``/``string_tensor``
(numpy arrays or strings to a ``TensorProto``) and ``tensor_to_numpy`` (back, as
``tf.make_ndarray`` does).
"""

import ast
import dataclasses
import functools
import importlib
import importlib.util
import os
import types
from collections.abc import Mapping, Sequence

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf import message as message_lib

__all__ = [
  "GeneratedModule",
  "GeneratedModuleError",
  "Messages",
  "fill_tensor",
  "messages",
  "module_alias",
  "module_path",
  "read_generated_module",
  "string_tensor",
  "tensor_to_numpy",
]

# The generated modules whose messages are exposed; their dependencies are added first.
_ROOT_MODULES = (
  ("tensorflow_serving.apis.predict_pb2", "tensorflow_serving/apis/predict.proto"),
  ("tensorflow_serving.apis.classification_pb2", "tensorflow_serving/apis/classification.proto"),
  (
    "tensorflow_serving.apis.get_model_status_pb2",
    "tensorflow_serving/apis/get_model_status.proto",
  ),
  (
    "tensorflow_serving.apis.get_model_metadata_pb2",
    "tensorflow_serving/apis/get_model_metadata.proto",
  ),
  ("tensorflow.core.framework.tensor_pb2", "tensorflow/core/framework/tensor.proto"),
  ("tensorflow.core.example.example_pb2", "tensorflow/core/example/example.proto"),
)
# Modules imported rather than read: protobuf's own well-known types (cheap to import).
_WELL_KNOWN_PACKAGE = "google.protobuf."

# numpy dtype (native byte order) -> TensorFlow DataType name, for the numeric dtypes.
_NUMPY_TO_DATA_TYPE = {
  np.dtype(np.float32): "DT_FLOAT",
  np.dtype(np.float64): "DT_DOUBLE",
  np.dtype(np.int32): "DT_INT32",
  np.dtype(np.int64): "DT_INT64",
}
# DataType name -> (numpy dtype, TensorProto field holding the values).
_DATA_TYPE_TO_NUMPY = {
  "DT_FLOAT": (np.dtype(np.float32), "float_val"),
  "DT_DOUBLE": (np.dtype(np.float64), "double_val"),
  "DT_INT32": (np.dtype(np.int32), "int_val"),
  "DT_INT64": (np.dtype(np.int64), "int64_val"),
  "DT_STRING": (np.dtype(object), "string_val"),
}


class GeneratedModuleError(ValueError):
  """A generated ``*_pb2.py`` module is missing or not of the expected form (one
  ``DESCRIPTOR = ...AddSerializedFile(b'...')`` holding a FileDescriptorProto, and an
  import of the module of each file it depends on)."""


@dataclasses.dataclass(frozen=True)
class Messages:
  """The message classes (``google.protobuf.message.Message`` subclasses of one private
  pool) and the enums the client needs.

  Messages of different ``Messages`` instances must not be mixed (``CopyFrom`` and
  assignment between them raise ``TypeError``); serialized bytes can be.

  Attributes:
    PredictRequest / PredictResponse: ``tensorflow.serving.Predict{Request,Response}``.
    ClassificationRequest / ClassificationResponse: the Classify API's messages.
    GetModelStatusRequest / GetModelStatusResponse / ModelVersionStatus: GetModelStatus.
    GetModelMetadataRequest / GetModelMetadataResponse: GetModelMetadata.
    SignatureDefMap: the message packed in the metadata's ``signature_def`` ``Any``.
    TensorProto: ``tensorflow.TensorProto``.
    Example / Features / Feature / BytesList: ``tensorflow.Example`` and its parts.
    data_types: ``tensorflow.DataType`` value numbers by name (``"DT_FLOAT"`` -> 1).
    model_version_states: ``ModelVersionStatus.State`` names by number (30 ->
      ``"AVAILABLE"``).
  """

  PredictRequest: type
  PredictResponse: type
  ClassificationRequest: type
  ClassificationResponse: type
  GetModelStatusRequest: type
  GetModelStatusResponse: type
  ModelVersionStatus: type
  GetModelMetadataRequest: type
  GetModelMetadataResponse: type
  SignatureDefMap: type
  TensorProto: type
  Example: type
  Features: type
  Feature: type
  BytesList: type
  data_types: Mapping[str, int]
  model_version_states: Mapping[int, str]


@dataclasses.dataclass(frozen=True)
class GeneratedModule:
  """What a generated module declares, read from its source.

  Attributes:
    path: the ``*_pb2.py`` file.
    serialized: its ``.proto`` file's serialized FileDescriptorProto (bytes).
    proto_file: that file's name, e.g. ``"tensorflow/core/framework/tensor.proto"``.
    dependencies: ``(proto file, dotted module name)`` for each file it depends on, in
      the FileDescriptorProto's order.
  """

  path: str
  serialized: bytes
  proto_file: str
  dependencies: tuple[tuple[str, str], ...]


def module_alias(proto_file: str) -> str:
  """The name protoc's Python generator imports ``proto_file``'s module under:
  ``"tsl/protobuf/error_codes.proto"`` -> ``"tsl_dot_protobuf_dot_error__codes__pb2"``."""
  module = proto_file[: -len(".proto")].replace("-", "_").replace("/", ".") + "_pb2"
  return module.replace("_", "__").replace(".", "_dot_")


def module_path(module: str) -> str:
  """The source file of a dotted module name, found without importing anything.

  Args:
    module: e.g. ``"tensorflow.core.framework.tensor_pb2"``.

  Returns:
    ``<top-level package dir>/<rest>.py``, here
    ``.../site-packages/tensorflow/core/framework/tensor_pb2.py``.

  Raises:
    GeneratedModuleError: the top-level package is not installed, or has no such file.
  """
  top, _, rest = module.partition(".")
  # For a top-level name, find_spec searches sys.path without importing anything.
  spec = importlib.util.find_spec(top)
  if not rest or spec is None or not spec.submodule_search_locations:
    raise GeneratedModuleError(f"no package {top!r} installed for module {module}")
  relative = os.path.join(*rest.split(".")) + ".py"
  for location in spec.submodule_search_locations:
    path = os.path.join(location, relative)
    if os.path.isfile(path):
      return path
  raise GeneratedModuleError(
    f"module {module}: no {relative} in {list(spec.submodule_search_locations)}"
  )


def _is_add_serialized_file(node: ast.AST) -> bool:
  return (
    isinstance(node, ast.Call)
    and isinstance(node.func, ast.Attribute)
    and node.func.attr == "AddSerializedFile"
  )


def read_generated_module(path: str) -> GeneratedModule:
  """Reads a generated module's FileDescriptorProto and imports, without running it.

  Args:
    path: a ``*_pb2.py`` file generated by protoc for protobuf 3.20.

  Returns:
    Its ``GeneratedModule``.

  Raises:
    GeneratedModuleError (naming ``path``): the file cannot be read or parsed as Python;
      it does not hold exactly one ``DESCRIPTOR = ...AddSerializedFile(<bytes literal>)``;
      the bytes are not a FileDescriptorProto; or a dependency has no import under its
      protoc alias.
  """
  try:
    with open(path, encoding="utf-8") as f:
      tree = ast.parse(f.read(), filename=path)
  except (OSError, SyntaxError, ValueError) as e:
    raise GeneratedModuleError(f"cannot read generated module {path}: {e}") from e
  nodes = list(ast.walk(tree))
  assignments = [
    node.value
    for node in nodes
    if isinstance(node, ast.Assign)
    and _is_add_serialized_file(node.value)
    and [getattr(t, "id", None) for t in node.targets] == ["DESCRIPTOR"]
  ]
  calls = [node for node in nodes if _is_add_serialized_file(node)]
  if len(assignments) != 1 or len(calls) != 1:
    raise GeneratedModuleError(
      f"{path}: expected exactly one `DESCRIPTOR = ...AddSerializedFile(b'...')`, found "
      f"{len(assignments)} such assignment(s) and {len(calls)} AddSerializedFile "
      "call(s); was it generated for another protobuf version?"
    )
  call = assignments[0]
  try:
    if len(call.args) != 1 or call.keywords:
      raise ValueError("not a single positional argument")
    serialized = ast.literal_eval(call.args[0])
    if not isinstance(serialized, bytes):
      raise ValueError(f"a {type(serialized).__name__} literal")
  except ValueError as e:
    raise GeneratedModuleError(
      f"{path}: AddSerializedFile's argument is not a bytes literal ({e})"
    ) from e
  file_proto = descriptor_pb2.FileDescriptorProto()
  try:
    file_proto.ParseFromString(serialized)
  except message_lib.DecodeError as e:
    raise GeneratedModuleError(f"{path}: the bytes are not a FileDescriptorProto: {e}") from e
  imports = {
    alias.asname or alias.name: f"{node.module}.{alias.name}"
    for node in nodes
    if isinstance(node, ast.ImportFrom) and node.module
    for alias in node.names
  }
  dependencies = []
  for dependency in file_proto.dependency:
    alias = module_alias(dependency)
    if alias not in imports:
      raise GeneratedModuleError(
        f"{path}: {file_proto.name} depends on {dependency} but imports no module as {alias}"
      )
    dependencies.append((dependency, imports[alias]))
  return GeneratedModule(path, serialized, file_proto.name, tuple(dependencies))


def _add_with_dependencies(
  pool: descriptor_pool.DescriptorPool, module: str, proto_file: str, added: dict[str, bool]
) -> None:
  """Adds ``proto_file`` (defined by ``module``) to ``pool`` after its dependencies, depth
  first. ``added`` maps each file seen to whether it is in the pool yet (False while its
  dependencies are being added, to report a cycle)."""
  if proto_file in added:
    if not added[proto_file]:
      raise GeneratedModuleError(f"{proto_file} depends on itself through its imports")
    return
  added[proto_file] = False
  if module.startswith(_WELL_KNOWN_PACKAGE):
    pool.AddSerializedFile(importlib.import_module(module).DESCRIPTOR.serialized_pb)
  else:
    generated = read_generated_module(module_path(module))
    if generated.proto_file != proto_file:
      raise GeneratedModuleError(
        f"{generated.path} describes {generated.proto_file}, not {proto_file}"
      )
    for dependency, dependency_module in generated.dependencies:
      _add_with_dependencies(pool, dependency_module, dependency, added)
    pool.AddSerializedFile(generated.serialized)
  added[proto_file] = True


@functools.cache
def messages() -> Messages:
  """The message classes, built on the first call (tens of milliseconds: some thirty files
  are read and parsed) and cached for the process.

  Two threads making the very first call at once may each build a ``Messages``; each is
  complete and consistent, and later calls return one of them.

  Raises:
    GeneratedModuleError: a generated module (named in the message) is missing or not of
      the expected form.
  """
  pool = descriptor_pool.DescriptorPool()
  added: dict[str, bool] = {}
  for module, proto_file in _ROOT_MODULES:
    _add_with_dependencies(pool, module, proto_file, added)
  factory = message_factory.MessageFactory(pool)

  def serving(name: str) -> type:
    return factory.GetPrototype(pool.FindMessageTypeByName(f"tensorflow.serving.{name}"))

  def tensorflow(name: str) -> type:
    return factory.GetPrototype(pool.FindMessageTypeByName(f"tensorflow.{name}"))

  data_type = pool.FindEnumTypeByName("tensorflow.DataType")
  state = pool.FindEnumTypeByName("tensorflow.serving.ModelVersionStatus.State")
  return Messages(
    PredictRequest=serving("PredictRequest"),
    PredictResponse=serving("PredictResponse"),
    ClassificationRequest=serving("ClassificationRequest"),
    ClassificationResponse=serving("ClassificationResponse"),
    GetModelStatusRequest=serving("GetModelStatusRequest"),
    GetModelStatusResponse=serving("GetModelStatusResponse"),
    ModelVersionStatus=serving("ModelVersionStatus"),
    GetModelMetadataRequest=serving("GetModelMetadataRequest"),
    GetModelMetadataResponse=serving("GetModelMetadataResponse"),
    SignatureDefMap=serving("SignatureDefMap"),
    TensorProto=tensorflow("TensorProto"),
    Example=tensorflow("Example"),
    Features=tensorflow("Features"),
    Feature=tensorflow("Feature"),
    BytesList=tensorflow("BytesList"),
    data_types=types.MappingProxyType({v.name: v.number for v in data_type.values}),
    model_version_states=types.MappingProxyType({v.number: v.name for v in state.values}),
  )


# --- tensors ------------------------------------------------------------------------------


def _data_type_numbers(tensor: message_lib.Message) -> Mapping[str, int]:
  """DataType value numbers by name, from the enum of ``tensor``'s own pool (any
  ``tensorflow.TensorProto`` class: this module's or the real ``tensor_pb2``'s)."""
  enum = tensor.DESCRIPTOR.fields_by_name["dtype"].enum_type
  return {v.name: v.number for v in enum.values}


def _to_bytes(value: object) -> bytes:
  if isinstance(value, bytes):
    return value
  if isinstance(value, str):
    return value.encode("utf-8")
  raise TypeError(f"a string tensor holds str or bytes, not {type(value).__name__}")


def fill_tensor(tensor: message_lib.Message, values: np.ndarray | Sequence[str | bytes]) -> None:
  """Sets ``tensor`` (a ``tensorflow.TensorProto``, e.g. ``request.inputs["text"]``) to
  hold ``values``, encoded as ``tf.make_tensor_proto`` encodes a numpy array.

  Args:
    tensor: the TensorProto to overwrite (of any pool).
    values: a numpy array of float32 (DT_FLOAT), float64 (DT_DOUBLE), int32 (DT_INT32),
      int64 (DT_INT64), or str/bytes (DT_STRING: object, ``S`` or ``U`` dtype; str is
      encoded as UTF-8), of any shape; or a (nested) list, made an array with
      ``np.asarray`` (strings as an object array, so bytes keep trailing NULs). Numbers
      go into ``tensor_content`` (little-endian, row-major) when there are more than one,
      else into the ``*_val`` field; strings into ``string_val``.

  Raises:
    TypeError: another dtype, or an object array holding something not str/bytes.
  """
  array = np.asarray(values)
  if not isinstance(values, np.ndarray) and array.dtype.kind in "SU":
    array = np.array(values, dtype=object)
  numbers = _data_type_numbers(tensor)
  native = array.dtype.newbyteorder("=")
  tensor.Clear()
  if array.dtype.kind in "OSU":
    tensor.dtype = numbers["DT_STRING"]
    tensor.string_val.extend(_to_bytes(v) for v in array.reshape(-1).tolist())
  elif native in _NUMPY_TO_DATA_TYPE:
    name = _NUMPY_TO_DATA_TYPE[native]
    tensor.dtype = numbers[name]
    if array.size > 1:
      tensor.tensor_content = np.ascontiguousarray(array, dtype=native.newbyteorder("<")).tobytes()
    else:
      getattr(tensor, _DATA_TYPE_TO_NUMPY[name][1]).extend(array.reshape(-1).tolist())
  else:
    raise TypeError(
      f"no TensorFlow dtype handled here for numpy {array.dtype}; use "
      f"float32, float64, int32, int64 or strings"
    )
  tensor.tensor_shape.SetInParent()  # present even for a scalar, as TensorFlow writes it
  for size in array.shape:
    tensor.tensor_shape.dim.add().size = size


def string_tensor(values: Sequence[str | bytes]) -> message_lib.Message:
  """A DT_STRING ``TensorProto`` (of ``messages()``) of shape [n] holding ``values``
  (str encoded as UTF-8, bytes as they are).

  Raises:
    TypeError: a value is neither str nor bytes.
  """
  classes = messages()
  tensor = classes.TensorProto()
  tensor.dtype = classes.data_types["DT_STRING"]
  tensor.string_val.extend(_to_bytes(v) for v in values)
  tensor.tensor_shape.dim.add().size = len(values)
  return tensor


def tensor_to_numpy(tensor: message_lib.Message) -> np.ndarray:
  """A ``tensorflow.TensorProto`` (of any pool) as a numpy array, as ``tf.make_ndarray``
  reads it.

  Args:
    tensor: DT_FLOAT, DT_DOUBLE, DT_INT32, DT_INT64 (from ``tensor_content`` or the
      ``*_val`` field) or DT_STRING (``string_val``), shape from ``tensor_shape.dim``.

  Returns:
    float32, float64, int32 or int64 array, or an object array of bytes for DT_STRING, of
    the tensor's shape. Like TensorFlow, a ``*_val`` field shorter than the shape is
    padded with its last value (an empty one with zeros, or empty bytes for strings).

  Raises:
    TypeError: another dtype.
    ValueError: the values do not fit the shape (more values than elements, or
      ``tensor_content`` of the wrong length), or a dimension is unknown (-1).
  """
  names = {number: name for name, number in _data_type_numbers(tensor).items()}
  name = names.get(tensor.dtype, str(tensor.dtype))
  if name not in _DATA_TYPE_TO_NUMPY:
    raise TypeError(f"tensor dtype {name} is not one of {sorted(_DATA_TYPE_TO_NUMPY)}")
  dtype, field = _DATA_TYPE_TO_NUMPY[name]
  shape: list[int] = [d.size for d in tensor.tensor_shape.dim]
  if any(size < 0 for size in shape):
    raise ValueError(f"tensor of unknown shape {shape} cannot be read")
  count = int(np.prod(shape, dtype=np.int64))
  if tensor.tensor_content and name != "DT_STRING":
    content = np.frombuffer(tensor.tensor_content, dtype=dtype.newbyteorder("<"))
    if content.size != count:
      raise ValueError(f"tensor_content holds {content.size} values, shape {shape} needs {count}")
    return content.astype(dtype).reshape(shape)
  values = list(getattr(tensor, field))
  if len(values) > count:
    raise ValueError(f"{field} holds {len(values)} values, shape {shape} needs {count}")
  if len(values) < count:
    padding = values[-1] if values else (b"" if name == "DT_STRING" else 0)
    values += [padding] * (count - len(values))
  array = np.empty(count, dtype=dtype)
  array[:] = values
  return array.reshape(shape)
