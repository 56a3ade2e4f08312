"""What the pipeline is made of and where a run writes, without importing TFX: the node
ids in order, the orchestrators, the output directory's layout. The command line reads
these for its options and checks, so ``imdb-tfx --help`` starts in well under a second.
"""

import dataclasses
import os
import time
import types

from core import contract

PIPELINE_NAME = contract.MODEL_NAME
CURATED_SCHEMA_PATH = os.path.join(os.path.dirname(__file__), "schema", "schema.pbtxt")
PREPROCESSING_FN = "models.preprocessing.preprocessing_fn"
RUN_FN = "models.trainer.run_fn"
# TFDS's split of IMDB reviews without a rating, read for the embedding pretraining.
UNLABELLED_SPLIT = "unsupervised"
# The resolvers' node ids: with spans, the model serving when the newest span arrived (the
# drift check's vocabulary, the warm start); the Evaluator's baseline (pipeline.model_resolvers).
ARRIVAL_RESOLVER = "arrival_model_resolver"
BASELINE_RESOLVER = "latest_blessed_model_resolver"
# Every node in order (with a curated schema, ImportSchemaGen takes SchemaGen's place;
# without pretraining, word2vec_epochs=0, there is no EmbeddingTrainer).
NODE_IDS = (
  "ImdbExampleGen",
  "ReviewExampleGen",
  "StatisticsGen",
  "SchemaGen",
  "ExampleValidator",
  "AnomaliesGate",
  "DistributionValidator",
  ARRIVAL_RESOLVER,
  "DriftGate",
  "Transform",
  "EmbeddingTrainer",
  "Trainer",
  BASELINE_RESOLVER,
  "EvaluationExamples",
  "Evaluator",
  "BehaviourValidator",
  "Pusher",
)


def node_ids(
  curated_schema: bool = False, pretraining: bool = True, spans: bool = False
) -> tuple[str, ...]:
  """The ids of the nodes ``create_pipeline`` builds, in order.

  Args:
    curated_schema: whether a curated schema is imported (``ImportSchemaGen`` then takes
      ``SchemaGen``'s place).
    pretraining: whether the ``EmbeddingTrainer`` is built (``word2vec_epochs`` > 0).
    spans: whether new reviews arrive as spans (a ``SpanInput``): then ``ReviewExampleGen``
      ingests them, the curated schema is imported before the statistics (which it
      types), ``DistributionValidator`` and ``DriftGate`` compare each span with the
      previous one, the model serving when the span arrived is resolved before
      ``DriftGate`` (whose out-of-vocabulary rate uses its vocabulary) and the training
      that warm-starts from it, and ``EvaluationExamples`` gathers the golden test and
      the newest span's eval reviews for the Evaluator.
  """
  if spans:
    order = ["ImdbExampleGen", "ReviewExampleGen", "ImportSchemaGen", "StatisticsGen"]
    order += [n for n in NODE_IDS if NODE_IDS.index(n) > NODE_IDS.index("SchemaGen")]
  else:
    schema_node = "ImportSchemaGen" if curated_schema else "SchemaGen"
    order = [schema_node if n == "SchemaGen" else n for n in NODE_IDS]
    order = [n for n in order if n not in _SPAN_NODES]
  return tuple(n for n in order if pretraining or n != "EmbeddingTrainer")


# The nodes only a pipeline of spans has.
_SPAN_NODES = (
  "ReviewExampleGen",
  "DistributionValidator",
  ARRIVAL_RESOLVER,
  "DriftGate",
  "EvaluationExamples",
)


def check_last_node(
  last_node: str | None, curated_schema: bool, pretraining: bool = True, spans: bool = False
) -> None:
  """Checks ``last_node`` (``create_pipeline``'s) against the pipeline's node ids.

  Args:
    last_node: a node id, or None for the whole pipeline.
    curated_schema, pretraining, spans: as ``node_ids``.

  Raises:
    ValueError: ``last_node`` is not a node of this pipeline (the message lists them).
  """
  ids = node_ids(curated_schema, pretraining, spans)
  if last_node is not None and last_node not in ids:
    raise ValueError(
      f"last_node {last_node!r} is not a node of this pipeline; choose one of {', '.join(ids)}"
    )


# The BehaviourValidator's default gates: the highest failure rate (share of cases, 0..1)
# of each capability of the behavioural suite (``behaviour.suite``) a pushed model may
# have. From ``make bench-behaviour`` (docs/bench/behaviour.json): the default model's
# worst rate over seeds 42, 7 and 1234, plus 0.10, rounded up to 0.05. A capability's 60
# cases give a standard error of at most 0.065, so the default model passes with about 1.5
# standard errors to spare, and a model that regresses past that is stopped: the default
# before the behavioural work fails negated_positive, negated_negative, not_at_all,
# contrast and intensity on every seed.
DEFAULT_BEHAVIOUR_THRESHOLDS = types.MappingProxyType(
  {
    "negated_positive": 0.2,
    "negated_negative": 0.2,
    "not_at_all": 0.25,
    "double_negation": 0.3,
    "contrast": 0.1,
    "intensity": 0.15,
    "short_review": 0.15,
    "inv_names": 0.1,
    "inv_titles": 0.15,
    "inv_numbers": 0.15,
    "inv_casing": 0.1,
    "inv_punctuation": 0.1,
    "inv_typo": 0.1,
    "dir_add_positive": 0.15,
    "dir_add_negative": 0.1,
  }
)

