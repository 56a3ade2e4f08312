"""Unit tests of models.calibration: the ECE and the temperature fit."""

import numpy as np
import pytest
import tensorflow as tf

from models import calibration


def test_ece_of_a_perfectly_calibrated_bin_is_zero():
  # Ten reviews at p = 0.8, eight of them positive: confidence 0.8, accuracy 0.8.
  p = np.full(10, 0.8)
  y = np.array([1] * 8 + [0] * 2)
  assert calibration.expected_calibration_error(p, y) == pytest.approx(0.0)


def test_ece_weights_each_bin_by_its_share():
  # Bin of 0.95 (4 reviews, all right: gap 0.05) and bin of 0.6 on negatives (p = 0.4,
  # confidence 0.6, 1 right of 4: gap 0.35): ECE = 0.5 * 0.05 + 0.5 * 0.35 = 0.2.
  p = np.array([0.95] * 4 + [0.4] * 4)
  y = np.array([1, 1, 1, 1, 0, 1, 1, 1])
  assert calibration.expected_calibration_error(p, y) == pytest.approx(0.2)


def test_ece_rejects_mismatched_shapes_and_bad_bins():
  with pytest.raises(ValueError, match="3 probabilities but 2 labels"):
    calibration.expected_calibration_error(np.zeros(3), np.zeros(2))
  with pytest.raises(ValueError, match="bins must be >= 1"):
    calibration.expected_calibration_error(np.zeros(3), np.zeros(3), bins=0)


def _overconfident(n=4000, seed=0):
  """Labels drawn from sigmoid(z) and probabilities sigmoid(3 z): a model three times too
  sure of itself, whose right temperature is 3."""
  rng = np.random.default_rng(seed)
  z = rng.normal(0.0, 2.0, n)
  labels = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(np.int64)
  return 1 / (1 + np.exp(-3 * z)), labels


def test_temperature_fit_recovers_the_overconfidence_and_lowers_nll_and_ece():
  p, y = _overconfident()
  fit = calibration.fit_temperature(p, y)
  assert fit.fitted and fit.examples == len(y)
  assert fit.temperature == pytest.approx(3.0, rel=0.1)
  assert fit.nll_after < fit.nll_before
  assert fit.ece_after < fit.ece_before / 2
  # The predicted labels do not change.
  np.testing.assert_array_equal(calibration.scale(p, fit.temperature) >= 0.5, p >= 0.5)


def test_temperature_fit_with_one_class_keeps_t_one():
  fit = calibration.fit_temperature(np.array([0.9, 0.8]), np.array([1, 1]))
  assert not fit.fitted and fit.temperature == 1.0
  assert fit.nll_after == fit.nll_before


def test_apply_temperature_matches_numpy_and_one_is_identity():
  p = np.array([1e-9, 0.1, 0.5, 0.9, 1.0], np.float32)
  got = calibration.apply_temperature(tf.constant(p), 2.5).numpy()
  np.testing.assert_allclose(got, calibration.scale(p, 2.5), rtol=1e-5, atol=1e-6)
  same = tf.constant(p)
  assert calibration.apply_temperature(same, 1.0) is same
