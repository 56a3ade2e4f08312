"""End-to-end: the whole pipeline on small TFDS slices, checked through ML Metadata.

Mirrors TFX's own imdb/taxi e2e tests: every component completes, the model is blessed
and pushed, a second run is served from the cache (all but Evaluator and Pusher, whose
baseline input changed), a failed blessing pushes nothing, anomalies stop the run before
Transform, and a run killed mid-component is completed by the next run.
"""

import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time

import grpc
import pytest
import tensorflow as tf
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx
from tiny_model import copy_version

from behaviour import suite
from components.anomalies_gate import DataAnomaliesError
from core import warmup
from models.hparams import HParams
from pipeline import mlmd_queries
from pipeline import runner as runner_lib
from pipeline.beam_profiles import default_beam_pipeline_args
from pipeline.layout import PIPELINE_NAME, OutputPaths
from pipeline.pipeline import create_pipeline
from serving.client import SentimentClient, ServingRequestError
from serving.server_process import ServerProcess

pytestmark = pytest.mark.e2e

TRAIN_SPLIT, TEST_SPLIT, UNLABELLED_SPLIT = "train[:4%]", "test[:2%]", "unsupervised[:1%]"
HP = HParams(
  vocab_size=2000,
  max_length=64,
  embedding_dim=16,
  lstm_units=16,
  dense_units=16,
  epochs=2,
  batch_size=32,
)
IN_MEMORY = ("--direct_running_mode=in_memory", "--direct_num_workers=1")
BEAM_ARGS = tuple(default_beam_pipeline_args(cpu_count=1))
MFT_CAPABILITIES = [c.name for c in suite.CAPABILITIES if c.test_type == suite.MFT]
ALL_NODES = [
  "ImdbExampleGen",
  "StatisticsGen",
  "SchemaGen",
  "ExampleValidator",
  "AnomaliesGate",
  "Transform",
  "EmbeddingTrainer",
  "Trainer",
  "latest_blessed_model_resolver",
  "Evaluator",
  "BehaviourValidator",
  "Pusher",
]


def _pipeline(paths, tfds_data_dir, **overrides):
  kwargs = dict(
    pipeline_root=paths.pipeline_root,
    serving_model_dir=paths.serving_model_dir,
    metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
      paths.metadata_path
    ),
    hparams=HP,
    train_split=TRAIN_SPLIT,
    test_split=TEST_SPLIT,
    unlabelled_split=UNLABELLED_SPLIT,
    tfds_data_dir=tfds_data_dir,
    min_accuracy=0.0,
    # A model of 4% of the data fails the default behaviour gates; the "behaviour" run
    # below sets gates of its own.
    behaviour_thresholds={},
    beam_pipeline_args=BEAM_ARGS,
  )
  kwargs.update(overrides)
  return create_pipeline(**kwargs)


def _store(paths):
  return metadata_store.MetadataStore(
    tfx.orchestration.metadata.sqlite_metadata_connection_config(paths.metadata_path)
  )


def _states(summary):
  return {c.node_id: c.state for c in summary.components}


def _versions(paths):
  if not os.path.isdir(paths.serving_model_dir):
    return []
  return sorted(os.listdir(paths.serving_model_dir))


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tfds_data_dir):
  """Runs the pipeline four ways on one MLMD store and returns what each did."""
  paths = OutputPaths(str(tmp_path_factory.mktemp("e2e")))
  results = {}
  results["first"] = runner_lib.run_pipeline(_pipeline(paths, tfds_data_dir), "local")
  results["first_versions"] = _versions(paths)
  results["first_counts"] = (
    len(_store(paths).get_executions()),
    len(_store(paths).get_artifacts()),
  )
  results["second"] = runner_lib.run_pipeline(_pipeline(paths, tfds_data_dir), "beam")
  results["second_versions"] = _versions(paths)
  results["second_counts"] = (
    len(_store(paths).get_executions()),
    len(_store(paths).get_artifacts()),
  )
  results["strict"] = runner_lib.run_pipeline(
    _pipeline(paths, tfds_data_dir, min_accuracy=1.0), "local"
  )
  results["strict_versions"] = _versions(paths)
  # The model the second run blessed, now held to a zero failure rate on every
  # minimum-functionality capability: the Evaluator blesses it, the suite does not.
  results["behaviour"] = runner_lib.run_pipeline(
    _pipeline(paths, tfds_data_dir, behaviour_thresholds=dict.fromkeys(MFT_CAPABILITIES, 0.0)),
    "local",
  )
  results["behaviour_versions"] = _versions(paths)
  return paths, results


