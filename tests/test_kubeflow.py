"""Kubeflow Pipelines v2 / Vertex AI: the pipeline compiles with KubeflowV2DagRunner, and the
spec lists every component with the given image, command and arguments. Nothing runs."""

import json

import click
import pytest
import yaml
from click.testing import CliRunner

from cli import schedule
from models.hparams import HParams
from pipeline import kubeflow
from pipeline.pipeline import create_pipeline

NODE_IDS = [
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
RESOLVER = "latest_blessed_model_resolver"
IMAGE = "europe-docker.pkg.dev/proj/repo/imdb-tfx:1.0.0"
ROOT = "gs://bucket/imdb-tfx/root"
SERVING = "gs://bucket/imdb-tfx/serving_model/imdb_sentiment"
TFDS = "gs://bucket/tensorflow_datasets"
EXECUTOR_CMD = ["python", "-m", "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"]


def _pipeline(**overrides):
  kwargs = dict(
    pipeline_root=ROOT,
    serving_model_dir=SERVING,
    pipeline_name=kubeflow.KUBEFLOW_PIPELINE_NAME,
    hparams=HParams(epochs=2, lstm_units=16),
    train_split="train[:2%]",
    test_split="test[:1%]",
    tfds_data_dir=TFDS,
    beam_pipeline_args=["--direct_num_workers=0"],
  )
  kwargs.update(overrides)
  return create_pipeline(**kwargs)


def _constant(task, name):
  """A task's constant input parameter (pipeline spec schema 2.1: a protobuf Value)."""
  return task["inputs"]["parameters"][name]["runtimeValue"]["constant"]


def _executor(spec, task_name):
  """The executor spec behind a task of the root DAG."""
  component = spec["components"][spec["root"]["dag"]["tasks"][task_name]["componentRef"]["name"]]
  return spec["deploymentSpec"]["executors"][component["executorLabel"]]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
  """(returned PipelineJob dict, the JSON file read back, its path), compiled once."""
  path = tmp_path_factory.mktemp("kubeflow") / "spec" / "pipeline.json"
  job = kubeflow.compile_kubeflow_v2(_pipeline(), IMAGE, str(path))
  with open(path, encoding="utf-8") as f:
    return job, json.load(f), str(path)


def test_file_is_the_returned_pipeline_job(compiled):
  job, written, _ = compiled
  assert written == job
  spec = written["pipelineSpec"]
  assert spec["pipelineInfo"]["name"] == "imdb-sentiment"
  assert spec["schemaVersion"] == "2.1.0"
  assert written["runtimeConfig"]["gcsOutputDirectory"] == ROOT


def test_every_node_is_a_task_with_an_executor(compiled):
  spec = compiled[1]["pipelineSpec"]
  tasks = spec["root"]["dag"]["tasks"]
  for node_id in NODE_IDS:
    if node_id == RESOLVER:  # compiled to two MLMD-query tasks: model blessing, then model
      assert {f"{RESOLVER}-model-blessing-resolver", f"{RESOLVER}-model-resolver"} <= set(tasks)
    else:
      assert tasks[node_id]["taskInfo"]["name"] == node_id
  assert len(tasks) == len(NODE_IDS) + 1
  for name in tasks:
    assert _executor(spec, name)  # every task resolves to an executor
  assert set(tasks["Transform"]["dependentTasks"]) >= {
    "AnomaliesGate",
    "ImdbExampleGen",
    "SchemaGen",
  }
  assert set(tasks["Pusher"]["dependentTasks"]) == {"BehaviourValidator", "Trainer"}
  assert set(tasks["BehaviourValidator"]["dependentTasks"]) >= {"Evaluator", "Trainer"}


def test_every_container_runs_the_image_and_the_tfx_executor(compiled):
  spec = compiled[1]["pipelineSpec"]
  executors = spec["deploymentSpec"]["executors"]
  containers = {label: e["container"] for label, e in executors.items() if "container" in e}
  assert len(containers) == len(NODE_IDS) - 1  # all but the resolver
  for label, container in containers.items():
    assert container["image"] == IMAGE, label
    assert container["command"] == EXECUTOR_CMD, label
    assert container["args"][:2] == ["--executor_class_path", container["args"][1]]
    assert container["args"][2:4] == ["--json_serialized_invocation_args", "{{$}}"]
  # The resolver runs as MLMD queries of the orchestrator, in no container.
  for suffix in ("model-blessing-resolver", "model-resolver"):
    assert set(_executor(spec, f"{RESOLVER}-{suffix}")) == {"resolver"}
  # The project's own executors: the image must have the project installed.
  assert _executor(spec, "ImdbExampleGen")["container"]["args"][1] == (
    "components.imdb_example_gen.ImdbExampleGen_Executor"
  )
  assert _executor(spec, "AnomaliesGate")["container"]["args"][1] == (
    "components.anomalies_gate.AnomaliesGate_Executor"
  )
  # Beam options reach the Beam-powered components.
  assert "--direct_num_workers=0" in _executor(spec, "Transform")["container"]["args"]


def test_example_gen_trainer_and_pusher_arguments(compiled):
  tasks = compiled[1]["pipelineSpec"]["root"]["dag"]["tasks"]
  gen = tasks["ImdbExampleGen"]
  assert _constant(gen, "train_split") == "train[:2%]"
  assert _constant(gen, "test_split") == "test[:1%]"
  assert _constant(gen, "tfds_data_dir") == TFDS
  assert _constant(gen, "eval_percent") == 10
  assert _constant(gen, "download") == 0

  trainer = tasks["Trainer"]
  hparams = json.loads(_constant(trainer, "custom_config"))["hparams"]
  assert hparams["epochs"] == 2 and hparams["lstm_units"] == 16
  assert HParams.from_custom_config({"hparams": hparams}) == HParams(epochs=2, lstm_units=16)
  assert _constant(trainer, "run_fn") == "models.trainer.run_fn"
  assert _constant(tasks["Transform"], "preprocessing_fn") == (
    "models.preprocessing.preprocessing_fn"
  )

  push = json.loads(_constant(tasks["Pusher"], "push_destination"))
  assert push == {"filesystem": {"base_directory": SERVING}}


def test_yaml_output_is_a_bare_pipeline_spec(tmp_path):
  path = tmp_path / "pipeline.yaml"
  job = kubeflow.compile_kubeflow_v2(_pipeline(), IMAGE, str(path))
  with open(path, encoding="utf-8") as f:
    spec = yaml.safe_load(f)
  assert spec == job["pipelineSpec"]  # what the kfp client's package loader parses


def test_vertex_ai_sdk_loads_the_template(compiled):
  """Vertex AI's PipelineJob parses the JSON offline (no call is made before submit())."""
  from google.auth import credentials
  from google.cloud import aiplatform

  job = aiplatform.PipelineJob(
    display_name="imdb-sentiment",
    template_path=compiled[2],
    project="proj",
    location="europe-west4",
    credentials=credentials.AnonymousCredentials(),
  )
  resource = job._gca_resource  # the REST resource Vertex AI would receive
  assert resource.runtime_config.gcs_output_directory == ROOT
  assert set(resource.pipeline_spec["root"]["dag"]["tasks"]) == set(
    compiled[1]["pipelineSpec"]["root"]["dag"]["tasks"]
  )


@pytest.mark.parametrize(
  "image, problem",
  [
    ("", "must not be empty"),
    ("europe-docker.pkg.dev/proj/repo/imdb-tfx", "has no tag"),
    ("localhost:5000/imdb-tfx", "has no tag"),
    ("europe-docker.pkg.dev/proj/repo/imdb-tfx:latest", "tagged 'latest'"),
    ("imdb-tfx@sha256:1234", "malformed digest"),
    ("imdb-tfx:1.0 extra", "whitespace"),
  ],
)
def test_unpinned_images_are_refused(tmp_path, image, problem):
  with pytest.raises(ValueError, match=problem):
    kubeflow.compile_kubeflow_v2(_pipeline(), image, str(tmp_path / "p.json"))
  assert not (tmp_path / "p.json").exists()


@pytest.mark.parametrize(
  "image",
  [
    "europe-docker.pkg.dev/proj/repo/imdb-tfx:1.0.0",
    "localhost:5000/imdb-tfx:v2",
    "imdb-tfx@sha256:" + "a" * 64,
    "imdb-tfx:1.0.0@sha256:" + "0" * 64,
  ],
)
def test_pinned_images_pass(image):
  kubeflow.check_image(image)


@pytest.mark.parametrize(
  "root", ["/tmp/pipeline_root", "outputs/pipeline_root", "file:///tmp/root", "gs://"]
)
def test_local_pipeline_root_is_refused(tmp_path, root):
  with pytest.raises(ValueError, match="pipeline_root must be a remote URI"):
    kubeflow.compile_kubeflow_v2(_pipeline(pipeline_root=root), IMAGE, str(tmp_path / "p.json"))


def test_metadata_connection_and_bad_names_are_refused(tmp_path):
  from tfx import v1 as tfx

  sqlite = tfx.orchestration.metadata.sqlite_metadata_connection_config(str(tmp_path / "m.sqlite"))
  with pytest.raises(ValueError, match="metadata_connection_config=None"):
    kubeflow.compile_kubeflow_v2(
      _pipeline(metadata_connection_config=sqlite), IMAGE, str(tmp_path / "p.json")
    )
  with pytest.raises(ValueError, match="not allowed on Kubeflow"):
    kubeflow.compile_kubeflow_v2(
      _pipeline(pipeline_name="imdb_sentiment"), IMAGE, str(tmp_path / "p.json")
    )
  with pytest.raises(ValueError, match="must end in .json"):
    kubeflow.compile_kubeflow_v2(_pipeline(), IMAGE, str(tmp_path / "p.txt"))


def _cli_args(output, *extra):
  return [
    "kubeflow",
    "--image",
    IMAGE,
    "--pipeline-root",
    ROOT,
    "--serving-model-dir",
    SERVING,
    "--output",
    str(output),
    *extra,
  ]


def test_cli_compiles_with_options(tmp_path):
  output = tmp_path / "out" / "imdb_sentiment_pipeline.json"
  result = CliRunner().invoke(
    schedule.compile_group,
    _cli_args(
      output,
      "--train-split",
      "train[:1%]",
      "--test-split",
      "test[:1%]",
      "--unlabelled-split",
      "unsupervised[:3%]",
      "--tfds-data-dir",
      TFDS,
      "--epochs",
      "4",
      "--hparam",
      "max_length=64",
      "--hparam",
      "dropout=0.25",
      "--beam-arg=--runner=DataflowRunner",
      "--beam-arg=--region=europe-west4",
      "--min-accuracy",
      "0.8",
    ),
  )
  assert result.exit_code == 0, result.output
  assert str(output) in result.output
  for node_id in NODE_IDS:
    assert node_id in result.output

  with open(output, encoding="utf-8") as f:
    spec = json.load(f)["pipelineSpec"]
  tasks = spec["root"]["dag"]["tasks"]
  assert _constant(tasks["ImdbExampleGen"], "train_split") == "train[:1%]"
  assert _constant(tasks["ImdbExampleGen"], "unlabelled_split") == "unsupervised[:3%]"
  assert set(tasks["Trainer"]["dependentTasks"]) >= {"EmbeddingTrainer", "Transform"}
  hparams = json.loads(_constant(tasks["Trainer"], "custom_config"))["hparams"]
  assert (hparams["epochs"], hparams["max_length"], hparams["dropout"]) == (4, 64, 0.25)
  assert json.loads(_constant(tasks["Pusher"], "push_destination"))["filesystem"] == {
    "base_directory": SERVING
  }
  args = _executor(spec, "StatisticsGen")["container"]["args"]
  # Beam options close every container's arguments; the user's come after (and so win over)
  # the in-container DirectRunner defaults.
  assert args[-5:] == [
    "--direct_running_mode=multi_processing",
    "--direct_num_workers=0",
    "--setup_file=/opt/imdb-tfx/setup.py",
    "--runner=DataflowRunner",
    "--region=europe-west4",
  ]
  images = {
    e["container"]["image"]
    for e in spec["deploymentSpec"]["executors"].values()
    if "container" in e
  }
  assert images == {IMAGE}


@pytest.mark.parametrize(
  "extra, message",
  [
    (["--download", "--image", "imdb-tfx:latest"], "tagged 'latest'"),
    (["--download", "--image", "imdb-tfx"], "has no tag"),
    (["--download", "--pipeline-root", "/tmp/root"], "pipeline_root must be a remote URI"),
    (
      ["--download", "--serving-model-dir", "/tmp/serving"],
      "--serving-model-dir must be a remote URI",
    ),
    (["--tfds-data-dir", "/data/tfds"], "--tfds-data-dir must be a remote URI"),
    ([], "give --tfds-data-dir"),
    (["--download", "--hparam", "no_such=1"], "unknown hyperparameter"),
  ],
)
def test_cli_errors(tmp_path, extra, message):
  output = tmp_path / "p.json"
  result = CliRunner().invoke(schedule.compile_group, _cli_args(output, *extra))
  assert result.exit_code == 1, result.output
  assert "Error:" in result.output and message in result.output
  assert not output.exists()


def test_cli_without_kfp_pipeline_spec_says_what_to_install(tmp_path, monkeypatch):
  # TFX leaves KubeflowV2DagRunner out of tfx.v1 when kfp-pipeline-spec is missing.
  monkeypatch.delattr(kubeflow.tfx.orchestration.experimental, "KubeflowV2DagRunner", raising=False)
  output = tmp_path / "p.json"
  result = CliRunner().invoke(schedule.compile_group, _cli_args(output, "--download"))
  assert result.exit_code == 1, result.output
  assert "pip install 'kfp-pipeline-spec" in result.output
  assert not output.exists()


def test_compile_group_is_a_click_group():
  assert isinstance(schedule.compile_group, click.Group)
  assert schedule.compile_group.name == "compile"
  assert schedule.compile_group.commands["kubeflow"] is schedule.kubeflow_command
  assert "Compile the pipeline for an orchestrator." in schedule.compile_group.help
