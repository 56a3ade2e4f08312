"""Unit tests of models.model, models.hparams and the exported SavedModel signatures."""

import dataclasses
import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from tiny_model import HP, REVIEWS, transform_reviews

from core import features, warmup
from models import layers, signatures
from models import model as model_lib
from models import strategy as strategy_lib
from models.hparams import ATTENTIONS, MODELS, HParams

TOKENS = np.array(
  [
    [5, 3, 9, 1, 2, 7, 4, 6],  # full row
    [4, 8, 2, 0, 0, 0, 0, 0],  # three real tokens
    [32, 0, 0, 0, 0, 0, 0, 0],  # one OOV token
  ],
  np.int64,
)


@pytest.fixture(scope="module")
def built():
  return model_lib.build(HP)


# --- model.build --------------------------------------------------------------------


def test_model_output_is_probability_per_example(built):
  model, _ = built
  probabilities = model(TOKENS, training=False).numpy()
  assert probabilities.shape == (3, 1)
  assert probabilities.dtype == np.float32
  assert np.all((probabilities > 0) & (probabilities < 1))


def test_explain_model_weights_zero_on_padding_rows_sum_to_one(built):
  model, explain_model = built
  probabilities, weights = explain_model(TOKENS, training=False)
  weights = weights.numpy()
  assert weights.shape == (3, HP.max_length)
  assert np.all(weights[TOKENS == 0] == 0.0)
  assert np.all(weights[TOKENS != 0] > 0.0)
  np.testing.assert_allclose(weights.sum(-1), np.ones(3), rtol=1e-5)
  # The explanation twin shares the layers, so its probabilities are the model's.
  np.testing.assert_allclose(
    probabilities.numpy(), model(TOKENS, training=False).numpy(), rtol=1e-6
  )


def test_prediction_depends_on_real_tokens_not_on_batch(built):
  model, _ = built
  batch = model(TOKENS, training=False).numpy()
  alone = model(TOKENS[1:2], training=False).numpy()
  np.testing.assert_allclose(alone, batch[1:2], rtol=1e-5)
  changed = TOKENS[1:2].copy()
  changed[0, 2] = 3  # a different real token
  assert not np.allclose(model(changed, training=False).numpy(), alone)


def test_model_layers_and_compile(built):
  model, _ = built
  dropout = model.get_layer("dropout")
  assert isinstance(dropout, keras.layers.Dropout)
  assert dropout.rate == pytest.approx(0.5)
  embedding = model.get_layer("embedding")
  assert embedding.input_dim == HP.vocab_size + HP.num_oov_buckets + 1 == HP.embedding_input_dim
  assert embedding.output_dim == HP.embedding_dim
  # Any width: bucketed training batches are cut to their longest review.
  assert model.input_shape == (None, None)
  narrow = model(TOKENS[:, :4], training=False).numpy()
  np.testing.assert_allclose(
    narrow[1:], model(TOKENS, training=False).numpy()[1:], rtol=1e-5
  )  # rows 1, 2 have <= 4 real tokens
  assert model.loss.__class__ is keras.losses.BinaryCrossentropy
  assert model.optimizer.learning_rate.numpy() == pytest.approx(HP.learning_rate)


def test_build_with_max_pooling_concatenates_pools():
  hp = dataclasses.replace(HP, max_pooling=True)
  model, explain_model = model_lib.build(hp)
  assert model.get_layer("pooled").output.shape[-1] == 2 * hp.lstm_units
  probabilities, weights = explain_model(TOKENS, training=False)
  assert probabilities.shape == (3, 1) and weights.shape == (3, hp.max_length)
  assert np.all(weights.numpy()[TOKENS == 0] == 0.0)


