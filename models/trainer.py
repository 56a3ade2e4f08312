"""The Trainer's ``run_fn``: reads transformed examples (``models.inputs``), trains under a
tf.distribute strategy (and mixed-precision policy), early-stops on ``eval``, writes
TensorBoard logs and ``training_summary.json`` (seconds per epoch, examples/s, history,
seconds of each phase) to the ModelRun, and exports the SavedModel (``models.signatures``).

``run_fn`` reads as its steps: ``training_inputs``, ``build_models``, ``fit``,
``exportable_model``, then the export."""

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable, Iterator

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from absl import logging

# tfx.v1.components.FnArgs, imported from its module: `from tfx import v1` also imports
# every TFX extension (Vertex AI's client library: ~9 s), which each training worker would
# pay for at startup.
from tfx.components.trainer.fn_args_utils import FnArgs

from core import features
from models import (
  calibration,
  counterfactuals,
  naive_bayes,
  pretraining,
  signatures,
  stacking,
  throughput,
  tracing,
  warm_start,
)
from models import inputs as inputs_lib
from models import model as model_lib
from models.hparams import HParams
from models.progress import TrainingProgress
from models.strategy import (
  WorkerRole,
  keras_precision_policy,
  make_strategy,
  precision_policy,
  wait_for_workers,
  worker_role,
  worker_write_dir,
)

# Reviews per batch of the naive-Bayes counting pass (memory: batch * 2 * max_length ids).
NAIVE_BAYES_BATCH = 1024


def set_naive_bayes_ratios(model: keras.Model, hp: HParams, train_ds: tf.data.Dataset) -> None:
  """Counts the naive-Bayes log-count ratios over ``train_ds`` (one pass, unshuffled:
  every worker gets the same ratios) and assigns them to ``model``'s
  ``naive_bayes.NaiveBayesLogit`` layer (``hp.nb_wide``).

  Raises:
    ValueError: a label other than 0 or 1 in ``train_ds``.
  """
  started = time.monotonic()
  ratios = naive_bayes.log_count_ratios(train_ds, hp.embedding_input_dim, hp.bigram_buckets)
  model.get_layer(model_lib.NAIVE_BAYES_LAYER).set_ratios(ratios)
  logging.info(
    "Naive-Bayes log-count ratios of %d features (%d seen) in %.1f s",
    ratios.size,
    int((ratios != 0).sum()),
    time.monotonic() - started,
  )


def train_naive_bayes(
  wide_model: keras.Model,
  hp: HParams,
  train_ds: tf.data.Dataset,
  eval_ds: tf.data.Dataset,
  steps_per_epoch: int,
  counting_ds: tf.data.Dataset,
) -> dict:
  """Sets the naive-Bayes ratios from ``counting_ds`` (``set_naive_bayes_ratios``) and
  trains ``wide_model`` (``models.model.naive_bayes_model``) for ``hp.nb_epochs`` epochs
  of ``steps_per_epoch`` steps on ``train_ds``, validating on ``eval_ds``.

  Returns:
    ``{"seconds": wall time of counting and training, "history": its Keras history}``.
  """
  started = time.monotonic()
  set_naive_bayes_ratios(wide_model, hp, counting_ds)
  history = wide_model.fit(
    train_ds,
    epochs=hp.nb_epochs,
    steps_per_epoch=steps_per_epoch,
    validation_data=eval_ds,
    verbose=0,
    callbacks=[TrainingProgress(hp.nb_epochs, steps_per_epoch, name="Naive-Bayes half")],
  )
  return {
    "seconds": round(time.monotonic() - started, 3),
    "history": {k: [float(v) for v in values] for k, values in history.history.items()},
  }


