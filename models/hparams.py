"""Hyperparameters of preprocessing and training, overridable through ``custom_config``.

The runner (CLI) builds one ``custom_config`` dict; ``create_pipeline()`` hands the same
dict to Transform and Trainer, and both read it back with ``HParams.from_custom_config``.
Unknown keys are an error, so a misspelt override never silently does nothing.
"""

import dataclasses
import json
import types
from collections.abc import Iterable, Mapping
from typing import Any

MODELS = ("lstm_attention", "bilstm_attention", "multi_head")
# Per-replica batch size of each model when HParams.batch_size is None. multi_head at 128
# stayed at chance accuracy for 2 epochs on IMDB (176 steps each: too few updates for the
# transformer from scratch); at 32 it reached 0.88 eval accuracy after one epoch.
MODEL_BATCH_SIZES = types.MappingProxyType(
  {"lstm_attention": 128, "bilstm_attention": 128, "multi_head": 32}
)
# Linear learning-rate warmup of each model, in epochs, when HParams.warmup_epochs is None.
# multi_head without warmup sat at chance accuracy through its first epoch for seed 7 and
# its first two for seed 1234 (Adam at 2e-3 from step 0); with 0.5 epochs of warmup all
# three seeds reached 0.898-0.900 eval accuracy after one epoch (test accuracy 0.8826 +-
# 0.0061 against 0.8818 +- 0.0020 without: docs/bench/models.json). The LSTMs learn from
# the start.
MODEL_WARMUP_EPOCHS = types.MappingProxyType(
  {"lstm_attention": 0.0, "bilstm_attention": 0.0, "multi_head": 0.5}
)
# Score functions of the attention pooling (models.layers.AttentionPooling).
ATTENTIONS = ("dot", "scaled_dot", "additive")
# The fields preprocessing_fn reads. Transform gets only these, so changing a training-only
# setting (epochs, seed, model, ...) reuses the cached TransformGraph.
PREPROCESSING_FIELDS = (
  "vocab_size",
  "num_oov_buckets",
  "max_length",
  "head_tokens",
  "negation_scope",
  "contrast_scope",
)
# The fields the embedding pretraining (models.pretraining) reads: a change to any other
# (the model, its training, ...) reuses the cached pretrained embeddings.
PRETRAINING_FIELDS = (
  *PREPROCESSING_FIELDS,
  "embedding_dim",
  "word2vec_epochs",
  "word2vec_window",
  "word2vec_negative",
  "word2vec_sample",
  "word2vec_workers",
  "seed",
)
# Learning-rate schedules (models.model.learning_rate).
LR_SCHEDULES = ("exponential", "cosine")
STRATEGIES = ("auto", "default", "one_device", "mirrored", "multi_worker", "tpu")


