"""Whether two runs wrote the same artifact, for runs of one pipeline on two Beam runners.

Beam promises the same result on every runner, not the same bytes: a runner may write
another number of shards, records in another order, a proto map's entries in another byte
order, and floating sums added in another order. So an artifact is compared by what it
holds, file kind by file kind (no library compares TFX artifacts across runs):

* shards (``name-00000-of-00002``) of one output are read together, whatever their count;
* gzipped TFRecords of tf.Example (Examples, transformed Examples): the multiset of
  parsed records, canonically serialized;
* TFDV statistics (``FeatureStats.pb``): features in path order, every count, string and
  histogram bound equal, every float equal to ``REL_TOL`` relative, except the histograms'
  bucket counts and a quantiles histogram's inner bounds: TFDV estimates them with a
  quantile sketch, whose result depends on the order partial sketches are merged, so the
  counts agree to the sketch's error bound (``SKETCH_EPSILON`` of the histogram's total;
  seen between two runs on the DirectRunner with two workers: 449,944.9 vs 449,939.2 of
  about 500,000) and the inner bounds, values at estimated ranks (155 vs 156), are left
  out; the outer bounds (the minimum and maximum) stay exact (seen on the DirectRunner against the portable
  runner: std_dev 214.41513815959516 vs ...513);
* TFMA's outputs (``metrics``, ``plots``, ``attributions``: one proto per slice;
  ``validations``): the slices' protos sorted by slice key, floats to ``TFMA_REL_TOL``
  relative (they sum float32 predictions);
* schemas and anomalies as parsed protos; JSON files as parsed JSON;
* anything else byte for byte.

The TransformGraph is compared by ``transform_graph_differences``: its SavedModel's bytes
are not the same from one run to the next (it embeds unique function names), so it is
compared by its schemas, vocabulary, asset map and what its transform_fn computes.
"""

import itertools
import json
import math
import os
import re
from collections import Counter
from collections.abc import Callable

from google.protobuf import json_format, text_format
from google.protobuf.message import Message

REL_TOL = 1e-9
# TFMA's outputs sum the model's float32 predictions: a runner that batches the examples
# otherwise gets predictions a few float32 ulps apart (float32's epsilon: 1.2e-7); seen
# on the full test split: 4.432925522 vs 4.432925582 in a calibration-plot bucket.
TFMA_REL_TOL = 1e-6
ABS_TOL = 1e-12
# TFDV's quantile sketch (StatsOptions.epsilon's default): its rank error bound, as a
# fraction of the values summarized. TFDV estimates every numeric histogram's bucket
# counts from that sketch, whose result depends on the order partial sketches are merged.
SKETCH_EPSILON = 0.01
_SHARD = re.compile(r"-\d{5}-of-\d{5}")


def _files(uri: str) -> dict[str, list[str]]:
  """Output name (path below ``uri`` without its shard numbers) -> its shard files."""
  found: dict[str, list[str]] = {}
  for directory, _, names in os.walk(uri):
    for name in names:
      path = os.path.join(directory, name)
      found.setdefault(_SHARD.sub("", os.path.relpath(path, uri)), []).append(path)
  return {key: sorted(paths) for key, paths in sorted(found.items())}


def _tfrecords(paths: list[str], compression: str) -> list[bytes]:
  import tensorflow as tf

  return [
    bytes(r)
    for r in tf.data.TFRecordDataset(paths, compression_type=compression).as_numpy_iterator()
  ]


def _examples(paths: list[str]) -> list[bytes]:
  """The parsed tf.Examples of gzipped TFRecord files, canonically serialized."""
  import tensorflow as tf

  return [
    tf.train.Example.FromString(r).SerializeToString(deterministic=True)
    for r in _tfrecords(paths, "GZIP")
  ]


def _proto(path: str, message_type: type[Message]) -> Message:
  message = message_type()
  with open(path, "rb") as f:
    data = f.read()
  if path.endswith(".pbtxt"):
    text_format.Parse(data.decode("utf-8"), message)
  else:
    message.ParseFromString(data)
  return message


def _statistics(message: Message) -> dict:
  """TFDV statistics as a dict, each dataset's features in path order (a multi-worker
  runner lists them in the order its workers' results were merged)."""
  statistics = json_format.MessageToDict(message)
  for dataset in statistics.get("datasets", []):
    for key in ("features", "crossFeatures"):
      if key in dataset:
        dataset[key].sort(key=lambda f: json.dumps(f.get("path", f), sort_keys=True))
  return statistics


