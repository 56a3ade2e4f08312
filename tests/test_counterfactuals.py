"""Unit tests of models.counterfactuals (negation counterfactual views) and of
models.inputs.views_dataset."""

import numpy as np
import pytest

from models import counterfactuals, inputs

WORDS = [
  "",  # padding
  "the",
  "acting",
  "was",
  "great",
  "awful",
  "is",
  "plot",
  "not",
  "never",
  "wasnt",
  "neg_great",
  "neg_awful",
  "neg_at",
  "neg_all",
  "to",
  "supposed",
  "neg_supposed",
  "neg_the",
  "film",
  "<oov:0>",
  "a",
  "neg_a",
  "chore",
  "neg_chore",
  "delight",
  "neg_delight",
]
ID = {word: i for i, word in enumerate(WORDS) if word}


def ids(text: str, width: int = 8) -> list[int]:
  row = [ID[word] for word in text.split()]
  return row + [0] * (width - len(row))


def words_of(row) -> str:
  return " ".join(WORDS[i] for i in row if i)


# Every review says "great" (positive) or "awful" (negative) somewhere; 20 of each.
POSITIVE = [ids("the acting was great"), ids("the plot is great film")] * 10
NEGATIVE = [ids("the acting was awful"), ids("the film is awful the")] * 10
ROWS = np.array(POSITIVE + NEGATIVE, np.int64)
LABELS = np.array([1] * 20 + [0] * 20)


def batches(rows, labels, size: int = 7):
  """``negation_views``' ``batches``: the rows and labels in batches of ``size``."""
  rows, labels = np.asarray(rows, np.int64), np.asarray(labels)
  return lambda: ((rows[i : i + size], labels[i : i + size]) for i in range(0, len(rows), size))


def views_of(rows, labels, **kwargs):
  return counterfactuals.negation_views(batches(rows, labels), WORDS, **kwargs)


def test_log_count_ratios_count_reviews_not_occurrences():
  rows = np.array([ids("great great the"), ids("great the"), ids("awful the"), ids("the")])
  documents, ratios = counterfactuals.log_count_ratios(
    batches(rows, [1, 1, 0, 0], size=3), len(WORDS)
  )
  assert documents[ID["great"]] == 2 and documents[ID["the"]] == 4 and documents[0] == 0
  # log((2 + 1) / (2 + 1)) - log((0 + 1) / (2 + 1)) = log 3.
  assert ratios[ID["great"]] == pytest.approx(np.log(3))
  assert ratios[ID["awful"]] == pytest.approx(np.log(1 / 3) - np.log(2 / 3))
  assert ratios[ID["the"]] == pytest.approx(0.0)


def test_log_count_ratios_reject_bad_input():
  with pytest.raises(ValueError, match="2 rows but 1 labels"):
    counterfactuals.log_count_ratios(lambda: [(np.zeros((2, 3), np.int64), np.array([1]))], 5)
  with pytest.raises(ValueError, match=r"in \[0, 5\)"):
    counterfactuals.log_count_ratios(batches([[1, 5]], [1]), 5)


def test_each_view_is_followed_by_its_negated_counterfactual_with_the_other_label():
  views = views_of(ROWS, LABELS, seed=0, min_documents=5)
  assert views.polar_words == 2  # great and awful; not "the" (in every review)
  assert views.pairs == 40  # one copula + polar word in each review
  assert views.tokens.dtype == np.int64 and views.labels.dtype == np.float32
  pairs = [
    (words_of(views.tokens[i]), words_of(views.tokens[i + 1]), views.labels[i], views.labels[i + 1])
    for i in range(0, len(views.labels), 2)
  ]
  negations = {"was not", "was never", "wasnt", "is not", "is never"}
  for view, counterfactual, label, flipped in pairs:
    assert label == 1 - flipped
    assert view in {
      "the acting was great",
      "the plot is great",
      "the acting was awful",
      "the film is awful",
    }
    context, verdict = view.rsplit(" ", 2)[0], view.split()[-1]
    assert label == (verdict == "great")
    assert counterfactual.startswith(context + " ")
    rest = counterfactual[len(context) + 1 :].removesuffix(" neg_at neg_all")
    negation, marked = rest.rsplit(" ", 1)
    assert marked == "neg_" + verdict and negation in negations
  # "is" has no contracted form in this vocabulary; "was" has "wasnt".
  assert not any("isnt" in c for _, c, _, _ in pairs)
  assert any("wasnt" in c for _, c, _, _ in pairs)
  assert 0 < sum(c.endswith("neg_at neg_all") for _, c, _, _ in pairs) < 40


