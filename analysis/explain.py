"""Which words drove a prediction: ``predict_text``'s attention weights rendered as a PNG
heatmap (matplotlib) and as an HTML page with highlighted tokens (``imdb-tfx explain``).

The weights are the attention pooling's, one per token the model saw (after cleaning,
head+tail truncation to ``max_length``), zero on padding and summing to 1 over the real
tokens; they show where the model looked, which is a view of the model, not a proof of
what caused its answer (Jain & Wallace 2019, "Attention is not Explanation").
"""

import contextlib
import dataclasses
import html
import os
from collections.abc import Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class Explanation:
  """One review's prediction and its attention.

  Attributes:
    text: the raw review.
    probability: probability of a positive review (float in [0, 1]).
    label: 1 positive, 0 negative (probability >= 0.5).
    tokens: the words the model saw, in order (padding removed).
    weights: float32 [len(tokens)], attention on each word; sums to 1 (0 for an empty
      review).
  """

  text: str
  probability: float
  label: int
  tokens: list[str]
  weights: np.ndarray

  @property
  def sentiment(self) -> str:
    return "positive" if self.label == 1 else "negative"

  def top_tokens(self, k: int = 10) -> list[tuple]:
    """The ``k`` most attended ``(token, weight)`` pairs, highest first."""
    order = np.argsort(-self.weights, kind="stable")[:k]
    return [(self.tokens[i], float(self.weights[i])) for i in order]


def explain(model_dir: str, reviews: Sequence[str]) -> list[Explanation]:
  """Runs ``predict_text`` of the SavedModel (or the latest version of a TF Serving model
  directory) at ``model_dir`` on ``reviews``.

  Raises:
    FileNotFoundError: no SavedModel there.
    ValueError: the model has no ``predict_text`` signature, or ``reviews`` is empty.
  """
  import tensorflow as tf

  from analysis.evaluation import latest_version_dir

  if not reviews:
    raise ValueError("no review to explain")
  path = latest_version_dir(model_dir)
  loaded = tf.saved_model.load(path)
  if "predict_text" not in loaded.signatures:
    raise ValueError(f"{path} has no 'predict_text' signature")
  with _without_graph_rewrites():
    outputs = loaded.signatures["predict_text"](text=tf.constant(list(reviews)))
  explanations = []
  for i, review in enumerate(reviews):
    tokens = [t.decode("utf-8", "replace") for t in outputs["tokens"][i].numpy()]
    real = [j for j, token in enumerate(tokens) if token]
    explanations.append(
      Explanation(
        text=review,
        probability=float(outputs["probabilities"][i]),
        label=int(outputs["label"][i]),
        tokens=[tokens[j] for j in real],
        weights=outputs["attention_weights"][i].numpy()[real].astype(np.float32),
      )
    )
  return explanations


@contextlib.contextmanager
def _without_graph_rewrites():
  """Grappler's graph optimizations off while the signature is first called (and its
  function instantiated), then back as they were. For one batch they cost more than
  they save: on the full-data model, the first call on 16 short reviews took 2.4 s with
  them and 1.2 s without (same outputs); explaining is a few calls, not serving."""
  import tensorflow as tf

  before = tf.config.optimizer.get_experimental_options()
  tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
  try:
    yield
  finally:
    tf.config.optimizer.set_experimental_options(
      {"disable_meta_optimizer": before.get("disable_meta_optimizer", False)}
    )


def _title(e: Explanation) -> str:
  return f"{e.sentiment} (probability positive {e.probability:.3f})"


def _color_range(weights: np.ndarray) -> tuple:
  """(low, high) of the colour scale: the review's least and most attended weights, so
  the contrast shows even when attention is spread almost evenly (every weight near
  1/n); (0, 1) for an empty review."""
  if not len(weights):
    return 0.0, 1.0
  low, high = float(np.min(weights)), float(np.max(weights))
  return (low, high) if high > low else (0.0, max(high, 1e-12))


def render_png(e: Explanation, path: str, words_per_row: int = 12) -> str:
  """Writes a heatmap: the review's words in rows of ``words_per_row``, each cell coloured
  by its attention weight (matplotlib ``imshow``, colormap ``Reds`` from the review's
  lowest to its highest weight, with a colorbar), to ``path`` (PNG). Returns ``path``."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  count = max(len(e.tokens), 1)
  rows = -(-count // words_per_row)
  grid = np.full((rows, words_per_row), np.nan)
  grid.flat[: len(e.weights)] = e.weights
  figure, axes = plt.subplots(figsize=(words_per_row * 1.05, 0.42 * rows + 1.4))
  low, high = _color_range(e.weights)
  image = axes.imshow(grid, cmap="Reds", aspect="auto", vmin=low, vmax=high)
  for index, token in enumerate(e.tokens):
    row, col = divmod(index, words_per_row)
    strong = (grid[row, col] - low) / (high - low) > 0.6
    axes.text(
      col,
      row,
      token[:14],
      ha="center",
      va="center",
      fontsize=8,
      color="white" if strong else "black",
    )
  axes.set_xticks([])
  axes.set_yticks([])
  axes.set_title(_title(e), fontsize=11)
  figure.colorbar(
    image, ax=axes, fraction=0.025, pad=0.01, label=f"weight (uniform 1/n = {1 / count:.4f})"
  )
  figure.tight_layout()
  figure.savefig(path, dpi=110)
  plt.close(figure)
  return path


def render_html(e: Explanation, path: str) -> str:
  """Writes an HTML page with every word highlighted by its attention weight (background
  from matplotlib's ``Reds`` colormap over the review's lowest to highest weight, the
  weight in the hover title) and the top 10 words. Text is HTML-escaped. Returns
  ``path``."""
  import matplotlib
  from matplotlib import colors

  colormap = matplotlib.colormaps["Reds"]
  low, high = _color_range(e.weights)
  spans = []
  for token, weight in zip(e.tokens, e.weights):
    level = (float(weight) - low) / (high - low)
    background = colors.to_hex(colormap(level))
    foreground = "#fff" if level > 0.6 else "#000"
    spans.append(
      f'<span style="background:{background};color:{foreground}" '
      f'title="{weight:.4f}">{html.escape(token)}</span>'
    )
  top = "".join(f"<li>{html.escape(t)}: {w:.4f}</li>" for t, w in e.top_tokens())
  page = (
    '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>Attention: '
    f"{html.escape(_title(e))}</title><style>body{{font-family:sans-serif;max-width:60em;"
    "margin:2em auto}} .review span{padding:1px 2px;border-radius:3px;line-height:1.9}"
    "</style></head><body>\n"
    f"<h1>{html.escape(_title(e))}</h1>\n"
    "<p>Background: attention weight of each word the model saw, from the least "
    "(lightest) to the most attended (darkest) word of this review.</p>\n"
    f'<p class="review">{" ".join(spans)}</p>\n'
    f"<h2>Most attended words</h2><ol>{top}</ol>\n</body></html>\n"
  )
  with open(path, "w", encoding="utf-8") as f:
    f.write(page)
  return path


def write_explanations(
  explanations: Sequence[Explanation], output_dir: str, prefix: str = "review"
) -> list[str]:
  """Writes ``<prefix>_<i>.png`` and ``<prefix>_<i>.html`` for each explanation into
  ``output_dir`` (created) and returns the paths written."""
  os.makedirs(output_dir, exist_ok=True)
  paths = []
  for i, e in enumerate(explanations):
    base = os.path.join(output_dir, f"{prefix}_{i}")
    paths.append(render_png(e, base + ".png"))
    paths.append(render_html(e, base + ".html"))
  return paths
