"""``create_pipeline()``: the IMDB sentiment pipeline as a pure function of its arguments.

ImdbExampleGen -> StatisticsGen -> SchemaGen (or ImportSchemaGen) -> ExampleValidator ->
AnomaliesGate -> Transform -> EmbeddingTrainer (word2vec pretraining of the token
embedding; without it when ``word2vec_epochs`` is 0) -> Trainer -> (latest blessed Model
resolver) -> Evaluator -> BehaviourValidator (the behavioural suite; its blessing is the
Evaluator's and the suite's thresholds together) -> Pusher. With spans (``SpanInput``), ReviewExampleGen ingests the
newest span, DistributionValidator and DriftGate compare it with the previous one, Transform
and the Trainer read a window of spans, the Trainer warm-starts from the model serving when
the span arrived, and the Evaluator judges on the golden test split and the newest span
(EvaluationExamples); a run with no new span is cached from end to end
(``pipeline.model_resolvers``).
Runners (``pipeline.runner``) own paths, metadata and orchestrators; ``pipeline.layout``
names the nodes without importing TFX.
"""

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ml_metadata.proto import metadata_store_pb2
from tfx.components.distribution_validator.component import DistributionValidator
from tfx.components.example_validator.component import ExampleValidator
from tfx.components.pusher.component import Pusher
from tfx.components.schema_gen.component import SchemaGen
from tfx.components.schema_gen.import_schema_gen.component import ImportSchemaGen
from tfx.components.statistics_gen.component import StatisticsGen
from tfx.components.trainer.component import Trainer
from tfx.dsl.components.base import executor_spec
from tfx.dsl.components.common.resolver import Resolver
from tfx.dsl.input_resolution import resolver_function
from tfx.dsl.input_resolution.canned_resolver_functions import all_spans, rolling_range
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import (
  LatestBlessedModelStrategy,
)
from tfx.orchestration import pipeline as tfx_pipeline
from tfx.proto import pusher_pb2, trainer_pb2, transform_pb2
from tfx.types import standard_artifacts
from tfx.types.channel import Channel

from components import serving_pusher
from components.anomalies_gate import AnomaliesGate
from components.behaviour_validator import BehaviourValidator, parse_thresholds
from components.drift_gate import DriftGate
from components.embedding_trainer import EmbeddingTrainer
from components.evaluation_examples import EvaluationExamples
from components.evaluator import Evaluator
from components.imdb_beam import EVAL, TEST, TRAIN, UNLABELLED
from components.imdb_example_gen import ImdbExampleGen
from components.review_example_gen import ReviewExampleGen
from components.transform import Transform
from models.hparams import HParams
from pipeline import beam_profiles, model_resolvers
from pipeline.drift_config import make_drift_config
from pipeline.eval_config import make_eval_config
from pipeline.layout import (
  ARRIVAL_RESOLVER,
  BASELINE_RESOLVER,
  CURATED_SCHEMA_PATH,
  DEFAULT_BEHAVIOUR_THRESHOLDS,
  PIPELINE_NAME,
  PREPROCESSING_FN,
  RUN_FN,
  UNLABELLED_SPLIT,
  SpanInput,
  check_last_node,
)


def _with_code_version(
  custom_config: dict[str, Any], code_versions: Mapping[str, str], component: str
) -> dict[str, Any]:
  """``custom_config`` with the fingerprint of ``component``'s code, when there is one."""
  if not code_versions:
    return custom_config
  return {**custom_config, "code_version": code_versions[component]}


