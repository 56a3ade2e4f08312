"""Unit tests of models.preprocessing, including preprocessing_fn under tf.Transform Beam."""

import collections
import functools

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from core import features
from models import preprocessing
from models.hparams import HParams

HPARAMS = {"vocab_size": 3, "max_length": 6, "num_oov_buckets": 1}


def _clean(values):
  return [s.decode() for s in preprocessing.clean_text(tf.constant(values)).numpy()]


# --- clean_text ---------------------------------------------------------------------


def test_clean_text_lowercases_and_removes_tags():
  assert _clean(["Great MOVIE<br /><br />Loved it", "a<b>bold</b>word", "x<br/>y<br>z"]) == [
    "great movie loved it",
    "a bold word",
    "x y z",
  ]


def test_clean_text_removes_punctuation_and_collapses_whitespace():
  assert _clean(["  Wow!!! It's... 10/10, (really)?  ", "a--b\tc\n\nd"]) == [
    "wow its 10 10 really",
    "a b c d",
  ]


def test_clean_text_drops_apostrophes_inside_words():
  assert _clean(["Don't", "I didn`t", "won\u2019t stop"]) == ["dont", "i didnt", "wont stop"]


def test_clean_text_keeps_shape_and_handles_empty():
  out = preprocessing.clean_text(tf.constant([["A!", ""], ["<br />", "b c"]]))
  assert out.shape == (2, 2)
  assert out.numpy().tolist() == [[b"a", b""], [b"", b"b c"]]


def test_clean_text_invalid_utf8_does_not_crash():
  out = preprocessing.clean_text(tf.constant([b"caf\xe9 good\xff\xfe movie", b"ok"]))
  words = out.numpy()[0].decode("ascii").split()  # output is plain ASCII
  assert "good" in words and "movie" in words
  assert out.numpy()[1] == b"ok"


def test_clean_text_non_ascii_letters_split_words():
  # Non a-z0-9 characters (after lowercasing) separate words.
  assert _clean(["Caf\u00e9 Na\u00efve"]) == ["caf na ve"]


def test_tokenize_splits_into_ragged_words():
  words = preprocessing.tokenize(tf.constant(["Hello, World!", "", "one"]))
  assert words.to_list() == [[b"hello", b"world"], [], [b"one"]]


# --- pad_or_truncate ----------------------------------------------------------------


def test_pad_or_truncate_keeps_first_ids_and_pads_with_zero():
  ids = tf.ragged.constant([[5, 6, 7, 8, 9], [1], []], dtype=tf.int64)
  out = preprocessing.pad_or_truncate(ids, 3)
  assert out.dtype == tf.int64
  np.testing.assert_array_equal(out.numpy(), [[5, 6, 7], [1, 0, 0], [0, 0, 0]])


def test_pad_or_truncate_strings_keeps_first_words_and_pads_with_empty():
  words = tf.ragged.constant([["a", "b", "c", "d"], ["x"], []])
  out = preprocessing.pad_or_truncate_strings(words, 3)
  assert out.shape == (3, 3)
  assert out.numpy().tolist() == [[b"a", b"b", b"c"], [b"x", b"", b""], [b"", b"", b""]]


def test_pad_or_truncate_all_rows_shorter_still_full_width():
  ids = tf.ragged.constant([[1, 2], [3]], dtype=tf.int64)
  assert preprocessing.pad_or_truncate(ids, 5).shape == (2, 5)


@pytest.mark.parametrize(
  "max_length,head_tokens", [(1, 0), (4, 2), (4, 0), (4, 4), (5, 9), (6, -1)]
)
def test_select_head_tail_keeps_head_and_tail_as_python_slicing(max_length, head_tokens):
  rng = np.random.default_rng(max_length * 10 + head_tokens)
  rows = [list(rng.integers(1, 100, size=n)) for n in (0, 1, 3, 4, 5, 6, 11, 0, 30)]
  kept = preprocessing.select_head_tail(
    tf.ragged.constant(rows, dtype=tf.int64, ragged_rank=1), max_length, head_tokens
  )
  head = min(max(head_tokens, 0), max_length)
  tail = max_length - head
  expected = [
    row if len(row) <= max_length else row[:head] + (row[len(row) - tail :] if tail else [])
    for row in rows
  ]
  assert kept.to_list() == expected