def test_learning_rate_constant_or_per_epoch_staircase_decay():
  hp = dataclasses.replace(HP, learning_rate=0.01, lr_decay=0.5)
  assert model_lib.learning_rate(hp) == 0.01
  assert model_lib.learning_rate(dataclasses.replace(hp, lr_decay=1.0), 10) == 0.01
  schedule = model_lib.learning_rate(hp, steps_per_epoch=10)
  values = [float(schedule(step)) for step in (0, 9, 10, 19, 20)]
  np.testing.assert_allclose(values, [0.01, 0.01, 0.005, 0.005, 0.0025], rtol=1e-6)


def test_cosine_schedule_decays_to_zero_over_all_epochs():
  hp = dataclasses.replace(HP, learning_rate=0.01, lr_schedule="cosine", epochs=2)
  schedule = model_lib.learning_rate(hp, steps_per_epoch=10)
  steps = np.array([0, 5, 10, 15, 20])
  expected = 0.01 * 0.5 * (1 + np.cos(np.pi * steps / 20))
  np.testing.assert_allclose([float(schedule(s)) for s in steps], expected, atol=1e-8)
  assert float(schedule(20)) == pytest.approx(0.0, abs=1e-9)


def test_linear_warmup_then_the_schedule_from_its_own_step_zero():
  hp = dataclasses.replace(HP, learning_rate=0.01, lr_decay=0.5, warmup_epochs=0.5)
  schedule = model_lib.learning_rate(hp, steps_per_epoch=10)
  assert isinstance(schedule, model_lib.LinearWarmup) and schedule.warmup_steps == 5
  values = [float(schedule(step)) for step in (0, 4, 5, 14, 15)]
  np.testing.assert_allclose(values, [0.002, 0.01, 0.01, 0.01, 0.005], rtol=1e-6)
  cosine = model_lib.learning_rate(
    dataclasses.replace(hp, lr_schedule="cosine", epochs=1), steps_per_epoch=10
  )
  # 5 warmup steps, then cosine over the remaining 5: half-way at step 5 + 2.5.
  np.testing.assert_allclose([float(cosine(s)) for s in (4, 5, 10)], [0.01, 0.01, 0.0], atol=1e-8)
  again = model_lib.LinearWarmup.from_config(cosine.get_config())
  np.testing.assert_allclose(
    [float(again(s)) for s in range(10)], [float(cosine(s)) for s in range(10)], rtol=1e-6
  )
  with pytest.raises(ValueError, match="leaves no step"):
    model_lib.learning_rate(
      dataclasses.replace(hp, lr_schedule="cosine", epochs=1, warmup_epochs=1.0), 10
    )
  with pytest.raises(ValueError, match="warmup_steps must be >= 1"):
    model_lib.LinearWarmup(0.01, 0, 0.01)


def test_compiled_optimizer_follows_the_schedule():
  hp = dataclasses.replace(HP, lr_schedule="cosine", warmup_epochs=1.0, epochs=2)
  model, _ = model_lib.build(hp, steps_per_epoch=4)
  assert float(model.optimizer.learning_rate) == pytest.approx(hp.learning_rate / 4)
  # The optimizer's config carries the whole schedule.
  schedule = keras.optimizers.schedules.deserialize(
    model.optimizer.get_config()["learning_rate"],
    custom_objects={"LinearWarmup": model_lib.LinearWarmup},
  )
  assert float(schedule(3)) == pytest.approx(hp.learning_rate)
  assert float(schedule(8)) == pytest.approx(0.0, abs=1e-9)


def test_build_is_deterministic_given_seed(built):
  model, _ = built
  again, _ = model_lib.build(HP)
  np.testing.assert_allclose(
    model(TOKENS, training=False).numpy(), again(TOKENS, training=False).numpy(), rtol=1e-6
  )


def test_build_unknown_model_raises(monkeypatch):
  monkeypatch.setattr(model_lib, "BUILDERS", {})
  with pytest.raises(ValueError, match="lstm_attention"):
    model_lib.build(HParams(max_length=8))


# --- the model family ---------------------------------------------------------------

FAMILY = [(m, a) for m in MODELS for a in ATTENTIONS]


