"""models.strategy: which tf.distribute strategy each name gives on this (CPU) machine, and
the multi-worker helpers (roles from TF_CONFIG, where each worker writes, dataset sharding)."""

import dataclasses
import json
import os
import tempfile

import numpy as np
import pytest
import tensorflow as tf

from models import inputs, trainer
from models import strategy as strategy_lib
from models.inputs import count_records


@pytest.fixture(autouse=True)
def _no_accelerator_env(monkeypatch):
  for name in ("TPU_NAME", "COLAB_TPU_ADDR", "TF_CONFIG"):
    monkeypatch.delenv(name, raising=False)


def test_auto_on_cpu_is_the_default_strategy():
  if tf.config.list_logical_devices("GPU"):
    pytest.skip("a GPU is visible")
  strategy = strategy_lib.make_strategy("auto")
  assert strategy is tf.distribute.get_strategy()
  assert strategy.num_replicas_in_sync == 1


def test_default_and_one_device_have_one_replica():
  assert strategy_lib.make_strategy("default").num_replicas_in_sync == 1
  one = strategy_lib.make_strategy("one_device")
  assert isinstance(one, tf.distribute.OneDeviceStrategy)
  assert one.num_replicas_in_sync == 1


def test_mirrored_builds_variables_in_scope():
  strategy = strategy_lib.make_strategy("mirrored")
  assert isinstance(strategy, tf.distribute.MirroredStrategy)
  with strategy.scope():
    variable = tf.Variable(1.0)
  assert float(variable.numpy()) == 1.0


def test_tpu_without_a_tpu_fails_fast_with_a_clear_message():
  with pytest.raises(strategy_lib.StrategyUnavailableError, match="TPU_NAME"):
    strategy_lib.make_strategy("tpu")


def test_multi_worker_without_tf_config_names_it():
  with pytest.raises(strategy_lib.StrategyUnavailableError, match="TF_CONFIG"):
    strategy_lib.make_strategy("multi_worker")


def test_unknown_strategy_is_rejected():
  with pytest.raises(ValueError, match="unknown strategy"):
    strategy_lib.make_strategy("quantum")


def test_count_records_counts_gzip_tfrecords(tmp_path):
  options = tf.io.TFRecordOptions(compression_type="GZIP")
  for shard, n in (("a", 3), ("b", 4)):
    with tf.io.TFRecordWriter(str(tmp_path / f"{shard}.gz"), options) as writer:
      for i in range(n):
        writer.write(f"record {i}".encode())
  assert count_records([str(tmp_path / "*.gz")]) == 7
  assert count_records([str(tmp_path / "none-*.gz")]) == 0


# --- Multi-worker roles (fake TF_CONFIG values; no cluster is started) -------------------

TWO_WORKERS = {"worker": ["w0:2222", "w1:2222"]}
CHIEF_AND_WORKERS = {"chief": ["c0:2222"], "worker": ["w0:2222", "w1:2222"]}


def _tf_config(cluster, task_type, index, **extra) -> str:
  return json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}, **extra})


@pytest.mark.parametrize(
  "cluster, task_type, index, is_chief, num_workers",
  [
    (TWO_WORKERS, "worker", 0, True, 2),
    (TWO_WORKERS, "worker", 1, False, 2),
    (CHIEF_AND_WORKERS, "chief", 0, True, 3),
    (CHIEF_AND_WORKERS, "worker", 0, False, 3),  # with a chief, worker 0 is not chief
    (CHIEF_AND_WORKERS, "worker", 1, False, 3),
    ({"worker": ["w0:2222"]}, "worker", 0, True, 1),
  ],
)
def test_role_from_tf_config(cluster, task_type, index, is_chief, num_workers):
  role = strategy_lib.role_from_tf_config(_tf_config(cluster, task_type, index))
  assert role == strategy_lib.WorkerRole(
    task_type=task_type, task_id=index, num_workers=num_workers, is_chief=is_chief
  )


def test_role_from_vertex_ai_tf_config_ignores_extra_keys():
  # What Vertex AI sets for the first replica of worker pool 1 (pool 0 is the chief).
  config = _tf_config(
    CHIEF_AND_WORKERS, "worker", 1, job={"worker_pool_specs": []}, environment="cloud"
  )
  role = strategy_lib.role_from_tf_config(config)
  assert (role.task_type, role.task_id, role.is_chief) == ("worker", 1, False)
  assert strategy_lib.role_from_tf_config(json.loads(config)) == role


