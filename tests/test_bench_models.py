"""The model benchmark's parts: the throughput callback, the plain-Keras reference, and the
aggregation of runs into means, standard deviations and targets."""

import json

import numpy as np
import pytest
import tf_keras as keras

from analysis import bench_models
from models import throughput
from models.hparams import HParams


def _run(model, seed, accuracy, speed=100.0):
  return {
    "model": model,
    "seed": seed,
    "test_accuracy": accuracy,
    "mean_seconds_per_epoch": 10.0 + seed,
    "examples_per_second": speed,
    "parameters": 1000,
    "export_bytes": 5000,
    "epochs": 3,
  }


def test_aggregate_means_stds_best_model_and_targets():
  runs = [
    _run("lstm_attention", 1, 0.88, 100.0),
    _run("lstm_attention", 2, 0.89, 120.0),
    _run("multi_head", 1, 0.905),
    _run("multi_head", 2, 0.899),
  ]
  result = bench_models.aggregate(runs, {"examples_per_second": 100.0})
  lstm = result["models"]["lstm_attention"]
  assert lstm["seeds"] == [1, 2]
  assert lstm["test_accuracy"]["mean"] == pytest.approx(0.885)
  assert lstm["test_accuracy"]["std"] == pytest.approx(np.std([0.88, 0.89], ddof=1))
  assert lstm["seconds_per_epoch"]["mean"] == pytest.approx(11.5)
  assert result["best_model"] == "multi_head"
  targets = result["targets"]
  assert targets["lstm_attention_accuracy"] == {
    "target": 0.885,
    "value": pytest.approx(0.885),
    "met": True,
  }
  assert targets["best_accuracy"]["value"] == pytest.approx(0.902)
  assert targets["best_accuracy"]["met"] is True
  assert targets["throughput_ratio"]["value"] == pytest.approx(1.1)
  assert targets["throughput_ratio"]["met"] is True
  json.dumps(result)  # JSON-able


def test_aggregate_with_one_seed_and_no_reference_marks_targets_unknown():
  result = bench_models.aggregate([_run("multi_head", 1, 0.85)], None)
  assert result["models"]["multi_head"]["test_accuracy"] == {"mean": 0.85, "std": 0.0}
  assert result["targets"]["lstm_attention_accuracy"]["met"] is None
  assert result["targets"]["throughput_ratio"]["met"] is None
  assert result["targets"]["best_accuracy"]["met"] is False


def _recorded_run(model, seed, **hparams):
  return {
    "model": model,
    "seed": seed,
    "hparams": HParams(model=model, seed=seed, **hparams).to_custom_config()["hparams"],
  }


def test_reusable_runs_match_model_seed_and_every_hyperparameter():
  overrides = {"nb_wide": True}
  same = _recorded_run("lstm_attention", 1, nb_wide=True)
  changed = _recorded_run("lstm_attention", 2, nb_wide=True, bigram_dropout=0.5)
  without_override = _recorded_run("multi_head", 1)
  other_epochs = _recorded_run("multi_head", 2, nb_wide=True, epochs=5)
  unrecorded = {"model": "multi_head", "seed": 3}
  retired_model = {**_recorded_run("lstm_attention", 4, nb_wide=True), "model": "cnn"}
  runs = [same, changed, without_override, other_epochs, unrecorded, retired_model]
  assert bench_models.reusable_runs(runs, overrides, epochs=HParams.epochs) == [same]


def test_reusable_runs_keep_models_and_seeds_a_partial_run_does_not_train():
  # `--models multi_head` must not drop the recurrent models' runs from the file.
  runs = [
    _recorded_run("lstm_attention", 42),
    _recorded_run("bilstm_attention", 7),
    _recorded_run("multi_head", 1234),
  ]
  assert bench_models.reusable_runs(runs, {}, epochs=HParams.epochs) == runs


def test_directory_bytes(tmp_path):
  (tmp_path / "a").write_bytes(b"x" * 10)
  (tmp_path / "sub").mkdir()
  (tmp_path / "sub" / "b").write_bytes(b"y" * 5)
  assert bench_models.directory_bytes(str(tmp_path)) == 15