@pytest.fixture(scope="module", params=FAMILY, ids=[f"{m}-{a}" for m, a in FAMILY])
def family_member(request):
  model_name, attention = request.param
  hp = dataclasses.replace(HP, model=model_name, attention=attention, max_pooling=True)
  return hp, model_lib.build(hp)


def test_every_model_and_attention_gives_probabilities_and_masked_weights(family_member):
  hp, (model, explain_model) = family_member
  probabilities, weights = explain_model(TOKENS, training=False)
  assert probabilities.shape == (3, 1) and probabilities.dtype == tf.float32
  assert np.all((probabilities.numpy() > 0) & (probabilities.numpy() < 1))
  weights = weights.numpy()
  assert weights.shape == (3, hp.max_length) and weights.dtype == np.float32
  assert np.all(weights[TOKENS == 0] == 0.0)
  np.testing.assert_allclose(weights.sum(-1), np.ones(3), rtol=1e-5)
  np.testing.assert_allclose(
    probabilities.numpy(), model(TOKENS, training=False).numpy(), rtol=1e-6
  )
  assert model.get_layer("attention_pooling").score == hp.attention
  # A review alone gets the answer it gets in a batch (padding never leaks across rows).
  np.testing.assert_allclose(
    model(TOKENS[1:2], training=False).numpy(),
    model(TOKENS, training=False).numpy()[1:2],
    rtol=1e-5,
  )


def test_model_architectures():
  bilstm, _ = model_lib.build(dataclasses.replace(HP, model="bilstm_attention"))
  assert isinstance(bilstm.get_layer("bilstm"), keras.layers.Bidirectional)
  assert bilstm.get_layer("bilstm").output.shape[-1] == 2 * HP.lstm_units
  hp = dataclasses.replace(
    HP, model="multi_head", num_layers=2, num_heads=4, ff_dim=16, encoder_dropout=0.2
  )
  encoder, _ = model_lib.build(hp)
  blocks = [layer for layer in encoder.layers if isinstance(layer, layers.TransformerEncoder)]
  assert [b.name for b in blocks] == ["encoder_0", "encoder_1"]
  assert blocks[0].num_heads == 4 and blocks[0].key_dim == HP.embedding_dim // 4
  assert blocks[0].ff_dim == 16 and blocks[0].dropout == 0.2
  assert encoder.get_layer("embedding_dropout").rate == 0.2
  assert encoder.get_layer("dropout").rate == HP.dropout  # the head's
  assert isinstance(encoder.get_layer("embedding"), layers.TokenAndPositionEmbedding)


@pytest.mark.parametrize("model_name", MODELS)
def test_bigram_embedding_is_added_to_token_embedding(model_name):
  hp = dataclasses.replace(HP, model=model_name, bigram_buckets=64)
  model, explain_model = model_lib.build(hp)
  bigrams = model.get_layer("bigram_embedding")
  assert isinstance(bigrams, layers.HashedBigramEmbedding)
  assert (bigrams.buckets, bigrams.output_dim) == (64, hp.embedding_dim)
  assert bigrams.input_dim == hp.embedding_input_dim
  plain, _ = model_lib.build(dataclasses.replace(hp, bigram_buckets=0))
  assert model.count_params() - plain.count_params() == 64 * hp.embedding_dim
  probabilities, weights = explain_model(TOKENS, training=False)
  assert np.all(weights.numpy()[TOKENS == 0] == 0.0)
  # The bigram table takes part: changing it changes the prediction.
  table = bigrams.embedding.embeddings
  table.assign(table + 0.5)
  assert not np.allclose(model(TOKENS, training=False).numpy(), probabilities.numpy())


