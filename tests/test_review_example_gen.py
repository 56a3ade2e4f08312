"""ReviewExampleGen on span folders, run by TFX's LocalDagRunner: spans and versions
resolved by TFX's driver, every refused row listed with its reason, golden test reviews
kept out of training, a span with too many bad rows refused, an ingestion killed midway
publishing nothing (checked through MLMD)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx

from components import review_example_gen as reg
from components import review_files
from components.imdb_example_gen import ImdbExampleGen
from pipeline.beam_profiles import default_beam_pipeline_args
from pipeline.layout import PIPELINE_NAME

pytestmark = pytest.mark.e2e

GOLDEN_SPLIT = "test[:20]"


def _reviews(n, prefix):
  return [(f"{prefix} review {i}: {'a joy' if i % 2 else 'a bore'}.", i % 2) for i in range(n)]


def _write_jsonl(path, rows, extra_lines=()):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "wb") as f:
    for text, label in rows:
      f.write(json.dumps({"text": text, "label": label}).encode() + b"\n")
    for line in extra_lines:
      f.write(line + b"\n")


def _write_tfrecord(path, rows):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with tf.io.TFRecordWriter(path, tf.io.TFRecordOptions(compression_type="GZIP")) as w:
    for text, label in rows:
      w.write(
        tf.train.Example(
          features=tf.train.Features(
            feature={
              "text": tf.train.Feature(bytes_list=tf.train.BytesList(value=[text.encode()])),
              "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
            }
          )
        ).SerializeToString()
      )


class _Runs:
  """Runs [golden ImdbExampleGen, ReviewExampleGen] pipelines on one MLMD store."""

  def __init__(self, root, tfds_data_dir):
    self.root, self.tfds_data_dir = root, tfds_data_dir
    self.config = tfx.orchestration.metadata.sqlite_metadata_connection_config(
      os.path.join(root, "metadata.sqlite")
    )

  def run(self, input_base, **kwargs):
    golden = ImdbExampleGen(
      train_split="train[:20]", test_split=GOLDEN_SPLIT, tfds_data_dir=self.tfds_data_dir
    )
    review = reg.ReviewExampleGen(
      input_base=input_base, golden_examples=golden.outputs["examples"], **kwargs
    )
    tfx.orchestration.LocalDagRunner().run(
      tfx.dsl.Pipeline(
        pipeline_name="spans",
        pipeline_root=os.path.join(self.root, "root"),
        components=[golden, review],
        enable_cache=True,
        metadata_connection_config=self.config,
        beam_pipeline_args=default_beam_pipeline_args(cpu_count=1),
      )
    )

  def artifacts(self, type_name):
    """LIVE artifacts of ``type_name`` that ReviewExampleGen's executions output, oldest
    first."""
    store = metadata_store.MetadataStore(self.config)
    events = store.get_events_by_execution_ids([e.id for e in self.executions()])
    ids = {e.artifact_id for e in events if e.type == metadata_store_pb2.Event.OUTPUT}
    return [
      a
      for a in store.get_artifacts_by_type(type_name)
      if a.id in ids and a.state == metadata_store_pb2.Artifact.LIVE
    ]

  def executions(self, node="ReviewExampleGen"):
    """``node``'s executions, oldest first."""
    store = metadata_store.MetadataStore(self.config)
    context = store.get_context_by_type_and_name("node", f"spans.{node}")
    return sorted(store.get_executions_by_context(context.id), key=lambda e: e.id)


def _custom(artifact, name):
  value = artifact.custom_properties.get(name)
  return None if value is None else value.int_value


def _rejections(artifact):
  rows = []
  for path in tf.io.gfile.glob(os.path.join(artifact.uri, "rejected*.jsonl")):
    with open(path) as f:
      rows += [review_files.Rejection.from_json(line) for line in f if line.strip()]
  return sorted(rows, key=lambda r: (r.file, r.line))


def _count(split_uri):
  files = tf.io.gfile.glob(os.path.join(split_uri, "*"))
  return sum(1 for _ in tf.data.TFRecordDataset(files, compression_type="GZIP"))


