"""Tests of models.pretraining (the EmbeddingTrainer's word2vec pretraining) and of the
Trainer starting from its vectors: ids to words, the corpus through the TransformGraph,
word2vec on a corpus with a known structure, the table, the files, the errors."""

import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tiny_model
from gensim.models import KeyedVectors
from tfx.types import standard_artifacts

from components.embedding_trainer import EmbeddingTrainer
from components.imdb_beam import to_tf_example
from core import features
from models import model as model_lib
from models import pretraining, trainer
from models.hparams import HParams

# No downsampling: in a corpus of a few hundred tokens every word is "frequent".
HP = dataclasses.replace(tiny_model.HP, word2vec_epochs=5, word2vec_window=2, word2vec_sample=0.0)
UNLABELLED = [
  b"a great and wonderful story",
  b"awful and bad, boring plot",
  b"",
  b"superb film, loved the cast",
]


def _sentences(seed: int = 0):
  """A corpus where "good" and "great" share every context, and so do "bad" and "awful",
  but the two pairs never share one."""
  rng = np.random.default_rng(seed)
  positive = ["film", "story", "cast", "acting", "ending"]
  negative = ["plot", "script", "pacing", "dialogue", "editing"]
  sentences = []
  for _ in range(400):
    for words, context in ((("good", "great"), positive), (("bad", "awful"), negative)):
      word = words[rng.integers(2)]
      sentences.append(
        [context[i] for i in rng.integers(len(context), size=3)]
        + [word]
        + [context[i] for i in rng.integers(len(context), size=3)]
      )
  return sentences


def _cosine(vectors, a, b):
  u, v = vectors[a], vectors[b]
  return float(np.dot(u, v) / np.linalg.norm(u) / np.linalg.norm(v))


# --- id_words ---------------------------------------------------------------------------


def test_id_words_follow_the_transform_ids():
  hp = HParams(vocab_size=4, num_oov_buckets=2)
  words = pretraining.id_words([b"the", b"film", "great"], hp)
  # 0 padding, 1..3 the vocabulary, then the OOV buckets (a vocabulary shorter than
  # vocab_size moves them down), then rows no id reaches.
  assert words == ["", "the", "film", "great", "<oov:0>", "<oov:1>", "<unused:6>"]
  assert len(words) == hp.embedding_input_dim


def test_id_words_rejects_a_vocabulary_longer_than_vocab_size():
  with pytest.raises(ValueError, match="4 words, more than vocab_size 3"):
    pretraining.id_words([b"a", b"b", b"c", b"d"], HParams(vocab_size=3))


# --- word2vec ---------------------------------------------------------------------------


def _train(tmp_path, sentences, hp, workers=1):
  """word2vec on ``sentences`` (lists of words) through a corpus file, as ``pretrain``."""
  path = tmp_path / f"corpus-{len(list(tmp_path.iterdir()))}.txt"
  words = sorted({w for s in sentences for w in s})
  ids = [np.array([words.index(w) for w in s], dtype=np.int64) for s in sentences]
  corpus = pretraining.write_corpus(iter(ids), words, str(path))
  return pretraining.train_word2vec(corpus, hp, workers)


def test_write_corpus_streams_a_review_a_line(tmp_path):
  path = tmp_path / "corpus.txt"
  words = ["", "the", "film", "<oov:0>"]
  sequences = iter([np.array([1, 2]), np.array([], dtype=np.int64), np.array([3, 2, 1])])
  corpus = pretraining.write_corpus(sequences, words, str(path))
  assert (corpus.path, corpus.reviews, corpus.tokens, corpus.sentences) == (str(path), 3, 5, 2)
  assert path.read_text().splitlines() == ["the film", "", "<oov:0> film the"]
  # Counted in the order of first occurrence, as gensim's scan of the file counts them.
  assert list(corpus.word_counts.items()) == [("the", 2), ("film", 2), ("<oov:0>", 1)]