def value_differences(a, b, where: str = "", rel_tol: float = REL_TOL) -> list[str]:
  """Where two JSON-like values differ: dict keys, list lengths, floats beyond
  ``rel_tol`` relative (``ABS_TOL`` absolute near 0), anything else by equality."""
  if isinstance(a, dict):
    if not isinstance(b, dict):
      return [f"{where}: {b!r} is not a message"]
    if set(a) != set(b):
      return [f"{where}: fields {sorted(set(a) ^ set(b))} in one only"]
    return [d for key in a for d in value_differences(a[key], b[key], f"{where}.{key}", rel_tol)]
  if isinstance(a, list):
    if not isinstance(b, list) or len(a) != len(b):
      return [f"{where}: lengths differ"]
    return [
      d
      for i, (x, y) in enumerate(zip(a, b))
      for d in value_differences(x, y, f"{where}[{i}]", rel_tol)
    ]
  if isinstance(a, float) and isinstance(b, (int, float)):
    if math.isclose(a, b, rel_tol=rel_tol, abs_tol=ABS_TOL):
      return []
    return [f"{where}: {a!r} != {b!r}"]
  return [] if a == b else [f"{where}: {a!r} != {b!r}"]


def _message_dicts(messages: list[Message]) -> list[dict]:
  """Messages as dicts, sorted by their slice key (TFMA) or their whole content."""

  def key(d: dict) -> str:
    return json.dumps(d.get("sliceKey", d), sort_keys=True)

  return sorted((json_format.MessageToDict(m) for m in messages), key=key)


def _tfma_reader(name: str) -> Callable[[list[str]], list[dict]] | None:
  from tensorflow_model_analysis.proto import metrics_for_slice_pb2, validation_result_pb2

  types = {
    "metrics": metrics_for_slice_pb2.MetricsForSlice,
    "plots": metrics_for_slice_pb2.PlotsForSlice,
    "attributions": metrics_for_slice_pb2.AttributionsForSlice,
    "validations": validation_result_pb2.ValidationResult,
  }
  message_type = types.get(name)
  if message_type is None:
    return None
  return lambda paths: _message_dicts([message_type.FromString(r) for r in _tfrecords(paths, "")])


Reader = Callable[[list[str]], object]
Comparer = Callable[[object, object, str], list[str]]


def _kind(name: str) -> tuple[Reader, Comparer]:
  """How to read the output ``name`` (a path below the artifact, shard numbers removed),
  and how to compare two such reads (module docstring)."""
  from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2

  base = os.path.basename(name)
  stem, extension = os.path.splitext(base)
  if base.endswith(".gz"):
    return _examples, _record_differences
  if base == "FeatureStats.pb":
    return (
      lambda paths: [
        _statistics(_proto(p, statistics_pb2.DatasetFeatureStatisticsList)) for p in paths
      ],
      _statistics_differences,
    )
  if base == "SchemaDiff.pb":
    return lambda paths: [_proto(p, anomalies_pb2.Anomalies) for p in paths], value_differences
  if base == "schema.pbtxt":
    return lambda paths: [_proto(p, schema_pb2.Schema) for p in paths], value_differences
  tfma = _tfma_reader(stem) if extension == ".tfrecord" else None
  if tfma:
    return tfma, lambda a, b, where: value_differences(a, b, where, TFMA_REL_TOL)
  if extension == ".json":
    return lambda paths: [json.loads(_bytes(p)) for p in paths], value_differences
  return lambda paths: [_bytes(p) for p in paths], value_differences


def _bytes(path: str) -> bytes:
  with open(path, "rb") as f:
    return f.read()


def differences(uri_a: str, uri_b: str) -> list[str]:
  """Where the artifact at ``uri_b`` differs from the one at ``uri_a`` (module
  docstring); empty when they hold the same. A value artifact (its URI a file) is
  compared byte for byte.

  Raises:
    FileNotFoundError: ``uri_a`` or ``uri_b`` does not exist.
  """
  for uri in (uri_a, uri_b):
    if not os.path.exists(uri):
      raise FileNotFoundError(uri)
  if os.path.isfile(uri_a):
    return [] if _bytes(uri_a) == _bytes(uri_b) else [f"{uri_b}: bytes differ"]
  files_a, files_b = _files(uri_a), _files(uri_b)
  if set(files_a) != set(files_b):
    return [f"files differ: {sorted(set(files_a) ^ set(files_b))}"]
  if not files_a:
    return [f"{uri_a}: no file"]
  found = []
  for name, paths in files_a.items():
    read, compare = _kind(name)
    found += compare(read(paths), read(files_b[name]), name)
  return found