def test_first_run_completes_every_component_and_pushes(runs):
  paths, results = runs
  first = results["first"]
  assert _states(first) == dict.fromkeys(ALL_NODES, "COMPLETE")
  assert first.blessed is True
  assert first.metrics["example_count"] == 500
  assert 0.0 <= first.metrics["binary_accuracy"] <= 1.0
  assert {"auc", "precision", "recall", "f1_score", "calibration"} <= set(first.metrics)
  assert first.pushed_path and first.pushed_path.startswith(paths.serving_model_dir)
  assert len(results["first_versions"]) == 1
  assert os.path.isfile(os.path.join(first.pushed_path, "saved_model.pb"))


def _example_gen_examples(store):
  examples = [
    a
    for a in store.get_artifacts_by_type("Examples")
    if "num_examples_train" in a.custom_properties
  ]
  assert examples, "no Examples artifact from ImdbExampleGen"
  return examples[0]


def test_examples_artifact_has_four_splits(runs):
  paths, _ = runs
  examples = _example_gen_examples(_store(paths))
  props = examples.custom_properties
  assert props["num_examples_test"].int_value == 500
  assert props["num_examples_train"].int_value + props["num_examples_eval"].int_value == 1000
  assert props["num_examples_unlabelled"].int_value == 500
  for split in ("train", "eval", "test", "unlabelled"):
    assert tf.io.gfile.glob(os.path.join(examples.uri, f"Split-{split}", "*.gz"))
  paths = tf.io.gfile.glob(os.path.join(examples.uri, "Split-unlabelled", "*.gz"))
  assert len(paths) == 2  # files_per_split: one file per part
  for record in tf.data.TFRecordDataset(paths, compression_type="GZIP").take(20):
    example = tf.train.Example.FromString(record.numpy())
    assert "label" not in example.features.feature
    assert example.features.feature["text"].bytes_list.value[0]


def _artifact(store, artifact_id):
  (artifact,) = store.get_artifacts_by_id([artifact_id])
  return artifact