def test_write_corpus_counts_as_gensims_scan_across_chunks(tmp_path, monkeypatch):
  from gensim.models import Word2Vec

  monkeypatch.setattr(pretraining, "_COUNT_CHUNK", 3)  # several chunks, a partial last
  rng = np.random.default_rng(5)
  words = ["", *(f"w{i}" for i in range(1, 40))]
  # Skewed ids, empty reviews among them, ties in the counts.
  sequences = [rng.zipf(1.3, size=rng.integers(0, 12)) % 39 + 1 for _ in range(50)]
  corpus = pretraining.write_corpus(iter(sequences), words, str(tmp_path / "c.txt"))
  gensim = Word2Vec(min_count=1)
  gensim.build_vocab(corpus_file=corpus.path, keep_raw_vocab=True)
  assert list(corpus.word_counts.items()) == list(gensim.raw_vocab.items())
  assert (corpus.sentences, corpus.tokens) == (gensim.corpus_count, gensim.corpus_total_words)


def test_word2vec_gives_gensims_vectors_for_its_own_scan(tmp_path):
  from gensim.models import Word2Vec

  hp = HParams(embedding_dim=8, word2vec_epochs=2, word2vec_sample=1e-3)
  words = sorted({w for s in _sentences() for w in s})
  ids = [np.array([words.index(w) for w in s], dtype=np.int64) for s in _sentences()]
  corpus = pretraining.write_corpus(iter(ids), words, str(tmp_path / "c.txt"))
  ours = pretraining.train_word2vec(corpus, hp)
  # gensim's one call: its own scan of the file, then training.
  theirs = Word2Vec(corpus_file=corpus.path, **pretraining.word2vec_parameters(hp)).wv
  assert ours.index_to_key == theirs.index_to_key
  np.testing.assert_array_equal(ours.vectors, theirs.vectors)


@pytest.mark.parametrize("workers", [1, 2])
def test_word2vec_puts_words_of_shared_contexts_together(tmp_path, workers):
  hp = HParams(embedding_dim=16, word2vec_epochs=10, word2vec_window=3, word2vec_sample=0.0)
  vectors = _train(tmp_path, _sentences(), hp, workers)
  assert vectors.vector_size == 16
  assert set(vectors.key_to_index) >= {"good", "great", "bad", "awful", "film", "plot"}
  same = min(_cosine(vectors, "good", "great"), _cosine(vectors, "bad", "awful"))
  across = max(_cosine(vectors, "good", "bad"), _cosine(vectors, "great", "awful"))
  assert same > across + 0.2, (same, across)


def test_word2vec_is_reproducible_for_a_seed_with_one_worker(tmp_path):
  hp = HParams(embedding_dim=8, word2vec_epochs=2, word2vec_sample=1e-3)
  first = _train(tmp_path, _sentences(), hp)
  second = _train(tmp_path, _sentences(), hp)
  other = _train(tmp_path, _sentences(), dataclasses.replace(hp, seed=7))
  np.testing.assert_array_equal(first["good"], second["good"])
  np.testing.assert_array_equal(first.vectors, second.vectors)
  assert not np.allclose(first["good"], other["good"])


def test_word2vec_rejects_an_empty_corpus(tmp_path):
  with pytest.raises(ValueError, match="no tokens to pretrain"):
    _train(tmp_path, [[], []], HParams())


def test_word2vec_workers_one_per_core_by_default():
  cores = len(os.sched_getaffinity(0))
  assert pretraining.word2vec_workers(HParams()) == cores
  assert pretraining.word2vec_workers(HParams(word2vec_workers=1)) == 1
  assert pretraining.word2vec_workers(HParams(word2vec_workers=3)) == 3
  with pytest.raises(ValueError, match="word2vec_workers must be >= 0"):
    HParams(word2vec_workers=-1)


# --- the table --------------------------------------------------------------------------


