"""Negation counterfactuals: short training views cut from the train split's own reviews,
each beside a copy with the verdict negated and the label flipped.

IMDB's labels teach a model the opposite of what negation means. Negative reviewers
negate more of everything: on the train split, 69% of the reviews holding "not bad" are
negative, as many as of those holding "not good", so a model trained on the reviews
alone reads "The plot was not bad." as negative (the behavioural suite's
``negated_negative`` failed 72-77% of its cases). Counterfactually augmented data (Kaushik,
Hovy & Lipton 2020, "Learning the Difference that Makes a Difference with
Counterfactually-Augmented Data") fixes such a spurious pattern by pairing an example with
a minimally edited copy whose label is flipped; Wang & Culotta 2021 ("Robustness to
Spurious Correlations in Text Classification via Automatically Generated
Counterfactuals", AAAI) generate the copies by rule instead of by hand. This module's rule
is the classic negation of a predicate adjective:

* a view is a copula and the polar word after it, directly or after "a"/"an", with the
  two words before the copula ("the acting was terrible", "the film was a delight"), cut
  from a train review whose label agrees with the word's polarity (not where "to" follows
  the word right after the copula: "was supposed to" is no verdict, "was a chore to sit
  through" is);
* its counterfactual negates the copula (``not`` after it, ``never`` after it, or the
  contracted form ``wasnt``/``isnt``/``arent``/``werent``), marks the article and the
  word as ``preprocessing.mark_negation_scope`` would (``neg_terrible``, ``neg_a
  neg_delight``), sometimes adds "at all" (``neg_at neg_all``), and takes the opposite
  label.

A word's polarity is its naive-Bayes log-count ratio on the train split (Wang & Manning
2012): only words in at least ``min_documents`` train reviews whose ratio is at least
``min_log_ratio`` in size count as polar. Nothing here reads the behavioural suite
(``behaviour``) or any split but the train split; the views work on token ids, after the
TransformGraph, so they need the vocabulary's words only to find the copulas, cues and
marked forms.
"""

import dataclasses
import types
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from models import preprocessing

# Copulas whose negation the views use, with their contracted negative form.
COPULAS = types.MappingProxyType({"is": "isnt", "was": "wasnt", "are": "arent", "were": "werent"})
# Words a counterfactual may put after the copula.
INSERTED_CUES = ("not", "never")
# Articles that may stand between the copula and the polar word ("was a chore").
ARTICLES = ("a", "an")
CONTEXT_WORDS = 2
# Share of counterfactuals that end in "at all" (neg_at neg_all).
AT_ALL_SHARE = 0.25


@dataclasses.dataclass(frozen=True)
class Views:
  """Views and their counterfactuals, padded into one array.

  Attributes:
    tokens: int64 [2 * pairs, width]: row 2i a view, row 2i+1 its counterfactual; right-
      padded with 0.
    labels: float32 [2 * pairs]: 0 (negative) or 1 (positive).
    polar_words: how many words of the vocabulary counted as polar.
  """

  tokens: np.ndarray
  labels: np.ndarray
  polar_words: int

  @property
  def pairs(self) -> int:
    return len(self.labels) // 2


Batches = Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]]


def log_count_ratios(batches: Batches, input_dim: int) -> tuple[np.ndarray, np.ndarray]:
  """Document frequencies and naive-Bayes log-count ratios of every token id.

  Args:
    batches: called once; yields ``(rows, labels)``: int [reviews, length] token ids (0 =
      padding) and [reviews] labels, 0 or 1.
    input_dim: ids are in [0, input_dim).

  Returns:
    ``(documents, ratios)``: int64 [input_dim] reviews holding each id, float64
    [input_dim] log((p + 1) / (P + 1)) - log((n + 1) / (N + 1)) with p and n the positive
    and negative reviews holding the id, P and N the positive and negative reviews
    (Wang & Manning 2012, eq. 1, on binarized counts with add-one smoothing).

  Not ``naive_bayes.log_count_ratios``: that one normalizes by each class's total of
  features (the linear model's weighting, which shifts every ratio by the same constant)
  and returns no document counts; a polar word here is one whose share of reviews
  differs between the classes, and needs ``min_documents`` of them.

  Raises:
    ValueError: a batch's rows and labels disagree in length, or an id is outside
      [0, input_dim).
  """
  counts = np.zeros((2, input_dim), np.int64)
  reviews = np.zeros(2, np.int64)
  for rows, labels in batches():
    rows, labels = _checked(rows, labels, input_dim)
    # Each review's distinct ids: its sorted ids where they change, counted per class.
    ids = np.sort(rows, axis=1)
    distinct = np.ones(ids.shape, bool)
    distinct[:, 1:] = ids[:, 1:] != ids[:, :-1]
    for label in (0, 1):
      counts[label] += np.bincount(ids[distinct & (labels == label)[:, None]], minlength=input_dim)
    reviews += np.bincount(labels, minlength=2)
  counts[:, 0] = 0
  ratios = np.log((counts[1] + 1) / (reviews[1] + 1)) - np.log((counts[0] + 1) / (reviews[0] + 1))
  return counts.sum(0), ratios


