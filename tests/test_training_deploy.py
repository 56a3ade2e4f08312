"""Checks deploy/kubernetes/training/: the multi-worker Trainer Job, its headless Service and
executor arguments parse, agree with each other, and give every worker a TF_CONFIG that
models.strategy accepts, with exactly one chief.

Fast: YAML and JSON only, plus TFX's own parsers for the executor arguments.
"""

import json
import os
import re

import pytest
import yaml
from tfx.proto import trainer_pb2
from tfx.types import artifact_utils
from tfx.utils import import_utils, json_utils, proto_utils

from models import strategy as strategy_lib
from models.hparams import HParams

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
TRAINING_DIR = os.path.join(REPO_ROOT, "deploy", "kubernetes", "training")
INDEX_ANNOTATION = "metadata.annotations['batch.kubernetes.io/job-completion-index']"


def _load_yaml_docs(path: str) -> list[dict]:
  with open(path, encoding="utf-8") as f:
    return [doc for doc in yaml.safe_load_all(f) if doc is not None]


def _manifests() -> list[str]:
  return sorted(
    n
    for n in os.listdir(TRAINING_DIR)
    if n.endswith((".yaml", ".yml")) and not n.startswith("kustomization")
  )


@pytest.fixture(scope="module")
def objects() -> dict[str, dict]:
  """Every object in deploy/kubernetes/training/*.yaml but the kustomization, by kind."""
  found = {}
  for name in _manifests():
    for doc in _load_yaml_docs(os.path.join(TRAINING_DIR, name)):
      assert doc["kind"] not in found, f"two {doc['kind']} objects in {TRAINING_DIR}"
      found[doc["kind"]] = doc
  return found


@pytest.fixture(scope="module")
def container(objects) -> dict:
  (container,) = objects["Job"]["spec"]["template"]["spec"]["containers"]
  return container


def _env(container) -> list[dict]:
  return container["env"]


def _expand(value: str, env: dict[str, str]) -> str:
  """Kubernetes' $(NAME) expansion (names it cannot resolve stay as they are)."""
  return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), value)


def _worker_env(container, configmap: dict, index: int) -> dict[str, str]:
  """The environment Kubernetes gives the pod of completion index ``index``: each entry
  expanded with the ones before it, as the kubelet does."""
  env = {}
  for entry in _env(container):
    if "value" in entry:
      env[entry["name"]] = _expand(entry["value"], env)
    elif entry["valueFrom"].get("fieldRef"):
      assert entry["valueFrom"]["fieldRef"]["fieldPath"] == INDEX_ANNOTATION
      env[entry["name"]] = str(index)
    else:
      ref = entry["valueFrom"]["configMapKeyRef"]
      assert ref["name"] == configmap["metadata"]["name"]
      env[entry["name"]] = configmap["data"][ref["key"]]
  return env


def test_all_yaml_files_load_and_kustomization_lists_them(objects):
  for name in os.listdir(TRAINING_DIR):
    if name.endswith((".yaml", ".yml")):
      assert _load_yaml_docs(os.path.join(TRAINING_DIR, name)), f"{name} is empty"
  (kustomization,) = _load_yaml_docs(os.path.join(TRAINING_DIR, "kustomization.yaml"))
  assert sorted(kustomization["resources"]) == _manifests()
  assert set(objects) == {"ConfigMap", "Job", "Service"}


def test_job_is_an_indexed_job_that_fails_fast(objects):
  spec = objects["Job"]["spec"]
  assert spec["completionMode"] == "Indexed"
  assert spec["completions"] == spec["parallelism"] >= 2
  assert spec["backoffLimit"] == 0
  assert spec["template"]["spec"]["restartPolicy"] == "Never"
  assert spec["activeDeadlineSeconds"] > 0


def test_headless_service_resolves_the_worker_pods(objects, container):
  service, job = objects["Service"], objects["Job"]
  template = job["spec"]["template"]
  assert service["spec"]["clusterIP"] == "None"
  assert service["spec"]["publishNotReadyAddresses"] is True
  assert template["spec"]["subdomain"] == service["metadata"]["name"]
  assert service["spec"]["selector"].items() <= template["metadata"]["labels"].items()
  (service_port,) = service["spec"]["ports"]
  (container_port,) = container["ports"]
  assert service_port["port"] == service_port["targetPort"] == container_port["containerPort"]


def test_every_worker_gets_a_tf_config_with_one_chief(objects, container):
  job, service = objects["Job"], objects["Service"]
  names = [e["name"] for e in _env(container)]
  assert names.index("WORKER_INDEX") < names.index("TF_CONFIG")  # expansion order
  workers = job["spec"]["completions"]
  port = container["ports"][0]["containerPort"]
  # Indexed Job pods are <job>-<index>; with the subdomain: <job>-<index>.<service>.
  expected = [
    f"{job['metadata']['name']}-{i}.{service['metadata']['name']}:{port}" for i in range(workers)
  ]
  roles = []
  for index in range(workers):
    tf_config = json.loads(_worker_env(container, objects["ConfigMap"], index)["TF_CONFIG"])
    assert tf_config["cluster"] == {"worker": expected}
    assert tf_config["task"] == {"type": "worker", "index": index}
    roles.append(strategy_lib.role_from_tf_config(tf_config))
  assert [r.is_chief for r in roles] == [True] + [False] * (workers - 1)
  assert all(r.num_workers == workers for r in roles)


