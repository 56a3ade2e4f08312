"""ReviewExampleGen: labelled reviews arriving as span folders -> Examples, and the rows it
refused -> RejectedRows.

Built on TFX's file-based ExampleGen machinery rather than beside it: the driver
(``FileBasedDriver``) resolves ``{SPAN}``, ``{VERSION}`` and ``{YYYY}-{MM}-{DD}`` in the
input pattern (the latest span, or the one ``range_config`` names) and records span,
version and the input fingerprint on the Examples artifact, so a span is ingested once
and a re-delivered version again; the executor (a ``BaseExampleGenExecutor``) reads the
span's files in Beam (``GetInputSourceToExamplePTransform``), and TFX's own hash partition
(``output_config``) splits the Examples into ``train`` and ``eval`` by the review's text.

Why a component of our own on that machinery: TFX's CSV and import ExampleGens fail on the
first malformed row, read no JSON Lines, and have one output. Here every row is checked
(``components.review_files``): a refused row goes, with its file, line and reason, to the
``rejected_rows`` output (``rejected-*.jsonl``), and so does a review identical to one of
the golden test reviews (``golden_examples``' ``test`` split; leakage: never trained on).
``counts.json`` beside them and custom properties on both artifacts count them. When the
refused rows pass ``max_rejected_fraction`` of the rows read, the execution fails, naming
the first of them: TFX then publishes neither artifact, so nothing downstream sees the
span, and files already written stay unpublished (never "complete").
"""

import hashlib
import json
import os
from typing import Any, ClassVar

import apache_beam as beam
import tensorflow as tf
from apache_beam.io import fileio
from tfx import types
from tfx.components.example_gen import base_example_gen_executor, driver
from tfx.components.example_gen import utils as example_gen_utils
from tfx.dsl.components.base import base_beam_component, base_driver, executor_spec
from tfx.proto import example_gen_pb2, range_config_pb2
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components import review_files
from components.imdb_beam import TEST, to_tf_example
from core import features

REJECTED_ROWS_KEY = "rejected_rows"
GOLDEN_EXAMPLES_KEY = "golden_examples"
MAX_REJECTED_FRACTION_KEY = "max_rejected_fraction"
COUNTS_FILE = "counts.json"
REJECTED_PREFIX = "rejected"
# Where the executor tells the input PTransform to write the refused rows.
_REJECTED_URI_PROPERTY = "_rejected_rows_uri"
# Refused rows a failed execution names.
FIRST_BAD_ROWS = 5


class RejectedRows(types.Artifact):
  """The rows an ExampleGen refused: ``rejected-*.jsonl`` (one ``review_files.Rejection``
  per line: file, line, reason, detail, raw) and ``counts.json``; its custom properties
  hold the counts (``rows``, ``reviews``, ``rejected``, ``golden_duplicates``,
  ``rejected_<reason>``) and ``span``/``version`` of the Examples beside it."""

  TYPE_NAME = "RejectedRows"


class RejectedRowsError(ValueError):
  """Too large a share of a span's rows was refused; the message names the first ones."""


class ReviewExampleGenSpec(types.ComponentSpec):
  """``FileBasedExampleGenSpec``'s parameters and ``examples`` output, with the golden
  Examples as an input, ``max_rejected_fraction``, and the ``rejected_rows`` output."""

  PARAMETERS: ClassVar[dict] = {
    **standard_component_specs.FileBasedExampleGenSpec.PARAMETERS,
    MAX_REJECTED_FRACTION_KEY: ExecutionParameter(type=float),
  }
  INPUTS: ClassVar[dict] = {
    GOLDEN_EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples, optional=True),
  }
  OUTPUTS: ClassVar[dict] = {
    **standard_component_specs.FileBasedExampleGenSpec.OUTPUTS,
    REJECTED_ROWS_KEY: ChannelParameter(type=RejectedRows),
  }


def golden_key(text: bytes) -> bytes:
  """What makes two reviews "identical" for the leakage check: the SHA-256 of the text
  without leading and trailing white space."""
  return hashlib.sha256(text.strip()).digest()


def _read_file(readable: fileio.ReadableFile):
  """The ``Review``s and ``Rejection``s of one matched file (module ``review_files``);
  a file of another format yields its path as an ignored file."""
  path = readable.metadata.path
  kind = review_files.file_format(path)
  if kind is None:
    yield beam.pvalue.TaggedOutput("ignored", path)
    return
  if kind == "tfrecord":
    compression = "GZIP" if path.lower().endswith(".gz") else ""
    for number, record in enumerate(
      tf.compat.v1.io.tf_record_iterator(path, tf.io.TFRecordOptions(compression_type=compression)),
      start=1,
    ):
      yield _tag(review_files.parse_example(path, number, record))
    return
  parse = review_files.parse_jsonl if kind == "jsonl" else review_files.parse_csv
  for row in parse(path, readable.read()):
    yield _tag(row)