def test_trainer_starts_from_the_embedding_trainers_word2vec_vectors(runs):
  """Through MLMD: the EmbeddingTrainer read ImdbExampleGen's raw Examples, Transform's
  graph and Transform's transformed Examples (the train reviews' ids), and its Model is the Trainer's base_model; the pretraining saw the train and
  unlabelled reviews, and the Trainer's summary names the table it started from."""
  paths, _ = runs
  store = _store(paths)
  (pretrainer,) = [
    e
    for e in mlmd_queries.node_executions(store, PIPELINE_NAME, "EmbeddingTrainer", 0)
    if e.last_known_state == metadata_store_pb2.Execution.COMPLETE
  ]
  inputs = {}
  for event in store.get_events_by_execution_ids([pretrainer.id]):
    if event.type == metadata_store_pb2.Event.INPUT:
      inputs.setdefault(event.path.steps[0].key, []).append(event.artifact_id)
  examples = _example_gen_examples(store)
  assert inputs["examples"] == [examples.id]
  assert (
    store.get_artifact_types_by_id([_artifact(store, inputs["transform_graph"][0]).type_id])[0].name
    == "TransformGraph"
  )
  (transformed,) = inputs["transformed_examples"]
  assert _artifact(store, transformed).uri.split(os.sep)[-3:-1] == [
    "Transform",
    "transformed_examples",
  ]
  outputs = mlmd_queries.execution_outputs(store, pretrainer.id)
  (model,), (model_run,) = outputs["embeddings"], outputs["pretraining_run"]
  with open(os.path.join(model_run.uri, "pretraining_summary.json"), encoding="utf-8") as f:
    pretraining = json.load(f)
  props = examples.custom_properties
  assert pretraining["reviews"] == (
    props["num_examples_train"].int_value + props["num_examples_unlabelled"].int_value
  )
  assert pretraining["rows"] == HP.embedding_input_dim
  assert 0 < pretraining["rows_from_word2vec"] <= HP.embedding_input_dim - 1
  (trainer,) = [
    e
    for e in mlmd_queries.node_executions(store, PIPELINE_NAME, "Trainer", 0)
    if e.last_known_state == metadata_store_pb2.Execution.COMPLETE
  ]
  base_models = [
    event.artifact_id
    for event in store.get_events_by_execution_ids([trainer.id])
    if event.type == metadata_store_pb2.Event.INPUT and event.path.steps[0].key == "base_model"
  ]
  assert base_models == [model.id]
  (trainer_run,) = mlmd_queries.execution_outputs(store, trainer.id)["model_run"]
  with open(os.path.join(trainer_run.uri, "training_summary.json"), encoding="utf-8") as f:
    summary = json.load(f)
  assert summary["pretrained_embeddings"] == {
    "path": os.path.join(model.uri, "Format-Serving"),
    "rows": HP.embedding_input_dim,
  }
  # Where the Trainer's time went: the fit holds every epoch, the export came last.
  phases = summary["phase_seconds"]
  assert set(phases) == {"inputs_and_build", "fit", "calibration", "export"}
  assert phases["fit"] >= sum(summary["seconds_per_epoch"]) > 0
  assert min(phases.values()) > 0


def test_pushed_model_answers_predict_text_on_raw_strings(runs):
  _, results = runs
  loaded = tf.saved_model.load(results["first"].pushed_path)
  assert {"serving_default", "predict_text", "transform_features"} <= set(loaded.signatures)
  reviews = ["A wonderful, moving film.<br /><br />Loved it!", "Dull, boring and far too long.", ""]
  out = loaded.signatures["predict_text"](text=tf.constant(reviews))
  probabilities = out["probabilities"].numpy()
  assert probabilities.shape == (3,)
  assert ((probabilities >= 0) & (probabilities <= 1)).all()
  assert out["label"].numpy().tolist() == (probabilities >= 0.5).astype(int).tolist()
  weights, tokens = out["attention_weights"].numpy(), out["tokens"].numpy()
  assert weights.shape == tokens.shape == (3, HP.max_length)
  assert (weights[tokens == b""] == 0).all()
  assert abs(weights[0].sum() - 1.0) < 1e-5
  assert tokens[0][:3].tolist() == [b"a", b"wonderful", b"moving"]


def test_second_run_is_cached_except_evaluator_and_pusher(runs):
  _, results = runs
  states = _states(results["second"])
  rerun = ("Evaluator", "BehaviourValidator", "Pusher", "latest_blessed_model_resolver")
  cached = {n for n in ALL_NODES if n not in rerun}
  assert {n: states[n] for n in cached} == dict.fromkeys(cached, "CACHED")
  # The resolver now finds the first run's blessed model as baseline, so the Evaluator
  # compares against it (as TFX's own e2e tests expect) and blesses again.
  assert states["Evaluator"] == states["BehaviourValidator"] == states["Pusher"] == "COMPLETE"
  executions_1, artifacts_1 = results["first_counts"]
  executions_2, artifacts_2 = results["second_counts"]
  assert executions_2 == 2 * executions_1
  # evaluation, blessing, behaviour report and blessing, pushed model
  assert artifacts_2 == artifacts_1 + 5
  assert results["second"].blessed is True
  # ... but its candidate is the model already serving: not pushed again as a version.
  assert results["second"].pushed_path is None
  assert results["second_versions"] == results["first_versions"]


