"""Beam runner profiles: the arguments each writes are ones Beam 2.60's own option classes
read back with the intended values, and missing or unsafe settings fail with a message
naming the flag. Also ``create_pipeline(last_node=...)`` and ``imdb-tfx run``'s checks."""

import dataclasses
import os
import re

import pytest
from apache_beam.options import pipeline_options as po
from click.testing import CliRunner
from tfx.dsl.compiler import compiler

from cli.main import main
from pipeline import beam_profiles
from pipeline.beam_profiles import BeamSettings, beam_args_for
from pipeline.layout import node_ids
from pipeline.pipeline import create_pipeline

IMAGE = "europe-docker.pkg.dev/proj/repo/imdb-tfx-beam:1.0.0"
ROOT = "gs://bucket/imdb-tfx/root"


def _options(args):
  """Beam's view of ``args``; unknown options would be dropped here, so a misspelt option
  name fails the checks below."""
  return po.PipelineOptions(args)


SETUP_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "setup.py")


def test_direct_is_the_laptop_default():
  assert beam_args_for("direct", BeamSettings(parallelism=3)) == [
    "--direct_running_mode=multi_threading",
    "--direct_num_workers=3",
    f"--setup_file={SETUP_FILE}",
  ]
  opts = _options(beam_args_for("direct")).view_as(po.DirectOptions)
  assert opts.direct_running_mode in ("multi_threading", "in_memory")


def _tfx_dependency_args(args):
  """What TFX's Beam executors add to ``args`` before running (their constructor calls it):
  a freshly built ``tfx_ephemeral`` package when no dependency option is set."""
  from tfx.utils import dependency_utils

  return dependency_utils.make_beam_dependency_flags(list(args))


@pytest.mark.parametrize(
  "profile, settings",
  [
    ("direct", BeamSettings()),
    ("portable", BeamSettings(endpoint="embed")),
    (
      "portable",
      BeamSettings(
        endpoint="localhost:8099", environment_type="EXTERNAL", environment_config="localhost:50000"
      ),
    ),
    ("portable", BeamSettings(endpoint="j:8099", sdk_image=IMAGE, pipeline_root=ROOT)),
    ("flink", BeamSettings(endpoint="f:8081", sdk_image=IMAGE, pipeline_root=ROOT)),
    ("spark", BeamSettings(endpoint="spark://s:7077", sdk_image=IMAGE, pipeline_root=ROOT)),
    (
      "dataflow",
      BeamSettings(project="p", region="r", temp_location="gs://b/tmp", sdk_image=IMAGE),
    ),
  ],
)
def test_no_profile_lets_tfx_package_itself(profile, settings, tmp_path, monkeypatch):
  """Each profile names where its workers get the project from, so TFX adds nothing and
  builds no sdist of itself under $TMPDIR (3 s and 49 MB per component otherwise)."""
  monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
  args = beam_args_for(profile, settings)
  assert _tfx_dependency_args(args) == args
  assert list(tmp_path.iterdir()) == []
  setup = _options(args).view_as(po.SetupOptions).setup_file
  image = _options(args).view_as(po.WorkerOptions).sdk_container_image
  # Workers in the image have the project; workers on this machine get its setup.py.
  assert (setup, image) == ((None, IMAGE) if settings.sdk_image else (SETUP_FILE, None))


def test_without_a_dependency_option_tfx_builds_its_own_package(tmp_path, monkeypatch):
  """The behaviour the profiles avoid, so that the test above can fail: TFX 1.16 builds
  ``tfx_ephemeral`` when none of Beam's dependency options is given."""
  monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
  [extra] = _tfx_dependency_args(["--direct_num_workers=1"])[1:]
  assert extra.startswith(f"--extra_package={tmp_path}") and "tfx_ephemeral" in extra


def test_portable_embed_defaults_to_loopback_and_a_local_root_is_fine():
  args = beam_args_for("portable", BeamSettings(endpoint="embed", pipeline_root="/tmp/root"))
  opts = _options(args)
  assert opts.view_as(po.StandardOptions).runner == "PortableRunner"
  assert opts.view_as(po.PortableOptions).job_endpoint == "embed"
  assert opts.view_as(po.PortableOptions).environment_type == "LOOPBACK"


def test_portable_job_service_defaults_to_docker_and_needs_image_and_shared_root():
  with pytest.raises(ValueError, match="--beam-sdk-image"):
    beam_args_for("portable", BeamSettings(endpoint="jobserver:8099", pipeline_root=ROOT))
  with pytest.raises(ValueError, match="shared storage.*'/tmp/root'"):
    beam_args_for(
      "portable",
      BeamSettings(endpoint="jobserver:8099", sdk_image=IMAGE, pipeline_root="/tmp/root"),
    )
  args = beam_args_for(
    "portable",
    BeamSettings(endpoint="jobserver:8099", sdk_image=IMAGE, pipeline_root=ROOT, parallelism=4),
  )
  portable = _options(args).view_as(po.PortableOptions)
  assert (portable.environment_type, portable.environment_config) == ("DOCKER", IMAGE)
  assert int(portable.sdk_worker_parallelism) == 4  # Beam keeps this one a string