def create_pipeline(
  *,
  pipeline_root: str,
  serving_model_dir: str,
  metadata_connection_config: metadata_store_pb2.ConnectionConfig | None = None,
  pipeline_name: str = PIPELINE_NAME,
  hparams: HParams | None = None,
  train_split: str = "train",
  test_split: str = "test",
  unlabelled_split: str = UNLABELLED_SPLIT,
  eval_percent: int = 10,
  tfds_data_dir: str | None = None,
  download: bool = False,
  schema_path: str | None = None,
  min_accuracy: float = 0.85,
  max_accuracy_drop: float = 0.01,
  behaviour_thresholds: Mapping[str, float] | None = None,
  beam_pipeline_args: Sequence[str] = (),
  enable_cache: bool = True,
  last_node: str | None = None,
  code_versions: Mapping[str, str] | None = None,
  spans: SpanInput | None = None,
) -> tfx_pipeline.Pipeline:
  """Builds the pipeline; has no side effects (nothing is read, written or run).

  Args:
    pipeline_root: directory (local or ``gs://``) for artifacts.
    serving_model_dir: TF Serving model directory (``.../<model name>``) the Pusher writes
      ``<version>/`` into.
    metadata_connection_config: MLMD connection; None lets the orchestrator supply it.
    pipeline_name: pipeline (and MLMD context) name.
    hparams: preprocessing and training hyperparameters (None: the defaults), passed as
      ``custom_config`` (Transform gets only the preprocessing ones, so training-only
      changes keep its cache).
    train_split: TFDS split spec for train+eval (``"train"``, ``"train[:2%]"``).
    test_split: TFDS split spec for the final evaluation (``"test"``, ``"test[:2%]"``).
    unlabelled_split: TFDS split spec of reviews without labels (``"unsupervised"``,
      ``"unsupervised[:2%]"``) that the embedding pretraining reads besides ``train``;
      "" = pretrain on ``train`` alone. Unused when ``hparams.word2vec_epochs`` is 0.
    eval_percent: percent of ``train_split`` held out as the ``eval`` split.
    tfds_data_dir: TFDS data dir; None = ``$TFDS_DATA_DIR`` or TFDS's default.
    download: let TFDS download the dataset when it is not prepared.
    schema_path: a curated schema (``schema.pbtxt``) imported with ImportSchemaGen instead
      of inferring one with SchemaGen; ``CURATED_SCHEMA_PATH`` is the checked-in one.
    min_accuracy: blessing needs test-split accuracy >= this (with spans: on the golden
      test split and on the newest span's eval split, each).
    max_accuracy_drop: and, with a baseline, accuracy no more than this below it (each).
    behaviour_thresholds: capability -> the highest failure rate on the behavioural suite
      (``behaviour.suite``) a model may have to be pushed (the BehaviourValidator's gate,
      together with the Evaluator's blessing); None = ``DEFAULT_BEHAVIOUR_THRESHOLDS``,
      ``{}`` = the Evaluator's blessing alone (the suite is still scored and reported).
    beam_pipeline_args: Beam options for the Beam-powered components.
    enable_cache: reuse executions whose inputs and properties are unchanged.
    last_node: build the pipeline only up to this node id (one of ``NODE_IDS``; with
      ``schema_path``, ``ImportSchemaGen`` stands for ``SchemaGen``), e.g. ``"Transform"``
      for the data components alone; the nodes after it are left out. None = the whole
      pipeline.
    code_versions: ``{"transform": ..., "pretraining": ..., "trainer": ...}`` fingerprints
      of the code the components import (``pipeline.code_version.code_versions()``, which
      runners pass), added to their ``custom_config`` as ``code_version`` so that changed
      code misses TFX's cache; None adds nothing (the cache then keys on data and
      hyperparameters only).

    spans: where new labelled reviews arrive as span folders (``SpanInput``): the
      ``ReviewExampleGen`` ingests the latest (or the given) span, the data components
      check it, and Transform and the Trainer read the window of the last
      ``spans.window_spans`` spans (TFX's ``rolling_range``), the Trainer warm-starting
      from the serving model (``spans.warm_start``); ``train_split`` is then not
      read, and TFDS provides the golden ``test`` split (never trained on, every model is
      blessed on it) and ``unlabelled`` (the word2vec pretraining's corpus). None: TFDS's
      train split is the training data (the bootstrap).

  Returns:
    the ``tfx.dsl.Pipeline``.

  Raises:
    ValueError: ``last_node`` is not a node of this pipeline, ``spans`` with the
      pretraining but without ``unlabelled_split``, or a behaviour threshold of a
      capability the suite does not have or outside [0, 1].
  """
  hparams = hparams or HParams()
  thresholds = _behaviour_thresholds(behaviour_thresholds)
  check_last_node(
    last_node,
    curated_schema=bool(schema_path),
    pretraining=hparams.pretrains_embeddings,
    spans=spans is not None,
  )
  if spans and hparams.pretrains_embeddings and not unlabelled_split:
    raise ValueError(
      "with spans, the word2vec pretraining reads TFDS's unlabelled split only: give "
      "unlabelled_split, or word2vec_epochs=0"
    )
  nodes = _nodes(
    spans=spans,
    hparams=hparams,
    serving_model_dir=serving_model_dir,
    train_split=train_split,
    test_split=test_split,
    unlabelled_split=unlabelled_split if hparams.pretrains_embeddings else "",
    eval_percent=eval_percent,
    tfds_data_dir=tfds_data_dir,
    download=download,
    schema_path=schema_path,
    min_accuracy=min_accuracy,
    max_accuracy_drop=max_accuracy_drop,
    behaviour_thresholds=thresholds,
    code_versions=code_versions or {},
  )
  if last_node is not None:
    nodes = _cut(nodes, [n.id for n in nodes].index(last_node) + 1)
  evaluator_args = beam_profiles.evaluator_beam_args(beam_pipeline_args)
  if evaluator_args:
    for node in nodes:
      if isinstance(node, Evaluator):
        node.with_beam_pipeline_args(evaluator_args)
  return tfx_pipeline.Pipeline(
    pipeline_name=pipeline_name,
    pipeline_root=pipeline_root,
    components=nodes,
    enable_cache=enable_cache,
    metadata_connection_config=metadata_connection_config,
    beam_pipeline_args=list(beam_pipeline_args),
  )