def stack_halves(explain_model: keras.Model, eval_ds: tf.data.Dataset) -> dict:
  """Fits ``explain_model``'s stacking layer on the eval split (``models.stacking``) and
  sets it. Every worker of a multi-worker run calls it on its single-device copy with the
  whole (unsharded) eval split, so all export the same weights.

  Returns:
    the fit's fields (``StackingFit.as_dict``), for ``training_summary.json``.
  """
  started = time.monotonic()
  logits, labels = stacking.half_logits(explain_model, eval_ds)
  fit = stacking.fit_stacking(logits, labels)
  stacking.set_stacking(explain_model, fit)
  if not fit.fitted:
    logging.warning(
      "The eval split's %d reviews have one class only: the served logit "
      "stays the mean of the two halves'",
      fit.eval_examples,
    )
  logging.info("Stacked ensemble on eval (%.1f s): %s", time.monotonic() - started, fit.as_dict())
  return fit.as_dict()


def eval_probabilities(
  explain_model: keras.Model, dataset: tf.data.Dataset
) -> tuple[np.ndarray, np.ndarray]:
  """The served p(positive) (float64 [n]) and labels (int64 [n]) of every review in
  ``dataset`` (batches ``({"tokens": int [batch, time]}, labels)``, finite), called
  in cross-replica context like ``stacking.half_logits``."""

  @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int64)], autograph=False)
  def probabilities_of(tokens):
    return explain_model(tokens, training=False)[0]

  probabilities, labels = [], []
  for x, y in dataset:
    probabilities.append(
      np.reshape(probabilities_of(tf.cast(x[features.TOKENS_KEY], tf.int64)).numpy(), [-1])
    )
    labels.append(np.reshape(y.numpy(), [-1]))
  if not probabilities:
    return np.zeros([0]), np.zeros([0], np.int64)
  return (
    np.concatenate(probabilities).astype(np.float64),
    np.rint(np.concatenate(labels)).astype(np.int64),
  )


def fit_temperature(explain_model: keras.Model, eval_ds: tf.data.Dataset):
  """Fits the temperature of the served probabilities on the eval split
  (``models.calibration``, Guo et al. 2017); the export applies it. Like
  ``stack_halves``, every worker fits it on the whole eval split, so all export the same.

  Returns:
    the ``calibration.TemperatureFit``.
  """
  started = time.monotonic()
  probabilities, labels = eval_probabilities(explain_model, eval_ds)
  fit = calibration.fit_temperature(probabilities, labels)
  logging.info(
    "Temperature scaling on %d eval reviews: T = %.3f, NLL %.4f -> %.4f, ECE %.4f -> %.4f (%.1f s)",
    fit.examples,
    fit.temperature,
    fit.nll_before,
    fit.nll_after,
    fit.ece_before,
    fit.ece_after,
    time.monotonic() - started,
  )
  return fit


def set_pretrained_embeddings(model: keras.Model, hp: HParams, base_model_dir: str) -> dict:
  """Starts ``model``'s token embedding from the ``EmbeddingTrainer``'s word2vec vectors
  in ``base_model_dir`` (the Trainer's ``base_model``; ``models.pretraining``). Call
  inside the strategy scope that built ``model``.

  Returns:
    ``{"path": base_model_dir, "rows": table rows}`` for ``training_summary.json``.

  Raises:
    FileNotFoundError, ValueError: as ``pretraining.load_embeddings``.
  """
  matrix = pretraining.load_embeddings(base_model_dir, hp)
  model_lib.token_embedding_layer(model).set_weights([matrix])
  logging.info("Token embedding initialized from %s (%d x %d)", base_model_dir, *matrix.shape)
  return {"path": base_model_dir, "rows": int(matrix.shape[0])}


def single_device_copy(explain_model: keras.Model, hp: HParams) -> keras.Model:
  """The explanation model (the one exported; see ``models.model``) built afresh outside
  any strategy scope, holding ``explain_model``'s weights in plain variables. Its weights
  are a superset of the training model's (with ``nb_wide`` they include the naive-Bayes
  layer's).

  A multi-worker model's variables are MirroredVariables, which the traced serving
  signatures read on this worker's device (``/job:worker/task:N``): a SavedModel holding
  those ops loads nowhere outside that cluster ("Cannot assign a device for operation
  ... was explicitly assigned to /job:worker/task:0", tensorflow/tfx#2894), so neither
  TF Serving nor the Evaluator could use it. The copy exports as a single-device model.
  """
  _, explain_copy = model_lib.build(hp)
  explain_copy.set_weights(explain_model.get_weights())
  return explain_copy


