"""Unit tests of models.naive_bayes (the NB-weighted wide path, hp.nb_wide) against NumPy
references on small fixed inputs, and of its place in the model and the Trainer."""

import dataclasses
import itertools

import numpy as np
import pytest
import tensorflow as tf

from core import features
from models import layers, naive_bayes, trainer
from models import model as model_lib
from models.hparams import HParams

INPUT_DIM, BUCKETS = 10, 13
TOKENS = np.array(
  [
    [3, 7, 3, 7, 2, 0],  # bigrams (3,7) twice, (7,3), (7,2)
    [5, 5, 0, 0, 0, 0],  # token 5 twice, bigram (5,5)
    [2, 9, 0, 0, 0, 0],
    [0, 0, 0, 0, 0, 0],
  ],  # empty review
  np.int64,
)
LABELS = np.array([1, 0, 1, 0])


def _np_feature_sets(tokens, input_dim, buckets):
  """Each row's set of feature ids: its tokens, and input_dim + each bigram's bucket."""
  sets = []
  for row in tokens:
    real = [int(t) for t in row if t != 0]
    bigrams = (
      {
        input_dim + int(((a * input_dim + b) * 2654435761 % 2**32) % buckets)
        for a, b in itertools.pairwise(real)
      }
      if buckets
      else set()
    )
    sets.append(set(real) | bigrams)
  return sets


def _np_ratios(tokens, labels, input_dim, buckets, alpha=1.0):
  total = input_dim + buckets
  p, q = np.full(total, alpha), np.full(total, alpha)
  seen = np.zeros(total, bool)
  for ids, label in zip(_np_feature_sets(tokens, input_dim, buckets), labels):
    for f in ids:
      (p if label == 1 else q)[f] += 1
      seen[f] = True
  r = np.log(p / p.sum()) - np.log(q / q.sum())
  r[~seen] = 0.0
  return r


def _dataset(tokens=TOKENS, labels=LABELS, batch=3):
  return tf.data.Dataset.from_tensor_slices(
    ({features.TOKENS_KEY: tokens}, labels.reshape(-1, 1).astype(np.float32))
  ).batch(batch)


@pytest.mark.parametrize("buckets", [BUCKETS, 0])
def test_present_features_are_each_rows_distinct_tokens_and_bigrams(buckets):
  ids, present = naive_bayes.present_features(tf.constant(TOKENS), INPUT_DIM, buckets)
  ids, present = ids.numpy(), present.numpy()
  assert ids.shape == present.shape == (4, 12 if buckets else 6)
  for row, expected in enumerate(_np_feature_sets(TOKENS, INPUT_DIM, buckets)):
    kept = ids[row][present[row]]
    assert sorted(kept.tolist()) == sorted(expected)  # each feature once
  assert not present[3].any()


def test_bigram_features_use_the_bigram_embeddings_buckets():
  buckets, has_bigram = layers.bigram_buckets(tf.constant(TOKENS), INPUT_DIM, BUCKETS)
  embedding = layers.HashedBigramEmbedding(INPUT_DIM, BUCKETS, 4)
  np.testing.assert_array_equal(buckets.numpy(), embedding.bucket_ids(tf.constant(TOKENS)))
  np.testing.assert_array_equal(has_bigram.numpy()[0], [True] * 4 + [False] * 2)


@pytest.mark.parametrize("buckets", [BUCKETS, 0])
def test_log_count_ratios_match_wang_and_manning(buckets):
  ratios = naive_bayes.log_count_ratios(_dataset(), INPUT_DIM, buckets)
  assert ratios.dtype == np.float32 and ratios.shape == (INPUT_DIM + buckets,)
  np.testing.assert_allclose(
    ratios, _np_ratios(TOKENS, LABELS, INPUT_DIM, buckets), rtol=1e-6, atol=1e-6
  )
  # Token 2 is in both positive reviews, token 5 (twice) in one negative review.
  assert ratios[2] > ratios[3] > 0 > ratios[5]
  assert ratios[0] == ratios[1] == 0.0  # padding; never seen


def test_log_count_ratios_refuse_bad_labels_and_alpha():
  with pytest.raises(ValueError, match="labels 0 or 1"):
    naive_bayes.log_count_ratios(_dataset(labels=np.array([1, 0, 2, 0])), INPUT_DIM, 0)
  with pytest.raises(ValueError, match="alpha must be > 0"):
    naive_bayes.log_count_ratios(_dataset(), INPUT_DIM, 0, alpha=0.0)


