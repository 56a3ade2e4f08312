"""Checks deploy/: the TF Serving config files parse as the server parses them, and the Docker
Compose and Kubernetes manifests agree with each other and with those files.

Fast: no model, no TensorFlow graph; only protobuf text format and YAML.
"""

import itertools
import os
import re

import pytest
import yaml

from serving import tf_serving_protos

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
DEPLOY_DIR = os.path.join(REPO_ROOT, "deploy")
K8S_DIR = os.path.join(DEPLOY_DIR, "kubernetes")

MODEL_NAME = "imdb_sentiment"
GRPC_PORT = 8500
REST_PORT = 8501
CONFIG_MOUNT = "/config"
CONFIG_FILES = ("models.config", "batching_parameters.txt", "monitoring.config")


def _deploy(name: str) -> str:
  return os.path.join(DEPLOY_DIR, name)


def _load_yaml_docs(path: str) -> list[dict]:
  with open(path, encoding="utf-8") as f:
    return [doc for doc in yaml.safe_load_all(f) if doc is not None]


def _k8s_objects() -> dict[str, dict]:
  """Every object in deploy/kubernetes/*.yaml except the kustomization, keyed by kind."""
  objects = {}
  for name in sorted(os.listdir(K8S_DIR)):
    if not name.endswith((".yaml", ".yml")) or name.startswith("kustomization"):
      continue
    for doc in _load_yaml_docs(os.path.join(K8S_DIR, name)):
      assert doc["kind"] not in objects, f"two {doc['kind']} objects in deploy/kubernetes"
      objects[doc["kind"]] = doc
  return objects


def _flags(args: list[str]) -> dict[str, str]:
  """`--name=value` arguments as {name: value}; fails on any other shape or a repeat."""
  flags = {}
  for arg in args:
    match = re.fullmatch(r"--([a-z_]+)=(.*)", arg)
    assert match, f"server argument {arg!r} is not --flag=value"
    assert match.group(1) not in flags, f"flag --{match.group(1)} given twice"
    flags[match.group(1)] = match.group(2)
  return flags


@pytest.fixture(scope="module")
def compose_service() -> dict:
  (compose,) = _load_yaml_docs(_deploy("docker-compose.yml"))
  return compose["services"]["tf-serving"]


@pytest.fixture(scope="module")
def k8s() -> dict[str, dict]:
  return _k8s_objects()


@pytest.fixture(scope="module")
def container(k8s) -> dict:
  (container,) = k8s["Deployment"]["spec"]["template"]["spec"]["containers"]
  return container


@pytest.fixture(scope="module")
def model_server_config():
  return tf_serving_protos.load_model_server_config(_deploy("models.config"))


# --- The proto mirror ------------------------------------------------------------------------


def test_mirrored_messages_have_upstream_names_and_fields():
  expected = {
    "max_batch_size": (1, ".google.protobuf.Int64Value"),
    "batch_timeout_micros": (2, ".google.protobuf.Int64Value"),
    "max_enqueued_batches": (3, ".google.protobuf.Int64Value"),
    "num_batch_threads": (4, ".google.protobuf.Int64Value"),
    "thread_pool_name": (5, ".google.protobuf.StringValue"),
    "allowed_batch_sizes": (6, "int64"),
    "pad_variable_length_inputs": (7, "bool"),
    "enable_large_batch_splitting": (8, ".google.protobuf.BoolValue"),
    "max_execution_batch_size": (9, ".google.protobuf.Int64Value"),
  }
  descriptor = tf_serving_protos.BatchingParameters.DESCRIPTOR
  assert descriptor.full_name == "tensorflow.serving.BatchingParameters"
  actual = {}
  for field in descriptor.fields:
    kind = (
      "." + field.message_type.full_name
      if field.message_type is not None
      else {field.TYPE_INT64: "int64", field.TYPE_BOOL: "bool"}[field.type]
    )
    actual[field.name] = (field.number, kind)
  assert actual == expected
  allowed = descriptor.fields_by_name["allowed_batch_sizes"]
  assert allowed.label == allowed.LABEL_REPEATED

  monitoring = tf_serving_protos.MonitoringConfig.DESCRIPTOR
  assert monitoring.full_name == "tensorflow.serving.MonitoringConfig"
  assert [(f.name, f.number) for f in monitoring.fields] == [("prometheus_config", 1)]
  prometheus = tf_serving_protos.PrometheusConfig.DESCRIPTOR
  assert prometheus.full_name == "tensorflow.serving.PrometheusConfig"
  assert [(f.name, f.number) for f in prometheus.fields] == [("enable", 1), ("path", 2)]