@dataclasses.dataclass(frozen=True)
class TrainingInputs:
  """What the Trainer reads, batched for the strategy.

  Attributes:
    transform_output: Transform's TransformGraph.
    train_examples: examples in one epoch: the train split's reviews (with ``replay``,
      the newest span's and the replayed share of the older ones'), plus with
      ``negation_views`` ``hp.negation_views`` times as many views.
    global_batch: examples per step over all replicas
      (``hp.per_replica_batch_size * replicas``).
    replicas: ``strategy.num_replicas_in_sync``.
    steps_per_epoch: ``ceil(train_examples / global_batch)``.
    train: a new shuffled, repeated train dataset each call (each call restarts the
      shuffle's seed, so two models trained on two calls see the same order).
    eval: the eval split, once.
    counting: the train split once, unshuffled, in ``NAIVE_BAYES_BATCH`` batches
      (naive-Bayes counting).
    replay: with a replay of the older spans (``training_inputs``), ``{"share",
      "newest_examples", "older_examples", "older_examples_per_epoch"}``; else None.
    negation_views: with ``hp.negation_views``, ``{"share", "pairs", "polar_words",
      "views_per_epoch"}`` (``counterfactual_views``); else None.
  """

  transform_output: tft.TFTransformOutput
  train_examples: int
  global_batch: int
  replicas: int
  steps_per_epoch: int
  train: Callable[[], tf.data.Dataset]
  eval: tf.data.Dataset
  counting: Callable[[], tf.data.Dataset]
  replay: dict | None = None
  negation_views: dict | None = None


@dataclasses.dataclass(frozen=True)
class BuiltModels:
  """The models ``models.model.build`` returns, under the strategy: ``model`` (trained),
  ``explain_model`` (the same layers and weights, exported), ``wide_model`` (the linear
  naive-Bayes half, with ``hp.nb_wide``), ``summary`` (what went into them, for
  ``training_summary.json``) and ``hparams`` (what they train with: the run's, or
  ``warm_start.continuation_hparams``' when warm-started)."""

  model: keras.Model
  explain_model: keras.Model
  wide_model: keras.Model | None
  summary: dict[str, object]
  hparams: HParams