def _tag(row):
  if isinstance(row, review_files.Rejection):
    return beam.pvalue.TaggedOutput("rejected", row)
  return row


class _DropGoldenDuplicates(beam.DoFn):
  """Passes the reviews whose text is not a golden test review's; tags the others as
  ``GOLDEN_DUPLICATE`` rejections (main output ``reviews``, tagged ``duplicates``)."""

  def __init__(self):
    self._keys: frozenset = frozenset()
    self._keys_of = None  # the side input list the set was built from

  def process(self, review: review_files.Review, golden_keys: list):
    if self._keys_of is not golden_keys:
      self._keys, self._keys_of = frozenset(golden_keys), golden_keys
    if golden_key(review.text) not in self._keys:
      yield review
      return
    yield beam.pvalue.TaggedOutput(
      "duplicates",
      review_files.Rejection(
        review.file,
        review.line,
        review_files.GOLDEN_DUPLICATE,
        "identical to a golden test review",
        review.text.decode("utf-8")[: review_files.RAW_CHARS],
      ),
    )


def _golden_keys(pipeline: beam.Pipeline, golden_pattern: str) -> beam.PCollection:
  """The ``golden_key`` of every golden test review (none when ``golden_pattern`` is
  empty: no golden Examples)."""
  if not golden_pattern:
    return pipeline | "NoGoldenExamples" >> beam.Create([])

  def key(record: bytes) -> bytes:
    example = tf.train.Example.FromString(record)
    return golden_key(example.features.feature[features.TEXT_KEY].bytes_list.value[0])

  return (
    pipeline
    | "ReadGolden" >> beam.io.ReadFromTFRecord(golden_pattern)
    | "GoldenKey" >> beam.Map(key)
  )


def _counts_json(pipeline, reviews, rejected, duplicates, ignored) -> beam.PCollection:
  """One JSON document: ``rows`` read, ``reviews`` kept, ``rejected`` (bad rows),
  ``rejected_by_reason``, ``golden_duplicates`` and ``ignored_files`` (files of no known
  format)."""

  def count(name, pcoll):
    return beam.pvalue.AsSingleton(pcoll | f"Count{name}" >> beam.combiners.Count.Globally())

  by_reason = (
    rejected
    | "Reason" >> beam.Map(lambda r: r.reason)
    | "CountReasons" >> beam.combiners.Count.PerElement()
  )

  def as_json(_, kept, bad, leaked, reasons, ignored_files):
    return json.dumps(
      {
        "rows": kept + bad + leaked,
        "reviews": kept,
        "rejected": bad,
        "golden_duplicates": leaked,
        "rejected_by_reason": dict(sorted(reasons)),
        "ignored_files": sorted(ignored_files),
      },
      sort_keys=True,
    )

  return (
    pipeline
    | "CountsSeed" >> beam.Create([None])
    | "CountsJson"
    >> beam.Map(
      as_json,
      count("Reviews", reviews),
      count("Rejected", rejected),
      count("Duplicates", duplicates),
      beam.pvalue.AsList(by_reason),
      beam.pvalue.AsList(ignored),
    )
  )


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(tf.train.Example)
def _ReviewFilesToExample(  # noqa: N802 - a PTransform, named like one
  pipeline: beam.Pipeline, exec_properties: dict[str, Any], split_pattern: str
) -> beam.PCollection:
  """The span's files (``input_base/split_pattern``) -> tf.Examples of the
  accepted reviews that are no golden test review; the refused rows and the counts go to
  the rejected-rows artifact's directory."""
  pattern = os.path.join(exec_properties[standard_component_specs.INPUT_BASE_KEY], split_pattern)
  rejected_uri = exec_properties[_REJECTED_URI_PROPERTY]
  rows = (
    pipeline
    | "MatchFiles" >> fileio.MatchFiles(pattern)
    | "ReadMatches" >> fileio.ReadMatches()
    | "ParseRows" >> beam.FlatMap(_read_file).with_outputs("rejected", "ignored", main="reviews")
  )
  golden = _golden_keys(pipeline, exec_properties.get(_GOLDEN_PATTERN_PROPERTY, ""))
  kept = rows.reviews | "DropGoldenDuplicates" >> beam.ParDo(
    _DropGoldenDuplicates(), golden_keys=beam.pvalue.AsList(golden)
  ).with_outputs("duplicates", main="reviews")
  _ = (
    (rows.rejected, kept.duplicates)
    | "AllRefused" >> beam.Flatten()
    | "RefusedJson" >> beam.Map(review_files.Rejection.to_json)
    | "WriteRefused"
    >> beam.io.WriteToText(os.path.join(rejected_uri, REJECTED_PREFIX), file_name_suffix=".jsonl")
  )
  _ = _counts_json(pipeline, kept.reviews, rows.rejected, kept.duplicates, rows.ignored) | (
    "WriteCounts"
    >> beam.io.WriteToText(
      os.path.join(rejected_uri, COUNTS_FILE), num_shards=1, shard_name_template=""
    )
  )
  span = int(exec_properties[example_gen_utils.SPAN_PROPERTY_NAME])
  return kept.reviews | "ToExample" >> beam.Map(
    lambda review: to_tf_example(review.text, review.label, span)
  )