def _statistics_differences(a: list[dict], b: list[dict], where: str) -> list[str]:
  """Statistics compared as values, but their sketched histograms (module docstring)."""
  counts_a, counts_b = _histogram_counts(a, where), _histogram_counts(b, where)
  return value_differences(a, b, where) + _count_differences(counts_a, counts_b)


def _histogram_counts(value, where: str) -> dict[str, list[float]]:
  """Removes the bucket counts of every histogram in ``value`` (statistics as a dict) and
  returns them by the histogram's path."""
  found = {}
  if isinstance(value, dict):
    if "buckets" in value and "histograms" in where.rsplit(".", 1)[-1]:
      buckets = value["buckets"]
      found[where] = [bucket.pop("sampleCount", 0.0) for bucket in buckets]
      if value.get("type") == "QUANTILES":  # inner bounds: values at estimated ranks
        for before, after in itertools.pairwise(buckets):
          before.pop("highValue", None)
          after.pop("lowValue", None)
    for key, item in value.items():
      found.update(_histogram_counts(item, f"{where}.{key}"))
  elif isinstance(value, list):
    for i, item in enumerate(value):
      found.update(_histogram_counts(item, f"{where}[{i}]"))
  return found


def _count_differences(a: dict[str, list[float]], b: dict[str, list[float]]) -> list[str]:
  """Histograms whose bucket counts differ by more than ``SKETCH_EPSILON`` of their total."""
  found = []
  for path, counts in a.items():
    other = b.get(path)
    if other is None or len(other) != len(counts):
      found.append(f"{path}: buckets differ")
      continue
    bound = SKETCH_EPSILON * sum(counts)
    worst = max((abs(x - y) for x, y in zip(counts, other)), default=0.0)
    if worst > bound:
      found.append(f"{path}: a bucket count differs by {worst:g} > {bound:g}")
  return found


def _record_differences(a: list[bytes], b: list[bytes], name: str) -> list[str]:
  """How two multisets of records differ: how many are in one only."""
  only_a, only_b = Counter(a) - Counter(b), Counter(b) - Counter(a)
  if not only_a and not only_b:
    return []
  return [
    f"{name}: {sum(only_a.values())} of {len(a)} records only in the first, "
    f"{sum(only_b.values())} of {len(b)} only in the second"
  ]


def transform_graph_differences(uri_a: str, uri_b: str, raw_examples: list[bytes]) -> list[str]:
  """Where TransformGraph ``uri_b`` differs from ``uri_a``: raw and transformed schemas,
  every vocabulary, the asset map, and the transform_fn's outputs on ``raw_examples``
  (serialized raw tf.Examples).

  Raises:
    FileNotFoundError: a URI does not exist.
  """
  import numpy as np
  import tensorflow as tf
  import tensorflow_transform as tft

  for uri in (uri_a, uri_b):
    if not os.path.isdir(uri):
      raise FileNotFoundError(uri)
  a, b = tft.TFTransformOutput(uri_a), tft.TFTransformOutput(uri_b)
  found = []
  if a.transformed_metadata.schema != b.transformed_metadata.schema:
    found.append("transformed schema differs")
  if a.raw_metadata.schema != b.raw_metadata.schema:
    found.append("raw schema differs")
  asset_maps = [
    _bytes(os.path.join(uri, tft.TFTransformOutput.TRANSFORMED_METADATA_DIR, "asset_map"))
    for uri in (uri_a, uri_b)
  ]
  if asset_maps[0] != asset_maps[1]:
    found.append("asset_map differs")
  for name in json.loads(asset_maps[0]):
    if a.vocabulary_by_name(name) != b.vocabulary_by_name(name):
      found.append(f"vocabulary {name!r} differs")
  raw = tf.io.parse_example(tf.constant(raw_examples), a.raw_feature_spec())
  out_a, out_b = a.transform_raw_features(raw), b.transform_raw_features(raw)
  if set(out_a) != set(out_b):
    return [*found, "transformed features differ"]
  for name in out_a:
    if not np.array_equal(np.asarray(out_a[name]), np.asarray(out_b[name])):
      found.append(f"transform_fn output {name!r} differs")
  return found