def test_bigram_dropout_drops_whole_bigram_vectors_in_training_only():
  hp = dataclasses.replace(HP, bigram_buckets=64, bigram_dropout=0.5)
  model, _ = model_lib.build(hp)
  plain, _ = model_lib.build(dataclasses.replace(hp, bigram_dropout=0.0))
  assert model.count_params() == plain.count_params()
  np.testing.assert_allclose(
    model(TOKENS, training=False).numpy(), plain(TOKENS, training=False).numpy(), rtol=1e-6
  )
  dropout = model.get_layer("bigram_dropout")
  bigrams = model.get_layer("bigram_embedding")(TOKENS)
  dropped = dropout(bigrams, training=True).numpy()
  kept = np.any(dropped != 0, axis=-1)
  # A position keeps all of its vector (scaled by 1 / (1 - rate)) or none of it.
  np.testing.assert_allclose(dropped[kept], bigrams.numpy()[kept] / 0.5, rtol=1e-6)
  assert np.all(dropped[~kept] == 0.0)
  real = bigrams.numpy().any(-1)
  assert 0 < kept.sum() < real.sum()


def test_l2_adds_a_penalty_per_regularized_kernel():
  plain, _ = model_lib.build(HP)
  assert not plain.losses
  regularized, _ = model_lib.build(dataclasses.replace(HP, l2=1e-3))
  # LSTM kernel, dense kernel, output kernel.
  assert len(regularized.losses) == 3
  kernel = regularized.get_layer("dense").kernel.numpy()
  assert any(
    np.isclose(float(loss), 1e-3 * np.sum(kernel**2), rtol=1e-5) for loss in regularized.losses
  )


@pytest.mark.parametrize("model_name", MODELS)
def test_mixed_float16_computes_in_float16_with_a_float32_output(model_name):
  hp = dataclasses.replace(HP, model=model_name, mixed_precision=True)
  with strategy_lib.keras_precision_policy("mixed_float16"):
    model, explain_model = model_lib.build(hp)
  assert keras.mixed_precision.global_policy().name == "float32"  # restored
  assert model.get_layer("embedding").compute_dtype == "float16"
  assert model.get_layer("attention_pooling").compute_dtype == "float16"
  assert model.get_layer("probabilities").compute_dtype == "float32"
  assert isinstance(model.optimizer, keras.mixed_precision.LossScaleOptimizer)
  probabilities, weights = explain_model(TOKENS, training=False)
  assert probabilities.dtype == tf.float32 and weights.dtype == tf.float32
  weights = weights.numpy()
  assert np.all(weights[TOKENS == 0] == 0.0)
  np.testing.assert_allclose(weights.sum(-1), np.ones(3), rtol=2e-3)
  # The variables stay float32 (only the arithmetic is float16).
  assert all(v.dtype == tf.float32 for v in model.trainable_variables)


# --- HParams ------------------------------------------------------------------------


@pytest.mark.parametrize(
  "kwargs, message",
  [
    ({"model": "transformer"}, "unknown model"),
    ({"strategy": "gpu"}, "unknown strategy"),
    ({"dropout": 1.0}, "dropout"),
    ({"dropout": -0.1}, "dropout"),
    ({"embedding_dropout": 1.5}, "embedding_dropout"),
    ({"max_length": 0}, "max_length"),
    ({"vocab_size": 0}, "vocab_size"),
    ({"learning_rate": 0.0}, "learning_rate"),
    ({"lr_decay": 0.0}, "lr_decay"),
    ({"lr_decay": 1.5}, "lr_decay"),
    ({"early_stopping_monitor": "accuracy"}, "early_stopping_monitor"),
    ({"attention": "cosine"}, "unknown attention 'cosine'"),
    ({"model": "multi_head", "embedding_dim": 10, "num_heads": 3}, "divisible by num_heads"),
    ({"l2": -1e-4}, "l2 must be >= 0"),
    ({"num_layers": 0}, "num_layers"),
    ({"num_heads": 0}, "num_heads"),
    ({"encoder_dropout": 1.0}, "encoder_dropout"),
    ({"bigram_buckets": -1}, "bigram_buckets must be >= 0"),
    ({"bigram_dropout": 1.0}, "bigram_dropout"),
    ({"negation_views": -0.1}, "negation_views must be >= 0"),
    ({"lr_schedule": "linear"}, "unknown lr_schedule 'linear'"),
    ({"warmup_epochs": -0.5}, "warmup_epochs must be >= 0"),
    ({"warm_start_learning_rate": 0.0}, "warm_start_learning_rate must be > 0"),
    ({"warm_start_replay": 1.5}, r"warm_start_replay must be in \[0, 1\]"),
    ({"warm_start_lr_schedule": None}, "warm_start_lr_schedule must be of type"),
    ({"warm_start_lr_schedule": "linear"}, "unknown warm_start_lr_schedule 'linear'"),
    ({"word2vec_epochs": -1}, "word2vec_epochs must be >= 0"),
    ({"word2vec_window": 0}, "word2vec_window must be >= 1"),
    ({"word2vec_negative": 0}, "word2vec_negative must be >= 1"),
    ({"word2vec_sample": 1.0}, r"word2vec_sample must be in \[0, 1\)"),
  ],
)
def test_hparams_validation(kwargs, message):
  with pytest.raises(ValueError, match=message):
    HParams(**kwargs)