def run_fn(fn_args: FnArgs) -> None:
  """TFX Trainer entry point (``Trainer(run_fn="models.trainer.run_fn")``).

  Hyperparameters come from ``fn_args.custom_config`` (see ``HParams``). The global batch
  is ``hp.per_replica_batch_size * strategy.num_replicas_in_sync``.

  With ``strategy="multi_worker"`` every worker of the cluster in its ``$TF_CONFIG`` runs
  this function with the same ``fn_args`` (TensorFlow's multi-worker Keras recipe): the
  datasets are sharded among the workers (``auto_shard_policy``); only the chief writes the
  TensorBoard logs to ``fn_args.model_run_dir`` and the SavedModel to
  ``fn_args.serving_model_dir``, the other workers run the same writes into temporary
  directories they remove (``strategy.worker_write_dir``); the model is exported
  from a single-device copy (``single_device_copy``); and no worker returns before all
  have exported (``strategy.wait_for_workers``). With any other strategy it trains and
  writes exactly as before.

  With a ``fn_args.base_model`` (the ``EmbeddingTrainer``'s Model, ``models.pretraining``)
  the token embedding starts from its word2vec vectors (``set_pretrained_embeddings``);
  when it names a serving model to warm-start from (or is one), the model starts from
  that model's weights and trains for ``hp.warm_start_epochs`` (``models.warm_start``)
  on the newest span and ``hp.warm_start_replay`` of the older ones (``training_inputs``).

  With ``hp.nb_wide`` it first counts the naive-Bayes ratios and trains the linear
  naive-Bayes model alone (``train_naive_bayes``), then trains the attention model exactly
  as without it, fits the stacking of the two logits on eval (``stack_halves``) and exports
  the ensemble; ``training_summary.json`` then also holds the naive-Bayes model's history
  (``naive_bayes``) and the fit with the halves' eval accuracies (``stacking``).

  Raises:
    ValueError: bad hyperparameters or an empty train split.
    models.strategy.StrategyUnavailableError: the strategy, or mixed precision, cannot run
      here.
  """
  hp = HParams.from_custom_config(fn_args.custom_config)
  tracing.exempt_from_autograph()
  # Before anything runs TensorFlow: MultiWorkerMirroredStrategy must be created at
  # program startup (it configures the collective ops).
  strategy = make_strategy(hp.strategy)
  role = worker_role(strategy)
  policy = precision_policy(strategy, hp.mixed_precision)
  warm = warm_start.source(fn_args.base_model) is not None
  phases: dict[str, float] = {}
  started = time.monotonic()
  inputs = training_inputs(fn_args, hp, strategy, role, hp.warm_start_replay if warm else 1.0)
  # Every worker trains (in lock-step) and exports, as TensorFlow's multi-worker guide
  # prescribes; only the chief's logs and model land in model_run_dir / serving_model_dir,
  # the others' in temporary directories.
  with (
    keras_precision_policy(policy),
    worker_write_dir(fn_args.model_run_dir, role) as log_dir,
    worker_write_dir(fn_args.serving_model_dir, role) as export_dir,
  ):
    built = build_models(
      hp, strategy, inputs.steps_per_epoch, fn_args.base_model, inputs.transform_output
    )
    if inputs.replay and "skipped" in built.summary.get("warm_start", {}):
      # The serving model did not fit: this run trains from scratch, on the whole window.
      inputs = training_inputs(fn_args, hp, strategy, role)
      built = build_models(
        hp, strategy, inputs.steps_per_epoch, fn_args.base_model, inputs.transform_output
      )
    summary = dict(built.summary)
    if inputs.replay:
      summary["replay"] = inputs.replay
    if inputs.negation_views:
      summary["negation_views"] = inputs.negation_views
    if hp.nb_wide:
      summary["naive_bayes"] = train_naive_bayes(
        built.wide_model, hp, inputs.train(), inputs.eval, inputs.steps_per_epoch, inputs.counting()
      )
    phases["inputs_and_build"] = time.monotonic() - started
    # Until the export: the SavedModel's signatures keep both LSTM kernels.
    with tracing.cpu_kernel_lstms(built.model, strategy):
      with _timed(phases, "fit"):
        history, speed = fit(built.model, built.hparams, inputs, log_dir)
      explain_model = exportable_model(built.explain_model, hp, strategy)
      temperature = _stack_and_calibrate(explain_model, hp, inputs.eval, summary, phases)
    with _timed(phases, "export"):
      signatures.export_saved_model(
        explain_model, inputs.transform_output, hp, export_dir, temperature=temperature
      )
    # Written last, with how long each phase took (a slow export shows here).
    throughput.write_summary(
      log_dir,
      speed.summary(
        history.history,
        model=hp.model,
        attention=hp.attention,
        parameters=explain_model.count_params(),
        train_examples=inputs.train_examples,
        strategy=type(strategy).__name__,
        replicas=inputs.replicas,
        precision_policy=policy or "float32",
        phase_seconds={name: round(seconds, 3) for name, seconds in phases.items()},
        **summary,
      ),
    )
  wait_for_workers(strategy, role)


