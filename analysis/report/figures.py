"""The run report's figures, drawn by matplotlib (scikit-learn's ``ConfusionMatrixDisplay``
for the confusion matrix) into PNG files beside the page.

Each function takes plain numbers read from an artifact and writes one PNG; none reads
an artifact itself, so each is tested on numbers the test chooses.
"""

import math
from collections.abc import Mapping, Sequence

import numpy as np

_DPI = 100


def _pyplot():
  import matplotlib

  matplotlib.use("Agg")  # files only: no display
  import matplotlib.pyplot as plt

  return plt


def _save(figure, path: str) -> str:
  plt = _pyplot()
  figure.tight_layout()
  figure.savefig(path, dpi=_DPI, format="png")
  plt.close(figure)
  return path


def training_curves(
  history: Mapping[str, Sequence[float]], best_epoch: int | None, path: str
) -> str:
  """Loss, accuracy and AUC per epoch, train beside eval (Keras ``History.history`` keys
  ``loss``/``val_loss``, ...; a metric without values is left out), the epoch early
  stopping kept marked with a dotted line. Epochs count from 1. Writes ``path`` (PNG).

  Raises:
    ValueError: ``history`` has none of loss, accuracy or auc.
  """
  names = [n for n in ("loss", "accuracy", "auc") if history.get(n)]
  if not names:
    raise ValueError(f"no loss, accuracy or auc in the training history: {sorted(history)}")
  plt = _pyplot()
  figure, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.2), squeeze=False)
  for ax, name in zip(axes[0], names):
    for key, label in ((name, "train"), (f"val_{name}", "eval")):
      values = history.get(key) or []
      ax.plot(range(1, len(values) + 1), values, marker="o", label=label)
    if best_epoch:
      ax.axvline(best_epoch, color="grey", linestyle=":", label=f"kept (epoch {best_epoch})")
    ax.set_xlabel("epoch")
    ax.set_title(name)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=8)
  return _save(figure, path)


def calibration_plot(
  predicted: Sequence[float], observed: Sequence[float], counts: Sequence[float], path: str
) -> str:
  """A reliability diagram: per bin of predicted probability, the mean prediction against
  the share of positive labels (the diagonal is perfect calibration), with the number
  of examples per bin below. Writes ``path`` (PNG).

  Args:
    predicted, observed, counts: per non-empty bin, the mean p(positive), the mean label
      and the number of examples (TFMA's ``CalibrationPlot`` buckets, merged).
  """
  plt = _pyplot()
  figure, (top, bottom) = plt.subplots(
    2, 1, figsize=(4.6, 5.0), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
  )
  top.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect")
  top.plot(predicted, observed, marker="o", label="model")
  top.set_ylabel("share of positive labels")
  top.set_xlim(0, 1)
  top.set_ylim(0, 1)
  top.legend(fontsize=8)
  top.set_title("Calibration (golden test)")
  bottom.bar(predicted, counts, width=0.05, color="tab:blue")
  bottom.set_yscale("log" if counts and max(counts) > 50 * max(min(counts), 1) else "linear")
  bottom.set_xlabel("mean predicted p(positive)")
  bottom.set_ylabel("examples")
  return _save(figure, path)


def confusion_matrix(matrix: Sequence[Sequence[float]], threshold: float, path: str) -> str:
  """The confusion matrix ``[[TN, FP], [FN, TP]]`` (rows: true label; columns: predicted)
  at ``threshold``, drawn by scikit-learn's ``ConfusionMatrixDisplay``. Writes ``path``."""
  from sklearn.metrics import ConfusionMatrixDisplay

  plt = _pyplot()
  figure, ax = plt.subplots(figsize=(4.2, 3.6))
  display = ConfusionMatrixDisplay(
    np.asarray(matrix, dtype=np.int64), display_labels=["negative", "positive"]
  )
  display.plot(ax=ax, cmap="Blues", colorbar=False, values_format="d")
  ax.set_title(f"Confusion matrix at {threshold:g}")
  return _save(figure, path)


def histogram_comparison(
  series: Mapping[str, tuple[Sequence[float], Sequence[float]]], title: str, path: str
) -> str:
  """Overlaid histograms from TFDV's statistics: per split, bucket edges (len n+1) and
  the share of the split's examples in each bucket (len n), as steps. Writes ``path``."""
  plt = _pyplot()
  figure, ax = plt.subplots(figsize=(6.0, 3.0))
  for name, (edges, shares) in series.items():
    ax.stairs(shares, edges, label=name, linewidth=1.5)
  ax.set_title(title)
  ax.set_ylabel("share of examples")
  ax.legend(fontsize=8)
  return _save(figure, path)


def history_plot(
  accuracy: Sequence[float | None],
  auc: Sequence[float | None],
  blessed: Sequence[bool | None],
  path: str,
) -> str:
  """Golden-test accuracy and AUC of every run's candidate in run order (x: the run's
  number, 1 first), blessed candidates as filled markers, the others hollow. Runs without
  an evaluation are skipped. Writes ``path`` (PNG).

  Raises:
    ValueError: the sequences differ in length.
  """
  if not len(accuracy) == len(auc) == len(blessed):
    raise ValueError("accuracy, auc and blessed must have one entry per run")
  plt = _pyplot()
  figure, ax = plt.subplots(figsize=(7.5, 3.4))
  runs = np.arange(1, len(accuracy) + 1)
  for values, name, color in ((accuracy, "accuracy", "tab:blue"), (auc, "AUC", "tab:orange")):
    shown = [i for i, v in enumerate(values) if v is not None and not math.isnan(v)]
    if not shown:
      continue
    ax.plot(runs[shown], [values[i] for i in shown], color=color, label=name)
    yes = [i for i in shown if blessed[i]]
    no = [i for i in shown if not blessed[i]]
    ax.scatter(runs[yes], [values[i] for i in yes], color=color, zorder=3)
    ax.scatter(runs[no], [values[i] for i in no], facecolors="white", edgecolors=color, zorder=3)
  ax.scatter([], [], color="grey", label="blessed")
  ax.scatter([], [], facecolors="white", edgecolors="grey", label="not blessed")
  ax.set_xlabel("run")
  ax.set_ylabel("golden test")
  ax.xaxis.get_major_locator().set_params(integer=True)
  ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
  ax.set_title("Candidates on the golden test split")
  return _save(figure, path)