def test_warmup_defaults_per_model_unless_set():
  assert HParams().model_warmup_epochs == 0.0
  assert HParams(model="bilstm_attention").model_warmup_epochs == 0.0
  assert HParams(model="multi_head").model_warmup_epochs == 0.5
  assert HParams(model="multi_head", warmup_epochs=0).model_warmup_epochs == 0
  assert HParams(warmup_epochs=1.5).model_warmup_epochs == 1.5
  assert isinstance(
    model_lib.learning_rate(HParams(model="multi_head"), 10), model_lib.LinearWarmup
  )
  assert not isinstance(model_lib.learning_rate(HParams(), 10), model_lib.LinearWarmup)
  with pytest.raises(ValueError, match="warmup_epochs must be of type"):
    HParams(warmup_epochs="half")


def test_batch_size_defaults_per_model_unless_set():
  assert HParams().per_replica_batch_size == 128
  assert HParams(model="bilstm_attention").per_replica_batch_size == 128
  assert HParams(model="multi_head").per_replica_batch_size == 32
  assert HParams(model="multi_head", batch_size=64).per_replica_batch_size == 64
  with pytest.raises(ValueError, match="batch_size must be >= 1"):
    HParams(batch_size=0)


def test_hparams_rejects_non_integer_size():
  with pytest.raises(ValueError, match="max_length"):
    HParams(max_length=2.5)


def test_hparams_from_custom_config_unknown_key_named():
  with pytest.raises(ValueError, match="lstm_unit"):
    HParams.from_custom_config({"hparams": {"lstm_unit": 3}})


def test_hparams_from_custom_config_defaults_and_overrides():
  assert HParams.from_custom_config(None) == HParams()
  assert HParams.from_custom_config({}) == HParams()
  hp = HParams.from_custom_config({"hparams": {"max_length": 12, "dropout": 0.25}})
  assert (hp.max_length, hp.dropout, hp.vocab_size) == (12, 0.25, HParams().vocab_size)


def test_hparams_custom_config_round_trip():
  config = HP.to_custom_config()
  assert set(config) == {"hparams"}
  assert config["hparams"]["max_length"] == 8
  assert config["hparams"] == dataclasses.asdict(HP)
  assert HParams.from_custom_config(config) == HP


# --- export -------------------------------------------------------------------------

LONG_REVIEW = "great acting and a wonderful story but the ending was bad and boring " * 3
TEXTS = ["Great film, loved it!", "", LONG_REVIEW, "terrible, awful, bad", "zzz qqq"]


def _tf_example(text: bytes) -> bytes:
  return tf.train.Example(
    features=tf.train.Features(
      feature={features.TEXT_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[text]))}
    )
  ).SerializeToString()