def _behaviour_thresholds(thresholds: Mapping[str, float] | None) -> str:
  """The BehaviourValidator's ``thresholds`` parameter: canonical JSON (sorted keys, so
  equal settings keep TFX's cache), checked now rather than when the component runs."""
  chosen = DEFAULT_BEHAVIOUR_THRESHOLDS if thresholds is None else thresholds
  text = json.dumps(dict(chosen), sort_keys=True) if chosen else ""
  parse_thresholds(text)
  return text


def _cut(nodes: list[Any], keep: int) -> list[Any]:
  """The first ``keep`` of ``nodes``, detached from the nodes after them (TFX's compiler
  refuses a node whose downstream node is not in the pipeline)."""
  for dropped in nodes[keep:]:
    for upstream in list(dropped.upstream_nodes):
      upstream.remove_downstream_node(dropped)
  return nodes[:keep]


def _window(drift_gate, window_spans: int | None):
  """The Examples Transform and the Trainer read: the latest version of each of the last
  ``window_spans`` spans (all with None) that ``drift_gate`` ever published, i.e. that
  passed the drift check.

  The channel names the producer rather than being its output: a sync pipeline scopes a
  node's output channel to the current run, which holds the newest span alone. Transform
  runs after this run's gate, so the window includes the new span; a span that failed
  ingestion, the schema check or the drift check was never published, so never in.
  """
  published = Channel(
    type=standard_artifacts.Examples,
    producer_component_id=drift_gate.id,
    output_key="validated_examples",
  )
  if window_spans:
    # min_spans=1: the first runs train on the spans there are (TFX's default waits for
    # num_spans of them).
    return rolling_range(published, num_spans=window_spans, min_spans=1)
  return all_spans(published)


@resolver_function.resolver_function
def _published_before(channels):
  """``model_resolvers.PublishedBefore`` on ``{"published": ..., "arrived": ...}``."""
  return model_resolvers.PublishedBefore(channels)


@_published_before.output_type_inferrer
def _published_before_type(channels):
  return channels["arrived"].type


# The baselines name the gates' outputs before the gates are built.
_DRIFT_GATE_ID = "DriftGate"
_BEHAVIOUR_VALIDATOR_ID = "BehaviourValidator"


def _baseline(this_run, published_key: str):
  """What a new span is compared with: the ``published_key`` output (``validated_statistics``
  or ``validated_examples``) of the newest span that passed the drift check before
  ``this_run``'s statistics or Examples were made (``model_resolvers.PublishedBefore``), so
  a span stopped for drift is never anyone's baseline, and a span checked again (nothing
  new arrived) is compared with what it was compared with then. The first span has no
  predecessor and is compared with itself, so it passes.
  """
  published = Channel(
    type=this_run.type, producer_component_id=_DRIFT_GATE_ID, output_key=published_key
  )
  return _published_before({"published": published, "arrived": this_run})


