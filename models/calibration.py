"""Temperature scaling of the served probabilities, and the expected calibration error.

Temperature scaling (Guo, Pleiss, Sun & Weinberger 2017, "On Calibration of Modern Neural
Networks", ICML, sec. 4.2) divides the model's logit z by one scalar T > 0 fitted on held-out
data by minimizing the negative log-likelihood: p = sigmoid(z / T). T > 1 softens an
overconfident model; the sign of z, so every predicted label and the accuracy, is unchanged.
The Trainer fits T on the eval split after training (``fit_temperature``), and the export
applies it inside every signature (``apply_temperature``), so the probabilities that TF
Serving, the Evaluator and ``predict_text`` return are the calibrated ones.

The fit is scipy's bounded scalar minimizer over log T (a one-parameter convex problem in
1/T; nothing of ours to maintain). The logit is recovered from the float32 probability the
model returns, clipped to [``EPSILON``, 1 - ``EPSILON``] (|z| <= 16.1), so the fit and the
export see the same z.
"""

import dataclasses

import numpy as np
import tensorflow as tf
from scipy import optimize

# Probabilities are clipped to [EPSILON, 1 - EPSILON] before taking the logit: float32
# resolves 1 - p down to about 6e-8, so a larger logit cannot be recovered anyway.
EPSILON = 1e-7
# Guo et al. 2017's number of equal-width confidence bins.
ECE_BINS = 15
# The search interval of T (log-space): wider than any fitted value seen, bounded so a
# separable eval split cannot push it to 0 or infinity.
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.05, 100.0


@dataclasses.dataclass(frozen=True)
class TemperatureFit:
  """A fitted temperature and what it did on the data it was fitted on.

  Attributes:
    temperature: T > 0 (1.0 when nothing was fitted).
    fitted: False when the labels had one class only or there were none (T = 1 kept).
    examples: reviews the fit saw.
    nll_before, nll_after: mean negative log-likelihood (nats per review) at T = 1 and at
      the fitted T.
    ece_before, ece_after: ``expected_calibration_error`` at T = 1 and at the fitted T.
  """

  temperature: float
  fitted: bool
  examples: int
  nll_before: float
  nll_after: float
  ece_before: float
  ece_after: float

  def as_dict(self) -> dict:
    """JSON-able fields (for ``training_summary.json``)."""
    return dataclasses.asdict(self)


def logits(probabilities: np.ndarray) -> np.ndarray:
  """log(p / (1 - p)) of float probabilities, clipped to [EPSILON, 1 - EPSILON]; float64."""
  p = np.clip(np.asarray(probabilities, np.float64), EPSILON, 1 - EPSILON)
  return np.log(p) - np.log1p(-p)


def scale(probabilities: np.ndarray, temperature: float) -> np.ndarray:
  """sigmoid(logit(p) / T) in NumPy (float64, same shape)."""
  return 1.0 / (1.0 + np.exp(-logits(probabilities) / temperature))


def negative_log_likelihood(probabilities: np.ndarray, labels: np.ndarray) -> float:
  """Mean binary cross-entropy in nats of p(positive) against 0/1 labels."""
  p = np.clip(np.asarray(probabilities, np.float64), EPSILON, 1 - EPSILON)
  y = np.asarray(labels, np.float64)
  return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def expected_calibration_error(
  probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS
) -> float:
  """Expected calibration error of a binary classifier (Guo et al. 2017, eq. 3).

  Each review's confidence is that of its predicted label, max(p, 1 - p) (label 1 when
  p >= 0.5); reviews are binned by confidence into ``bins`` equal-width bins of [0, 1]
  (right-closed, as Guo et al.'s), and ECE = sum over bins of (n_bin / n) * |accuracy_bin -
  mean confidence_bin|.

  Args:
    probabilities: p(positive), float [n].
    labels: 0/1 int [n].
    bins: number of bins, >= 1.

  Returns:
    the ECE in [0, 1]; 0.0 for no reviews.

  Raises:
    ValueError: shapes differ, or ``bins`` < 1.
  """
  p = np.asarray(probabilities, np.float64).reshape(-1)
  y = np.asarray(labels).reshape(-1)
  if p.shape != y.shape:
    raise ValueError(f"{p.shape[0]} probabilities but {y.shape[0]} labels")
  if bins < 1:
    raise ValueError(f"bins must be >= 1, got {bins}")
  if not p.size:
    return 0.0
  predicted = (p >= 0.5).astype(y.dtype)
  confidence = np.where(predicted == 1, p, 1 - p)
  correct = (predicted == y).astype(np.float64)
  # Bin b holds confidences in (b / bins, (b + 1) / bins]; 0 lands in bin 0.
  index = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
  total = 0.0
  for b in np.unique(index):
    members = index == b
    total += members.sum() * abs(correct[members].mean() - confidence[members].mean())
  return float(total / p.size)


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray) -> TemperatureFit:
  """The T minimizing the NLL of sigmoid(logit(p) / T) on ``labels`` (module docstring).

  Args:
    probabilities: the uncalibrated p(positive), float [n].
    labels: 0/1 int [n].

  Returns:
    the ``TemperatureFit``; T = 1 (``fitted`` False) when the labels hold one class or
    none, where the NLL falls without bound as T -> 0 and no temperature is meaningful.

  Raises:
    ValueError: shapes differ.
  """
  p = np.asarray(probabilities, np.float64).reshape(-1)
  y = np.asarray(labels).reshape(-1)
  if p.shape != y.shape:
    raise ValueError(f"{p.shape[0]} probabilities but {y.shape[0]} labels")
  nll_before = negative_log_likelihood(p, y) if p.size else 0.0
  ece_before = expected_calibration_error(p, y)
  if len(np.unique(y)) < 2:
    return TemperatureFit(1.0, False, int(p.size), nll_before, nll_before, ece_before, ece_before)
  result = optimize.minimize_scalar(
    lambda log_t: negative_log_likelihood(scale(p, float(np.exp(log_t))), y),
    bounds=(np.log(MIN_TEMPERATURE), np.log(MAX_TEMPERATURE)),
    method="bounded",
    options={"xatol": 1e-6},
  )
  temperature = float(np.exp(result.x))
  calibrated = scale(p, temperature)
  return TemperatureFit(
    temperature=temperature,
    fitted=True,
    examples=int(p.size),
    nll_before=nll_before,
    nll_after=negative_log_likelihood(calibrated, y),
    ece_before=ece_before,
    ece_after=expected_calibration_error(calibrated, y),
  )


def apply_temperature(probabilities: tf.Tensor, temperature: float) -> tf.Tensor:
  """sigmoid(logit(p) / T) in TensorFlow, for the exported signatures.

  Args:
    probabilities: float32 p(positive) of any shape.
    temperature: T > 0; 1.0 returns ``probabilities`` unchanged (no ops added).

  Returns:
    float32 tensor of the same shape.
  """
  if temperature == 1.0:
    return probabilities
  # In float64, as ``scale`` (the fit): float32 cannot hold 1 - EPSILON.
  p = tf.clip_by_value(tf.cast(probabilities, tf.float64), EPSILON, 1 - EPSILON)
  logit = tf.math.log(p) - tf.math.log1p(-p)
  return tf.cast(tf.sigmoid(logit / temperature), tf.float32)