def test_container_runs_the_trainer_executor(objects, container):
  assert container["command"] == ["python", "-m", "tfx.scripts.run_executor"]
  env = _worker_env(container, objects["ConfigMap"], 0)
  args = dict(a.split("=", 1) for a in (_expand(a, env) for a in container["args"]))
  assert args["--executor_class_path"] == "tfx.components.trainer.executor.GenericExecutor"
  import_utils.import_class_by_path(args["--executor_class_path"])
  data = objects["ConfigMap"]["data"]
  assert args["--inputs"] == data["inputs.json"]
  assert args["--outputs"] == data["outputs.json"]
  assert args["--exec-properties"] == data["exec_properties.json"]
  assert env["TF_USE_LEGACY_KERAS"] == "1"


def test_executor_arguments_parse_as_tfx_parses_them(objects, container):
  data = objects["ConfigMap"]["data"]
  inputs = artifact_utils.parse_artifact_dict(data["inputs.json"])
  outputs = artifact_utils.parse_artifact_dict(data["outputs.json"])
  assert {k: [a.type_name for a in v] for k, v in inputs.items()} == {
    "examples": ["Examples"],
    "transform_graph": ["TransformGraph"],
    "schema": ["Schema"],
    "base_model": ["Model"],
  }
  assert {k: [a.type_name for a in v] for k, v in outputs.items()} == {
    "model": ["Model"],
    "model_run": ["ModelRun"],
  }
  (examples,) = inputs["examples"]
  assert {"train", "eval"} <= set(json.loads(examples.split_names))
  assert examples.get_string_custom_property("payload_format") == "FORMAT_TF_EXAMPLE"

  mount = container["volumeMounts"][0]["mountPath"]
  for artifact in [a for v in list(inputs.values()) + list(outputs.values()) for a in v]:
    assert artifact.uri.startswith(mount + "/"), artifact.uri
  assert len({a.uri for v in outputs.values() for a in v}) == 2

  properties = json.loads(data["exec_properties.json"])
  from pipeline.layout import RUN_FN

  assert properties["run_fn"] == RUN_FN
  train_args = proto_utils.json_to_proto(properties["train_args"], trainer_pb2.TrainArgs())
  eval_args = proto_utils.json_to_proto(properties["eval_args"], trainer_pb2.EvalArgs())
  assert list(train_args.splits) == ["train"] and list(eval_args.splits) == ["eval"]
  hp = HParams.from_custom_config(json_utils.loads(properties["custom_config"]))
  assert hp.strategy == "multi_worker"


# --- Vertex AI (deploy/multi_worker.md), offline ---------------------------------------------


def _vertex_snippet() -> str:
  """The Python block of deploy/multi_worker.md's Vertex AI section."""
  with open(os.path.join(REPO_ROOT, "deploy", "multi_worker.md"), encoding="utf-8") as f:
    text = f.read()
  section = text[text.index("## Vertex AI custom training") :]
  match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
  assert match, "no python block in the Vertex AI section"
  return match.group(1)


def test_vertex_ai_custom_job_runs_run_fn_on_every_pool():
  from tfx import v1 as tfx
  from tfx.extensions.google_cloud_ai_platform import training_clients
  from tfx.types import standard_artifacts

  namespace = {}
  code = compile(_vertex_snippet(), "multi_worker.md", "exec")
  exec(code, namespace)
  custom_config = namespace["custom_config"]
  assert HParams.from_custom_config(custom_config).strategy == "multi_worker"
  assert custom_config[tfx.extensions.google_cloud_ai_platform.ENABLE_VERTEX_KEY] is True

  job_args = dict(custom_config[tfx.extensions.google_cloud_ai_platform.TRAINING_ARGS_KEY])
  assert job_args.pop("project") == namespace["PROJECT"]  # what TFX's runner pops first
  examples, model = standard_artifacts.Examples(), standard_artifacts.Model()
  examples.uri, model.uri = "gs://bucket/examples/1", "gs://bucket/model/2"
  exec_properties = {
    "run_fn": "models.trainer.run_fn",
    "custom_config": json_utils.dumps(custom_config),
  }
  # create_training_job only assembles the CustomJob; skip __init__, which builds an API
  # client.
  client = object.__new__(training_clients.VertexJobClient)
  custom_job = client.create_training_job(
    {"examples": [examples]},
    {"model": [model]},
    exec_properties,
    "tfx.components.trainer.executor.GenericExecutor",
    job_args,
    None,
    None,
  )

  pools = custom_job["job_spec"]["worker_pool_specs"]
  assert [p["replica_count"] for p in pools] == [1, 3]
  for pool in pools:
    assert pool["container_spec"]["image_uri"] == namespace["IMAGE"]
    command = pool["container_spec"]["command"]
    assert command[:3] == ["python", "-m", "tfx.scripts.run_executor"]
    flags = dict(zip(command[3::2], command[4::2]))
    assert flags["--executor_class_path"] == "tfx.components.trainer.executor.GenericExecutor"
    properties = json.loads(flags["--exec-properties"])
    assert properties["run_fn"] == "models.trainer.run_fn"
    assert (
      HParams.from_custom_config(json_utils.loads(properties["custom_config"])).strategy
      == "multi_worker"
    )
