"""Stacking the two halves of an ``nb_wide`` model: a logistic regression on their logits,
fitted on the eval split after both halves are trained.

The served logit is

    z = a * attention_logit + b * naive_bayes_logit + c,

the ``stacking`` layer of ``models.model`` (a Dense(1) on the two logits; before fitting
a = b = 0.5, c = 0: their mean). Stacked generalization (Wolpert 1992, "Stacked
Generalization", Neural Networks 5) fits the combiner on predictions for data the base
models were not trained on, for the reason Platt 1999 ("Probabilistic Outputs for Support
Vector Machines") fits his sigmoid on a held-out set: on their own training data the base
models' scores are biased. The attention model reaches 0.99 train accuracy in its second
epoch, and its logit is overconfident: with the plain mean the ensemble beat its
naive-Bayes half on eval in only 4 of 7 benchmark runs. Both halves' early stopping and
this fit use the eval split; the test split is never seen.

Measured (``make bench-models-nb``, 6 runs of the recurrent models): the stacking beat the
naive-Bayes half on test in 5 runs and tied in one, by +0.0008 on average, where its
cross-validated gain on eval was +0.002 to +0.009 (``multi_head``, one seed: -0.0008 on
test against +0.002 on eval). Eval shares movies with train (TFDS has
no movie ids to split by) and the attention model reads 0.016-0.025 higher on eval than on
test (the naive-Bayes model 0.007-0.011), so eval overrates it and the fit weights it
more than test would.

The fit is scikit-learn's ``LogisticRegression`` (L2, ``C`` = ``STACKING_C``, lbfgs to a
tight tolerance, so that every worker of a multi-worker run, fitting the same logits,
gets the same weights): a three-parameter convex fit with nothing of ours to maintain.
"""

import dataclasses

import numpy as np
import tensorflow as tf
import tf_keras as keras
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

from core import features
from models.model import HALF_LOGITS_LAYER, STACKING_LAYER

# Inverse L2 strength of the stacking fit (scikit-learn's default): on ~2,500 eval
# reviews and three parameters it barely regularizes, but keeps the weights finite when
# the eval split is separable (a tiny one).
STACKING_C = 1.0
# Folds of the cross-validated estimate of the stacked accuracy on eval.
CV_FOLDS = 5


@dataclasses.dataclass(frozen=True)
class StackingFit:
  """A fitted (or, with ``fitted`` False, the unfitted mean) combination of the halves.

  Attributes:
    attention_weight, naive_bayes_weight, intercept: a, b and c of the module docstring.
    fitted: False when the eval labels had one class only (nothing to fit: the mean
      a = b = 0.5, c = 0 is kept).
    eval_examples: reviews the fit saw.
    eval_accuracy: accuracy on those reviews (fraction) of ``attention`` and
      ``naive_bayes`` alone, of their ``mean`` logit and of the ``stacked`` logit (this
      one in-sample, so slightly optimistic).
    stacked_cv_accuracy: the ``CV_FOLDS``-fold cross-validated accuracy of the stacking on
      eval (each fold scored by a fit on the others): the honest estimate; None when a
      class has fewer than ``CV_FOLDS`` reviews.
  """

  attention_weight: float
  naive_bayes_weight: float
  intercept: float
  fitted: bool
  eval_examples: int
  eval_accuracy: dict
  stacked_cv_accuracy: float | None

  def as_dict(self) -> dict:
    """JSON-able fields (for ``training_summary.json``)."""
    return dataclasses.asdict(self)


def half_logits_model(explain_model: keras.Model) -> keras.Model:
  """``tokens`` (int64 [batch, time]) -> the two halves' logits (float32 [batch, 2]: the
  attention model's, then the naive-Bayes model's), sharing ``explain_model``'s layers.

  Raises:
    ValueError: ``explain_model`` has no half-logits layer (built without nb_wide).
  """
  try:
    both = explain_model.get_layer(HALF_LOGITS_LAYER).output
  except ValueError as error:
    raise ValueError(
      f"{explain_model.name} has no {HALF_LOGITS_LAYER!r} layer; build it with nb_wide=True"
    ) from error
  return keras.Model(explain_model.inputs, both, name="half_logits")