def _spans(split_uri):
  """The ``span`` feature's values in a split."""
  files = tf.io.gfile.glob(os.path.join(split_uri, "*"))
  return {
    tf.train.Example.FromString(r.numpy()).features.feature["span"].int64_list.value[0]
    for r in tf.data.TFRecordDataset(files, compression_type="GZIP")
  }


@pytest.fixture(scope="module")
def golden_text(tfds_data_dir):
  builder = tfds.builder("imdb_reviews", data_dir=tfds_data_dir)
  return next(iter(tfds.as_numpy(builder.as_dataset(split=GOLDEN_SPLIT))))["text"].decode()


def test_spans_rows_counted_refused_and_judged(tmp_path, tfds_data_dir, golden_text):
  spans = str(tmp_path / "spans")
  _write_jsonl(
    os.path.join(spans, "span-1", "day.jsonl"),
    [*_reviews(40, "one"), (golden_text, 1)],
    extra_lines=[b'{"text": "out of range", "label": 7}'],
  )
  with open(os.path.join(spans, "span-1", "more.csv"), "w") as f:
    f.write('text,label\n"Funny, and warm.",1\n,0\n')
  with open(os.path.join(spans, "span-1", "README.md"), "w") as f:
    f.write("not reviews")
  _write_tfrecord(os.path.join(spans, "span-2", "day.tfrecord.gz"), _reviews(30, "two"))
  bad = [b'{"text": "bad", "label": 2}'] * 4
  _write_jsonl(os.path.join(spans, "span-3", "day.jsonl"), _reviews(36, "three"), bad)
  runs = _Runs(str(tmp_path / "out"), tfds_data_dir)

  # Span 1: 44 rows, 2 refused (4.5% <= 5%), 1 golden duplicate dropped.
  runs.run(spans, span=1, max_rejected_fraction=0.05)
  (examples,), (rejected,) = runs.artifacts("Examples"), runs.artifacts("RejectedRows")
  assert _custom(examples, "span") == 1 == _custom(rejected, "span")
  counts = {
    k: _custom(examples, f"num_{k}") for k in ("rows", "reviews", "rejected", "golden_duplicates")
  }
  assert counts == {"rows": 44, "reviews": 41, "rejected": 2, "golden_duplicates": 1}
  train = _count(os.path.join(examples.uri, "Split-train"))
  held_out = _count(os.path.join(examples.uri, "Split-eval"))
  assert train + held_out == 41 and held_out > 0
  assert _spans(os.path.join(examples.uri, "Split-eval")) == {1}  # the Evaluator's slices
  refused = [(os.path.basename(r.file), r.line, r.reason) for r in _rejections(rejected)]
  assert refused == [
    ("day.jsonl", 41, review_files.GOLDEN_DUPLICATE),
    ("day.jsonl", 42, review_files.BAD_LABEL),
    ("more.csv", 3, review_files.EMPTY_TEXT),
  ]
  assert reg.read_counts(rejected.uri)["ignored_files"] == [
    os.path.join(spans, "span-1", "README.md")
  ]

  # The latest span (3) by default: 4 bad rows of 40 (10%) > 5% fails, naming them.
  with pytest.raises(
    reg.RejectedRowsError,
    match=r"4 of 40 rows refused \(10\.00%.*\n.*"
    r"span-3/day\.jsonl:37: bad_label: label 2 is not 0 or 1",
  ):
    runs.run(spans, max_rejected_fraction=0.05)
  assert [_custom(a, "span") for a in runs.artifacts("Examples")] == [1]  # nothing for 3
  assert runs.executions()[-1].last_known_state == metadata_store_pb2.Execution.FAILED

  # A TFRecord span.
  runs.run(spans, span=2, max_rejected_fraction=0.05)
  examples = runs.artifacts("Examples")[-1]
  assert _custom(examples, "span") == 2 and _custom(examples, "num_reviews") == 30