def _stack_and_calibrate(
  explain_model: keras.Model,
  hp: HParams,
  eval_ds: tf.data.Dataset,
  summary: dict,
  phases: dict[str, float],
) -> float:
  """After fit: with ``hp.nb_wide`` the stacking of the halves (``stack_halves``), with
  ``hp.temperature_scaling`` the temperature (``fit_temperature``), each recorded in
  ``summary``; returns the temperature to export (1.0 without scaling)."""
  if hp.nb_wide:
    # With the attention model's best epoch restored. The copy of a multi-worker run
    # reads eval outside the strategy: unsharded, every worker sees all of it.
    summary["stacking"] = stack_halves(explain_model, eval_ds)
  if not hp.temperature_scaling:
    return 1.0
  with _timed(phases, "calibration"):
    calibrated = fit_temperature(explain_model, eval_ds)
  summary["calibration"] = calibrated.as_dict()
  return calibrated.temperature


@contextlib.contextmanager
def _timed(phases: dict[str, float], name: str) -> Iterator[None]:
  """Adds the seconds the block took to ``phases[name]``."""
  started = time.monotonic()
  try:
    yield
  finally:
    phases[name] = phases.get(name, 0.0) + time.monotonic() - started


def training_inputs(
  fn_args: FnArgs,
  hp: HParams,
  strategy: tf.distribute.Strategy,
  role: WorkerRole,
  replay: float = 1.0,
) -> TrainingInputs:
  """The train and eval splits as datasets for ``strategy``.

  With ``replay`` < 1 and a window of several spans (``fn_args.train_files`` holds one
  pattern per span's Examples, oldest first, as TFX's ``rolling_range`` resolved them and
  Transform wrote them) the train dataset replays only that share of the older spans:
  each review comes from the newest span or from the older ones, with probabilities in
  proportion to their reviews (``replay * older`` for the older ones), batches mix them
  (``inputs.make_mixed_dataset``), and an epoch is
  ``newest + round(replay * older)`` reviews long (``HParams.warm_start_replay``).

  Multi-worker training shards them among the workers (``inputs.auto_shard_policy``);
  batches are grouped by review length (``hp.length_buckets``) except on a TPU (static
  shapes) and across workers (DATA sharding would need every worker's buckets to fill
  identically).

  Raises:
    ValueError: the train split is empty.
  """
  transform_output = tft.TFTransformOutput(fn_args.transform_output)
  replicas = strategy.num_replicas_in_sync
  global_batch = hp.per_replica_batch_size * replicas
  train_files = list(fn_args.train_files)
  replayed = None
  if replay < 1.0 and len(train_files) > 1:
    newest = inputs_lib.count_records(train_files[-1:])
    older = inputs_lib.count_records(train_files[:-1])
    replayed = {
      "share": replay,
      "newest_examples": newest,
      "older_examples": older,
      "older_examples_per_epoch": round(replay * older),
    }
    train_examples = newest + replayed["older_examples_per_epoch"]
  else:
    train_examples = hp.train_examples or inputs_lib.count_records(train_files)
  if train_examples == 0:
    raise ValueError(f"no training examples in {fn_args.train_files}")

  def dataset(files, shuffle, batch=global_batch, **kwargs) -> tf.data.Dataset:
    return inputs_lib.make_dataset(
      files,
      fn_args.data_accessor,
      transform_output,
      batch,
      shuffle=shuffle,
      repeat=shuffle,
      seed=hp.seed,
      **kwargs,
    )

  def counting() -> tf.data.Dataset:
    return dataset(fn_args.train_files, shuffle=False, batch=NAIVE_BAYES_BATCH)

  views, views_summary = None, None
  if hp.negation_views:
    views, views_summary = counterfactual_views(counting, hp, transform_output)
    views_summary["views_per_epoch"] = round(hp.negation_views * train_examples) if views else 0
    train_examples += views_summary["views_per_epoch"]
  steps_per_epoch = math.ceil(train_examples / global_batch)
  logging.info(
    "Training %s on %d examples: %d replica(s) (%s), global batch %d, %d steps/epoch",
    hp.model,
    train_examples,
    replicas,
    type(strategy).__name__,
    global_batch,
    steps_per_epoch,
  )
  is_tpu = isinstance(strategy, tf.distribute.TPUStrategy)
  shard_policies = {"train": None, "eval": None}
  if role.num_workers > 1:
    for split, files in (("train", fn_args.train_files), ("eval", fn_args.eval_files)):
      shard_policies[split] = inputs_lib.auto_shard_policy(
        inputs_lib.count_files(files), role.num_workers
      )
    logging.info(
      "Task %s %d of %d workers (chief: %s); tf.data auto-shard policy: %s",
      role.task_type,
      role.task_id,
      role.num_workers,
      role.is_chief,
      {k: v.name for k, v in shard_policies.items()},
    )
  length_buckets = 0 if is_tpu or role.num_workers > 1 else hp.length_buckets
  # How the train and eval splits are batched.
  batching = {
    "drop_remainder": is_tpu,
    "length_buckets": length_buckets,
    "max_length": hp.max_length,
  }

  def train_of(files) -> tf.data.Dataset:
    return dataset(files, shuffle=True, shard_policy=shard_policies["train"], **batching)

  def train() -> tf.data.Dataset:
    groups = [(train_files, 1.0)]
    if replayed:
      # Either group may be empty: a span whose reviews all went to eval, or a replay of 0.
      groups = [
        (files, count)
        for files, count in (
          (train_files[-1:], replayed["newest_examples"]),
          (train_files[:-1], replayed["older_examples_per_epoch"]),
        )
        if count
      ]
    if len(groups) == 1 and views is None:
      return train_of(groups[0][0])
    total = sum(count for _, count in groups)
    return inputs_lib.make_mixed_dataset(
      groups,
      fn_args.data_accessor,
      transform_output,
      global_batch,
      seed=hp.seed,
      shard_policy=shard_policies["train"],
      views=None if views is None else (views, hp.negation_views * total),
      **batching,
    )

  return TrainingInputs(
    transform_output=transform_output,
    train_examples=train_examples,
    global_batch=global_batch,
    replicas=replicas,
    steps_per_epoch=steps_per_epoch,
    train=train,
    eval=dataset(
      fn_args.eval_files, shuffle=False, shard_policy=shard_policies["eval"], **batching
    ),
    counting=counting,
    replay=replayed,
    negation_views=views_summary,
  )