def negation_views(
  batches: Batches,
  words: Sequence[str],
  seed: int,
  min_documents: int = 30,
  min_log_ratio: float = 0.8,
) -> Views:
  """Every view of the train split's reviews and its counterfactual (module docstring).

  Reads the reviews twice (the ratios, then the views), a batch at a time, so memory
  grows with the views, not with the split.

  Args:
    batches: called once per pass; yields ``(rows, labels)``: int [reviews, length] token
      ids of the transformed train split (0 = padding) and [reviews] labels, 0 or 1.
    words: the word of each id (``pretraining.id_words``: "" for padding).
    seed: seeds the choice of negation form and of "at all".
    min_documents: a polar word is in at least this many train reviews.
    min_log_ratio: and its log-count ratio is at least this in size.

  Returns:
    ``Views``; with no copula, cue or polar word in the vocabulary, or no view in the
    reviews, zero pairs (tokens [0, 1]).

  Raises:
    ValueError: as ``log_count_ratios``.
  """
  index = {word: i for i, word in enumerate(words) if word}
  documents, ratios = log_count_ratios(batches, len(words))
  marked = np.array([_is_marked(word) for word in words])
  negated = np.array(
    [index.get(preprocessing.NEGATED_PREFIX + word, 0) if word else 0 for word in words]
  )
  polar = (documents >= min_documents) & (np.abs(ratios) >= min_log_ratio) & ~marked
  polar &= negated > 0
  copulas = {index[c]: index.get(n, 0) for c, n in COPULAS.items() if c in index}
  cues = [index[c] for c in INSERTED_CUES if c in index]
  at_all = [index.get(preprocessing.NEGATED_PREFIX + w, 0) for w in ("at", "all")]
  empty = Views(np.zeros((0, 1), np.int64), np.zeros((0,), np.float32), int(polar.sum()))
  if not copulas or not cues or not polar.any():
    return empty
  rng = np.random.default_rng(seed)
  pairs: list[tuple[list[int], list[int], int]] = []
  is_copula = np.zeros(len(words), bool)
  is_copula[list(copulas)] = True
  to = index.get("to", -1)
  is_article = np.zeros(len(words), bool)
  is_article[[index[a] for a in ARTICLES if a in index and negated[index[a]]]] = True
  for rows, labels in batches():
    for row, label in zip(*_checked(rows, labels, len(words))):
      for j, article in _verdicts(row, is_copula, is_article, polar):
        word = row[j + 1 + len(article)]
        context = row[max(0, j - CONTEXT_WORDS) : j]
        if (ratios[word] > 0) != bool(label) or marked[context].any() or (context == 0).any():
          continue
        if not article and row[j + 2] == to:  # "was supposed to": not a verdict
          continue
        view = [*context, row[j], *article, word]
        forms = [[row[j], cue] for cue in cues]
        if copulas[row[j]]:
          forms.append([copulas[row[j]]])
        negation = forms[rng.integers(len(forms))]
        ending = at_all if all(at_all) and rng.random() < AT_ALL_SHARE else []
        negated_verdict = [*negated[article], negated[word]]
        pairs.append((view, [*context, *negation, *negated_verdict, *ending], label))
  if not pairs:
    return empty
  width = max(len(c) for _, c, _ in pairs)
  tokens = np.zeros((2 * len(pairs), width), np.int64)
  labels_out = np.zeros((2 * len(pairs),), np.float32)
  for i, (view, counterfactual, label) in enumerate(pairs):
    tokens[2 * i, : len(view)] = view
    tokens[2 * i + 1, : len(counterfactual)] = counterfactual
    labels_out[2 * i], labels_out[2 * i + 1] = label, 1 - label
  return Views(tokens, labels_out, int(polar.sum()))


def _verdicts(
  row: np.ndarray, is_copula: np.ndarray, is_article: np.ndarray, polar: np.ndarray
) -> list[tuple[int, np.ndarray]]:
  """Each copula of ``row`` (int [length] ids) followed by a polar word, directly or after
  an article, with a word after it, as ``(copula position, article)``: the article's ids,
  int64 [0] or [1], in order of position."""
  direct = np.flatnonzero(is_copula[row[:-2]] & polar[row[1:-1]])
  after_article = np.flatnonzero(is_copula[row[:-3]] & is_article[row[1:-2]] & polar[row[2:-1]])
  found = [(j, row[j + 1 : j + 1]) for j in direct]
  found += [(j, row[j + 1 : j + 2]) for j in after_article]
  return sorted(found, key=lambda verdict: verdict[0])


def _checked(rows, labels, input_dim: int) -> tuple[np.ndarray, np.ndarray]:
  """``rows`` as int64 [reviews, length] and ``labels`` as int64 [reviews] of 0 and 1.

  Raises:
    ValueError: they disagree in length, or an id is outside [0, input_dim).
  """
  rows = np.asarray(rows, np.int64)
  labels = (np.asarray(labels).reshape(-1) > 0.5).astype(np.int64)
  if len(rows) != len(labels):
    raise ValueError(f"{len(rows)} rows but {len(labels)} labels")
  if rows.size and (rows.min() < 0 or rows.max() >= input_dim):
    raise ValueError(f"token ids must be in [0, {input_dim})")
  return rows, labels


def _is_marked(word: str) -> bool:
  """Whether ``word`` is padding, an OOV bucket, a marked word, a negation cue or a number
  (none of them may be a view's verdict or stand in its context)."""
  prefixes = ("<", preprocessing.NEGATED_PREFIX, preprocessing.CONCEDED_PREFIX)
  return (
    not word or word.startswith(prefixes) or word in preprocessing.NEGATION_CUES or word.isdigit()
  )
