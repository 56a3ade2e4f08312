"""The distributed path, tested on one machine: the pipeline's data components (ImdbExampleGen
through Transform) on Apache Beam's portable runner, with Beam's embedded job service and a
LOOPBACK environment (``--beam-profile portable --beam-endpoint embed``), give the same
artifacts, artifact for artifact, as on the DirectRunner.

This is the code path Flink and Spark take (the portable runner submits to their job
servers); what it cannot show is the cluster itself: the SDK container image, the shared
pipeline root and the job servers.

Compared per output artifact of every node (found through MLMD): the same files; Examples
and transformed Examples record for record (parsed tf.Examples, since a proto map's byte
order may differ between processes); statistics as parsed protos, floats to 1e-9 relative
(a runner may sum partial results in another order); schemas and anomalies as parsed
protos; the TransformGraph's vocabulary and asset map byte for byte, its schemas as protos,
and its transform_fn by applying both to the same raw reviews. The analyzer cache is left out: its
key embeds the input artifact's path, which differs between the two pipeline roots, and
what it caches is checked through the TransformGraph it produced.
"""

import math
import os

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
from apache_beam.runners.portability import portable_runner
from google.protobuf import json_format, text_format
from ml_metadata import metadata_store
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2
from tfx import v1 as tfx

from models.hparams import HParams
from pipeline import beam_profiles, mlmd_queries
from pipeline.layout import PIPELINE_NAME, OutputPaths
from pipeline.pipeline import create_pipeline

pytestmark = pytest.mark.e2e

DATA_NODES = [
  "ImdbExampleGen",
  "StatisticsGen",
  "SchemaGen",
  "ExampleValidator",
  "AnomaliesGate",
  "Transform",
]
HP = HParams(
  vocab_size=500,
  max_length=32,
  embedding_dim=8,
  lstm_units=8,
  dense_units=8,
  epochs=1,
  batch_size=32,
)
DIRECT_ARGS = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]


def _run(output_dir, tfds_data_dir, beam_args):
  paths = OutputPaths(str(output_dir))
  connection = tfx.orchestration.metadata.sqlite_metadata_connection_config(paths.metadata_path)
  pipeline = create_pipeline(
    pipeline_root=paths.pipeline_root,
    serving_model_dir=paths.serving_model_dir,
    metadata_connection_config=connection,
    hparams=HP,
    train_split="train[:2%]",
    test_split="test[:1%]",
    unlabelled_split="unsupervised[:1%]",
    tfds_data_dir=tfds_data_dir,
    beam_pipeline_args=beam_args,
    last_node="Transform",
  )
  tfx.orchestration.LocalDagRunner().run(pipeline)
  store = metadata_store.MetadataStore(connection)
  outputs = {}
  for node in DATA_NODES:
    executions = mlmd_queries.node_executions(store, PIPELINE_NAME, node, 0)
    assert [e.last_known_state for e in executions] == [3], node  # one COMPLETE execution
    outputs_by_key = mlmd_queries.execution_outputs(store, executions[0].id)
    for key, artifacts in outputs_by_key.items():
      assert len(artifacts) == 1, (node, key)
      outputs[(node, key)] = artifacts[0].uri
  return outputs


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tfds_data_dir):
  """(DirectRunner outputs, portable-runner outputs, portable job count of each run)."""
  calls = []
  original = portable_runner.PortableRunner.run_pipeline

  def counting_run_pipeline(self, pipeline, options):
    calls.append(options.view_as(beam.options.pipeline_options.PortableOptions).job_endpoint)
    return original(self, pipeline, options)

  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(portable_runner.PortableRunner, "run_pipeline", counting_run_pipeline)
    direct = _run(tmp_path_factory.mktemp("direct"), tfds_data_dir, DIRECT_ARGS)
    direct_jobs = len(calls)
    root = tmp_path_factory.mktemp("portable")
    portable_args = beam_profiles.beam_args_for(
      "portable",
      beam_profiles.BeamSettings(endpoint="embed", pipeline_root=str(root / "pipeline_root")),
    )
    assert "--environment_type=LOOPBACK" in portable_args
    portable = _run(root, tfds_data_dir, portable_args)
  return direct, portable, direct_jobs, calls[direct_jobs:]


def test_portable_runner_ran_the_beam_powered_components(runs):
  _, _, direct_jobs, portable_jobs = runs
  assert direct_jobs == 0
  # StatisticsGen (one job) and Transform (analyze + transform) at least.
  assert len(portable_jobs) >= 2 and set(portable_jobs) == {"embed"}


def test_every_node_wrote_the_same_outputs(runs):
  direct, portable, _, _ = runs
  assert set(direct) == set(portable)
  assert {node for node, _ in direct} == set(DATA_NODES)


def _files(uri):
  found = []
  for directory, _, names in os.walk(uri):
    found += [os.path.relpath(os.path.join(directory, n), uri) for n in names]
  return sorted(found)


def _examples(path):
  """Parsed records of a gzipped TFRecord file, in file order, canonically serialized."""
  return [
    tf.train.Example.FromString(r).SerializeToString(deterministic=True)
    for r in tf.data.TFRecordDataset(path, compression_type="GZIP").as_numpy_iterator()
  ]