def counterfactual_views(
  counting: Callable[[], tf.data.Dataset], hp: HParams, transform_output: tft.TFTransformOutput
) -> tuple[tf.data.Dataset | None, dict]:
  """``hp.negation_views``' training views: the negation counterfactuals
  (``models.counterfactuals.negation_views``) of the transformed train split's reviews
  (``counting``: ``TrainingInputs.counting``, read twice), as ``inputs.views_dataset``'s
  endless dataset (None when the reviews hold no view), and ``{"share", "pairs",
  "polar_words"}`` for ``training_summary.json``.
  """

  def batches():
    for x, y in counting().as_numpy_iterator():
      yield x[features.TOKENS_KEY], y

  words = pretraining.id_words(transform_output.vocabulary_by_name(features.VOCABULARY_NAME), hp)
  views = counterfactuals.negation_views(batches, words, hp.seed)
  logging.info(
    "Negation counterfactuals: %d views and their counterfactuals from %d polar words",
    views.pairs,
    views.polar_words,
  )
  summary = {"share": hp.negation_views, "pairs": views.pairs, "polar_words": views.polar_words}
  if not views.pairs:
    return None, summary
  return inputs_lib.views_dataset(views.tokens, views.labels, hp.max_length, hp.seed), summary


def build_models(
  hp: HParams,
  strategy: tf.distribute.Strategy,
  steps_per_epoch: int,
  base_model: str | None,
  transform_output: tft.TFTransformOutput | None = None,
) -> BuiltModels:
  """The training, explanation and (``hp.nb_wide``) naive-Bayes models, built in
  ``strategy``'s scope.

  With a ``base_model`` holding word2vec vectors (the ``EmbeddingTrainer``'s Model) the
  token embedding starts from them (``set_pretrained_embeddings``). When ``base_model``
  names a serving model (``warm_start.source``) the models are built with
  ``warm_start.continuation_hparams`` and start from that model's weights, the token
  embedding carried over by token onto ``transform_output``'s vocabulary
  (``warm_start.warm_start``); a serving model whose architecture does not fit is logged,
  recorded as ``warm_start.skipped`` in the summary, and the models are built afresh.

  Raises:
    FileNotFoundError, ValueError: as ``pretraining.load_embeddings``.
  """
  source = warm_start.source(base_model)
  word2vec = base_model if base_model and base_model != source else None
  if source:
    try:
      return _build(
        warm_start.continuation_hparams(hp),
        strategy,
        steps_per_epoch,
        word2vec,
        (source, transform_output),
      )
    except warm_start.IncompatibleModelError as e:
      logging.warning("No warm start, training from scratch: %s", e)
      built = _build(hp, strategy, steps_per_epoch, word2vec)
      built.summary["warm_start"] = {"model": source, "skipped": str(e)}
      return built
  return _build(hp, strategy, steps_per_epoch, word2vec)