@pytest.mark.parametrize(
  "tf_config", [None, "", "  ", "{}", '{"task": {"type": "worker"}}', '{"cluster": {}}']
)
def test_no_cluster_is_a_single_chief_worker(tf_config):
  role = strategy_lib.role_from_tf_config(tf_config)
  assert role is strategy_lib.SINGLE_WORKER
  assert role.is_chief and role.num_workers == 1 and role.task_type is None


@pytest.mark.parametrize(
  "tf_config, message",
  [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    ('{"cluster": {"worker": ["a:1"]}, "task": "worker"}', "'task' must be an object"),
    ('{"cluster": {"worker": ["a:1", "b:1"]}}', "no task type"),
    (_tf_config(TWO_WORKERS, "chief", 0), "task type 'chief' is not a job"),
    (_tf_config(TWO_WORKERS, "worker", 2), "out of range"),
    (_tf_config(TWO_WORKERS, "worker", -1), "out of range"),
    (_tf_config(TWO_WORKERS, "worker", None), "must be an integer"),
    (_tf_config(TWO_WORKERS, "worker", "1"), "must be an integer"),
    (_tf_config(TWO_WORKERS, "worker", True), "must be an integer"),
    (_tf_config({"worker": ["a:1"], "ps": ["p:1"]}, "worker", 0), r"job\(s\) \['ps'\]"),
    (_tf_config({"worker": ["a:1"], "evaluator": ["e:1"]}, "evaluator", 0), "evaluator"),
    (_tf_config({"chief": ["a:1", "b:1"]}, "chief", 0), "at most one"),
  ],
)
def test_bad_tf_config_raises_value_error(tf_config, message):
  with pytest.raises(ValueError, match=message):
    strategy_lib.role_from_tf_config(tf_config)


def test_multi_worker_with_a_bad_tf_config_names_the_problem(monkeypatch):
  monkeypatch.setenv("TF_CONFIG", _tf_config(TWO_WORKERS, "worker", 5))
  with pytest.raises(strategy_lib.StrategyUnavailableError, match="TF_CONFIG.*out of range"):
    strategy_lib.make_strategy("multi_worker")
  monkeypatch.setenv("TF_CONFIG", '{"task": {"type": "worker", "index": 0}}')
  with pytest.raises(strategy_lib.StrategyUnavailableError, match="'cluster'"):
    strategy_lib.make_strategy("multi_worker")


def test_worker_role_of_single_process_strategies():
  for name in ("default", "one_device", "mirrored"):
    assert strategy_lib.worker_role(strategy_lib.make_strategy(name)) is strategy_lib.SINGLE_WORKER


def test_chief_writes_to_the_path_itself(tmp_path):
  target = str(tmp_path / "serving")
  role = strategy_lib.role_from_tf_config(_tf_config(TWO_WORKERS, "worker", 0))
  with strategy_lib.worker_write_dir(target, role) as path:
    assert path == target
    assert not os.path.exists(target)  # left to the writer, as without a cluster
    os.makedirs(path)
  assert os.path.isdir(target)  # never removed
  with strategy_lib.worker_write_dir(target, strategy_lib.SINGLE_WORKER) as path:
    assert path == target


def test_non_chief_writes_to_a_temporary_dir_removed_afterwards(tmp_path, monkeypatch):
  monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
  os.makedirs(tempfile.tempdir)
  target = str(tmp_path / "serving")
  role = strategy_lib.role_from_tf_config(_tf_config(CHIEF_AND_WORKERS, "worker", 0))
  with strategy_lib.worker_write_dir(target, role) as path:
    assert path != target
    assert os.path.dirname(path) == tempfile.tempdir
    assert os.path.basename(path).startswith("workertemp_worker_0_")
    assert os.path.isdir(path) and not os.listdir(path)
    with open(os.path.join(path, "saved_model.pb"), "w", encoding="utf-8") as f:
      f.write("x")
  assert not os.path.exists(path)
  assert not os.path.exists(target)

  with (
    pytest.raises(RuntimeError, match="boom"),
    strategy_lib.worker_write_dir(target, role) as path,
  ):
    os.makedirs(os.path.join(path, "variables"))
    raise RuntimeError("boom")
  assert not os.path.exists(path)
  assert os.listdir(tempfile.tempdir) == []