def test_preprocessing_graph_stays_small():
  """tokenize (every option) and pad_or_truncate in one graph: 403 ops, against 1,825 when
  they were written with ragged broadcasting (each op is traced by tf.Transform and run by
  every served request)."""
  hp = HParams()

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
  def tokens(text):
    words = preprocessing.tokenize(text, negation_scope=True, contrast_scope=True, names=True)
    ids = tf.strings.to_hash_bucket_fast(words, 100)
    return preprocessing.pad_or_truncate(ids + 1, hp.max_length, hp.head_tokens)

  graph = tokens.get_concrete_function().graph
  assert len(graph.get_operations()) < 600
  out = tokens(tf.constant(["It was not bad at all.", ""]))
  assert out.shape == (2, hp.max_length)


# --- preprocessing_fn under tf.Transform ---------------------------------------------

# Train token frequencies: movie 5, good 4, bad 3, plot 2, boring 1, others 1.
RAW_DATA = [
  {"text": [b"Movie movie GOOD good bad"], "label": [1]},
  {"text": [b"movie good<br />bad plot"], "label": [0]},
  {"text": [b"movie, good! bad plot boring"], "label": [1]},
  {"text": [b"Movie good."], "label": [0]},
]


def _analyze_and_transform(tmp_path, raw_data, feature_spec):
  metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(feature_spec))
  fn = functools.partial(preprocessing.preprocessing_fn, custom_config={"hparams": HPARAMS})
  with tft_beam.Context(temp_dir=str(tmp_path), force_tf_compat_v1=False):
    (transformed, _), transform_fn = (raw_data, metadata) | tft_beam.AnalyzeAndTransformDataset(fn)
  return transformed, transform_fn


@pytest.fixture(scope="module")
def transformed_dense(tmp_path_factory):
  spec = {
    "text": tf.io.FixedLenFeature([1], tf.string),
    "label": tf.io.FixedLenFeature([1], tf.int64),
  }
  transformed, _ = _analyze_and_transform(tmp_path_factory.mktemp("tft"), RAW_DATA, spec)
  return transformed


def test_preprocessing_fn_vocabulary_ids_in_frequency_order(transformed_dense):
  tokens = np.array([t[features.TOKENS_KEY] for t in transformed_dense])
  movie, good, bad, oov = 1, 2, 3, 4
  np.testing.assert_array_equal(tokens[0], [movie, movie, good, good, bad, 0])
  np.testing.assert_array_equal(tokens[1], [movie, good, bad, oov, 0, 0])
  # "boring" and "plot" are outside the top 3 -> the single OOV bucket id 4.
  np.testing.assert_array_equal(tokens[2], [movie, good, bad, oov, oov, 0])
  np.testing.assert_array_equal(tokens[3], [movie, good, 0, 0, 0, 0])


def test_preprocessing_fn_output_shape_dtype_and_label(transformed_dense):
  tokens = np.array([t[features.TOKENS_KEY] for t in transformed_dense])
  assert tokens.shape == (4, HPARAMS["max_length"])
  assert tokens.dtype == np.int64
  assert tokens.min() >= 0 and tokens.max() <= HPARAMS["vocab_size"] + HPARAMS["num_oov_buckets"]
  labels = [int(np.asarray(t[features.LABEL_KEY]).reshape(())) for t in transformed_dense]
  assert labels == [1, 0, 1, 0]


def test_preprocessing_fn_sparse_text_truncates_and_handles_missing(tmp_path):
  spec = {"text": tf.io.VarLenFeature(tf.string)}
  raw = [
    # movie 4, good 3, bad 2, others 1; 10 words -> truncated to the first 6.
    {"text": [b"movie movie movie movie good good bad zz yy xx"]},
    {"text": [b"bad good"]},
    {"text": []},  # missing text -> all padding
  ]
  transformed, _ = _analyze_and_transform(tmp_path, raw, spec)
  tokens = np.array([t[features.TOKENS_KEY] for t in transformed])
  assert tokens.shape == (3, 6)
  np.testing.assert_array_equal(tokens[0], [1, 1, 1, 1, 2, 2])
  np.testing.assert_array_equal(tokens[1], [3, 2, 0, 0, 0, 0])
  np.testing.assert_array_equal(tokens[2], [0] * 6)
  assert all(features.LABEL_KEY not in t for t in transformed)