@dataclasses.dataclass(frozen=True)
class HParams:
  """All tunable settings of preprocessing and the model.

  Attributes:
    model: model builder name, one of ``MODELS``: ``lstm_attention`` (LSTM -> scaled
      dot-product self-attention -> attention pooling), ``bilstm_attention`` (the same on a
      bidirectional LSTM), ``multi_head`` (token + position embedding -> ``num_layers``
      transformer encoder blocks -> attention pooling).
    attention: score function of the attention pooling that every model ends with and
      whose weights ``predict_text`` returns: ``additive`` (Bahdanau), ``dot`` (Luong) or
      ``scaled_dot`` (Vaswani), see ``models.layers.AttentionPooling``.
    vocab_size: number of most frequent train-split tokens kept (``tft`` top_k).
    num_oov_buckets: hash buckets for tokens outside the vocabulary.
    max_length: tokens per review after truncation/padding.
    head_tokens: of a review longer than max_length, the first head_tokens tokens and the
      last max_length - head_tokens are kept (head+tail truncation); head_tokens >=
      max_length keeps only the first max_length.
    negation_scope: words between a negation cue and the end of its clause become
      tokens of their own ("not bad" -> ``not``, ``neg_bad``;
      ``models.preprocessing.mark_negation_scope``, Das & Chen 2001, Pang et al. 2002).
    contrast_scope: the words of a conceded clause become tokens of their own: the clause
      before "but"/"yet"/"however" and the words after "although"/"though"/"despite" in
      theirs ("the plot was great, but ..." -> ``con_great``;
      ``models.preprocessing.mark_contrast_scope``, the A-but-B rule of Hu et al. 2016).
      What it changed, over 3 seeds: docs/models.md.
    embedding_dim: width of the token embedding.
    word2vec_epochs: epochs of the word2vec pretraining of the token embedding on the
      train split's and the unlabelled split's reviews (``models.pretraining``: skip-gram
      with negative sampling, Mikolov et al. 2013, as Dai & Le 2015 initialized their
      LSTM); the Trainer starts from those vectors instead of a random table. It raised
      mean test accuracy (3 seeds) from 0.8935 to 0.9085 (lstm_attention), 0.8919 to
      0.9143 (bilstm_attention) and 0.8826 to 0.8980 (multi_head), with 5 epochs; 3 kept
      the accuracy at two thirds of word2vec's time; 2 (the default since 2026-12-05,
      with ``word2vec_workers`` 0 and ``epochs`` 2) is the speed issue's setting
      (docs/models.md, "Training time"). 0 = no pretraining (the pipeline then has no
      ``EmbeddingTrainer``).
    word2vec_window: word2vec's context window: words up to this far on either side.
    word2vec_negative: negative samples per (word, context) pair.
    word2vec_sample: word2vec's downsampling of frequent words (Mikolov et al. 2013, sec.
      2.3: a word of corpus frequency f is kept with probability about sqrt(sample / f));
      1e-4 suits IMDB's millions of tokens, 0 = off (for corpora of a few thousand tokens,
      where every word is "frequent").
    word2vec_workers: gensim's worker threads for the pretraining; 0 (the default) = one
      per CPU core: 1.6x faster on 2 cores, but the threads update shared vectors in no
      fixed order, so two runs give different vectors. 1 is the condition gensim
      documents for a reproducible run (the same data and hyperparameters give
      bit-identical vectors); what each cost in accuracy: docs/models.md.
    bigram_buckets: hash buckets of the bigram embedding added to each token's embedding
      (``models.layers.HashedBigramEmbedding``, fastText's bigram features); 0 = off.
      2 ** 17 adds 2 ** 17 * embedding_dim parameters (16.8 M at 128) and raised the
      LSTMs' eval accuracy from 0.885-0.896 to 0.907 after one epoch.
    bigram_dropout: rate at which a position's whole bigram vector is dropped (zeroed)
      while training, so the model cannot lean on rare, memorized bigrams alone; the
      token's embedding stays. In [0, 1); 0 = off. 0.5 did not raise lstm_attention's eval
      accuracy (0.9047 after 3 epochs vs 0.907-0.911 without, seed 42).
    nb_wide: the served model combines the attention model's logit with a linear
      model's over the review's distinct tokens and hashed bigrams, each scaled by its
      naive-Bayes log-count ratio on the train split (Wang & Manning 2012's NB features;
      ``models.naive_bayes``). The linear model is trained first, on its own, for
      ``nb_epochs`` epochs; the attention model then trains exactly as without it; the
      weights of the two logits are then fitted on the eval split (``models.stacking``).
    nb_epochs: epochs of the linear naive-Bayes model (``nb_wide``).
    temperature_scaling: the served probabilities are divided in logit space by a
      temperature fitted on the eval split after training (``models.calibration``, Guo et
      al. 2017); predicted labels do not change.
    lstm_units: LSTM state size (per direction for ``bilstm_attention``); also the
      scoring width of the self-attention and attention pooling layers.
    num_heads: attention heads of each ``multi_head`` encoder block; ``embedding_dim``
      must divide evenly among them (key_dim = embedding_dim / num_heads).
    ff_dim: hidden width of each encoder block's feed-forward network.
    num_layers: transformer encoder blocks of ``multi_head``.
    encoder_dropout: ``multi_head``'s dropout on the summed token + position embeddings,
      the attention weights and each block's residual branches, in [0, 1) (Vaswani et al.
      2017 used P_drop = 0.1). ``multi_head`` trained with 0.5 there (the head's rate)
      stayed at chance accuracy on IMDB.
    dense_units: width of the hidden Dense layer of the classifier head.
    max_pooling: also pool the attended sequence with a masked max and concatenate it to
      the attention context.
    embedding_dropout: SpatialDropout1D rate on the embeddings (drops whole embedding
      channels), in [0, 1).
    dropout: dropout rate of the classifier head, in [0, 1). The Dropout layer is kept in
      the exported graph but inactive at inference (signatures call with training=False).
    l2: L2 penalty (``l2 * sum(w ** 2)`` added to the loss) on the kernels of the
      classifier head's Dense layers and of the LSTM / encoder feed-forward layers; 0 = off.
    learning_rate: Adam's peak learning rate (its initial one without warmup).
    lazy_adam: apply the embedding tables' sparse gradients to the rows each batch touched
      alone (``models.optimizers.LazyAdam``) instead of Keras Adam's full pass over both
      moment tables and the table itself every step; dense weights get Adam unchanged.
      On the 2-core machine the default model's epochs took 52-67 s against 67-76 s;
      test accuracy 0.9143, 0.9110, 0.9111 for seeds 42, 7, 1234 (docs/models.md).
    lr_schedule: ``exponential``: multiplied by ``lr_decay`` after every epoch (staircase
      ExponentialDecay); ``cosine``: cosine decay from learning_rate to 0 over ``epochs``
      epochs, per step (Loshchilov & Hutter 2017, SGDR without restarts).
    lr_decay: the ``exponential`` schedule's factor per epoch; 1.0 keeps the rate
      constant. Unused by ``cosine``.
    warmup_epochs: the rate first rises linearly from 0 to learning_rate over this many
      epochs (a fraction is fine; Goyal et al. 2017), then follows lr_schedule; 0 = none.
      None = the model's own (``MODEL_WARMUP_EPOCHS``; see ``model_warmup_epochs``).
    batch_size: examples per replica per step; the global batch is this times replicas.
      None = the model's own (``MODEL_BATCH_SIZES``; see ``per_replica_batch_size``).
    length_buckets: training and eval batches are made of reviews of similar length and
      cut to their longest review, rounded up to a multiple of max_length /
      length_buckets (tf.data ``bucket_by_sequence_length``): the recurrent and attention
      layers then skip most padding (IMDB's median review is about half of max_length).
      0 or 1 = off (every batch max_length wide); always off on TPU (static shapes) and
      with several workers.
    epochs: maximum training epochs (early stopping on the eval split may end sooner). 2
      by default since 2026-12-05: with 3, early stopping threw the third away for seeds
      42 and 1234 (docs/models.md, "Training time").
    warm_start_epochs: maximum epochs of a run warm-started from the serving model
      (``models.warm_start``).
    warm_start_learning_rate: the learning rate a warm-started run starts at (4e-3 by
      default, twice the full schedule's peak ``learning_rate``); None =
      ``learning_rate``. Chosen with ``warm_start_replay`` on a chain of warm starts
      (docs/models.md, "Warm start on new spans").
    warm_start_lr_schedule: the schedule of a warm-started run's rate over its
      ``warm_start_epochs`` (one of ``LR_SCHEDULES``): ``cosine`` anneals it to 0, a warm
      restart (Loshchilov & Hutter 2017, SGDR). ``warm_start_learning_rate=5e-4`` with
      ``exponential`` is the constant last-epoch rate earlier versions used (see
      ``models.warm_start``).
    warm_start_replay: the share of the older spans' train reviews a warm-started run
      trains on beside all of the newest span's (experience replay, Rolnick et al. 2019,
      "Experience Replay for Continual Learning"): its batches come from the newest span
      or the older ones in proportion to ``newest`` and ``warm_start_replay * older``
      reviews, and its epoch is that many reviews long. 0.5 (the default) = half of
      them, 1.0 = the whole window, 0.0 = the newest span alone. No effect on a window of
      one span or without warm start. What it costs and saves on ``make bench-spans``:
      the README's continuous-training section (docs/bench/spans.json).
    early_stopping_monitor: the eval-split metric early stopping watches and whose best
      epoch's weights are kept (``val_accuracy`` or ``val_loss``).
    early_stopping_patience: epochs without improvement before stopping.
    strategy: tf.distribute strategy name, one of ``STRATEGIES``.
    mixed_precision: train and run with Keras's ``mixed_float16`` policy on GPU or
      ``mixed_bfloat16`` on TPU (the output layer stays float32); refused on CPU-only
      machines (see ``models.strategy.precision_policy``).
    seed: random seed for weight initialisation and shuffling.
    train_examples: train-split size used to size ``steps_per_epoch``; None = count it.
  """

  model: str = "lstm_attention"
  attention: str = "additive"
  vocab_size: int = 20000
  num_oov_buckets: int = 1
  max_length: int = 500
  head_tokens: int = 128
  negation_scope: bool = True
  contrast_scope: bool = True
  embedding_dim: int = 128
  word2vec_epochs: int = 2
  word2vec_window: int = 5
  word2vec_negative: int = 5
  word2vec_sample: float = 1e-4
  word2vec_workers: int = 0
  bigram_buckets: int = 131072
  bigram_dropout: float = 0.0
  nb_wide: bool = False
  nb_epochs: int = 3
  temperature_scaling: bool = True
  lstm_units: int = 64
  num_heads: int = 2
  ff_dim: int = 128
  num_layers: int = 1
  encoder_dropout: float = 0.1
  dense_units: int = 64
  max_pooling: bool = True
  embedding_dropout: float = 0.3
  dropout: float = 0.5
  l2: float = 0.0
  learning_rate: float = 2e-3
  lazy_adam: bool = True
  lr_schedule: str = "exponential"
  lr_decay: float = 0.5
  warmup_epochs: float | None = None
  batch_size: int | None = None
  length_buckets: int = 8
  epochs: int = 2
  warm_start_epochs: int = 1
  warm_start_learning_rate: float | None = 4e-3
  warm_start_lr_schedule: str = "cosine"
  warm_start_replay: float = 0.5
  early_stopping_monitor: str = "val_accuracy"
  early_stopping_patience: int = 1
  strategy: str = "auto"
  mixed_precision: bool = False
  seed: int = 42
  train_examples: int | None = None

  def __post_init__(self):
    self._check_types()
    if self.model not in MODELS:
      raise ValueError(f"unknown model {self.model!r}; choose one of {', '.join(MODELS)}")
    if self.strategy not in STRATEGIES:
      raise ValueError(f"unknown strategy {self.strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if self.attention not in ATTENTIONS:
      raise ValueError(
        f"unknown attention {self.attention!r}; choose one of {', '.join(ATTENTIONS)}"
      )
    if self.lr_schedule not in LR_SCHEDULES:
      raise ValueError(
        f"unknown lr_schedule {self.lr_schedule!r}; choose one of {', '.join(LR_SCHEDULES)}"
      )
    if self.warm_start_lr_schedule not in LR_SCHEDULES:
      raise ValueError(
        f"unknown warm_start_lr_schedule {self.warm_start_lr_schedule!r}; "
        f"choose one of {', '.join(LR_SCHEDULES)}"
      )
    if self.warm_start_learning_rate is not None and self.warm_start_learning_rate <= 0:
      raise ValueError(f"warm_start_learning_rate must be > 0, got {self.warm_start_learning_rate}")
    if self.warmup_epochs is not None and self.warmup_epochs < 0:
      raise ValueError(f"warmup_epochs must be >= 0, got {self.warmup_epochs}")
    if self.batch_size is not None and self.batch_size < 1:
      raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
    for name in (
      "vocab_size",
      "max_length",
      "embedding_dim",
      "lstm_units",
      "dense_units",
      "epochs",
      "warm_start_epochs",
      "num_oov_buckets",
      "num_heads",
      "ff_dim",
      "num_layers",
      "nb_epochs",
      "word2vec_window",
      "word2vec_negative",
    ):
      if int(getattr(self, name)) < 1:
        raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
    if not 0.0 <= self.warm_start_replay <= 1.0:
      raise ValueError(f"warm_start_replay must be in [0, 1], got {self.warm_start_replay}")
    for name in ("dropout", "embedding_dropout", "encoder_dropout", "bigram_dropout"):
      if not 0.0 <= getattr(self, name) < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
    if self.word2vec_epochs < 0:
      raise ValueError(f"word2vec_epochs must be >= 0, got {self.word2vec_epochs}")
    if self.word2vec_workers < 0:
      raise ValueError(f"word2vec_workers must be >= 0, got {self.word2vec_workers}")
    if not 0.0 <= self.word2vec_sample < 1.0:
      raise ValueError(f"word2vec_sample must be in [0, 1), got {self.word2vec_sample}")
    if self.bigram_buckets < 0:
      raise ValueError(f"bigram_buckets must be >= 0, got {self.bigram_buckets}")
    if self.length_buckets < 0:
      raise ValueError(f"length_buckets must be >= 0, got {self.length_buckets}")
    if self.head_tokens < 0:
      raise ValueError(f"head_tokens must be >= 0, got {self.head_tokens}")
    if not 0.0 < self.lr_decay <= 1.0:
      raise ValueError(f"lr_decay must be in (0, 1], got {self.lr_decay}")
    if self.early_stopping_monitor not in ("val_accuracy", "val_loss"):
      raise ValueError(
        "early_stopping_monitor must be val_accuracy or val_loss, got "
        f"{self.early_stopping_monitor!r}"
      )
    if self.model == "multi_head" and self.embedding_dim % self.num_heads:
      raise ValueError(
        f"embedding_dim {self.embedding_dim} must be divisible by num_heads "
        f"{self.num_heads} for multi_head"
      )
    if self.l2 < 0:
      raise ValueError(f"l2 must be >= 0, got {self.l2}")
    if self.learning_rate <= 0:
      raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")

  def _check_types(self) -> None:
    """Raises ValueError naming the field whose value has the wrong type."""
    for field in dataclasses.fields(self):
      value, kind = getattr(self, field.name), field.type
      if kind in (int, int | None):
        ok = (isinstance(value, int) and not isinstance(value, bool)) or (
          value is None and kind == int | None
        )
      elif kind in (float, float | None):
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool)) or (
          value is None and kind == float | None
        )
      elif kind is bool:
        ok = isinstance(value, bool)
      elif kind is str:
        ok = isinstance(value, str)
      else:
        ok = True
      if not ok:
        raise ValueError(
          f"hyperparameter {field.name} must be of type "
          f"{getattr(kind, '__name__', kind)}, got {value!r}"
        )

  @property
  def per_replica_batch_size(self) -> int:
    """``batch_size``, or the model's default from ``MODEL_BATCH_SIZES`` when it is None."""
    return self.batch_size or MODEL_BATCH_SIZES[self.model]

  @property
  def model_warmup_epochs(self) -> float:
    """``warmup_epochs``, or the model's default from ``MODEL_WARMUP_EPOCHS`` when None."""
    if self.warmup_epochs is None:
      return MODEL_WARMUP_EPOCHS[self.model]
    return self.warmup_epochs

  @property
  def pretrains_embeddings(self) -> bool:
    """Whether the pipeline pretrains the token embedding (``word2vec_epochs`` > 0): it then
    has an ``EmbeddingTrainer`` and reads the unlabelled split."""
    return self.word2vec_epochs > 0

  @property
  def embedding_input_dim(self) -> int:
    """Rows of the embedding table: padding id 0, the vocabulary, then the OOV buckets."""
    return self.vocab_size + self.num_oov_buckets + 1

  @classmethod
  def from_custom_config(cls, custom_config: Mapping[str, Any] | None) -> "HParams":
    """Reads the overrides under ``custom_config["hparams"]``.

    Raises:
      ValueError: on an unknown key or an out-of-range value.
    """
    overrides = dict((custom_config or {}).get("hparams") or {})
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(overrides) - known)
    if unknown:
      raise ValueError(f"unknown hyperparameter(s) {unknown}; known: {sorted(known)}")
    return cls(**overrides)

  def to_custom_config(self) -> dict[str, Any]:
    """The ``custom_config`` dict that ``from_custom_config`` reads back (the Trainer's)."""
    return {"hparams": dataclasses.asdict(self)}

  def preprocessing_custom_config(self) -> dict[str, Any]:
    """Transform's ``custom_config``: only ``PREPROCESSING_FIELDS``."""
    return {"hparams": {name: getattr(self, name) for name in PREPROCESSING_FIELDS}}

  def pretraining_custom_config(self) -> dict[str, Any]:
    """The ``EmbeddingTrainer``'s ``custom_config``: only ``PRETRAINING_FIELDS``."""
    return {"hparams": {name: getattr(self, name) for name in PRETRAINING_FIELDS}}


def parse_overrides(pairs: Iterable[str]) -> dict[str, Any]:
  """``("lstm_units=32", "dropout=0.3")`` -> ``{"lstm_units": 32, "dropout": 0.3}``: the
  ``--hparam KEY=VALUE`` overrides of the command line and the benchmarks.

  Values are JSON when they parse as JSON, else strings. The names are not checked here
  (``HParams.from_custom_config`` does).

  Raises:
    ValueError: a pair without ``=`` (named in the message).
  """
  parsed = {}
  for pair in pairs:
    key, separator, value = pair.partition("=")
    if not separator:
      raise ValueError(f"expected KEY=VALUE, got {pair!r}")
    try:
      parsed[key] = json.loads(value)
    except json.JSONDecodeError:
      parsed[key] = value
  return parsed