def test_wait_for_workers_returns_at_once_without_a_cluster():
  strategy = strategy_lib.make_strategy("default")
  strategy_lib.wait_for_workers(strategy, strategy_lib.SINGLE_WORKER)


@pytest.mark.parametrize(
  "num_files, num_workers, policy",
  [
    (1, 2, "DATA"),  # Transform writes a small split as one file
    (3, 4, "DATA"),
    (0, 2, "DATA"),
    (2, 2, "FILE"),
    (10, 3, "FILE"),
    (1, 1, "FILE"),
  ],
)
def test_auto_shard_policy(num_files, num_workers, policy):
  assert inputs.auto_shard_policy(num_files, num_workers) == getattr(
    tf.data.experimental.AutoShardPolicy, policy
  )


@pytest.mark.parametrize("policy", [None, tf.data.experimental.AutoShardPolicy.DATA])
def test_finished_datasets_run_without_autotuning(policy):
  # Autotuning's optimization thread made deleting the training iterator wait up to 31 s.
  finished = inputs._finish(tf.data.Dataset.range(5), policy)
  assert finished.options().autotune.enabled is False
  expected = policy or tf.data.experimental.AutoShardPolicy.AUTO
  assert finished.options().experimental_distribute.auto_shard_policy == expected
  assert list(finished.as_numpy_iterator()) == [0, 1, 2, 3, 4]


def test_auto_shard_policy_rejects_no_workers():
  with pytest.raises(ValueError, match="num_workers"):
    inputs.auto_shard_policy(1, 0)


def test_count_files(tmp_path):
  for name in ("a.gz", "b.gz", "c.txt"):
    (tmp_path / name).write_text("x")
  assert inputs.count_files([str(tmp_path / "*.gz"), str(tmp_path / "a*")]) == 2
  assert inputs.count_files([str(tmp_path / "none-*")]) == 0


@pytest.mark.parametrize("nb_wide", [False, True])
def test_single_device_copy_holds_the_weights_in_new_variables(nb_wide):
  from tiny_model import HP

  from models import model as model_lib

  hp = dataclasses.replace(HP, nb_wide=nb_wide)
  _, explain_model = model_lib.build(hp)
  trained = [w + 0.25 for w in explain_model.get_weights()]  # unlike any fresh build
  explain_model.set_weights(trained)
  explain_copy = trainer.single_device_copy(explain_model, hp)
  assert len(explain_copy.get_weights()) == len(trained)
  for got, want in zip(explain_copy.get_weights(), trained):
    np.testing.assert_array_equal(got, want)
  assert not {id(v) for v in explain_copy.weights} & {id(v) for v in explain_model.weights}
  tokens = np.array([[3, 5, 2, 0, 0, 0, 0, 0], [7, 1, 1, 4, 9, 2, 6, 8]], np.int64)
  probabilities, weights = explain_copy(tokens, training=False)
  expected, _ = explain_model(tokens, training=False)
  np.testing.assert_allclose(probabilities.numpy(), expected.numpy(), rtol=1e-6)
  assert weights.shape == (2, HP.max_length)


def test_mixed_precision_off_is_float32_and_refused_without_gpu_or_tpu():
  strategy = strategy_lib.make_strategy("default")
  assert strategy_lib.precision_policy(strategy, False) is None
  if tf.config.list_logical_devices("GPU"):
    assert strategy_lib.precision_policy(strategy, True) == "mixed_float16"
  else:
    with pytest.raises(strategy_lib.StrategyUnavailableError, match="needs a GPU"):
      strategy_lib.precision_policy(strategy, True)


def test_keras_precision_policy_is_restored_after_an_error():
  import tf_keras as keras

  with strategy_lib.keras_precision_policy(None):
    assert keras.mixed_precision.global_policy().name == "float32"
  with (
    pytest.raises(RuntimeError, match="boom"),
    strategy_lib.keras_precision_policy("mixed_bfloat16"),
  ):
    assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    raise RuntimeError("boom")
  assert keras.mixed_precision.global_policy().name == "float32"


def test_mirrored_without_gpus_replicates_over_the_logical_cpus():
  if tf.config.list_logical_devices("GPU"):
    pytest.skip("a GPU is visible")
  strategy = strategy_lib.make_strategy("mirrored")
  cpus = tf.config.list_logical_devices("CPU")
  assert strategy.num_replicas_in_sync == len(cpus)
  assert {d.split("/device:")[-1] for d in strategy.extended.worker_devices} == {
    d.name.split("/device:")[-1] for d in cpus
  }