def test_throughput_callback_counts_steady_steps_and_epochs(tmp_path):
  model = keras.Sequential([keras.layers.Dense(1, input_shape=(3,))])
  model.compile("sgd", "mse")
  x, y = np.ones((40, 3), np.float32), np.ones((40, 1), np.float32)
  speed = throughput.ThroughputCallback(global_batch_size=4, warmup_steps=3)
  history = model.fit(
    x, y, batch_size=4, epochs=2, validation_data=(x, y), verbose=0, callbacks=[speed]
  )
  # 10 steps per epoch; the clock starts after step 3 and restarts at each epoch's first
  # step: epoch 1 times steps 5..10 (6), epoch 2 steps 12..20 (9).
  assert speed.steady_steps == 15
  assert len(speed.epoch_seconds) == 2 and all(s > 0 for s in speed.epoch_seconds)
  assert speed.examples_per_second == pytest.approx(15 * 4 / speed.steady_seconds)
  summary = speed.summary(history.history, model="m")
  assert summary["epochs"] == 2 and summary["model"] == "m"
  assert set(summary["history"]) == {"loss", "val_loss"}
  path = throughput.write_summary(str(tmp_path / "run"), summary)
  assert path.endswith("training_summary.json")
  assert throughput.read_summary(str(tmp_path / "run")) == json.loads(json.dumps(summary))
  with pytest.raises(FileNotFoundError, match="training_summary.json"):
    throughput.read_summary(str(tmp_path))


def test_throughput_before_training_is_none():
  assert throughput.ThroughputCallback(8).examples_per_second is None


def test_plain_keras_reference_trains_the_same_model_on_tfds(tfds_data_dir):
  from analysis.keras_reference import train_reference

  hp = HParams(
    vocab_size=200, max_length=16, embedding_dim=8, lstm_units=4, dense_units=4, batch_size=8
  )
  result = train_reference(hp, split="train[:80]", tfds_data_dir=tfds_data_dir, steps=8)
  assert result["model"] == "lstm_attention" and result["epochs"] == 1
  assert result["steady_steps"] == 8 - 5 - 1  # 5 warm-up steps, the clock starts after
  assert result["examples_per_second"] > 0
  assert result["parameters"] == bench_models_parameters(hp)
  assert len(result["history"]["loss"]) == 1 and np.isfinite(result["history"]["loss"][0])


def bench_models_parameters(hp):
  from models import model as model_lib

  return model_lib.build(hp)[0].count_params()


def test_aggregate_averages_the_halves_and_checks_the_best_ensemble_beats_them():
  def nb_run(model, seed, accuracy, attention, naive_bayes):
    return {
      **_run(model, seed, accuracy),
      "halves_test_accuracy": {
        "attention": attention,
        "naive_bayes": naive_bayes,
        "mean": 0.5,
        "stacked": accuracy,
        "served": accuracy,
      },
    }

  runs = [
    nb_run("lstm_attention", 1, 0.912, 0.89, 0.908),
    nb_run("lstm_attention", 2, 0.914, 0.894, 0.910),
  ]
  result = bench_models.aggregate(runs, None)
  halves = result["models"]["lstm_attention"]["halves_test_accuracy"]
  assert set(halves) == {"attention", "naive_bayes"}
  assert halves["naive_bayes"]["mean"] == pytest.approx(0.909)
  assert halves["attention"]["std"] == pytest.approx(np.std([0.89, 0.894], ddof=1))
  beats = result["targets"]["best_model_beats_its_halves"]
  assert beats["value"] == pytest.approx(0.913 - 0.909) and beats["met"] is True
  worse = bench_models.aggregate([nb_run("lstm_attention", 1, 0.905, 0.89, 0.909)], None)
  assert worse["targets"]["best_model_beats_its_halves"]["met"] is False
  assert worse["targets"]["best_accuracy"]["met"] is True  # 0.905 >= 0.90 on its own
  # Without nb_wide there is no halves target.
  assert (
    "best_model_beats_its_halves"
    not in bench_models.aggregate([_run("lstm_attention", 1, 0.89)], None)["targets"]
  )