@pytest.fixture(scope="module")
def exported(tiny_export):
  """(loaded SavedModel, Keras model, transformed tokens, TFTransformOutput, export dir)."""
  export = tiny_export
  assert export.model.get_layer("dropout").rate == pytest.approx(0.5)
  return (
    tf.saved_model.load(export.export_dir),
    export.model,
    export.tokens,
    export.tf_transform_output,
    export.export_dir,
  )


def test_transformed_tokens_follow_written_vocabulary(exported):
  _, _, x, tf_transform_output, _ = exported
  vocab = [w.decode() for w in tf_transform_output.vocabulary_by_name(features.VOCABULARY_NAME)]
  assert len(vocab) == HP.vocab_size
  assert x.shape == (len(REVIEWS), HP.max_length) and x.dtype == np.int64
  # "a great film, great acting and a wonderful story": all in the top 30 words.
  words = ["a", "great", "film", "great", "acting", "and", "a", "wonderful"]
  np.testing.assert_array_equal(x[0], [vocab.index(w) + 1 for w in words])
  # "great great great" -> 3 ids then padding.
  np.testing.assert_array_equal(x[4], [vocab.index("great") + 1] * 3 + [0] * 5)
  assert vocab[:3] == ["great", "and", "bad"]  # the three most frequent train words


def test_export_has_signatures(exported):
  loaded = exported[0]
  assert set(loaded.signatures) == {
    "serving_default",
    "predict_text",
    "classify",
    "transform_features",
  }


def test_classify_signature_is_a_tf_serving_classification_signature(exported):
  loaded, export_dir = exported[0], exported[4]
  from tensorflow.python.tools import saved_model_utils

  meta_graph = saved_model_utils.get_meta_graph_def(export_dir, "serve")
  assert meta_graph.signature_def["classify"].method_name == "tensorflow/serving/classify"
  assert meta_graph.signature_def["predict_text"].method_name == "tensorflow/serving/predict"
  out = loaded.signatures["classify"](inputs=tf.constant([_tf_example(t.encode()) for t in TEXTS]))
  served = loaded.signatures["predict_text"](text=tf.constant(TEXTS))["probabilities"].numpy()
  assert out["classes"].numpy().tolist() == [[b"negative", b"positive"]] * len(TEXTS)
  scores = out["scores"].numpy()
  assert scores.shape == (len(TEXTS), 2) and scores.dtype == np.float32
  np.testing.assert_allclose(scores[:, 1], served, rtol=1e-6)
  np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-6)


def test_export_writes_warmup_requests_that_run(exported):
  loaded, export_dir = exported[0], exported[4]
  logs = list(warmup.read_warmup_file(warmup.warmup_path(export_dir)))
  predict = [log.predict_log.request for log in logs if log.HasField("predict_log")]
  classify = [log.classify_log.request for log in logs if log.HasField("classify_log")]
  assert sorted(r.model_spec.signature_name for r in predict) == ["predict_text"] * len(
    warmup.PREDICT_TEXT_BATCH_SIZES
  ) + ["serving_default"]
  assert [r.model_spec.signature_name for r in classify] == ["classify"]
  for request in predict:
    inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
    out = loaded.signatures[request.model_spec.signature_name](**inputs)
    assert out["probabilities"].shape[0] == next(iter(inputs.values())).shape[0]
  sizes = sorted(
    tf.make_ndarray(r.inputs["text"]).shape[0]
    for r in predict
    if r.model_spec.signature_name == "predict_text"
  )
  assert sizes == sorted(warmup.PREDICT_TEXT_BATCH_SIZES)


def test_read_warmup_file_rejects_foreign_records(tmp_path):
  path = str(tmp_path / "warmup")
  with tf.io.TFRecordWriter(path) as writer:
    writer.write(b"\xff\xfenot a proto")
  with pytest.raises(ValueError, match="not a tensorflow.serving.PredictionLog"):
    list(warmup.read_warmup_file(path))


