"""The distributed path, tested on one machine: the pipeline's data components (ImdbExampleGen
through Transform) on Apache Beam's portable runner, with Beam's embedded job service and a
LOOPBACK environment (``--beam-profile portable --beam-endpoint embed``), give the same
artifacts, artifact for artifact, as on the DirectRunner.

This is the code path Flink and Spark take (the portable runner submits to their job
servers); what it cannot show is the cluster itself: the SDK container image, the shared
pipeline root and the job servers.

Compared per output artifact of every node (found through MLMD), by what it holds
(``analysis.artifact_diff``): Examples as parsed records, statistics to 1e-9 relative,
schemas and anomalies as protos, the TransformGraph by its schemas, vocabulary, asset map
and what its transform_fn computes on the same raw reviews. The analyzer cache is left
out: its key embeds the input artifact's path, which differs between the two pipeline
roots, and what it caches is checked through the TransformGraph it produced.
"""

import os

import apache_beam as beam
import pytest
import tensorflow as tf
import tensorflow_transform as tft
from apache_beam.runners.portability import portable_runner
from ml_metadata import metadata_store
from tfx import v1 as tfx

from analysis import artifact_diff
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
DIRECT_ARGS = beam_profiles.default_beam_pipeline_args(cpu_count=1)


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


@pytest.mark.parametrize(
  "node, key",
  [
    ("ImdbExampleGen", "examples"),
    ("StatisticsGen", "statistics"),
    ("SchemaGen", "schema"),
    ("ExampleValidator", "anomalies"),
    ("Transform", "transformed_examples"),
    ("AnomaliesGate", "anomaly_count"),
  ],
)
def test_artifact_matches_the_direct_runs(runs, node, key):
  direct, portable, _, _ = runs
  if (node, key) not in direct:
    pytest.fail(f"{node} wrote no {key!r} artifact (it has {sorted(direct)})")
  assert artifact_diff.differences(direct[(node, key)], portable[(node, key)]) == []


def test_transform_graph_matches_the_direct_runs(runs):
  direct, portable, _, _ = runs
  examples_dir = os.path.join(direct[("ImdbExampleGen", "examples")], "Split-test")
  records = tf.data.TFRecordDataset(
    [os.path.join(examples_dir, f) for f in os.listdir(examples_dir)], compression_type="GZIP"
  )
  raw = [bytes(r) for r in records.take(16).as_numpy_iterator()]
  a, b = direct[("Transform", "transform_graph")], portable[("Transform", "transform_graph")]
  assert len(tft.TFTransformOutput(a).vocabulary_by_name("vocabulary")) > 100
  assert artifact_diff.transform_graph_differences(a, b, raw) == []