def test_failed_blessing_pushes_nothing(runs):
  _, results = runs
  strict = results["strict"]
  assert strict.blessed is False
  # Only the overall slice is gated, and the reason names value, slice and threshold.
  assert len(strict.blessing_reasons) == 1
  assert strict.blessing_reasons[0].startswith("binary_accuracy 0.")
  assert strict.blessing_reasons[0].endswith("(Overall) failed >= 1")
  assert strict.pushed_path is None
  assert results["strict_versions"] == results["second_versions"]


def test_a_capability_over_its_threshold_stops_the_push(runs):
  paths, results = runs
  gated = results["behaviour"]
  states = _states(gated)
  assert states["Evaluator"] in ("COMPLETE", "CACHED")
  assert states["BehaviourValidator"] == states["Pusher"] == "COMPLETE"
  assert gated.blessed is False and gated.pushed_path is None
  assert results["behaviour_versions"] == results["second_versions"]
  # Each reason names a capability, its rate over the threshold and three failing cases.
  assert gated.blessing_reasons
  for reason in gated.blessing_reasons:
    match = re.fullmatch(r"(\w+) (\d\.\d{3}) > 0\.000, e\.g\. (.*)", reason)
    assert match, reason
    assert match.group(1) in MFT_CAPABILITIES and float(match.group(2)) > 0
    assert match.group(3).count(" p=") == min(3, round(float(match.group(2)) * 60))
  assert set(gated.behaviour) == {c.name for c in suite.CAPABILITIES}
  # The serving model (the second run's) is scored beside the candidate: the same model.
  assert all(r["baseline"] == r["candidate"] for r in gated.behaviour.values())
  # MLMD: the Evaluator's blessing said yes, the validator's (what the Pusher read) no.
  store = _store(paths)
  (validator,) = mlmd_queries.node_executions(store, PIPELINE_NAME, "BehaviourValidator", 0)[-1:]
  (blessing,) = mlmd_queries.execution_outputs(store, validator.id)["behaviour_blessing"]
  assert mlmd_queries.custom_property(blessing, "blessed") == 0


def test_anomalies_stop_the_run_before_transform(tmp_path, tfds_data_dir):
  schema = tmp_path / "schema.pbtxt"
  # A curated schema the data violates: labels restricted to {0}.
  with open(
    os.path.join(os.path.dirname(__file__), "..", "pipeline", "schema", "schema.pbtxt"),
    encoding="utf-8",
  ) as f:
    schema.write_text(f.read().replace("int_domain { min: 0 max: 1", "int_domain { min: 0 max: 0"))
  paths = OutputPaths(str(tmp_path / "out"))
  with pytest.raises(DataAnomaliesError, match=r"label"):
    runner_lib.run_pipeline(
      _pipeline(paths, tfds_data_dir, schema_path=str(schema)), "local", show_progress=False
    )
  store = _store(paths)
  executed = {t.name for t in store.get_execution_types()}
  assert not any("Transform" in name or "Trainer" in name for name in executed)
  assert _versions(paths) == []


def _wait_for_running(paths, node, timeout):
  deadline = time.time() + timeout
  while time.time() < deadline:
    if os.path.exists(paths.metadata_path):
      executions = mlmd_queries.node_executions(_store(paths), PIPELINE_NAME, node, 0)
      if any(e.last_known_state == metadata_store_pb2.Execution.RUNNING for e in executions):
        return True
    time.sleep(1)
  return False