def test_predict_text_outputs(exported):
  loaded = exported[0]
  out = loaded.signatures["predict_text"](text=tf.constant(TEXTS))
  n = len(TEXTS)
  probabilities = out["probabilities"].numpy()
  assert out["probabilities"].dtype == tf.float32 and probabilities.shape == (n,)
  assert np.all((probabilities >= 0) & (probabilities <= 1))
  assert out["label"].dtype == tf.int64
  np.testing.assert_array_equal(out["label"].numpy(), (probabilities >= 0.5).astype(np.int64))
  tokens = out["tokens"].numpy()
  assert out["tokens"].dtype == tf.string and tokens.shape == (n, HP.max_length)
  assert tokens[0].tolist() == [b"great", b"film", b"loved", b"it"] + [b""] * 4
  assert tokens[1].tolist() == [b""] * HP.max_length
  # Contrast scope marking (on by default): every clause before a "but" is conceded.
  assert tokens[2].tolist() == [
    b"con_great", b"con_acting", b"con_and", b"con_a", b"con_wonderful", b"con_story", b"but",
    b"con_the",
  ]  # fmt: skip
  assert LONG_REVIEW.split()[: HP.max_length][-2:] == ["but", "the"]
  weights = out["attention_weights"].numpy()
  assert out["attention_weights"].dtype == tf.float32 and weights.shape == (n, HP.max_length)
  assert np.all(weights[tokens == b""] == 0.0)
  non_empty = (tokens != b"").any(axis=1)
  np.testing.assert_allclose(weights[non_empty].sum(-1), np.ones(non_empty.sum()), rtol=1e-5)
  assert np.all(weights[1] == 0.0)  # empty review attends to nothing


def test_predict_text_matches_keras_model_on_transformed_tokens(exported):
  loaded, model, x, _, _ = exported
  texts = [t.decode() for t, _ in REVIEWS[:4]]
  out = loaded.signatures["predict_text"](text=tf.constant(texts))["probabilities"].numpy()
  expected = model(x[:4], training=False).numpy().reshape(-1)
  np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_a_batch_of_short_reviews_runs_cut_to_its_longest_with_the_same_outputs(exported):
  # The signatures run the model on the batch cut to its longest review (2 tokens here,
  # of max_length 8); the Keras model on the full width must agree.
  loaded, model, _, tf_transform_output, _ = exported
  texts = ["great film", "bad", ""]
  tokens = transform_reviews(tf_transform_output, [(t.encode(), 0) for t in texts])["tokens"]
  assert tokens.shape == (3, HP.max_length) and (tokens[:, 2:] == 0).all()
  out = loaded.signatures["predict_text"](text=tf.constant(texts))
  expected = model(tokens, training=False).numpy().reshape(-1)
  np.testing.assert_allclose(out["probabilities"].numpy(), expected, rtol=1e-5, atol=1e-6)
  weights = out["attention_weights"].numpy()
  assert weights.shape == (3, HP.max_length)
  assert (weights[:, 2:] == 0).all() and (weights[2] == 0).all()
  np.testing.assert_allclose(weights[:2].sum(-1), [1.0, 1.0], rtol=1e-5)


def test_signatures_run_length_sorted_chunks_and_keep_the_input_order(tiny_export):
  # Chunks of 2 reviews sorted by length, each cut to its longest: every review gets the
  # outputs it gets alone, in the order it came.
  _, explain_model = model_lib.build(HP)
  module = signatures.ExportModule(explain_model, tiny_export.tf_transform_output, HP, chunk_rows=2)
  texts = ["great film loved it", "bad", "", "a dull and boring film", "fine", "loved it"]

  out = module.predict_text(tf.constant(texts))

  assert out["probabilities"].shape == (len(texts),)
  assert out["attention_weights"].shape == (len(texts), HP.max_length)
  for i, text in enumerate(texts):
    alone = module.predict_text(tf.constant([text]))
    np.testing.assert_allclose(
      out["probabilities"][i], alone["probabilities"][0], rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
      out["attention_weights"][i], alone["attention_weights"][0], rtol=1e-5, atol=1e-6
    )
  empty = module.predict_text(tf.constant([], tf.string))
  assert empty["probabilities"].shape == (0,)
  assert empty["attention_weights"].shape == (0, HP.max_length)
  with pytest.raises(ValueError, match="chunk_rows"):
    signatures.ExportModule(explain_model, tiny_export.tf_transform_output, HP, chunk_rows=0)