def test_naive_bayes_logit_sums_ratio_times_weight_over_distinct_features():
  layer = naive_bayes.NaiveBayesLogit(INPUT_DIM, BUCKETS)
  np.testing.assert_array_equal(layer(tf.constant(TOKENS)).numpy(), np.zeros((4, 1)))
  rng = np.random.default_rng(0)
  ratios = rng.normal(size=INPUT_DIM + BUCKETS).astype(np.float32)
  weights = rng.normal(size=INPUT_DIM + BUCKETS).astype(np.float32)
  layer.set_ratios(ratios)
  layer.weights_.assign(weights)
  layer.bias.assign([0.25])
  expected = [
    0.25 + sum(ratios[f] * weights[f] for f in ids)
    for ids in _np_feature_sets(TOKENS, INPUT_DIM, BUCKETS)
  ]
  out = layer(tf.constant(TOKENS)).numpy()
  assert out.dtype == np.float32 and out.shape == (4, 1)
  np.testing.assert_allclose(out[:, 0], expected, rtol=1e-5)
  assert out[3, 0] == pytest.approx(0.25)  # an empty review: the bias alone
  assert [w.name.split("/")[-1] for w in layer.trainable_weights] == ["weights:0", "bias:0"]


def test_naive_bayes_logit_config_round_trip_and_errors():
  layer = naive_bayes.NaiveBayesLogit(INPUT_DIM, BUCKETS, name="nb")
  clone = naive_bayes.NaiveBayesLogit.from_config(layer.get_config())
  assert (clone.input_dim, clone.bigram_buckets, clone.num_features) == (10, 13, 23)
  layer(tf.constant(TOKENS))
  with pytest.raises(ValueError, match=r"shape \(23,\)"):
    layer.set_ratios(np.zeros(22))
  with pytest.raises(ValueError, match="input_dim >= 2"):
    naive_bayes.NaiveBayesLogit(1, 0)


HP = HParams(
  vocab_size=7,
  num_oov_buckets=2,
  max_length=6,
  embedding_dim=8,
  lstm_units=4,
  dense_units=4,
  bigram_buckets=BUCKETS,
  nb_wide=True,
  dropout=0.0,
  embedding_dropout=0.0,
  learning_rate=0.05,
  lr_decay=1.0,
  batch_size=4,
)


def test_served_probability_starts_as_sigmoid_of_the_mean_of_both_logits():
  model, explain_model = model_lib.build(HP)
  assert HP.embedding_input_dim == INPUT_DIM
  # The trained model is the attention model alone: no naive-Bayes weight in it.
  assert model.output.name.startswith("deep_probabilities")
  assert not any("naive_bayes" in w.name for w in model.weights)
  wide_model = model_lib.naive_bayes_model(explain_model, HP)
  trainer.set_naive_bayes_ratios(wide_model, HP, _dataset())
  wide = explain_model.get_layer(model_lib.NAIVE_BAYES_LAYER)
  np.testing.assert_allclose(
    wide.ratios.numpy(), _np_ratios(TOKENS, LABELS, INPUT_DIM, BUCKETS), atol=1e-6
  )
  wide.weights_.assign(np.ones(INPUT_DIM + BUCKETS, np.float32))
  deep_probabilities = model.predict(TOKENS, verbose=0)
  wide_probabilities = wide_model.predict(TOKENS, verbose=0)
  probabilities, weights = explain_model.predict(TOKENS, verbose=0)
  logit = lambda p: np.log(p / (1 - p))
  np.testing.assert_allclose(
    logit(probabilities),
    (logit(deep_probabilities) + logit(wide_probabilities)) / 2,
    rtol=1e-4,
    atol=1e-5,
  )
  # With weights 1 the wide logit is the multinomial-NB-style sum of ratios.
  np.testing.assert_allclose(
    logit(wide_probabilities)[:, 0],
    [
      sum(wide.ratios.numpy()[f] for f in ids)
      for ids in _np_feature_sets(TOKENS, INPUT_DIM, BUCKETS)
    ],
    rtol=1e-4,
    atol=1e-5,
  )
  assert weights.shape == TOKENS.shape


def test_naive_bayes_model_trains_only_the_wide_weights():
  model, explain_model = model_lib.build(HP)
  wide_model = model_lib.naive_bayes_model(explain_model, HP)
  deep_before = [w.copy() for w in model.get_weights()]
  tokens = np.tile(TOKENS[:3], (8, 1))
  labels = np.tile(LABELS[:3], 8).astype(np.float32)
  train = _dataset(tokens, labels, batch=4)
  history = trainer.train_naive_bayes(wide_model, HP, train.repeat(), train, 6, train)
  assert len(history["history"]["loss"]) == HP.nb_epochs
  assert history["history"]["loss"][-1] < 0.5 * history["history"]["loss"][0]
  for before, after in zip(deep_before, model.get_weights()):
    np.testing.assert_array_equal(before, after)
  wide = explain_model.get_layer(model_lib.NAIVE_BAYES_LAYER)
  # Token 2 (positive only) gained weight; an unseen feature (ratio 0) got no gradient.
  assert wide.weights_.numpy()[2] > 0.0
  assert wide.weights_.numpy()[1] == 0.0


def test_naive_bayes_model_needs_nb_wide():
  _, explain_model = model_lib.build(dataclasses.replace(HP, nb_wide=False))
  with pytest.raises(ValueError, match="nb_wide=True"):
    model_lib.naive_bayes_model(explain_model, HP)