def _nodes(
  *,
  spans: SpanInput | None,
  hparams: HParams,
  serving_model_dir: str,
  train_split: str,
  test_split: str,
  unlabelled_split: str,
  eval_percent: int,
  tfds_data_dir: str | None,
  download: bool,
  schema_path: str | None,
  min_accuracy: float,
  max_accuracy_drop: float,
  behaviour_thresholds: str,
  code_versions: Mapping[str, str],
) -> list[Any]:
  """Every node of the pipeline, in the order of ``pipeline.layout.node_ids``.

  A node only references nodes before it, so any prefix of the list is a pipeline.
  """
  example_gen = ImdbExampleGen(
    train_split="" if spans else train_split,
    test_split=test_split,
    eval_percent=eval_percent,
    tfds_data_dir=tfds_data_dir or "",
    download=download,
    unlabelled_split=unlabelled_split,
  )
  golden = example_gen.outputs["examples"]  # the test split every model is blessed on
  review_example_gen = None
  new_examples = training_examples = golden
  if spans:
    review_example_gen = ReviewExampleGen(
      input_base=spans.input_base,
      input_pattern=spans.input_pattern,
      golden_examples=golden,
      eval_percent=eval_percent,
      span=spans.span,
      max_rejected_fraction=spans.max_rejected_fraction,
    )
    new_examples = review_example_gen.outputs["examples"]
    # The curated schema types the statistics (label is categorical, for its drift).
    schema_gen = ImportSchemaGen(schema_file=schema_path or CURATED_SCHEMA_PATH)
    statistics_gen = StatisticsGen(examples=new_examples, schema=schema_gen.outputs["schema"])
  else:
    # Not of the unlabelled split: nothing validates or reads its statistics (its reviews
    # lack the label the schema requires), and it is half of all reviews.
    statistics_gen = StatisticsGen(examples=new_examples, exclude_splits=[UNLABELLED])
    if schema_path:
      schema_gen = ImportSchemaGen(schema_file=schema_path)
    else:
      schema_gen = SchemaGen(
        statistics=statistics_gen.outputs["statistics"],
        infer_feature_shape=True,
        exclude_splits=[EVAL, TEST, UNLABELLED],
      )
  example_validator = ExampleValidator(
    statistics=statistics_gen.outputs["statistics"],
    schema=schema_gen.outputs["schema"],
    exclude_splits=[UNLABELLED],
  )
  anomalies_gate = AnomaliesGate(anomalies=example_validator.outputs["anomalies"])
  # Blessed means the BehaviourValidator's blessing (the Evaluator's and the suite's), the
  # one the Pusher reads: a model the Evaluator blessed but the suite stopped is never
  # resolved as a baseline or a warm start.
  blessed_models = dict(
    model=Channel(type=standard_artifacts.Model),
    model_blessing=Channel(
      type=standard_artifacts.ModelBlessing,
      producer_component_id=_BEHAVIOUR_VALIDATOR_ID,
      output_key="behaviour_blessing",
    ),
  )
  arrival_resolver = None
  if spans:
    # The model serving when the newest span arrived: its vocabulary for the drift check,
    # and where training starts (model_resolvers: a run with nothing new is then cached).
    arrival_resolver = Resolver(
      strategy_class=model_resolvers.ServingAtArrivalStrategy,
      arrived_examples=new_examples,
      **blessed_models,
    ).with_id(ARRIVAL_RESOLVER)
  distribution_validator = drift_gate = None
  if spans:
    distribution_validator = DistributionValidator(
      statistics=statistics_gen.outputs["statistics"],
      baseline_statistics=_baseline(statistics_gen.outputs["statistics"], "validated_statistics"),
      config=make_drift_config(spans.max_label_linf, spans.max_length_js),
      include_split_pairs=[(TRAIN, TRAIN)],
    )
    # Only after the schema check passed: a span it stopped is never published for
    # training either.
    drift_gate = DriftGate(
      anomalies=distribution_validator.outputs["anomalies"],
      examples=new_examples,
      statistics=statistics_gen.outputs["statistics"],
      serving_model=arrival_resolver.outputs["model"],
      baseline_examples=_baseline(new_examples, "validated_examples"),
      max_oov_increase=spans.max_oov_increase,
    ).with_id(_DRIFT_GATE_ID)
    drift_gate.add_upstream_node(anomalies_gate)
    training_examples = _window(drift_gate, spans.window_spans)
  # TFX's Transform, its output files named by their contents (components.transform).
  transform = Transform(
    examples=training_examples,
    schema=schema_gen.outputs["schema"],
    preprocessing_fn=PREPROCESSING_FN,
    custom_config=_with_code_version(
      hparams.preprocessing_custom_config(), code_versions, "transform"
    ),
    # The Trainer reads train and eval; the Evaluator and every later reader take the
    # golden test reviews raw (the served model holds the TransformGraph).
    splits_config=transform_pb2.SplitsConfig(analyze=[TRAIN], transform=[TRAIN, EVAL]),
    # No pre- and post-transform statistics: the pre-transform ones are StatisticsGen's
    # of the train split again, and the post-transform ones describe token ids, which
    # nothing reads; computing them was TFDV's second pass over the data inside Transform.
    disable_statistics=True,
    # No analyzer cache: nothing feeds it back as the next run's ``analyzer_cache``
    # (tf.Transform's incremental analysis of a window of spans), and writing it took
    # 6.7 s of Transform's 50.5 s on the full data (Executor.Do alone, 2 runs each,
    # 2-core machine, 2026-12-06).
    disable_analyzer_cache=True,
  )
  transform.add_upstream_node(anomalies_gate)
  if drift_gate:
    transform.add_upstream_node(drift_gate)
  serving_model = arrival_resolver.outputs["model"] if spans and spans.warm_start else None
  embedding_trainer = None
  if hparams.pretrains_embeddings:
    # Its Model is the Trainer's base_model (TFX's warm start): word2vec over the train
    # reviews, whose ids Transform wrote, and the raw unlabelled ones through the
    # TransformGraph (with spans: the unlabelled ones alone); it names the serving model
    # the Trainer warm-starts from.
    embedding_trainer = EmbeddingTrainer(
      examples=golden,
      transform_graph=transform.outputs["transform_graph"],
      warm_start_model=serving_model,
      transformed_examples=None if spans else transform.outputs["transformed_examples"],
      splits=UNLABELLED if spans or unlabelled_split else "",
      transformed_splits="" if spans else TRAIN,
      custom_config=json.dumps(
        _with_code_version(hparams.pretraining_custom_config(), code_versions, "pretraining"),
        sort_keys=True,
      ),
    )
  trainer = Trainer(
    run_fn=RUN_FN,
    examples=transform.outputs["transformed_examples"],
    transform_graph=transform.outputs["transform_graph"],
    schema=schema_gen.outputs["schema"],
    train_args=trainer_pb2.TrainArgs(splits=[TRAIN]),
    eval_args=trainer_pb2.EvalArgs(splits=[EVAL]),
    base_model=embedding_trainer.outputs["embeddings"] if embedding_trainer else serving_model,
    custom_config=_with_code_version(hparams.to_custom_config(), code_versions, "trainer"),
  )
  # The Evaluator's baseline: the serving model (TFX's LatestBlessedModelStrategy); with
  # spans, the newest blessed model other than this run's candidate, so that a candidate
  # already serving (a cached Trainer) is judged, again from the cache, against the model it
  # was first judged against rather than against itself.
  if spans:
    model_resolver = Resolver(
      strategy_class=model_resolvers.PreviousBlessedModelStrategy,
      candidate=trainer.outputs["model"],
      **blessed_models,
    )
  else:
    model_resolver = Resolver(strategy_class=LatestBlessedModelStrategy, **blessed_models)
  model_resolver = model_resolver.with_id(BASELINE_RESOLVER)
  evaluation_examples = None
  if spans:
    # The golden test split and the newest span's eval split, sliced apart by span.
    evaluation_examples = EvaluationExamples(
      golden_examples=golden, span_examples=drift_gate.outputs["validated_examples"]
    )
  # TFX's Evaluator, reading the Examples in batches of up to 20 MiB (components.evaluator).
  evaluator = Evaluator(
    examples=evaluation_examples.outputs["examples"] if evaluation_examples else golden,
    model=trainer.outputs["model"],
    baseline_model=model_resolver.outputs["model"],
    example_splits=[TEST, EVAL] if spans else [TEST],
    eval_config=make_eval_config(min_accuracy, max_accuracy_drop, by_span=bool(spans)),
  )
  behaviour_validator = BehaviourValidator(
    model=trainer.outputs["model"],
    model_blessing=evaluator.outputs["blessing"],
    baseline_model=model_resolver.outputs["model"],
    thresholds=behaviour_thresholds,
  ).with_id(_BEHAVIOUR_VALIDATOR_ID)
  # TFX's Pusher, except that a model already serving (a run on unchanged data) is not
  # pushed again as a new version (components.serving_pusher).
  pusher = Pusher(
    model=trainer.outputs["model"],
    model_blessing=behaviour_validator.outputs["behaviour_blessing"],
    push_destination=pusher_pb2.PushDestination(
      filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=serving_model_dir)
    ),
    custom_executor_spec=executor_spec.ExecutorClassSpec(serving_pusher.Executor),
  )
  checks = (distribution_validator, arrival_resolver, drift_gate) if spans else ()
  return [
    node
    for node in (
      example_gen,
      review_example_gen,
      *((schema_gen, statistics_gen) if spans else (statistics_gen, schema_gen)),
      example_validator,
      anomalies_gate,
      *checks,
      transform,
      embedding_trainer,
      trainer,
      model_resolver,
      evaluation_examples,
      evaluator,
      behaviour_validator,
      pusher,
    )
    if node is not None
  ]