def test_embedding_matrix_rows(tmp_path):
  hp = HParams(vocab_size=4, num_oov_buckets=1, embedding_dim=8, word2vec_epochs=1)
  vectors = _train(tmp_path, [["the", "film", "<oov:0>"], ["film", "the"]], hp)
  words = pretraining.id_words([b"the", b"film", b"never"], hp)
  matrix = pretraining.embedding_matrix(vectors, words, hp)
  assert matrix.shape == (hp.embedding_input_dim, 8) and matrix.dtype == np.float32
  np.testing.assert_array_equal(matrix[features.PADDING_ID], np.zeros(8))
  np.testing.assert_array_equal(matrix[1], vectors["the"])
  np.testing.assert_array_equal(matrix[2], vectors["film"])
  np.testing.assert_array_equal(matrix[4], vectors["<oov:0>"])
  # "never" (id 3) and the unused row 5 never occurred: Keras's Embedding init.
  for row in (3, 5):
    assert np.all(np.abs(matrix[row]) <= 0.05) and np.any(matrix[row] != 0)


def test_embedding_matrix_rejects_other_widths(tmp_path):
  vectors = _train(tmp_path, [["a", "b"]], HParams(embedding_dim=4, word2vec_epochs=1))
  with pytest.raises(ValueError, match="size 4 for embedding_dim 8"):
    pretraining.embedding_matrix(vectors, ["", "a", "b"], HParams(embedding_dim=8))


def test_load_embeddings_checks_file_and_shape(tmp_path):
  hp = HParams(vocab_size=5, num_oov_buckets=1, embedding_dim=4)
  with pytest.raises(FileNotFoundError, match="not an EmbeddingTrainer output"):
    pretraining.load_embeddings(str(tmp_path), hp)
  table = np.arange(7 * 4, dtype=np.float64).reshape(7, 4)
  np.save(tmp_path / pretraining.EMBEDDINGS_FILE, table)
  loaded = pretraining.load_embeddings(str(tmp_path), hp)
  assert loaded.dtype == np.float32
  np.testing.assert_array_equal(loaded, table)
  with pytest.raises(ValueError, match=r"\(7, 4\), the model needs \(12, 4\)"):
    pretraining.load_embeddings(str(tmp_path), dataclasses.replace(hp, vocab_size=10))


@pytest.mark.parametrize("model", ["lstm_attention", "multi_head"])
def test_set_pretrained_embeddings_sets_the_token_table(model, tmp_path):
  hp = dataclasses.replace(tiny_model.HP, model=model)
  table = (
    np.random.default_rng(0)
    .normal(size=(hp.embedding_input_dim, hp.embedding_dim))
    .astype(np.float32)
  )
  np.save(tmp_path / pretraining.EMBEDDINGS_FILE, table)
  keras_model, explain_model = model_lib.build(hp)
  info = trainer.set_pretrained_embeddings(keras_model, hp, str(tmp_path))
  assert info == {"path": str(tmp_path), "rows": hp.embedding_input_dim}
  # The explanation model (the export) shares the table.
  (weights,) = model_lib.token_embedding_layer(explain_model).get_weights()
  np.testing.assert_array_equal(weights, table)


# --- pretrain and the EmbeddingTrainer -----------------------------------------------


def _write_raw_examples(path, records):
  os.makedirs(os.path.dirname(path))
  with tf.io.TFRecordWriter(path, tf.io.TFRecordOptions(compression_type="GZIP")) as writer:
    for text, label in records:
      writer.write(to_tf_example(text, label).SerializeToString())


def _raw_examples(root) -> standard_artifacts.Examples:
  """ImdbExampleGen's layout: train (tiny_model.REVIEWS), eval and unlabelled splits."""
  examples = standard_artifacts.Examples()
  examples.uri = str(root / "examples")
  examples.split_names = '["train", "eval", "unlabelled"]'
  _write_raw_examples(str(root / "examples" / "Split-train" / "data.gz"), tiny_model.REVIEWS)
  _write_raw_examples(str(root / "examples" / "Split-eval" / "data.gz"), tiny_model.REVIEWS[:4])
  _write_raw_examples(
    str(root / "examples" / "Split-unlabelled" / "data.gz"), [(t, None) for t in UNLABELLED]
  )
  return examples