def test_flink_profile_reads_back_through_flink_options():
  args = beam_args_for(
    "flink",
    BeamSettings(
      endpoint="flink-jobmanager:8081", sdk_image=IMAGE, parallelism=8, pipeline_root=ROOT
    ),
  )
  opts = _options(args)
  assert opts.view_as(po.StandardOptions).runner == "FlinkRunner"
  flink = opts.view_as(po.FlinkRunnerOptions)
  assert (flink.flink_master, flink.parallelism) == ("flink-jobmanager:8081", 8)
  assert opts.view_as(po.PortableOptions).environment_config == IMAGE


def test_spark_profile_reads_back_through_spark_options():
  args = beam_args_for(
    "spark", BeamSettings(endpoint="spark://spark-master:7077", sdk_image=IMAGE, pipeline_root=ROOT)
  )
  opts = _options(args)
  assert opts.view_as(po.StandardOptions).runner == "SparkRunner"
  assert opts.view_as(po.SparkRunnerOptions).spark_master_url == "spark://spark-master:7077"
  assert opts.view_as(po.PortableOptions).environment_type == "DOCKER"


def test_external_worker_pool_needs_its_address():
  with pytest.raises(ValueError, match="--beam-environment-config"):
    beam_args_for(
      "flink", BeamSettings(endpoint="f:8081", environment_type="EXTERNAL", pipeline_root=ROOT)
    )
  args = beam_args_for(
    "flink",
    BeamSettings(
      endpoint="f:8081",
      environment_type="EXTERNAL",
      environment_config="localhost:50000",
      pipeline_root=ROOT,
    ),
  )
  assert _options(args).view_as(po.PortableOptions).environment_config == "localhost:50000"


def test_a_worker_pool_on_this_machine_may_use_a_local_root():
  local = BeamSettings(
    endpoint="localhost:8099",
    environment_type="EXTERNAL",
    environment_config="localhost:50000",
    pipeline_root="/tmp/root",
  )
  args = beam_args_for("portable", local)
  assert "--environment_config=localhost:50000" in args
  # Jobs longer than Beam's default 60 s must not hit the job service's deadline.
  assert _options(args).view_as(po.PortableOptions).job_server_timeout == 86400
  elsewhere = dataclasses.replace(local, environment_config="pool.internal:50000")
  with pytest.raises(ValueError, match="shared storage"):
    beam_args_for("portable", elsewhere)


def test_dataflow_profile_reads_back_through_google_cloud_and_worker_options():
  settings = BeamSettings(
    project="proj",
    region="europe-west4",
    sdk_image=IMAGE,
    temp_location="gs://bucket/tmp",
    parallelism=20,
    pipeline_root=ROOT,
  )
  opts = _options(beam_args_for("dataflow", settings))
  assert opts.view_as(po.StandardOptions).runner == "DataflowRunner"
  gcp = opts.view_as(po.GoogleCloudOptions)
  assert (gcp.project, gcp.region, gcp.temp_location) == ("proj", "europe-west4", "gs://bucket/tmp")
  worker = opts.view_as(po.WorkerOptions)
  assert (worker.sdk_container_image, worker.max_num_workers) == (IMAGE, 20)


@pytest.mark.parametrize(
  "settings, problem",
  [
    (dict(region="r", temp_location="gs://b/t", sdk_image=IMAGE), "--beam-project"),
    (dict(project="p", region="r", sdk_image=IMAGE), "--beam-temp-location"),
    (dict(project="p", region="r", temp_location="/tmp/t", sdk_image=IMAGE), "gs://BUCKET/tmp"),
    (
      dict(project="p", region="r", temp_location="gs://b/t", sdk_image="gcr.io/p/imdb-tfx:latest"),
      "tagged 'latest'",
    ),
    (
      dict(
        project="p",
        region="r",
        temp_location="gs://b/t",
        sdk_image=IMAGE,
        pipeline_root="s3://bucket/root",
      ),
      "Cloud Storage",
    ),
  ],
)
def test_dataflow_refuses_what_would_fail_on_the_service(settings, problem):
  with pytest.raises(ValueError, match=problem):
    beam_args_for("dataflow", BeamSettings(**settings))