class Executor(base_example_gen_executor.BaseExampleGenExecutor):
  """Reads a span's review files in Beam (module docstring), then counts and judges what
  it refused."""

  def GetInputSourceToExamplePTransform(self) -> beam.PTransform:  # noqa: N802 - TFX's name
    return _ReviewFilesToExample

  def Do(self, input_dict, output_dict, exec_properties) -> None:  # noqa: N802 - TFX's name
    """Writes the Examples and the rejected rows, sets the counts on both artifacts.

    Raises:
      RejectedRowsError: refused rows are more than ``max_rejected_fraction`` of the rows
        read (the execution fails: neither artifact is published).
      ValueError: the span holds no readable row.
    """
    rejected = artifact_utils.get_single_instance(output_dict[REJECTED_ROWS_KEY])
    golden = input_dict.get(GOLDEN_EXAMPLES_KEY) or []
    exec_properties = {
      **exec_properties,
      _REJECTED_URI_PROPERTY: rejected.uri,
      _GOLDEN_PATTERN_PROPERTY: os.path.join(artifact_utils.get_split_uri(golden, TEST), "*")
      if golden
      else "",
    }
    super().Do(input_dict, output_dict, exec_properties)
    counts = read_counts(rejected.uri)
    examples = artifact_utils.get_single_instance(
      output_dict[standard_component_specs.EXAMPLES_KEY]
    )
    for artifact in (examples, rejected):
      record_counts(artifact, counts)
    for key in ("span", "version"):
      if examples.has_custom_property(key):
        rejected.set_int_custom_property(key, examples.get_int_custom_property(key))
    check_rejected_share(counts, exec_properties[MAX_REJECTED_FRACTION_KEY], rejected.uri)


_GOLDEN_PATTERN_PROPERTY = "_golden_pattern"


def read_counts(rejected_uri: str) -> dict[str, Any]:
  """``counts.json`` of a RejectedRows artifact."""
  with tf.io.gfile.GFile(os.path.join(rejected_uri, COUNTS_FILE)) as f:
    return json.loads(f.read())


def record_counts(artifact: types.Artifact, counts: dict[str, Any]) -> None:
  """Sets ``counts`` as int custom properties of ``artifact``: ``rows``, ``reviews``,
  ``rejected``, ``golden_duplicates`` and ``rejected_<reason>``."""
  for key in ("rows", "reviews", "rejected", "golden_duplicates"):
    artifact.set_int_custom_property(f"num_{key}", counts[key])
  for reason, n in counts["rejected_by_reason"].items():
    artifact.set_int_custom_property(f"num_rejected_{reason}", n)


def first_rejections(rejected_uri: str, n: int = FIRST_BAD_ROWS) -> list:
  """The ``n`` refused rows (not golden duplicates) that come first by file and line."""
  rows = []
  for path in tf.io.gfile.glob(os.path.join(rejected_uri, f"{REJECTED_PREFIX}*.jsonl")):
    with tf.io.gfile.GFile(path) as f:
      rows += [review_files.Rejection.from_json(line) for line in f if line.strip()]
  bad = [r for r in rows if r.reason != review_files.GOLDEN_DUPLICATE]
  return sorted(bad, key=lambda r: (r.file, r.line))[:n]


def check_rejected_share(counts: dict[str, Any], max_fraction: float, rejected_uri: str) -> None:
  """Raises ``RejectedRowsError`` when refused rows are more than ``max_fraction`` of the
  rows read, naming the first ones, and ``ValueError`` when no row was read."""
  if counts["rows"] == 0:
    raise ValueError(
      "the span holds no review: no row in any .jsonl, .csv or .tfrecord file"
      + (f" (ignored: {', '.join(counts['ignored_files'])})" if counts["ignored_files"] else "")
    )
  share = counts["rejected"] / counts["rows"]
  if share <= max_fraction:
    return
  first = "\n".join(f"  {r.source}: {r.reason}: {r.detail}" for r in first_rejections(rejected_uri))
  raise RejectedRowsError(
    f"{counts['rejected']} of {counts['rows']} rows refused ({share:.2%}, more than "
    f"--max-rejected-fraction {max_fraction:.2%}); the first:\n{first}\nAll of them, with "
    f"their reasons: {rejected_uri}"
  )