# --- models.config ---------------------------------------------------------------------------


def test_models_config_serves_one_tensorflow_model(model_server_config):
  configs = model_server_config.model_config_list.config
  assert [c.name for c in configs] == [MODEL_NAME]
  (config,) = configs
  assert config.model_platform == "tensorflow"
  assert config.base_path == f"/models/{MODEL_NAME}"


def test_models_config_labels_point_at_served_versions(model_server_config):
  (config,) = model_server_config.model_config_list.config
  assert config.model_version_policy.WhichOneof("policy_choice") == "specific"
  versions = list(config.model_version_policy.specific.versions)
  assert versions and len(set(versions)) == len(versions)
  assert all(v > 0 for v in versions)
  labels = dict(config.version_labels)
  assert set(labels) == {"stable", "canary"}
  for label, version in labels.items():
    assert version in versions, f"label {label!r} -> {version}, not in specific {versions}"


def test_model_base_path_is_where_compose_and_deployment_mount_models(
  model_server_config, compose_service, container, k8s
):
  (config,) = model_server_config.model_config_list.config
  mounts = [v.split(":") for v in compose_service["volumes"]]
  model_mounts = [m for m in mounts if m[0].endswith(f"serving_model/{MODEL_NAME}")]
  assert model_mounts == [["../outputs/serving_model/imdb_sentiment", config.base_path, "ro"]]

  volumes = {v["name"]: v for v in k8s["Deployment"]["spec"]["template"]["spec"]["volumes"]}
  (models_mount,) = [
    m for m in container["volumeMounts"] if "persistentVolumeClaim" in volumes[m["name"]]
  ]
  assert models_mount["mountPath"] == config.base_path
  assert models_mount["readOnly"] is True
  assert volumes[models_mount["name"]]["persistentVolumeClaim"]["readOnly"] is True


# --- batching_parameters.txt -----------------------------------------------------------------


def test_batching_parameters_follow_tf_serving_rules():
  params = tf_serving_protos.load_batching_parameters(_deploy("batching_parameters.txt"))
  for field in (
    "max_batch_size",
    "batch_timeout_micros",
    "max_enqueued_batches",
    "num_batch_threads",
  ):
    assert params.HasField(field), field
  sizes = list(params.allowed_batch_sizes)
  assert sizes, "allowed_batch_sizes is empty"
  assert all(a < b for a, b in itertools.pairwise(sizes)), f"not increasing: {sizes}"
  assert sizes[0] > 0
  assert sizes[-1] == params.max_batch_size.value  # TF Serving refuses to load otherwise.
  assert params.batch_timeout_micros.value > 0
  assert params.num_batch_threads.value >= 1
  assert params.max_enqueued_batches.value >= 1


def test_batch_threads_match_deployment_cpu_request(container):
  params = tf_serving_protos.load_batching_parameters(_deploy("batching_parameters.txt"))
  assert int(container["resources"]["requests"]["cpu"]) == params.num_batch_threads.value


# --- monitoring.config -----------------------------------------------------------------------


def test_monitoring_config_enables_prometheus(k8s):
  config = tf_serving_protos.load_monitoring_config(_deploy("monitoring.config"))
  assert config.prometheus_config.enable
  path = config.prometheus_config.path
  assert path.startswith("/") and len(path) > 1
  annotations = k8s["Deployment"]["spec"]["template"]["metadata"]["annotations"]
  assert annotations["prometheus.io/path"] == path
  assert annotations["prometheus.io/port"] == str(REST_PORT)


# --- Parse helpers reject what tensorflow_model_server rejects -------------------------------

_LOADERS = {
  "batching": tf_serving_protos.load_batching_parameters,
  "monitoring": tf_serving_protos.load_monitoring_config,
  "model_server": tf_serving_protos.load_model_server_config,
}

