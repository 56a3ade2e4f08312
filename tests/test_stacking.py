"""Unit tests of models.stacking (the nb_wide combination fitted on eval): the fit on
synthetic logits with known answers, its errors, and its place in the model and Trainer."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from core import features
from models import model as model_lib
from models import stacking, trainer
from models.hparams import HParams

HP = HParams(
  vocab_size=7,
  num_oov_buckets=2,
  max_length=6,
  embedding_dim=8,
  lstm_units=4,
  dense_units=4,
  bigram_buckets=13,
  nb_wide=True,
  dropout=0.0,
  embedding_dropout=0.0,
  learning_rate=0.05,
  lr_decay=1.0,
  batch_size=4,
)
TOKENS = np.array(
  [
    [3, 7, 3, 7, 2, 0],
    [5, 5, 0, 0, 0, 0],
    [2, 9, 0, 0, 0, 0],
    [4, 1, 6, 0, 0, 0],
    [8, 8, 8, 2, 0, 0],
    [0, 0, 0, 0, 0, 0],
  ],
  np.int64,
)
LABELS = np.array([1, 0, 1, 0, 1, 0])


def _synthetic(n, attention_weight, naive_bayes_weight, intercept, seed=0):
  rng = np.random.default_rng(seed)
  logits = rng.normal(0.0, 2.0, size=(n, 2))
  z = logits @ [attention_weight, naive_bayes_weight] + intercept
  labels = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(np.int64)
  return logits, labels


def test_fit_recovers_the_logistic_weights_that_generated_the_labels():
  logits, labels = _synthetic(20000, 0.3, 1.2, -0.4)
  fit = stacking.fit_stacking(logits, labels)
  assert fit.fitted and fit.eval_examples == 20000
  assert fit.attention_weight == pytest.approx(0.3, abs=0.05)
  assert fit.naive_bayes_weight == pytest.approx(1.2, abs=0.08)
  assert fit.intercept == pytest.approx(-0.4, abs=0.08)
  assert fit.stacked_cv_accuracy == pytest.approx(fit.eval_accuracy["stacked"], abs=0.01)


def test_accuracies_and_the_stacking_beating_a_mean_swamped_by_an_overconfident_half():
  rng = np.random.default_rng(1)
  labels = rng.integers(0, 2, 3000)
  signal = np.where(labels == 1, 1.0, -1.0) + rng.normal(0.0, 0.8, 3000)
  noise = rng.normal(0.0, 20.0, 3000)  # overconfident and uninformative
  logits = np.stack([noise, signal], axis=1)
  fit = stacking.fit_stacking(logits, labels)
  acc = lambda z: np.mean((z > 0) == (labels == 1))
  assert fit.eval_accuracy["attention"] == pytest.approx(acc(noise))
  assert fit.eval_accuracy["naive_bayes"] == pytest.approx(acc(signal))
  assert fit.eval_accuracy["mean"] == pytest.approx(acc(noise + signal))
  assert fit.eval_accuracy["stacked"] == pytest.approx(
    acc(logits @ [fit.attention_weight, fit.naive_bayes_weight] + fit.intercept)
  )
  assert fit.eval_accuracy["mean"] < 0.65 < 0.85 < fit.eval_accuracy["stacked"]
  assert abs(fit.attention_weight) < 0.02 < 1.0 < fit.naive_bayes_weight


def test_one_class_keeps_the_mean_and_small_classes_get_no_cross_validation():
  logits = np.array([[1.0, 2.0], [-3.0, 1.0], [0.5, -0.2]])
  fit = stacking.fit_stacking(logits, np.array([1, 1, 1]))
  assert not fit.fitted
  assert (fit.attention_weight, fit.naive_bayes_weight, fit.intercept) == (0.5, 0.5, 0.0)
  assert fit.eval_accuracy["stacked"] == fit.eval_accuracy["mean"] == pytest.approx(2 / 3)
  assert fit.stacked_cv_accuracy is None
  fit = stacking.fit_stacking(logits, np.array([1, 0, 1]))
  assert fit.fitted and fit.stacked_cv_accuracy is None  # 1 negative < CV_FOLDS


@pytest.mark.parametrize(
  "logits,labels,c,match",
  [
    (np.zeros((3, 3)), np.zeros(3, np.int64), 1.0, r"logits \[n, 2\]"),
    (np.zeros((3, 2)), np.zeros(2, np.int64), 1.0, r"labels \[n\]"),
    (np.zeros((0, 2)), np.zeros(0, np.int64), 1.0, "no eval reviews"),
    (np.zeros((3, 2)), np.array([0, 1, 2]), 1.0, "0 or 1"),
    (np.zeros((2, 2)), np.array([0, 1]), 0.0, "c must be > 0"),
  ],
)
def test_fit_errors(logits, labels, c, match):
  with pytest.raises(ValueError, match=match):
    stacking.fit_stacking(logits, labels, c)


def _dataset(batch=4):
  return tf.data.Dataset.from_tensor_slices(
    ({features.TOKENS_KEY: TOKENS}, LABELS.reshape(-1, 1).astype(np.float32))
  ).batch(batch)


def test_half_logits_are_the_attention_and_naive_bayes_logits_and_set_stacking_serves_them():
  model, explain_model = model_lib.build(HP)
  wide = explain_model.get_layer(model_lib.NAIVE_BAYES_LAYER)
  wide.set_ratios(np.linspace(-1.0, 1.0, wide.num_features))
  wide.weights_.assign(np.full(wide.num_features, 0.5, np.float32))
  logits, labels = stacking.half_logits(explain_model, _dataset())
  assert logits.shape == (6, 2) and logits.dtype == np.float64
  np.testing.assert_array_equal(labels, LABELS)
  deep = model.predict(TOKENS, verbose=0)[:, 0]
  np.testing.assert_allclose(logits[:, 0], np.log(deep / (1 - deep)), rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(logits[:, 1], wide(tf.constant(TOKENS)).numpy()[:, 0], rtol=1e-6)
  fit = dataclasses.replace(
    stacking.fit_stacking(logits, labels),
    attention_weight=0.25,
    naive_bayes_weight=1.5,
    intercept=-0.1,
  )
  stacking.set_stacking(explain_model, fit)
  probabilities, _ = explain_model(TOKENS, training=False)
  expected = 1 / (1 + np.exp(-(logits @ [0.25, 1.5] - 0.1)))
  np.testing.assert_allclose(probabilities.numpy()[:, 0], expected, rtol=1e-5)


def test_stacking_is_not_trained_by_either_half():
  model, explain_model = model_lib.build(HP)
  layer = explain_model.get_layer(model_lib.STACKING_LAYER)
  assert not layer.trainable_weights
  wide_model = model_lib.naive_bayes_model(explain_model, HP)
  trainer.train_naive_bayes(wide_model, HP, _dataset().repeat(), _dataset(), 2, _dataset())
  model.fit(_dataset(), epochs=1, verbose=0)
  kernel, bias = layer.get_weights()
  np.testing.assert_array_equal(kernel, [[0.5], [0.5]])
  np.testing.assert_array_equal(bias, [0.0])


def test_stack_halves_sets_the_fit_and_reports_it():
  _, explain_model = model_lib.build(HP)
  wide = explain_model.get_layer(model_lib.NAIVE_BAYES_LAYER)
  wide.set_ratios(np.linspace(-1.0, 1.0, wide.num_features))
  wide.weights_.assign(np.ones(wide.num_features, np.float32))
  summary = trainer.stack_halves(explain_model, _dataset())
  logits, labels = stacking.half_logits(explain_model, _dataset())
  assert summary == stacking.fit_stacking(logits, labels).as_dict()
  assert summary["fitted"] and summary["eval_examples"] == 6
  kernel, bias = explain_model.get_layer(model_lib.STACKING_LAYER).get_weights()
  np.testing.assert_allclose(
    kernel[:, 0], [summary["attention_weight"], summary["naive_bayes_weight"]], rtol=1e-6
  )
  np.testing.assert_allclose(bias, [summary["intercept"]], rtol=1e-6)


def test_stacking_needs_nb_wide():
  _, explain_model = model_lib.build(dataclasses.replace(HP, nb_wide=False))
  with pytest.raises(ValueError, match="nb_wide=True"):
    stacking.half_logits(explain_model, _dataset())
  fit = stacking.fit_stacking(np.array([[1.0, 1.0], [-1.0, -1.0]]), np.array([1, 0]))
  with pytest.raises(ValueError, match="nb_wide=True"):
    stacking.set_stacking(explain_model, fit)


def test_evaluate_halves_restores_the_export_and_scores_each_half(tmp_path, tfds_data_dir):
  import tiny_model

  from analysis import evaluation
  from models import signatures

  hp = dataclasses.replace(tiny_model.HP, nb_wide=True)
  tf_transform_output = tiny_model.analyze_reviews(str(tmp_path / "transform"), hp)
  _, explain_model = model_lib.build(hp)
  wide = explain_model.get_layer(model_lib.NAIVE_BAYES_LAYER)
  rng = np.random.default_rng(0)
  wide.set_ratios(rng.normal(0.0, 1.0, wide.num_features))
  wide.weights_.assign(rng.normal(0.0, 1.0, wide.num_features).astype(np.float32))
  fit = dataclasses.replace(
    stacking.fit_stacking(np.array([[1.0, 1.0], [-1.0, -1.0]]), np.array([1, 0])),
    attention_weight=0.7,
    naive_bayes_weight=1.3,
    intercept=0.05,
  )
  stacking.set_stacking(explain_model, fit)
  export_dir = str(tmp_path / "model")
  signatures.export_saved_model(explain_model, tf_transform_output, hp, export_dir)

  split = "train[:48]"
  result = evaluation.evaluate_halves(
    export_dir, hp, split=split, tfds_data_dir=tfds_data_dir, batch_size=20
  )
  reviews = evaluation.load_reviews(split, tfds_data_dir)
  transformed = tiny_model.transform_reviews(
    tf_transform_output, [(t.encode(), y) for t, y in reviews]
  )
  logits = stacking.half_logits_model(explain_model)(
    transformed[features.TOKENS_KEY], training=False
  ).numpy()
  labels = np.array([y for _, y in reviews])
  expected = stacking.accuracies(logits, labels, 0.7, 1.3, 0.05)
  assert result["examples"] == 48
  assert result["stacking"] == pytest.approx(
    {"attention_weight": 0.7, "naive_bayes_weight": 1.3, "intercept": 0.05}
  )
  for half in ("attention", "naive_bayes", "mean", "stacked"):
    assert result["accuracy"][half] == pytest.approx(expected[half]), half
  assert result["accuracy"]["served"] == pytest.approx(expected["stacked"])
  # Random halves disagree: the halves' figures are not the ensemble's.
  assert result["accuracy"]["naive_bayes"] != result["accuracy"]["attention"]

  with pytest.raises(ValueError, match="does not hold"):
    evaluation.evaluate_halves(
      export_dir, dataclasses.replace(hp, lstm_units=6), split=split, tfds_data_dir=tfds_data_dir
    )
  with pytest.raises(ValueError, match="nb_wide"):
    evaluation.evaluate_halves(export_dir, tiny_model.HP, split=split, tfds_data_dir=tfds_data_dir)