def test_bucket_by_length_groups_similar_lengths_and_cuts_only_padding():
  rng = np.random.default_rng(3)
  lengths = rng.integers(0, 9, size=50)  # max_length 8; 0 = an empty review
  tokens = np.zeros((50, 8), np.int64)
  for i, n in enumerate(lengths):
    tokens[i, :n] = rng.integers(1, 30, size=n)
  labels = np.arange(50, dtype=np.float32).reshape(-1, 1)  # identifies each example
  dataset = tf.data.Dataset.from_tensor_slices(({"tokens": tokens}, labels))
  batches = list(inputs.bucket_by_length(dataset, batch_size=4, max_length=8, buckets=4))
  seen = []
  for x, y in batches:
    batch_tokens, ids = x["tokens"].numpy(), y.numpy()[:, 0].astype(int)
    width = batch_tokens.shape[1]
    batch_lengths = lengths[ids]
    assert width in (2, 4, 6, 8) and width == max(2, -(-batch_lengths.max() // 2) * 2)
    # One bucket per batch: lengths 0..2, 3..4, 5..6, 7..8.
    assert len({max(0, (n - 1)) // 2 for n in batch_lengths}) == 1, batch_lengths
    assert len(ids) <= 4
    np.testing.assert_array_equal(batch_tokens, tokens[ids, :width])  # padding cut only
    assert np.all(tokens[ids, width:] == 0)
    seen.extend(ids)
  assert sorted(seen) == list(range(50))  # every example exactly once


def _write_span(examples_uri: str, rows: np.ndarray, label: int) -> str:
  """Writes ``rows`` (int64 [n, max_length]) with ``label`` as a transformed Examples
  artifact's train split (one GZIP TFRecord file, as Transform writes a small split);
  returns the split's file pattern, as ``FnArgs.train_files`` holds it."""
  split_dir = os.path.join(examples_uri, "Split-train")
  os.makedirs(split_dir)
  path = os.path.join(split_dir, "transformed_examples-00000-of-00001.gz")
  with tf.io.TFRecordWriter(path, tf.io.TFRecordOptions(compression_type="GZIP")) as writer:
    for tokens in rows:
      feature = {
        "tokens": tf.train.Feature(int64_list=tf.train.Int64List(value=tokens.tolist())),
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
      }
      writer.write(
        tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()
      )
  return os.path.join(split_dir, "*")


def _transformed_graph(graph_dir, max_length: int):
  """A TFTransformOutput whose transformed schema is Transform's (tokens, label)."""
  import tensorflow_transform as tft
  from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io, schema_utils

  spec = {
    "tokens": tf.io.FixedLenFeature([max_length], tf.int64),
    "label": tf.io.FixedLenFeature([], tf.int64),
  }
  metadata_io.write_metadata(
    dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(spec)),
    str(graph_dir / tft.TFTransformOutput.TRANSFORMED_METADATA_DIR),
  )
  return tft.TFTransformOutput(str(graph_dir))


def _examples(uri: str):
  """An Examples artifact at ``uri`` holding tf.train.Example records."""
  from tfx.components.util import examples_utils
  from tfx.proto import example_gen_pb2
  from tfx.types import standard_artifacts

  artifact = standard_artifacts.Examples()
  artifact.uri = uri
  examples_utils.set_payload_format(artifact, example_gen_pb2.FORMAT_TF_EXAMPLE)
  return artifact


def _accessor(artifacts):
  """The Trainer's DataAccessor for the Examples ``artifacts``."""
  from tfx.components.trainer.fn_args_utils import DataAccessor
  from tfx.components.util import tfxio_utils

  return DataAccessor(
    tf_dataset_factory=tfxio_utils.get_tf_dataset_factory_from_artifact(artifacts, []),
    record_batch_factory=None,
    data_view_decode_fn=None,
  )


def test_mixed_dataset_samples_reviews_by_weight_and_buckets_them_once(tmp_path):
  max_length = 8
  graph = _transformed_graph(tmp_path / "graph", max_length)
  rng = np.random.default_rng(5)

  def reviews(n):
    rows = np.zeros((n, max_length), np.int64)
    for i, length in enumerate(rng.integers(1, max_length + 1, size=n)):
      rows[i, :length] = rng.integers(1, 50, size=length)
    return rows

  # The newest span's reviews are all positive, the older spans' all negative, so a
  # label tells which group a review came from.
  newest, older = reviews(60), np.concatenate([reviews(100), reviews(140)])
  artifacts, patterns = [], []
  for name, rows, label in (("old1", older[:100], 0), ("old2", older[100:], 0), ("new", newest, 1)):
    artifact = _examples(str(tmp_path / name))
    artifacts.append(artifact)
    patterns.append(_write_span(artifact.uri, rows, label))
  accessor = _accessor(artifacts)
  # All 60 newest reviews and 120 of the 240 older ones per 180: a third positive.
  groups = [(patterns[2:], 60), (patterns[:2], 120)]

  def batches(count):
    dataset = inputs.make_mixed_dataset(
      groups,
      accessor,
      graph,
      batch_size=6,
      seed=11,
      length_buckets=4,
      max_length=max_length,
    )
    return [(x["tokens"].numpy(), y.numpy()[:, 0]) for x, y in dataset.take(count)]

  drawn = batches(150)
  labels = np.concatenate([y for _, y in drawn])
  assert len(labels) == 900
  assert abs(labels.mean() - 1 / 3) < 0.06  # binomial sd 0.016
  # Batches mix the groups (not one group per batch).
  assert sum(0 < y.mean() < 1 for _, y in drawn) > 50
  rows = {1: {tuple(r) for r in newest}, 0: {tuple(r) for r in older}}
  for tokens, y in drawn:
    width = tokens.shape[1]
    lengths = (tokens > 0).sum(axis=1)
    # One length bucket per batch (widths 2, 4, 6, 8), cut to its longest review.
    assert width == max(2, -(-lengths.max() // 2) * 2)
    assert len({(n - 1) // 2 for n in lengths}) == 1, lengths
    for row, label in zip(tokens, y):
      padded = tuple(np.pad(row, (0, max_length - width)))
      assert padded in rows[int(label)]  # each review is one of its group's, unchanged
  # Seeded: the same batches again.
  for (a, y_a), (b, y_b) in zip(drawn[:20], batches(20)):
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(y_a, y_b)
  with pytest.raises(ValueError, match="weight > 0"):
    inputs.make_mixed_dataset(
      [(patterns[2:], 60), (patterns[:2], 0)],
      accessor,
      graph,
      batch_size=6,
      seed=11,
    )


def test_mixed_dataset_samples_views_beside_the_reviews_by_weight(tmp_path):
  max_length = 8
  graph = _transformed_graph(tmp_path / "graph", max_length)
  rng = np.random.default_rng(7)
  reviews = np.zeros((80, max_length), np.int64)
  for i, length in enumerate(rng.integers(3, max_length + 1, size=80)):
    reviews[i, :length] = rng.integers(1, 50, size=length)
  artifact = _examples(str(tmp_path / "span"))
  pattern = _write_span(artifact.uri, reviews, label=0)
  accessor = _accessor([artifact])
  # Views of two tokens from ids the reviews never use, all labelled positive.
  views = np.array([[60 + i, 70 + i] for i in range(10)], np.int64)
  dataset = inputs.make_mixed_dataset(
    [([pattern], 1.0)],
    accessor,
    graph,
    batch_size=6,
    seed=3,
    length_buckets=4,
    max_length=max_length,
    views=(inputs.views_dataset(views, np.ones(10), max_length, seed=3), 0.5),
  )
  drawn = [(x["tokens"].numpy(), y.numpy()[:, 0]) for x, y in dataset.take(150)]
  labels = np.concatenate([y for _, y in drawn])
  assert abs(labels.mean() - 1 / 3) < 0.06  # weight 0.5 beside 1.0; binomial sd 0.016
  known_views = {tuple(v) for v in views}
  for tokens, y in drawn:
    for row, label in zip(tokens, y):
      real = tuple(int(t) for t in row if t)
      assert (real in known_views) == (label == 1)  # a view is one of the given, unchanged
  with pytest.raises(ValueError, match="weight > 0"):
    inputs.make_mixed_dataset(
      [([pattern], 1.0)],
      accessor,
      graph,
      batch_size=6,
      seed=3,
      views=(inputs.views_dataset(views, np.ones(10), max_length, seed=3), 0.0),
    )