# Drift thresholds between a span and the previous one (``pipeline.drift_config``).
DEFAULT_MAX_LABEL_LINF = 0.1
DEFAULT_MAX_LENGTH_JS = 0.1
DEFAULT_MAX_OOV_INCREASE = 0.05


@dataclasses.dataclass(frozen=True)
class SpanInput:
  """Where new labelled reviews arrive, one folder per span (``ReviewExampleGen``; the
  files' contract is ``components.review_files``'s).

  Attributes:
    input_base: the folder holding the span folders.
    input_pattern: a span's files below it, with ``{SPAN}`` (or ``{YYYY}-{MM}-{DD}``)
      and optionally ``{VERSION}``.
    span: ingest this span; None = the latest.
    window_spans: train on the last this many spans (TFX's ``rolling_range``); None = all.
    max_rejected_fraction: a span whose refused rows pass this share of its rows stops
      the run.
    max_label_linf: a span whose label distribution is further than this (L-infinity)
      from the previous span's stops the run (``pipeline.drift_config``).
    max_length_js: likewise for ``review_length`` (Jensen-Shannon divergence).
    max_oov_increase: likewise when the share of the span's words outside the serving
      model's vocabulary rose by more than this (``components.oov_rate``).
    warm_start: the Trainer starts from the serving (latest blessed) model's weights when
      there is one (``models.warm_start``); False trains every model from scratch.

  Raises:
    ValueError: a pattern without ``{SPAN}`` or a date, a window < 1, a fraction outside
      [0, 1], a drift threshold outside (0, 1].
  """

  input_base: str
  input_pattern: str = "span-{SPAN}/*"
  span: int | None = None
  window_spans: int | None = None
  max_rejected_fraction: float = 0.01
  max_label_linf: float = DEFAULT_MAX_LABEL_LINF
  max_length_js: float = DEFAULT_MAX_LENGTH_JS
  max_oov_increase: float = DEFAULT_MAX_OOV_INCREASE
  warm_start: bool = True

  def __post_init__(self):
    if "{SPAN" not in self.input_pattern and "{YYYY}" not in self.input_pattern:
      raise ValueError(
        f"input pattern {self.input_pattern!r} names no span: put {{SPAN}} (span-{{SPAN}}/*) "
        "or {YYYY}-{MM}-{DD} in it"
      )
    if self.window_spans is not None and self.window_spans < 1:
      raise ValueError(f"window_spans must be >= 1, got {self.window_spans}")
    if not 0 <= self.max_rejected_fraction <= 1:
      raise ValueError(f"max_rejected_fraction must be in [0, 1], got {self.max_rejected_fraction}")
    for name in ("max_label_linf", "max_length_js", "max_oov_increase"):
      if not 0 < getattr(self, name) <= 1:
        raise ValueError(f"{name} must be in (0, 1], got {getattr(self, name)}")


# Orchestrators of ``imdb-tfx run`` (``pipeline.runner.orchestrator``).
RUNNERS = ("local", "beam")


@dataclasses.dataclass(frozen=True)
class OutputPaths:
  """The layout under one output directory (``outputs/`` by default)."""

  output_dir: str = "outputs"

  @property
  def metadata_path(self) -> str:
    """SQLite file of the ML Metadata store."""
    return os.path.join(self.output_dir, "metadata.sqlite")

  @property
  def pipeline_root(self) -> str:
    return os.path.join(self.output_dir, "pipeline_root")

  @property
  def serving_model_dir(self) -> str:
    """TF Serving model base path: the Pusher writes ``<version>/`` in here."""
    return os.path.join(self.output_dir, "serving_model", contract.MODEL_NAME)

  @property
  def summary_path(self) -> str:
    """The latest run's summary (JSON); ``run_summary_path`` keeps each run's."""
    return os.path.join(self.output_dir, "run_summary.json")

  def run_summary_path(self, started: float) -> str:
    """The summary of the run started at ``started`` (seconds since the epoch, local
    time): ``summaries/run-YYYYmmdd-HHMMSS.json``, named as its log."""
    return os.path.join(self.output_dir, "summaries", f"run-{_stamp(started)}.json")

  @property
  def reports_dir(self) -> str:
    """The HTML run reports: ``<run id>/index.html`` per run, ``index.html`` across runs."""
    return os.path.join(self.output_dir, "reports")

  def log_path(self, started: float) -> str:
    """The log of the run started at ``started`` (seconds since the epoch, local time):
    ``logs/run-YYYYmmdd-HHMMSS.log``."""
    return os.path.join(self.output_dir, "logs", f"run-{_stamp(started)}.log")

  @property
  def kubeflow_spec_path(self) -> str:
    """Where ``imdb-tfx compile kubeflow`` writes the pipeline spec by default."""
    return os.path.join(self.output_dir, "kubeflow", f"{PIPELINE_NAME}_pipeline.json")


def _stamp(seconds: float) -> str:
  """``YYYYmmdd-HHMMSS`` of ``seconds`` since the epoch, local time."""
  return time.strftime("%Y%m%d-%H%M%S", time.localtime(seconds))