def test_a_redelivered_span_is_ingested_again(tmp_path, tfds_data_dir):
  spans = str(tmp_path / "spans")
  pattern = "span-{SPAN}/version-{VERSION}/*"
  _write_jsonl(os.path.join(spans, "span-1", "version-1", "day.jsonl"), _reviews(20, "v1"))
  runs = _Runs(str(tmp_path / "out"), tfds_data_dir)
  runs.run(spans, input_pattern=pattern)
  runs.run(spans, input_pattern=pattern)  # unchanged: TFX's cache
  _write_jsonl(os.path.join(spans, "span-1", "version-2", "day.jsonl"), _reviews(24, "v2"))
  runs.run(spans, input_pattern=pattern)
  examples = runs.artifacts("Examples")
  assert [
    (_custom(a, "span"), _custom(a, "version"), _custom(a, "num_reviews")) for a in examples
  ] == [(1, 1, 20), (1, 2, 24)]
  states = [e.last_known_state for e in runs.executions()]
  assert states == [
    metadata_store_pb2.Execution.COMPLETE,
    metadata_store_pb2.Execution.CACHED,
    metadata_store_pb2.Execution.COMPLETE,
  ]


def test_ingestion_killed_midway_leaves_nothing_complete_and_the_next_run_completes(
  tmp_path, tfds_data_dir
):
  spans, out = str(tmp_path / "spans"), str(tmp_path / "out")
  rows = 20_000  # seconds of Beam work: time to kill it in the middle
  _write_jsonl(os.path.join(spans, "span-1", "day.jsonl"), _reviews(rows, "big"))
  command = [sys.executable, "-m", "cli.main", "run", "--quiet", "--input-base", spans]
  command += ["--until", "ReviewExampleGen", "--test-split", GOLDEN_SPLIT]
  command += ["--tfds-data-dir", tfds_data_dir, "--output-dir", out]
  command += ["--beam-arg=--direct_running_mode=in_memory", "--hparam", "word2vec_epochs=0"]
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  log = open(tmp_path / "killed.log", "wb")  # noqa: SIM115 - the child writes it
  process = subprocess.Popen(
    command, cwd=root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
  )
  config = tfx.orchestration.metadata.sqlite_metadata_connection_config(
    os.path.join(out, "metadata.sqlite")
  )
  try:
    started = _wait_for_running(config, "ReviewExampleGen", process, timeout=300)
    assert started, (tmp_path / "killed.log").read_text()[-3000:]
  finally:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    log.close()
  store = metadata_store.MetadataStore(config)
  (killed,) = _node_executions(store, "ReviewExampleGen")
  assert killed.last_known_state == metadata_store_pb2.Execution.RUNNING
  assert _live(store, "Examples") == [] and _live(store, "RejectedRows") == []

  completed = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=600)
  assert completed.returncode == 0, completed.stderr[-3000:]
  runs = _node_executions(store, "ReviewExampleGen")
  assert [e.last_known_state for e in runs] == [
    metadata_store_pb2.Execution.RUNNING,
    metadata_store_pb2.Execution.COMPLETE,
  ]
  (examples,) = _live(store, "Examples", producer=runs[1])
  assert _custom(examples, "span") == 1 and _custom(examples, "num_reviews") == rows
  assert (
    _count(os.path.join(examples.uri, "Split-train"))
    + _count(os.path.join(examples.uri, "Split-eval"))
    == rows
  )


def _node_executions(store, node):
  context = store.get_context_by_type_and_name("node", f"{PIPELINE_NAME}.{node}")
  if context is None:
    return []
  return sorted(store.get_executions_by_context(context.id), key=lambda e: e.id)


def _wait_for_running(config, node, process, timeout):
  """Whether ``node`` has a RUNNING execution within ``timeout`` seconds, while
  ``process`` runs."""
  deadline = time.time() + timeout
  while time.time() < deadline and process.poll() is None:
    if os.path.exists(config.sqlite.filename_uri):
      store = metadata_store.MetadataStore(config)
      if any(
        e.last_known_state == metadata_store_pb2.Execution.RUNNING
        for e in _node_executions(store, node)
      ):
        return True
    time.sleep(0.2)
  return False


def _live(store, type_name, producer=None):
  """LIVE artifacts of ``type_name`` output by ReviewExampleGen (or ``producer``)."""
  executions = [producer] if producer else _node_executions(store, "ReviewExampleGen")
  events = store.get_events_by_execution_ids([e.id for e in executions])
  ids = {e.artifact_id for e in events if e.type == metadata_store_pb2.Event.OUTPUT}
  return [
    a
    for a in store.get_artifacts_by_type(type_name)
    if a.id in ids and a.state == metadata_store_pb2.Artifact.LIVE
  ]