def _build(
  hp: HParams,
  strategy: tf.distribute.Strategy,
  steps_per_epoch: int,
  word2vec: str | None,
  warm_from: tuple[str, tft.TFTransformOutput] | None = None,
) -> BuiltModels:
  """``build_models``' models for ``hp``: the word2vec vectors of ``word2vec`` (a base
  model directory), then the weights of ``warm_from`` = (serving SavedModel, the new
  TransformGraph), each when given.

  Raises:
    warm_start.IncompatibleModelError: as ``warm_start.warm_start``.
  """
  summary = {}
  with strategy.scope():
    model, explain_model = model_lib.build(hp, steps_per_epoch)
    if word2vec:
      summary["pretrained_embeddings"] = set_pretrained_embeddings(model, hp, word2vec)
    if warm_from:
      saved_model_dir, transform_output = warm_from
      vocabulary = transform_output.vocabulary_by_name(features.VOCABULARY_NAME)
      summary["warm_start"] = {
        **warm_start.warm_start(explain_model, hp, saved_model_dir, vocabulary),
        "epochs": hp.epochs,
        "learning_rate": hp.learning_rate,
      }
    wide_model = model_lib.naive_bayes_model(explain_model, hp) if hp.nb_wide else None
  return BuiltModels(model, explain_model, wide_model, summary, hp)


def fit(model: keras.Model, hp: HParams, inputs: TrainingInputs, log_dir: str):
  """Trains ``model`` on ``inputs.train()`` for up to ``hp.epochs`` epochs, early-stopping
  on ``hp.early_stopping_monitor`` over ``inputs.eval`` (restoring the best epoch's
  weights), with TensorBoard logs in ``log_dir`` and its progress on stdout
  (``models.progress.TrainingProgress``).

  Returns:
    ``(history, speed)``: Keras's History and the ``throughput.ThroughputCallback`` that
    timed the epochs.
  """
  speed = throughput.ThroughputCallback(inputs.global_batch)
  callbacks = [
    keras.callbacks.EarlyStopping(
      monitor=hp.early_stopping_monitor,
      patience=hp.early_stopping_patience,
      restore_best_weights=True,
      verbose=1,
    ),
    keras.callbacks.TensorBoard(log_dir=log_dir, update_freq="epoch"),
    speed,
    TrainingProgress(hp.epochs, inputs.steps_per_epoch),
  ]
  history = model.fit(
    inputs.train(),
    epochs=hp.epochs,
    steps_per_epoch=inputs.steps_per_epoch,
    validation_data=inputs.eval,
    callbacks=callbacks,
    verbose=0,
  )
  return history, speed


def exportable_model(
  explain_model: keras.Model, hp: HParams, strategy: tf.distribute.Strategy
) -> keras.Model:
  """``explain_model``, or with ``MultiWorkerMirroredStrategy`` (also a one-task cluster:
  its variables live on /job:chief or /job:worker too) its ``single_device_copy``."""
  if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return single_device_copy(explain_model, hp)
  return explain_model