def test_preprocessing_fn_rejects_unknown_hparam():
  with pytest.raises(ValueError, match="vocab_sise"):
    preprocessing.preprocessing_fn(
      {"text": tf.constant([["a"]])}, custom_config={"hparams": {"vocab_sise": 3}}
    )


def test_preprocessing_fn_writes_vocabulary_file(tmp_path):
  spec = {
    "text": tf.io.FixedLenFeature([1], tf.string),
    "label": tf.io.FixedLenFeature([1], tf.int64),
  }
  out_dir = str(tmp_path / "transform_output")
  metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(spec))
  fn = functools.partial(preprocessing.preprocessing_fn, custom_config={"hparams": HPARAMS})
  with tft_beam.Context(temp_dir=str(tmp_path / "tmp")):
    transform_fn = (RAW_DATA, metadata) | tft_beam.AnalyzeDataset(fn)
    _ = transform_fn | tft_beam.WriteTransformFn(out_dir)
  output = tft.TFTransformOutput(out_dir)
  assert output.vocabulary_by_name(features.VOCABULARY_NAME) == [b"movie", b"good", b"bad"]


def test_vocabulary_counts_every_word_and_breaks_ties_by_word(tmp_path):
  # preprocessing_fn counts with unit weights (tf.Transform reduces each batch in the
  # graph); the vocabulary must be the plain count's: count, then word, both descending,
  # cut at vocab_size, with ties across the cut and words repeated within a review.
  rng = np.random.default_rng(0)
  words = [f"w{i}" for i in range(12)]
  texts = [" ".join(rng.choice(words, size=rng.integers(1, 9))) for _ in range(40)]
  spec = {"text": tf.io.FixedLenFeature([1], tf.string)}
  metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(spec))
  hparams = {**HPARAMS, "vocab_size": 7}
  fn = functools.partial(preprocessing.preprocessing_fn, custom_config={"hparams": hparams})
  out_dir = str(tmp_path / "transform_output")
  with tft_beam.Context(temp_dir=str(tmp_path / "tmp"), desired_batch_size=8):
    raw = [{"text": [t.encode()]} for t in texts]
    transform_fn = (raw, metadata) | tft_beam.AnalyzeDataset(fn)
    _ = transform_fn | tft_beam.WriteTransformFn(out_dir)
  tokens = preprocessing.tokenize(tf.constant(texts), **preprocessing.tokenize_options(HParams()))
  counts = collections.Counter(w for row in tokens.to_list() for w in row)
  ranked = sorted(((n, w) for w, n in counts.items()), reverse=True)
  assert ranked[6][0] == ranked[7][0]  # a tie across the cut
  expected = [w for _, w in ranked[:7]]
  vocabulary = tft.TFTransformOutput(out_dir).vocabulary_by_name(features.VOCABULARY_NAME)
  assert vocabulary == expected


# --- negation scope -----------------------------------------------------------------


def _marked(texts):
  rows = preprocessing.tokenize(tf.constant(texts), True).to_list()
  return [[w.decode() for w in row] for row in rows]


def test_negation_scope_marks_words_up_to_the_punctuation():
  assert _marked(["It was not bad at all. Great!"]) == [
    ["it", "was", "not", "neg_bad", "neg_at", "neg_all", "great"]
  ]


def test_negation_scope_ends_at_but_and_keeps_the_word():
  assert _marked(["I didn't like it, but the end was great", "not great but fun"]) == [
    ["i", "didnt", "neg_like", "neg_it", "but", "the", "end", "was", "great"],
    ["not", "neg_great", "but", "fun"],
  ]


def test_negation_scope_second_cue_cancels_the_first():
  # "can't say I didn't enjoy": two cues in one clause, so "enjoy" stays plain.
  assert _marked(["I can't say I didn't enjoy it."]) == [
    ["i", "cant", "neg_say", "neg_i", "didnt", "enjoy", "it"]
  ]