def _transformed_examples(root, output) -> standard_artifacts.Examples:
  """Transform's layout: tiny_model.REVIEWS' ids (``tokens``, int64 [max_length]) and
  labels in ``Split-train``."""
  examples = standard_artifacts.Examples()
  examples.uri = str(root / "transformed_examples")
  examples.split_names = '["train"]'
  transformed = tiny_model.transform_reviews(output, tiny_model.REVIEWS)
  os.makedirs(os.path.join(examples.uri, "Split-train"))
  path = os.path.join(examples.uri, "Split-train", "transformed_examples-00000-of-00001.gz")
  with tf.io.TFRecordWriter(path, tf.io.TFRecordOptions(compression_type="GZIP")) as writer:
    labels = transformed[features.LABEL_KEY].reshape(-1)
    for tokens, label in zip(transformed[features.TOKENS_KEY], labels):
      feature = {
        features.TOKENS_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=tokens.tolist())),
        features.LABEL_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
      }
      writer.write(
        tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()
      )
  return examples


def _run_embedding_trainer(
  examples, transform_graph, embeddings, run, splits, transformed=None, transformed_splits=""
):
  """The component's executor, as TFX's launcher calls it."""
  executor = EmbeddingTrainer.EXECUTOR_SPEC.executor_class()
  inputs = {"examples": [examples], "transform_graph": [transform_graph]}
  if transformed is not None:
    inputs["transformed_examples"] = [transformed]
  executor.Do(
    inputs,
    {"embeddings": [embeddings], "pretraining_run": [run]},
    {
      "splits": splits,
      "transformed_splits": transformed_splits,
      "custom_config": json.dumps(HP.pretraining_custom_config()),
    },
  )


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
  """The EmbeddingTrainer's function on tiny_model.REVIEWS (train) and UNLABELLED;
  returns (file patterns, model dir, run dir, tf_transform_output)."""
  root = tmp_path_factory.mktemp("pretraining")
  output = tiny_model.analyze_reviews(str(root / "transform_graph"), HP)
  examples = _raw_examples(root)
  transform_graph = standard_artifacts.TransformGraph()
  transform_graph.uri = str(root / "transform_graph")
  embeddings, run = standard_artifacts.Model(), standard_artifacts.ModelRun()
  embeddings.uri, run.uri = str(root / "embeddings"), str(root / "run")
  _run_embedding_trainer(examples, transform_graph, embeddings, run, "train,unlabelled")
  patterns = [str(root / "examples" / f"Split-{s}" / "*") for s in ("train", "unlabelled")]
  return patterns, os.path.join(embeddings.uri, "Format-Serving"), run.uri, output


def test_embedding_trainer_names_a_missing_split(tmp_path):
  examples = _raw_examples(tmp_path)
  with pytest.raises(ValueError, match=r"\['unsup'\]; the Examples have"):
    _run_embedding_trainer(
      examples,
      standard_artifacts.TransformGraph(),
      standard_artifacts.Model(),
      standard_artifacts.ModelRun(),
      "train,unsup",
    )


def test_embedding_trainer_refuses_no_splits_and_transformed_splits_without_examples(tmp_path):
  examples = _raw_examples(tmp_path)
  artifacts = (standard_artifacts.TransformGraph(), standard_artifacts.Model())
  with pytest.raises(ValueError, match="no splits to pretrain on"):
    _run_embedding_trainer(examples, *artifacts, standard_artifacts.ModelRun(), "")
  with pytest.raises(ValueError, match=r"\['train'\] without transformed_examples"):
    _run_embedding_trainer(
      examples, *artifacts, standard_artifacts.ModelRun(), "unlabelled", transformed_splits="train"
    )