def test_interrupted_run_is_completed_by_the_next(tmp_path, tfds_data_dir):
  paths = OutputPaths(str(tmp_path / "out"))
  command = [
    sys.executable,
    "-m",
    "cli.main",
    "run",
    "--quiet",
    "--train-split",
    TRAIN_SPLIT,
    "--test-split",
    TEST_SPLIT,
    "--unlabelled-split",
    UNLABELLED_SPLIT,
    "--tfds-data-dir",
    tfds_data_dir,
    "--output-dir",
    paths.output_dir,
    "--min-accuracy",
    "0",
    "--behaviour-threshold",
    "all=none",
    "--epochs",
    "1",
  ]
  # The CLI adds the direct profile's dependency option itself.
  command += [f"--beam-arg={arg}" for arg in IN_MEMORY]
  command += [
    "--hparam",
    f"vocab_size={HP.vocab_size}",
    "--hparam",
    f"max_length={HP.max_length}",
    "--hparam",
    "lstm_units=8",
  ]
  tmpdir = tmp_path / "tmp"
  tmpdir.mkdir()
  env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TMPDIR=str(tmpdir))
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  process = subprocess.Popen(
    command,
    cwd=root,
    env=env,
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
    start_new_session=True,
  )
  try:
    assert _wait_for_running(paths, "Trainer", timeout=600), "Trainer never started"
  finally:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
  killed = [
    e
    for e in _store(paths).get_executions()
    if e.last_known_state == metadata_store_pb2.Execution.RUNNING
  ]
  assert killed, "the kill left no interrupted execution"
  assert _versions(paths) == []
  # The killed run's lock file stays, but its flock went with the process: no stale lock.
  assert os.path.exists(os.path.join(paths.output_dir, "run.lock"))

  completed = subprocess.run(
    command, cwd=root, env=env, capture_output=True, text=True, timeout=900, check=False
  )
  assert completed.returncode == 0, completed.stderr[-3000:]
  assert "Pushed to:" in completed.stdout
  # Its own summary file, named as its log, and the latest run's copy.
  [summary_name] = os.listdir(os.path.join(paths.output_dir, "summaries"))
  summary_path = os.path.join(paths.output_dir, "summaries", summary_name)
  assert f"Summary written to {summary_path}" in completed.stdout
  with open(summary_path) as own, open(paths.summary_path) as latest:
    assert json.load(own) == json.load(latest)
  store = _store(paths)
  trainer_runs = mlmd_queries.node_executions(store, PIPELINE_NAME, "Trainer", 0)
  assert [e.last_known_state for e in trainer_runs] == [
    metadata_store_pb2.Execution.RUNNING,
    metadata_store_pb2.Execution.COMPLETE,
  ]
  # Upstream work of the killed run was reused, not redone.
  transform_runs = mlmd_queries.node_executions(store, PIPELINE_NAME, "Transform", 0)
  assert [e.last_known_state for e in transform_runs] == [
    metadata_store_pb2.Execution.COMPLETE,
    metadata_store_pb2.Execution.CACHED,
  ]
  versions = _versions(paths)
  assert len(versions) == 1
  loaded = tf.saved_model.load(os.path.join(paths.serving_model_dir, versions[0]))
  assert loaded.signatures["predict_text"](text=tf.constant(["fine"]))["label"].shape == (1,)
  # TFX's Beam executors packaged no copy of TFX (tfx_ephemeral) for the DirectRunner.
  assert not [
    str(p) for p in tmpdir.rglob("*") if "tfx_ephemeral" in p.name or p.match("build/tfx")
  ]


