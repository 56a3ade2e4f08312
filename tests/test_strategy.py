"""models.strategy: which tf.distribute strategy each name gives on this (CPU) machine."""

import pytest
import tensorflow as tf

from models import strategy as strategy_lib
from models.trainer import count_records


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