def half_logits(
  explain_model: keras.Model, dataset: tf.data.Dataset
) -> tuple[np.ndarray, np.ndarray]:
  """The two halves' logits and the labels of every review in ``dataset``.

  Args:
    explain_model: an ``nb_wide`` explanation model (``models.model``), with its variables
      plain or mirrored (called in cross-replica context, not distributed).
    dataset: batches ``({"tokens": int [batch, time]}, labels [batch, 1] or [batch])``,
      finite.

  Returns:
    ``(logits, labels)``: float64 [n, 2] (column 0 the attention model's logit, column 1
    the naive-Bayes model's) and int64 [n].

  Raises:
    ValueError: ``explain_model`` has no half-logits layer (built without nb_wide).
  """
  logits_model = half_logits_model(explain_model)

  @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int64)], autograph=False)
  def logits_of(tokens):
    return logits_model(tokens, training=False)

  logits, labels = [], []
  for x, y in dataset:
    logits.append(logits_of(tf.cast(x[features.TOKENS_KEY], tf.int64)).numpy())
    labels.append(np.reshape(y.numpy(), [-1]))
  if not logits:
    return np.zeros([0, 2]), np.zeros([0], np.int64)
  return (
    np.concatenate(logits).astype(np.float64),
    np.rint(np.concatenate(labels)).astype(np.int64),
  )


def fit_stacking(logits: np.ndarray, labels: np.ndarray, c: float = STACKING_C) -> StackingFit:
  """Fits z = a * logits[:, 0] + b * logits[:, 1] + intercept by L2-regularized logistic
  regression (see the module docstring).

  Args:
    logits: float [n, 2], the attention and naive-Bayes logits of the eval reviews.
    labels: int [n], 0 or 1.
    c: inverse regularization strength, > 0.

  Returns:
    a ``StackingFit``; unfitted (the mean) when ``labels`` hold a single class.

  Raises:
    ValueError: no reviews, mismatched shapes, a label other than 0 or 1, or c <= 0.
  """
  logits, labels = np.asarray(logits, np.float64), np.asarray(labels)
  if logits.ndim != 2 or logits.shape[1] != 2 or labels.shape != (logits.shape[0],):
    raise ValueError(f"need logits [n, 2] and labels [n], got {logits.shape} and {labels.shape}")
  if not logits.shape[0]:
    raise ValueError("no eval reviews to fit the stacking on")
  if not np.isin(labels, (0, 1)).all():
    raise ValueError(f"labels must be 0 or 1, got {sorted(set(labels.tolist()))[:5]}")
  if c <= 0:
    raise ValueError(f"c must be > 0, got {c}")
  counts = np.bincount(labels, minlength=2)
  if counts.min() == 0:
    return StackingFit(
      0.5, 0.5, 0.0, False, int(labels.size), accuracies(logits, labels, 0.5, 0.5, 0.0), None
    )

  def regression():
    return LogisticRegression(C=c, tol=1e-10, max_iter=1000)

  fit = regression().fit(logits, labels)
  a, b, intercept = float(fit.coef_[0][0]), float(fit.coef_[0][1]), float(fit.intercept_[0])
  cv = (
    float(cross_val_score(regression(), logits, labels, cv=CV_FOLDS).mean())
    if counts.min() >= CV_FOLDS
    else None
  )
  return StackingFit(
    a, b, intercept, True, int(labels.size), accuracies(logits, labels, a, b, intercept), cv
  )


def accuracies(
  logits: np.ndarray,
  labels: np.ndarray,
  attention_weight: float,
  naive_bayes_weight: float,
  intercept: float,
) -> dict:
  """Accuracy (fraction of ``labels`` matched, a logit > 0 meaning 1) of the
  ``attention`` logit (``logits[:, 0]``) and the ``naive_bayes`` logit (``logits[:, 1]``)
  alone, of their ``mean`` and of the ``stacked`` logit with the given weights."""
  logits, positive = np.asarray(logits, np.float64), np.asarray(labels) == 1

  def accuracy(z):
    return float(np.mean((z > 0) == positive))

  return {
    "attention": accuracy(logits[:, 0]),
    "naive_bayes": accuracy(logits[:, 1]),
    "mean": accuracy(logits.mean(axis=1)),
    "stacked": accuracy(logits @ [attention_weight, naive_bayes_weight] + intercept),
  }


def set_stacking(explain_model: keras.Model, fit: StackingFit) -> None:
  """Sets ``explain_model``'s stacking layer to ``fit``'s weights.

  Raises:
    ValueError: ``explain_model`` has no stacking layer (built without nb_wide).
  """
  try:
    layer = explain_model.get_layer(STACKING_LAYER)
  except ValueError as error:
    raise ValueError(
      f"{explain_model.name} has no {STACKING_LAYER!r} layer; build it with nb_wide=True"
    ) from error
  layer.set_weights(
    [
      np.array([[fit.attention_weight], [fit.naive_bayes_weight]], np.float32),
      np.array([fit.intercept], np.float32),
    ]
  )