def test_pushed_model_is_served_over_tf_serving_grpc_api(runs, tmp_path):
  paths, results = runs
  [pushed] = [os.path.join(paths.serving_model_dir, v) for v in results["second_versions"]]
  assert os.path.isfile(warmup.warmup_path(pushed))  # the pipeline wrote warmup requests
  base = str(tmp_path / "imdb_sentiment")
  copy_version(pushed, base, 1)
  server = ServerProcess(
    [
      "--model_name=imdb_sentiment",
      f"--model_base_path={base}",
      "--file_system_poll_wait_seconds=1",
    ],
    str(tmp_path / "serve.log"),
  )
  proc, port = server.proc, server.port
  try:
    client = SentimentClient(f"127.0.0.1:{port}", "imdb_sentiment", timeout_s=60)
    assert client.wait_until_ready(60) == 1
    reviews = ["A wonderful, moving film.<br /><br />Loved it!", "Dull, boring, too long."]
    predictions = client.predict_text(reviews)
    expected = tf.saved_model.load(pushed).signatures["predict_text"](text=tf.constant(reviews))
    for p, probability in zip(predictions, expected["probabilities"].numpy()):
      assert p.model_version == 1
      assert abs(p.probability - probability) < 1e-5
    assert [t.token for t in predictions[0].attention][:3] == ["a", "wonderful", "moving"]
    examples, version = client.predict_examples(reviews)
    assert version == 1
    assert abs(examples - expected["probabilities"].numpy()).max() < 1e-5
    classified, _ = client.classify(reviews)
    assert abs(classified[0]["positive"] - predictions[0].probability) < 1e-5
    assert [(s.version, s.state) for s in client.model_status()] == [(1, "AVAILABLE")]
    _, signatures = client.model_metadata()
    assert {"predict_text", "serving_default", "classify"} <= set(signatures)
    with open(tmp_path / "serve.log", encoding="utf-8") as f:
      assert "version 1: AVAILABLE" in f.read()  # after its warmup requests ran
    # Bad requests get TF Serving's codes, and the server keeps answering.
    with pytest.raises(ServingRequestError) as raised:
      SentimentClient(f"127.0.0.1:{port}", "imdb_sentiment", version=99).predict_text("x")
    assert raised.value.code == grpc.StatusCode.NOT_FOUND
    with pytest.raises(ServingRequestError) as raised:
      client.predict_raw("predict_text", {"text": tf.constant([1.0]).numpy()})
    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert client.predict_text("still serving")[0].model_version == 1
    # A new version (the same model, copied as version 2) is picked up while serving.
    copy_version(pushed, base, 2)
    deadline = time.monotonic() + 120
    while client.predict_text("new version?")[0].model_version != 2:
      assert time.monotonic() < deadline, "version 2 was not picked up"
      time.sleep(0.5)
    # SIGTERM lets an in-flight request finish, then the server exits cleanly.
    answers = []
    caller = threading.Thread(
      target=lambda: answers.append(client.predict_text(["a long review " * 400] * 64))
    )
    caller.start()
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    caller.join(60)
    assert proc.wait(60) == 0
    assert len(answers) == 1 and len(answers[0]) == 64
  finally:
    server.stop()


@pytest.fixture(scope="module")
def reports(runs):
  """Every run's report, written as `imdb-tfx run` writes them (the last through the
  CLI's own step), and a browser to look at them."""
  from analysis.report import collect, page

  paths, _ = runs
  config = tfx.orchestration.metadata.sqlite_metadata_connection_config(paths.metadata_path)
  run_ids = collect.run_ids(config, PIPELINE_NAME)
  written = {}
  for run_id in run_ids:
    written[run_id] = page.write_run_report(
      config, PIPELINE_NAME, run_id, paths.reports_dir, page.ReportSettings(explain=4)
    )
  return paths, config, run_ids, written


@pytest.fixture(scope="module")
def chromium():
  import browser

  driver = browser.chromium_driver()
  yield driver
  driver.quit()


def _candidate_cells(driver):
  from selenium.webdriver.common.by import By

  return {
    (cell.get_attribute("data-slice"), cell.get_attribute("data-metric")): (
      float(cell.get_attribute("data-value")),
      cell.text,
    )
    for cell in driver.find_elements(By.CSS_SELECTOR, '[data-model="candidate"]')
  }