@pytest.mark.parametrize(
  "profile, settings, problem",
  [
    ("portable", {}, "--beam-endpoint"),
    ("flink", {}, "--beam-endpoint"),
    (
      "spark",
      {"endpoint": "spark://m:7077", "sdk_image": IMAGE, "pipeline_root": "out/root"},
      "shared storage",
    ),
    ("flink", {"endpoint": "f:8081", "sdk_image": "imdb-tfx", "pipeline_root": ROOT}, "has no tag"),
    (
      "portable",
      {"endpoint": "embed", "environment_type": "KUBERNETES"},
      "unknown Beam environment type",
    ),
    ("nosuch", {}, "unknown Beam profile"),
  ],
)
def test_bad_settings_name_the_problem(profile, settings, problem):
  with pytest.raises(ValueError, match=problem):
    beam_args_for(profile, BeamSettings(**settings))


def test_raw_beam_args_win_option_by_option():
  args = beam_args_for(
    "portable",
    BeamSettings(endpoint="embed"),
    ["--environment_type=PROCESS", '--environment_config={"command": "/opt/apache/beam/boot"}'],
  )
  assert args.count("--environment_type=PROCESS") == 1
  assert "--environment_type=LOOPBACK" not in args


def test_settings_from_mapping_rejects_unknown_keys():
  assert beam_profiles.settings_from_mapping({"endpoint": "embed", "project": ""}) == (
    BeamSettings(endpoint="embed")
  )
  with pytest.raises(ValueError, match="master"):
    beam_profiles.settings_from_mapping({"master": "x"})


@pytest.mark.parametrize(
  "last_node", ["ImdbExampleGen", "SchemaGen", "Transform", "Trainer", "Evaluator"]
)
def test_last_node_builds_a_prefix_of_the_pipeline(last_node, tmp_path):
  pipeline = create_pipeline(
    pipeline_root=str(tmp_path), serving_model_dir=str(tmp_path), last_node=last_node
  )
  ids = {node.id for node in pipeline.components}  # TFX orders them topologically
  order = node_ids()
  assert ids == set(order[: order.index(last_node) + 1])
  # TFX's compiler refuses a node that points at one left out of the pipeline.
  ir = compiler.Compiler().compile(pipeline)
  assert {node.pipeline_node.node_info.id for node in ir.nodes} == ids


def test_last_node_must_be_a_node_of_this_pipeline(tmp_path):
  with pytest.raises(ValueError, match="'SchemaGen' is not a node.*ImportSchemaGen"):
    create_pipeline(
      pipeline_root=str(tmp_path),
      serving_model_dir=str(tmp_path),
      schema_path="schema.pbtxt",
      last_node="SchemaGen",
    )


def test_run_refuses_a_cluster_profile_with_a_local_root_before_writing(tmp_path):
  output_dir = tmp_path / "outputs"
  result = CliRunner().invoke(
    main,
    [
      "run",
      "--beam-profile",
      "flink",
      "--beam-endpoint",
      "flink:8081",
      "--beam-sdk-image",
      IMAGE,
      "--output-dir",
      str(output_dir),
    ],
  )
  assert result.exit_code != 0
  assert "shared storage" in result.output and "--pipeline-root" in result.output
  assert not output_dir.exists()
  result = CliRunner().invoke(
    main, ["run", "--beam-profile", "dataflow", "--output-dir", str(output_dir)]
  )
  assert result.exit_code != 0 and "--beam-project" in result.output
  assert not output_dir.exists()


def test_beam_sdk_image_matches_the_pinned_beam_and_python():
  """Beam's boot program must come from the SDK image of the Beam and Python the worker runs
  (a mismatch fails only on the cluster, at worker start-up)."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  with open(os.path.join(root, "deploy", "Dockerfile"), encoding="utf-8") as f:
    dockerfile = f.read()
  with open(os.path.join(root, "requirements.lock"), encoding="utf-8") as f:
    beam_version = re.search(r"^apache-beam==(\S+)", f.read(), re.M).group(1)
  with open(os.path.join(root, ".python-version"), encoding="utf-8") as f:
    python = f.read().strip()
  major_minor = ".".join(python.split(".")[:2])
  assert f"FROM python:{python}-slim AS pipeline-base" in dockerfile
  assert (
    f"COPY --from=apache/beam_python{major_minor}_sdk:{beam_version} /opt/apache/beam "
    "/opt/apache/beam"
  ) in dockerfile
  stages = re.findall(r"^FROM \S+ AS (\S+)$", dockerfile, re.M)
  assert stages[-1] == "pipeline" and "beam-sdk" in stages  # the default build is unchanged
  beam_stage = dockerfile.split("AS beam-sdk", 1)[1].split("\nFROM ", 1)[0]
  assert 'ENTRYPOINT ["/opt/apache/beam/boot"]' in beam_stage