def test_serving_default_matches_predict_text(exported):
  loaded = exported[0]
  examples = tf.constant([_tf_example(t.encode()) for t in TEXTS])
  served = loaded.signatures["serving_default"](examples=examples)["probabilities"].numpy()
  predicted = loaded.signatures["predict_text"](text=tf.constant(TEXTS))["probabilities"]
  assert served.shape == (len(TEXTS),)
  np.testing.assert_allclose(served, predicted.numpy(), rtol=1e-6)


def test_predict_text_is_deterministic_dropout_inactive(exported):
  loaded, model, _, _, _ = exported
  assert model.get_layer("dropout").rate == pytest.approx(0.5)
  predict = loaded.signatures["predict_text"]
  first = predict(text=tf.constant(TEXTS))
  second = predict(text=tf.constant(TEXTS))
  np.testing.assert_array_equal(first["probabilities"].numpy(), second["probabilities"].numpy())
  np.testing.assert_array_equal(
    first["attention_weights"].numpy(), second["attention_weights"].numpy()
  )


def test_transform_features_signature(exported):
  loaded, _, x, _, _ = exported
  raw = [
    tf.train.Example(
      features=tf.train.Features(
        feature={
          features.TEXT_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[t])),
          features.LABEL_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[y])),
        }
      )
    ).SerializeToString()
    for t, y in REVIEWS[:3]
  ]
  out = loaded.signatures["transform_features"](examples=tf.constant(raw))
  np.testing.assert_array_equal(out[features.TOKENS_KEY].numpy(), x[:3])
  np.testing.assert_array_equal(
    np.reshape(out[features.LABEL_KEY].numpy(), [-1]), [y for _, y in REVIEWS[:3]]
  )


def test_export_holds_the_weights_but_not_the_optimizer_state(exported, tmp_path):
  _, _, tokens, tf_transform_output, _ = exported
  model, explain_model = model_lib.build(HP)
  # One training step builds Adam's slots (m and v for every weight).
  model.fit(
    tokens, np.array([label for _, label in REVIEWS]), batch_size=len(REVIEWS), epochs=1, verbose=0
  )
  assert len(model.optimizer.variables) > 2 * len(model.trainable_weights)
  export_dir = str(tmp_path / "export")
  signatures.export_saved_model(explain_model, tf_transform_output, HP, export_dir)
  saved = tf.train.list_variables(os.path.join(export_dir, "variables", "variables"))
  names = [name for name, _ in saved]
  assert not [n for n in names if "optimizer" in n.lower()], names
  model_values = sum(
    int(np.prod(shape)) for name, shape in saved if name.startswith("explain_model/")
  )
  assert model_values == model.count_params()
  # The export still answers like the trained model.
  loaded = tf.saved_model.load(export_dir)
  served = loaded.signatures["serving_default"](
    examples=tf.constant([_tf_example(t) for t, _ in REVIEWS])
  )["probabilities"]
  np.testing.assert_allclose(served.numpy(), model(tokens, training=False).numpy()[:, 0], rtol=1e-5)


def test_hparams_take_negation_views_without_negation_scope():
  # Transform builds HParams from the preprocessing fields alone, so the training-only
  # defaults must hold beside any of them (the views then find no marked words).
  assert HParams(negation_scope=False).negation_views == HParams().negation_views > 0
  assert HParams.from_custom_config({"hparams": {"negation_scope": False}}).negation_views > 0