_BAD_FILES = [
  # Scalar where upstream has a google.protobuf.Int64Value wrapper.
  ("batching", "max_batch_size: 3\n", 1),
  ("batching", "max_batch_size { value: 32 }\nmax_batch_sizes { value: 32 }\n", 2),
  ("batching", "num_batch_threads { value: 2 }\nallowed_batch_sizes: [8, 16\n", 3),
  ("batching", "max_batch_size { value: 32 }\nmax_batch_size { value: 16 }\n", 2),
  ("batching", "num_batch_threads { value: two }\n", 1),
  ("monitoring", 'prometheus_config { enable: true path: "/m" port: 9090 }\n', 1),
  # Unterminated: the parser reports the position of the last token it read.
  ("monitoring", "prometheus_config { enable: true\n", 1),
  ("monitoring", "prometheus_config { enable: yes_please }\n", 1),
  ("model_server", 'model_config_list { config { name: "m" version: 3 } }\n', 1),
  ("model_server", 'model_config_list { config { name: "m"\n', 1),
  (
    "model_server",
    'model_config_list { config { model_version_policy { specific { versions: "x" } } } }\n',
    1,
  ),
]


@pytest.mark.parametrize("kind,text,line", _BAD_FILES)
def test_invalid_files_raise_value_error_naming_file_and_line(tmp_path, kind, text, line):
  path = tmp_path / f"bad_{kind}.txt"
  path.write_text(text, encoding="utf-8")
  with pytest.raises(ValueError) as err:
    _LOADERS[kind](path)
  message = str(err.value)
  assert f"{path}:{line}:" in message, message


def test_a_file_appended_with_an_unknown_field_is_rejected(tmp_path):
  with open(_deploy("batching_parameters.txt"), encoding="utf-8") as f:
    text = f.read()
  path = tmp_path / "batching_parameters.txt"
  path.write_text(text + "max_batch_delay_micros { value: 10 }\n", encoding="utf-8")
  with pytest.raises(ValueError, match='has no field named "max_batch_delay_micros"'):
    tf_serving_protos.load_batching_parameters(path)


def test_parse_helpers_name_the_source():
  with pytest.raises(
    ValueError,
    match=r"^<text>:1:1: not a valid tensorflow.serving."
    r"MonitoringConfig",
  ):
    tf_serving_protos.parse_monitoring_config("prometheus { enable: true }")
  with pytest.raises(ValueError, match=r"^here.txt:1:"):
    tf_serving_protos.parse_batching_parameters("max_batch_size: 3", source="here.txt")
  config = tf_serving_protos.parse_model_server_config(
    'model_config_list { config { name: "m" version_labels { key: "a" value: 1 } } }'
  )
  assert dict(config.model_config_list.config[0].version_labels) == {"a": 1}


def test_missing_file_raises_file_not_found(tmp_path):
  missing = tmp_path / "nope.config"
  with pytest.raises(FileNotFoundError, match="nope.config"):
    tf_serving_protos.load_model_server_config(missing)


def test_non_utf8_file_raises_value_error(tmp_path):
  path = tmp_path / "latin1.config"
  path.write_bytes(b"# caf\xe9\n")
  with pytest.raises(ValueError, match="latin1.config"):
    tf_serving_protos.load_monitoring_config(path)


# --- docker-compose.yml and kubernetes/ ------------------------------------------------------


def test_all_yaml_files_load():
  paths = [_deploy("docker-compose.yml")] + [
    os.path.join(K8S_DIR, n) for n in os.listdir(K8S_DIR) if n.endswith((".yaml", ".yml"))
  ]
  for path in paths:
    assert _load_yaml_docs(path), f"{path} is empty"


def test_kustomization_lists_every_manifest(k8s):
  (kustomization,) = _load_yaml_docs(os.path.join(K8S_DIR, "kustomization.yaml"))
  manifests = sorted(
    n
    for n in os.listdir(K8S_DIR)
    if n.endswith((".yaml", ".yml")) and not n.startswith("kustomization")
  )
  assert sorted(kustomization["resources"]) == manifests
  assert set(k8s) == {"ConfigMap", "Deployment", "Service"}


def test_image_is_pinned_and_identical(compose_service, container):
  image = compose_service["image"]
  assert image == container["image"]
  repository, _, tag = image.partition(":")
  assert repository == "tensorflow/serving"
  assert tag and tag != "latest" and not tag.startswith("latest")
  assert re.fullmatch(r"\d+\.\d+\.\d+(@sha256:[0-9a-f]{64})?", tag), tag


def test_server_flags_are_identical(compose_service, container):
  assert compose_service["entrypoint"] == container["command"] == ["tensorflow_model_server"]
  compose_flags = _flags(compose_service["command"])
  assert compose_flags == _flags(container["args"])
  assert compose_flags["port"] == str(GRPC_PORT)
  assert compose_flags["rest_api_port"] == str(REST_PORT)
  assert compose_flags["enable_batching"] == "true"
  # models.config has version labels: the server does not start with them otherwise.
  assert compose_flags["allow_version_labels_for_unavailable_models"] == "true"
  for flag in ("model_config_file_poll_wait_seconds", "file_system_poll_wait_seconds"):
    assert int(compose_flags[flag]) > 0