def test_negation_scope_fail_to_negates_and_cancels_another_cue():
  assert _marked(["The film failed to entertain me. Great!", "It never fails to bore me."]) == [
    ["the", "film", "failed", "neg_to", "neg_entertain", "neg_me", "great"],
    ["it", "never", "fails", "to", "bore", "me"],
  ]


def test_negation_scope_impossible_or_hard_cancels_the_not_right_after_it():
  assert _marked(["It is impossible not to love it.", "Hard not to smile, hard work", "hard"]) == [
    ["it", "is", "impossible", "not", "to", "love", "it"],
    ["hard", "not", "to", "smile", "hard", "work"],
    ["hard"],
  ]
  # Not across rows, nor across a clause end: "hard" is a plain word there.
  assert _marked(["It was hard", "not fun", "It was hard. Not fun"]) == [
    ["it", "was", "hard"],
    ["not", "neg_fun"],
    ["it", "was", "hard", "not", "neg_fun"],
  ]


def test_negation_scope_html_break_ends_a_clause_and_empty_rows_survive():
  assert _marked(["Nothing bad<br />Loved it", "", "no"]) == [
    ["nothing", "neg_bad", "loved", "it"],
    [],
    ["no"],
  ]


def test_negation_scope_off_is_plain_tokenize():
  words = preprocessing.tokenize(tf.constant(["It was not bad."]), False)
  assert words.to_list() == [[b"it", b"was", b"not", b"bad"]]


def test_negation_scope_runs_in_a_graph_on_a_batch():
  fn = tf.function(
    lambda t: preprocessing.tokenize(t, True).to_tensor(),
    input_signature=[tf.TensorSpec([None], tf.string)],
  )
  assert fn(tf.constant(["not good", "x"])).numpy().tolist() == [
    [b"not", b"neg_good"],
    [b"x", b""],
  ]


# --- contrast scope -----------------------------------------------------------------


def _conceded(texts, negation_scope=False):
  rows = preprocessing.tokenize(tf.constant(texts), negation_scope, True).to_list()
  return [" ".join(w.decode() for w in row) for row in rows]


def test_contrast_scope_marks_the_clause_before_but_yet_and_however():
  assert _conceded(
    [
      "The plot was brilliant, but overall the movie is poor.",
      "Fun yet shallow",
      "Great cast. However, the script is dull!",
    ]
  ) == [
    "con_the con_plot con_was con_brilliant but overall the movie is poor",
    "con_fun yet shallow",
    "con_great con_cast however the script is dull",
  ]


def test_contrast_scope_marks_the_words_after_a_concession_cue_in_their_clause():
  assert _conceded(
    [
      "Although the ending is excellent, the film is poor.",
      "A poor film, even though the ending is excellent",
      "Despite good acting it bores",
    ]
  ) == [
    "although con_the con_ending con_is con_excellent the film is poor",
    "a poor film even though con_the con_ending con_is con_excellent",
    "despite con_good con_acting con_it con_bores",
  ]


def test_contrast_scope_stays_in_its_row_and_leaves_other_clauses_alone():
  assert _conceded(["Good film.", "But a bad one", "", "It was good. The end was sad."]) == [
    "good film",
    "but a bad one",
    "",
    "it was good the end was sad",
  ]


def test_contrast_scope_marks_negated_words_after_negation():
  assert _conceded(["It was not bad, but too long."], negation_scope=True) == [
    "con_it con_was con_not con_neg_bad but too long"
  ]


def test_contrast_scope_in_a_graph_on_an_empty_batch_and_a_batch():
  fn = tf.function(
    lambda t: preprocessing.tokenize(t, False, True).to_tensor(),
    input_signature=[tf.TensorSpec([None], tf.string)],
  )
  assert fn(tf.constant([], tf.string)).numpy().size == 0
  assert fn(tf.constant(["good, but dull", "x"])).numpy().tolist() == [
    [b"con_good", b"but", b"dull"],
    [b"x", b"", b""],
  ]