def _span_properties(artifact) -> None:
  """Copies the ``span`` and ``version`` custom properties (TFX's ExampleGen driver sets
  only those) of an MLMD Examples artifact into its declared ``span`` and ``version``
  properties, which TFX's resolver functions (``rolling_range``, ``all_spans``) read; a
  span without versions is version 0."""
  custom = artifact.custom_properties
  artifact.properties["span"].int_value = custom["span"].int_value
  artifact.properties["version"].int_value = (
    custom["version"].int_value if "version" in custom else 0
  )


class Driver(driver.FileBasedDriver):
  """TFX's ``FileBasedDriver`` (span and version resolution), which records span and
  version as custom properties only, and prepares only the Examples output under TFX's
  legacy launchers (Airflow's): this one also sets the declared properties
  (``_span_properties``) and prepares the rejected rows too."""

  def run(self, execution_info):
    result = super().run(execution_info)
    for artifact in result.output_artifacts[standard_component_specs.EXAMPLES_KEY].artifacts:
      _span_properties(artifact)
    return result

  def _prepare_output_artifacts(
    self, input_artifacts, output_dict, exec_properties, execution_id, pipeline_info, component_info
  ):
    result = super()._prepare_output_artifacts(
      input_artifacts, output_dict, exec_properties, execution_id, pipeline_info, component_info
    )
    for artifact in result[standard_component_specs.EXAMPLES_KEY]:
      _span_properties(artifact.mlmd_artifact)
    others = {k: v for k, v in output_dict.items() if k not in result}
    result.update(
      base_driver.BaseDriver._prepare_output_artifacts(
        self, input_artifacts, others, exec_properties, execution_id, pipeline_info, component_info
      )
    )
    return result


class ReviewExampleGen(base_beam_component.BaseBeamComponent):
  """ExampleGen of labelled reviews arriving as span folders (module docstring).

  Args:
    input_base: the folder holding the spans, e.g. ``span-1/``, ``span-2/`` ...
    input_pattern: a span's files below ``input_base``, with ``{SPAN}`` (or
      ``{YYYY}-{MM}-{DD}``) and optionally ``{VERSION}``: ``span-{SPAN}/*``,
      ``span-{SPAN}/version-{VERSION}/*``, ``{YYYY}-{MM}-{DD}/*``.
    golden_examples: Examples whose ``test`` split is the golden test set; its reviews
      are never trained on. None: no leakage check.
    eval_percent: share of the span's reviews (by a hash of the text) held out as
      ``eval``, in [1, 99].
    span: ingest this span instead of the latest (TFX's ``range_config``).
    max_rejected_fraction: fail when refused rows are more than this share of the rows.
  """

  SPEC_CLASS = ReviewExampleGenSpec
  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
  DRIVER_CLASS = Driver

  def __init__(
    self,
    input_base: str,
    input_pattern: str = "span-{SPAN}/*",
    golden_examples: types.BaseChannel | None = None,
    eval_percent: int = 10,
    span: int | None = None,
    max_rejected_fraction: float = 0.01,
  ):
    if not 1 <= eval_percent <= 99:
      raise ValueError(f"eval_percent must be in [1, 99], got {eval_percent}")
    if not 0 <= max_rejected_fraction <= 1:
      raise ValueError(f"max_rejected_fraction must be in [0, 1], got {max_rejected_fraction}")
    input_config = example_gen_pb2.Input(
      splits=[example_gen_pb2.Input.Split(name="span", pattern=input_pattern)]
    )
    output_config = example_gen_pb2.Output(
      split_config=example_gen_pb2.SplitConfig(
        splits=[
          example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=100 - eval_percent),
          example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=eval_percent),
        ],
        partition_feature_name=features.TEXT_KEY,
      )
    )
    range_config = None
    if span is not None:
      range_config = range_config_pb2.RangeConfig(
        static_range=range_config_pb2.StaticRange(start_span_number=span, end_span_number=span)
      )
    spec = ReviewExampleGenSpec(
      input_base=input_base,
      input_config=input_config,
      output_config=output_config,
      custom_config=None,
      range_config=range_config,
      output_data_format=example_gen_pb2.FORMAT_TF_EXAMPLE,
      output_file_format=example_gen_pb2.FORMAT_TFRECORDS_GZIP,
      max_rejected_fraction=float(max_rejected_fraction),
      golden_examples=golden_examples,
      examples=types.Channel(type=standard_artifacts.Examples),
      rejected_rows=types.Channel(type=RejectedRows),
    )
    super().__init__(spec=spec)