def test_transformed_train_gives_the_corpus_of_the_raw_train(pretrained, tmp_path):
  """The pipeline's way (train's ids as Transform wrote them, unlabelled raw) writes the
  same reviews' ids as reading both raw through the TransformGraph."""
  patterns, _, run_dir, _ = pretrained
  graph = standard_artifacts.TransformGraph()
  graph.uri = str(tmp_path / "transform_graph")
  output = tiny_model.analyze_reviews(graph.uri, HP)  # the fixture's graph: same reviews
  transformed = _transformed_examples(tmp_path, output)
  read = list(
    pretraining.transformed_id_sequences(
      [os.path.join(transformed.uri, "Split-train", "*")], output
    )
  )
  raw = list(pretraining.token_id_sequences(patterns[:1], output))
  assert sorted(tuple(s) for s in read) == sorted(tuple(s) for s in raw)
  assert all(s.dtype == np.int64 for s in read)
  embeddings, run = standard_artifacts.Model(), standard_artifacts.ModelRun()
  embeddings.uri, run.uri = str(tmp_path / "embeddings"), str(tmp_path / "run")
  _run_embedding_trainer(
    _raw_examples(tmp_path / "raw"), graph, embeddings, run, "unlabelled", transformed, "train"
  )
  with open(os.path.join(run.uri, pretraining.SUMMARY_FILE), encoding="utf-8") as f:
    summary = json.load(f)
  with open(os.path.join(run_dir, pretraining.SUMMARY_FILE), encoding="utf-8") as f:
    all_raw = json.load(f)
  assert (summary["reviews"], summary["tokens"]) == (all_raw["reviews"], all_raw["tokens"])


def test_id_batches_run_in_order_without_autotuning(pretrained):
  patterns, _, _, _ = pretrained
  dataset = pretraining.id_batches(patterns, lambda serialized: tf.strings.length(serialized))
  assert dataset.options().autotune.enabled is False
  lengths = np.concatenate([batch.numpy() for batch in dataset])
  files = sorted(f for pattern in patterns for f in tf.io.gfile.glob(pattern))
  records = tf.data.TFRecordDataset(files, compression_type="GZIP").as_numpy_iterator()
  assert lengths.tolist() == [len(record) for record in records]


def test_token_id_sequences_are_the_transform_graphs_ids(pretrained):
  patterns, _, _, output = pretrained
  sequences = list(pretraining.token_id_sequences(patterns, output))
  assert len(sequences) == len(tiny_model.REVIEWS) + len(UNLABELLED)
  expected = tiny_model.transform_reviews(
    output, tiny_model.REVIEWS + [(t, 0) for t in UNLABELLED]
  )[features.TOKENS_KEY]
  by_review = sorted(tuple(s) for s in sequences)
  assert by_review == sorted(tuple(row[row != 0]) for row in expected)
  assert () in by_review  # the empty unlabelled review
  assert all(s.dtype == np.int64 for s in sequences)


def test_pretraining_writes_the_table_the_vectors_and_a_summary(pretrained):
  patterns, model_dir, run_dir, output = pretrained
  table = pretraining.load_embeddings(model_dir, HP)
  vectors = KeyedVectors.load_word2vec_format(
    os.path.join(model_dir, pretraining.WORD_VECTORS_FILE), binary=True
  )
  words = pretraining.id_words(output.vocabulary_by_name(features.VOCABULARY_NAME), HP)
  # Every word of the corpus has its vector in the row of its id.
  great = words.index("great")
  np.testing.assert_allclose(table[great], vectors["great"], rtol=1e-6)
  np.testing.assert_array_equal(table[features.PADDING_ID], np.zeros(HP.embedding_dim))
  with open(os.path.join(run_dir, pretraining.SUMMARY_FILE), encoding="utf-8") as f:
    summary = json.load(f)
  sequences = list(pretraining.token_id_sequences(patterns, output))
  assert summary["reviews"] == len(tiny_model.REVIEWS) + len(UNLABELLED)
  assert summary["tokens"] == sum(len(s) for s in sequences)
  assert summary["rows"] == HP.embedding_input_dim
  assert summary["rows_from_word2vec"] == len(vectors.key_to_index)
  assert summary["hparams"] == HP.pretraining_custom_config()["hparams"]


def test_pretraining_refuses_zero_epochs(pretrained, tmp_path):
  patterns, _, _, _ = pretrained
  with pytest.raises(ValueError, match="word2vec_epochs is 0"):
    pretraining.pretrain(
      patterns,
      "unused",
      dataclasses.replace(HP, word2vec_epochs=0),
      str(tmp_path / "model"),
      str(tmp_path / "run"),
    )
  assert not os.path.exists(tmp_path / "model")