def _proto(path, message_type):
  message = message_type()
  with open(path, "rb") as f:
    data = f.read()
  if path.endswith(".pbtxt"):
    text_format.Parse(data.decode("utf-8"), message)
  else:
    message.ParseFromString(data)
  return message


def _assert_same_statistics(a, b, where):
  """Equal statistics: every count, string and histogram bound equal, every float equal
  to 1e-9 relative. Floating sums (mean, std_dev) may differ in the last bit when a runner
  merges partial sums in another order (seen: std_dev 214.41513815959516 vs ...513)."""

  def check(x, y, path):
    if isinstance(x, dict):
      assert isinstance(y, dict) and set(x) == set(y), f"{where}: {path} fields differ"
      for key in x:
        check(x[key], y[key], f"{path}.{key}")
    elif isinstance(x, list):
      assert isinstance(y, list) and len(x) == len(y), f"{where}: {path} lengths differ"
      for i, (xi, yi) in enumerate(zip(x, y)):
        check(xi, yi, f"{path}[{i}]")
    elif isinstance(x, float):
      assert math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12), f"{where}: {path} {x} != {y}"
    else:
      assert x == y, f"{where}: {path} {x!r} != {y!r}"

  check(json_format.MessageToDict(a), json_format.MessageToDict(b), "")


_PROTO_FILES = {
  "FeatureStats.pb": statistics_pb2.DatasetFeatureStatisticsList,
  "SchemaDiff.pb": anomalies_pb2.Anomalies,
  "schema.pbtxt": schema_pb2.Schema,
}


@pytest.mark.parametrize(
  "node, key",
  [
    ("ImdbExampleGen", "examples"),
    ("StatisticsGen", "statistics"),
    ("SchemaGen", "schema"),
    ("ExampleValidator", "anomalies"),
    ("Transform", "transformed_examples"),
    ("Transform", "pre_transform_stats"),
    ("Transform", "post_transform_stats"),
    ("Transform", "pre_transform_schema"),
    ("Transform", "post_transform_schema"),
    ("Transform", "post_transform_anomalies"),
    ("AnomaliesGate", "anomaly_count"),
  ],
)
def test_artifact_matches_the_direct_runs(runs, node, key):
  direct, portable, _, _ = runs
  if (node, key) not in direct:
    pytest.fail(f"{node} wrote no {key!r} artifact (it has {sorted(direct)})")
  a, b = direct[(node, key)], portable[(node, key)]
  if os.path.isfile(a):  # a value artifact (AnomaliesGate's Integer): its URI is the file
    with open(a, "rb") as fa, open(b, "rb") as fb:
      assert fa.read() == fb.read()
    return
  files = _files(a)
  assert files and files == _files(b)
  for name in files:
    base = os.path.basename(name)
    pa, pb = os.path.join(a, name), os.path.join(b, name)
    if base.endswith(".gz"):
      records = _examples(pa)
      assert records and records == _examples(pb), name
    elif base == "FeatureStats.pb":
      _assert_same_statistics(_proto(pa, _PROTO_FILES[base]), _proto(pb, _PROTO_FILES[base]), name)
    elif base in _PROTO_FILES:
      assert _proto(pa, _PROTO_FILES[base]) == _proto(pb, _PROTO_FILES[base]), name
    else:
      with open(pa, "rb") as fa, open(pb, "rb") as fb:
        assert fa.read() == fb.read(), name


def test_transform_graph_matches_the_direct_runs(runs):
  direct, portable, _, _ = runs
  a = tft.TFTransformOutput(direct[("Transform", "transform_graph")])
  b = tft.TFTransformOutput(portable[("Transform", "transform_graph")])
  assert a.transformed_metadata.schema == b.transformed_metadata.schema
  assert a.raw_metadata.schema == b.raw_metadata.schema
  vocab_a = a.vocabulary_by_name("vocabulary")
  assert len(vocab_a) > 100 and vocab_a == b.vocabulary_by_name("vocabulary")
  asset_maps = []
  for outputs in (direct, portable):
    uri = outputs[("Transform", "transform_graph")]
    with open(
      os.path.join(uri, tft.TFTransformOutput.TRANSFORMED_METADATA_DIR, "asset_map"), "rb"
    ) as f:
      asset_maps.append(f.read())
  assert asset_maps[0] == asset_maps[1]
  examples_dir = os.path.join(direct[("ImdbExampleGen", "examples")], "Split-test")
  records = tf.data.TFRecordDataset(
    [os.path.join(examples_dir, f) for f in os.listdir(examples_dir)], compression_type="GZIP"
  ).batch(16)
  raw = tf.io.parse_example(next(iter(records)), a.raw_feature_spec())
  out_a, out_b = a.transform_raw_features(raw), b.transform_raw_features(raw)
  assert set(out_a) == set(out_b)
  for name in out_a:
    np.testing.assert_array_equal(np.asarray(out_a[name]), np.asarray(out_b[name]), name)