def test_config_file_flags_name_files_in_deploy_and_configmap(compose_service, container, k8s):
  flags = _flags(compose_service["command"])
  file_flags = {k: v for k, v in flags.items() if k.endswith("_file")}
  assert set(file_flags) == {
    "model_config_file",
    "batching_parameters_file",
    "monitoring_config_file",
  }
  configmap_keys = set(k8s["ConfigMap"]["data"])
  for flag, value in file_flags.items():
    directory, name = os.path.split(value)
    assert directory == CONFIG_MOUNT, f"--{flag}={value} is not under {CONFIG_MOUNT}"
    assert os.path.isfile(_deploy(name)), f"--{flag}: deploy/{name} does not exist"
    assert name in configmap_keys, f"--{flag}: {name} missing from the ConfigMap"
  assert sorted(os.path.basename(v) for v in file_flags.values()) == sorted(CONFIG_FILES)

  assert "./:/config:ro" in compose_service["volumes"]
  volumes = {v["name"]: v for v in k8s["Deployment"]["spec"]["template"]["spec"]["volumes"]}
  (config_mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == CONFIG_MOUNT]
  assert "subPath" not in config_mount  # subPath mounts never see ConfigMap updates.
  assert volumes[config_mount["name"]]["configMap"]["name"] == k8s["ConfigMap"]["metadata"]["name"]


def test_configmap_matches_config_files(k8s):
  data = k8s["ConfigMap"]["data"]
  assert sorted(data) == sorted(CONFIG_FILES)
  for name in CONFIG_FILES:
    with open(_deploy(name), encoding="utf-8") as f:
      assert data[name].strip() == f.read().strip(), (
        f"kubernetes/configmap.yaml is stale for {name}: run python deploy/render_configmap.py"
      )


def test_ports_agree(compose_service, container, k8s):
  assert sorted(compose_service["ports"]) == [
    f"{GRPC_PORT}:{GRPC_PORT}",
    f"{REST_PORT}:{REST_PORT}",
  ]
  container_ports = {p["name"]: p["containerPort"] for p in container["ports"]}
  assert container_ports == {"grpc": GRPC_PORT, "http": REST_PORT}

  service = k8s["Service"]
  assert service["spec"].get("type", "ClusterIP") == "ClusterIP"
  service_ports = {p["name"]: p for p in service["spec"]["ports"]}
  assert set(service_ports) == {"grpc", "http"}
  assert service_ports["grpc"]["port"] == service_ports["grpc"]["targetPort"] == GRPC_PORT
  assert service_ports["grpc"]["appProtocol"] == "grpc"
  assert service_ports["http"]["port"] == service_ports["http"]["targetPort"] == REST_PORT
  template_labels = k8s["Deployment"]["spec"]["template"]["metadata"]["labels"]
  assert service["spec"]["selector"].items() <= template_labels.items()


def test_probes_fit_tf_serving(container):
  # TF Serving has no grpc.health.v1 service: a native gRPC probe would always fail.
  for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
    assert "grpc" not in container[probe], probe
  assert container["startupProbe"]["tcpSocket"]["port"] == GRPC_PORT
  assert container["livenessProbe"]["tcpSocket"]["port"] == GRPC_PORT
  # Readiness on the gRPC port, which TF Serving opens once the models have loaded.
  assert container["readinessProbe"]["tcpSocket"]["port"] == GRPC_PORT


def test_deployment_drains_and_has_resources(k8s, container):
  spec = k8s["Deployment"]["spec"]
  assert spec["replicas"] == 2
  assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
  pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
  assert pre_stop[0] == "sleep"
  grace = spec["template"]["spec"]["terminationGracePeriodSeconds"]
  assert grace > int(pre_stop[1])
  for kind in ("requests", "limits"):
    assert {"cpu", "memory"} <= set(container["resources"][kind]), kind
  volumes = {v["name"]: v for v in spec["template"]["spec"]["volumes"]}
  claims = [
    v["persistentVolumeClaim"]["claimName"]
    for v in volumes.values()
    if "persistentVolumeClaim" in v
  ]
  assert claims == ["imdb-serving-models"]