def _open_and_check(driver, path, screenshot):
  """Opens a report page from disk; asserts no console error and every image loaded."""
  import browser

  browser.open_file(driver, path)
  assert browser.console_errors(driver) == []
  assert browser.broken_images(driver) == []
  assert driver.execute_script("return document.images.length") > 0
  browser.full_page_screenshot(driver, screenshot)
  with open(screenshot, "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("which", [0, 2])
def test_run_report_in_chromium_shows_the_tfma_metrics(runs, reports, chromium, which):
  """The first run (blessed and pushed) and the strict one (not blessed): pages open
  from disk without errors, every figure loads, and the metrics are TFMA's."""
  import tensorflow_model_analysis as tfma
  from selenium.webdriver.common.by import By

  paths, results = runs
  _, _, run_ids, written = reports
  run_id = run_ids[which]
  _open_and_check(chromium, written[run_id], os.path.join(paths.output_dir, f"run_{which}.png"))

  store = _store(paths)
  evaluator = mlmd_queries.node_executions(store, PIPELINE_NAME, "Evaluator", 0)
  context = store.get_context_by_type_and_name("pipeline_run", run_id)
  (execution,) = [
    e for e in evaluator if e.id in {x.id for x in store.get_executions_by_context(context.id)}
  ]
  uri = mlmd_queries.execution_outputs(store, execution.id)["evaluation"][0].uri
  shown = _candidate_cells(chromium)
  expected = {}
  for per_slice in tfma.load_metrics(uri):
    label = tfma.slicer.stringify_slice_key(tfma.slicer.deserialize_slice_key(per_slice.slice_key))
    for item in per_slice.metric_keys_and_values:
      candidate = not item.key.is_diff and item.key.model_name in ("", "candidate")
      if candidate and item.value.HasField("double_value"):
        expected[(label, item.key.name)] = item.value.double_value.value
  assert set(shown) == set(expected)
  for key, value in expected.items():
    # NaN where TFMA divides by zero (precision of a slice with no positive prediction).
    assert shown[key][0] == value or (math.isnan(value) and math.isnan(shown[key][0])), key
    text = f"{int(value):,}" if key[1] == "example_count" else f"{value:.4f}"
    assert shown[key][1] == text, key

  verdict = chromium.find_element(By.ID, "verdict").text
  summary = results["first" if which == 0 else "strict"]
  if which == 0:
    assert verdict.startswith("BLESSED") and os.path.basename(summary.pushed_path) in verdict
  else:
    assert verdict.startswith("NOT blessed") and "Nothing pushed" in verdict
    assert summary.blessing_reasons[0] in verdict
  sections = [s.get_attribute("id") for s in chromium.find_elements(By.TAG_NAME, "section")]
  assert sections == ["data", "training", "evaluation", "behaviour", "explanations", "lineage"]


def test_history_page_links_every_run(runs, reports, chromium):
  import browser
  from selenium.webdriver.common.by import By

  from pipeline.history import read_history

  paths, _ = runs
  _, config, run_ids, _ = reports
  _open_and_check(
    chromium,
    os.path.join(paths.reports_dir, "index.html"),
    os.path.join(paths.output_dir, "history.png"),
  )
  records = read_history(config, PIPELINE_NAME)
  links = chromium.find_elements(By.CSS_SELECTOR, "table a")
  assert [link.text for link in links] == [r.run_id for r in records] == run_ids
  cells = chromium.find_elements(By.CSS_SELECTOR, '[data-metric="binary_accuracy"]')
  assert [float(c.get_attribute("data-value")) for c in cells] == [r.accuracy for r in records]
  # Each link opens that run's page.
  links[-1].click()
  browser.wait_until_loaded(chromium)
  assert chromium.find_element(By.TAG_NAME, "h1").text == f"Run {run_ids[-1]}"
  assert browser.console_errors(chromium) == []


def test_cli_report_rebuilds_a_run_and_run_writes_its_own(runs, reports):
  """`imdb-tfx report RUN_ID` rebuilds a page in place; `imdb-tfx run`'s report step picks
  the run that started after it (none here: nothing ran since)."""
  from click.testing import CliRunner

  from cli import main as cli
  from cli import run as run_cli
  from cli.console import RunConsole

  paths, _ = runs
  _, _, run_ids, written = reports
  before = os.path.getmtime(written[run_ids[1]])
  result = CliRunner().invoke(
    cli.main,
    ["report", run_ids[1], "--output-dir", paths.output_dir, "--explain", "0"],
  )
  assert result.exit_code == 0, result.output
  assert written[run_ids[1]] in result.output
  assert os.path.getmtime(written[run_ids[1]]) > before
  unknown = CliRunner().invoke(
    cli.main, ["report", "no-such-run", "--output-dir", paths.output_dir]
  )
  assert unknown.exit_code != 0 and "no run 'no-such-run'" in unknown.output
  with RunConsole() as console:
    assert run_cli._report(paths, time.time(), console) is None
    started = _store(paths).get_executions()[0].create_time_since_epoch / 1e3
    assert run_cli._report(paths, started, console) == written[run_ids[-1]]