def test_preprocessing_fn_vocabulary_holds_the_negated_forms(tmp_path):
  spec = {"text": tf.io.FixedLenFeature([1], tf.string)}
  raw = [{"text": [b"not good. good"]}, {"text": [b"Not good, really"]}, {"text": [b"bad"]}]
  out_dir = str(tmp_path / "transform_output")
  metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(spec))
  hparams = {**HPARAMS, "negation_scope": True}
  fn = functools.partial(preprocessing.preprocessing_fn, custom_config={"hparams": hparams})
  with tft_beam.Context(temp_dir=str(tmp_path / "tmp")):
    transform_fn = (raw, metadata) | tft_beam.AnalyzeDataset(fn)
    _ = transform_fn | tft_beam.WriteTransformFn(out_dir)
  vocabulary = tft.TFTransformOutput(out_dir).vocabulary_by_name(features.VOCABULARY_NAME)
  # "not" x2 and "neg_good" x2 lead; plain "good" (once) is a word apart from "neg_good".
  assert sorted(vocabulary[:2]) == [b"neg_good", b"not"]
  assert b"good" in vocabulary or len(vocabulary) == HPARAMS["vocab_size"]


def test_preprocessing_fn_vocabulary_holds_the_conceded_forms(tmp_path):
  spec = {"text": tf.io.FixedLenFeature([1], tf.string)}
  raw = [{"text": [b"Great, but dull"]}, {"text": [b"Although great, dull"]}, {"text": [b"dull"]}]
  out_dir = str(tmp_path / "transform_output")
  metadata = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(spec))
  hparams = {**HPARAMS, "negation_scope": False, "contrast_scope": True}
  fn = functools.partial(preprocessing.preprocessing_fn, custom_config={"hparams": hparams})
  with tft_beam.Context(temp_dir=str(tmp_path / "tmp")):
    transform_fn = (raw, metadata) | tft_beam.AnalyzeDataset(fn)
    _ = transform_fn | tft_beam.WriteTransformFn(out_dir)
  vocabulary = tft.TFTransformOutput(out_dir).vocabulary_by_name(features.VOCABULARY_NAME)
  # "dull" x3 leads, "con_great" x2 next; a plain "great" never occurs.
  assert vocabulary[:2] == [b"dull", b"con_great"]
  assert b"great" not in vocabulary


# --- proper names ---------------------------------------------------------------------


def _masked(texts):
  return [t.decode() for t in preprocessing.mask_names(tf.constant(texts)).numpy()]


def test_mask_names_masks_runs_of_capitalized_words():
  assert _masked(
    [
      "I loved Paper Moons, and Tom Hanks's best role.",
      "Paper Moons was a chore from start to finish.",
      "I went into The Long Road Home with low hopes.",
      "Midnight in Avalon and City of the Lost Souls rock",
    ]
  ) == [
    "I loved xxname xxname, and xxname xxname best role.",
    "xxname xxname was a chore from start to finish.",
    "I went into The xxname xxname xxname with low hopes.",
    "xxname in xxname and xxname of the xxname xxname rock",
  ]


def test_mask_names_keeps_cues_single_capitals_and_acronyms():
  # A cue or function word opening a run stays; "Oscar" alone, "I", "TV" are no names.
  assert _masked(
    [
      "But City of Mirrors was a chore. Not Steven Seagal again!",
      "The Glass House deserves an Oscar. I saw it on TV in the USA.",
    ]
  ) == [
    "But xxname of xxname was a chore. Not xxname xxname again!",
    "The xxname xxname deserves an Oscar. I saw it on TV in the USA.",
  ]


def test_mask_names_leaves_title_case_and_shouting_alone():
  texts = ["I Loved This Film. The Acting Is Superb.", "I LOVED THIS FILM, TOM HANKS!", "", "x"]
  assert _masked(texts) == texts


def test_tokenize_with_names_gives_one_token_per_name_word():
  rows = preprocessing.tokenize(
    tf.constant(["I didn't like Paper Moons, but Emma Clarke was great."]), True, True, True
  ).to_list()
  assert [w.decode() for w in rows[0]] == [
    "con_i", "con_didnt", "con_neg_like", "con_neg_xxname", "con_neg_xxname",
    "but", "xxname", "xxname", "was", "great",
  ]  # fmt: skip