def test_a_view_keeps_the_article_before_its_polar_word_and_to_may_follow_it():
  rows = np.array(
    [*ROWS, *[ids("the acting was a delight")] * 10, *[ids("the plot was a chore to")] * 10],
    np.int64,
  )
  labels = np.concatenate([LABELS, [1] * 10, [0] * 10])
  views = views_of(rows, labels, seed=0, min_documents=5)
  assert views.polar_words == 4 and views.pairs == 60
  pairs = {
    words_of(views.tokens[i]): (words_of(views.tokens[i + 1]), views.labels[i])
    for i in range(0, len(views.labels), 2)
  }
  assert pairs["the acting was a delight"][1] == 1 and pairs["the plot was a chore"][1] == 0
  for view in ("the acting was a delight", "the plot was a chore"):
    counterfactual = pairs[view][0].removesuffix(" neg_at neg_all")
    assert counterfactual.endswith(" neg_a neg_" + view.split()[-1])
    assert counterfactual.split()[2] in ("was", "wasnt")


def test_views_are_seeded_and_do_not_depend_on_the_batches():
  a = views_of(ROWS, LABELS, seed=3, min_documents=5)
  b = counterfactuals.negation_views(batches(ROWS, LABELS, size=40), WORDS, 3, min_documents=5)
  c = views_of(ROWS, LABELS, seed=4, min_documents=5)
  # The same views whatever the batch size; another seed picks other negation forms.
  np.testing.assert_array_equal(a.tokens, b.tokens)
  np.testing.assert_array_equal(a.labels, b.labels)
  assert not np.array_equal(a.tokens, c.tokens)


def test_no_view_where_the_label_disagrees_or_negation_is_already_there_or_to_follows():
  rows = np.array(
    [
      *ROWS,
      ids("the acting was great"),  # in a negative review: the label disagrees
      ids("not the was great"),  # a cue in the context
      ids("neg_the acting was awful"),  # a marked word in the context
      ids("acting is supposed to"),  # "to" follows
      ids("was great"),  # too little context: still a view (what there is)
    ],
    np.int64,
  )
  labels = np.concatenate([LABELS, [0, 1, 0, 0, 1]])
  views = views_of(rows, labels, seed=0, min_documents=5)
  texts = [words_of(views.tokens[i]) for i in range(0, len(views.labels), 2)]
  assert len(texts) == 41 and "was great" in texts
  assert "supposed" not in " ".join(texts)


def test_no_views_without_polar_words_or_copulas():
  strict = views_of(ROWS, LABELS, seed=0, min_documents=100)
  assert strict.pairs == 0 and strict.polar_words == 0 and strict.tokens.shape == (0, 1)
  words = ["" if w in ("was", "is") else w for w in WORDS]
  no_copula = counterfactuals.negation_views(batches(ROWS, LABELS), words, 0, min_documents=5)
  assert no_copula.pairs == 0
  # Without negation scope marking the vocabulary has no neg_ forms: nothing is polar.
  unmarked = [w for w in WORDS if not w.startswith("neg_")]
  rows = np.array([[unmarked.index(WORDS[i]) for i in row] for row in ROWS], np.int64)
  plain = counterfactuals.negation_views(batches(rows, LABELS), unmarked, 0, min_documents=5)
  assert plain.pairs == 0 and plain.polar_words == 0


def test_views_dataset_pads_to_max_length_and_repeats():
  views = views_of(ROWS, LABELS, seed=0, min_documents=5)
  dataset = inputs.views_dataset(views.tokens, views.labels, max_length=8, seed=1)
  elements = list(dataset.take(2 * len(views.labels)).as_numpy_iterator())
  assert elements[0][0]["tokens"].shape == (8,) and elements[0][1].shape == (1,)
  drawn = [(tuple(x["tokens"][: views.tokens.shape[1]]), float(y[0])) for x, y in elements]
  given = {(tuple(t), float(y)) for t, y in zip(views.tokens, views.labels)}
  assert set(drawn) == given  # every view, unchanged, with its label
  with pytest.raises(ValueError, match="width <= 4"):
    inputs.views_dataset(views.tokens, views.labels, max_length=4, seed=1)
  with pytest.raises(ValueError, match="at least one view"):
    inputs.views_dataset(np.zeros((0, 3), np.int64), np.zeros(0), max_length=8, seed=1)
