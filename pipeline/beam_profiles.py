"""Named Beam runner profiles for the pipeline's Beam-powered components.

StatisticsGen, Transform and Evaluator run Apache Beam pipelines with the pipeline's
``beam_pipeline_args``. A profile turns a few named settings into those arguments, for
whichever TFX orchestrator drives the run (``--runner local`` or ``--runner beam``):

============  ==============================================================================
profile       what runs the Beam pipelines
============  ==============================================================================
direct        Beam's DirectRunner on this machine (one worker thread per core).
portable      Beam's PortableRunner against a job service (``--job_endpoint``); ``embed``
              starts Beam's own job service in-process, which is how this project tests the
              portable path (``environment_type=LOOPBACK``). Flink and Spark job servers
              speak the same API.
flink         FlinkRunner (portable) submitting to a Flink cluster (``--flink_master``).
spark         SparkRunner (portable) submitting to a Spark cluster (``--spark_master_url``).
dataflow      Google Cloud Dataflow (``DataflowRunner``, Runner v2).
============  ==============================================================================

The option names are Beam 2.60's (``apache_beam.options.pipeline_options``:
``PortableOptions``, ``FlinkRunnerOptions``, ``SparkRunnerOptions``, ``GoogleCloudOptions``,
``WorkerOptions``); see https://beam.apache.org/documentation/runners/capability-matrix/ and
each runner's page. This module writes arguments only: Beam itself validates and uses them.

Only what Beam's option classes cannot know is checked here: that every setting a profile
needs is given, that workers outside this machine get a container image with the project
installed (``deploy/Dockerfile``, target ``beam-sdk``) pinned by tag or digest, and that
they can reach the pipeline root (a remote URI such as ``gs://``), because Transform's and
StatisticsGen's workers read and write artifacts there.

Every profile also names where its workers get the project from (``worker_dependency_args``):
without one of Beam's dependency options, TFX packages its own installation into a new
source distribution before each Beam-powered component runs.
"""

import dataclasses
import os
import pathlib
from collections.abc import Callable, Mapping, Sequence

from pipeline.remote import check_image, is_remote_uri

# Beam's SDK harness environments (PortableOptions.environment_type).
ENVIRONMENT_TYPES = ("DOCKER", "PROCESS", "EXTERNAL", "LOOPBACK")
# Environments whose SDK workers run in this process or on this machine.
_LOCAL_ENVIRONMENTS = ("LOOPBACK", "PROCESS")
# The DirectRunner with one worker, in this process (Beam's FnApiRunner in memory).
_IN_MEMORY = ("--direct_running_mode=in_memory", "--direct_num_workers=1")


def default_beam_pipeline_args(cpu_count: int | None = None) -> list[str]:
  """DirectRunner options: one worker thread per core when there are >1 cores, in-memory
  otherwise.

  Threads rather than worker processes (``multi_processing``): the components' Beam work
  is mostly TensorFlow, Arrow and TFDV's C++, which run outside the GIL, and each worker
  process first imports TensorFlow and the component's libraries again (several seconds
  per worker and component on 2 cores). Measured on the full data, 2 cores, idle machine,
  one after the other (docs/measurements.md, "2026-12-05, second session"): ImdbExampleGen,
  StatisticsGen and Transform took 115.8 s in threads against 123.9 s in processes.
  ``--beam-arg --direct_running_mode=multi_processing`` gives the processes back.
  """
  cpu_count = cpu_count or os.cpu_count() or 1
  if cpu_count > 1:
    return _threaded_direct(cpu_count)
  return [*_IN_MEMORY, *project_setup_args()]


def _threaded_direct(workers: int) -> list[str]:
  """DirectRunner options: ``workers`` worker threads in this process."""
  return [
    "--direct_running_mode=multi_threading",
    f"--direct_num_workers={workers}",
    *project_setup_args(),
  ]


def evaluator_beam_args(beam_pipeline_args: Sequence[str]) -> list[str]:
  """Component-level Beam options for TFX's Evaluator: under the threaded DirectRunner
  (``multi_threading``, the default on more than one core), Beam's in-memory runner with
  one worker; otherwise none.

  Why: TFMA 0.47's Evaluator on Beam 2.60's threaded DirectRunner can run out of memory
  when a split it reads has several files (from a TFDS split of several shards, or from
  spans). ``Executor.Do`` alone on a full run's artifacts, the golden test split (25,000
  reviews) in 4 files, 2-core machine with 24 GB, one run each unless counted: 2 worker
  threads grew past 24 GB and were killed by the kernel (a second run was stopped at 7.5
  GB, growing 300 MB/s); 1 worker thread peaked at 1.7-1.8
  GB in 2 runs, but killed a whole ``make bench-scale`` run the same way (test split in 2
  files); ``in_memory`` peaked at 1.65 GB in 50.1 and 50.9 s (47.2 s on the 2-file split).
  On the usual single file, ``in_memory`` took 44.3 s against 48.8 s in 2 threads (one
  thread reads one file in both). Worker processes (``multi_processing``) and other
  runners are left as they are. TFX puts component-level options after the pipeline's,
  so they win (``tfx.orchestration.pipeline``).
  """
  from apache_beam.options import pipeline_options as po

  options = po.PipelineOptions(list(beam_pipeline_args))
  direct = options.view_as(po.DirectOptions)
  runner = options.view_as(po.StandardOptions).runner
  if runner not in (None, "DirectRunner") or direct.direct_running_mode != "multi_threading":
    return []
  return list(_IN_MEMORY)


def project_setup_args() -> list[str]:
  """``--setup_file`` naming this project's ``setup.py``; [] outside a source checkout.

  Why: TFX's Beam executors (StatisticsGen, Transform, Evaluator, the example generators),
  given Beam arguments with none of Beam's dependency options (``extra_packages``,
  ``setup_file``, ``requirements_file``, ``sdk_container_image``), copy TFX's installed
  package and build a ``tfx_ephemeral`` source distribution of it before each run
  (``tfx.utils.dependency_utils.make_beam_dependency_flags``): about 3 s and 49 MB under
  ``$TMPDIR`` per component, which nothing removes. Workers on this machine (the
  DirectRunner, ``LOOPBACK``, an ``EXTERNAL`` pool started from this installation) import
  TFX and the project from here and need no package; the DirectRunner ignores the option,
  and the portable runner stages the project's own sdist (built in about 0.4 s). A runner
  whose workers install what is staged (``PROCESS``) gets the project, which is what they
  need, as Beam's guide asks
  (https://beam.apache.org/documentation/sdks/python-pipeline-dependencies/).

  Outside a source checkout (the project installed from a wheel) this returns [] and TFX
  builds its package as before.
  """
  setup_file = pathlib.Path(__file__).resolve().parents[1] / "setup.py"
  return [f"--setup_file={setup_file}"] if setup_file.is_file() else []


def worker_dependency_args(settings: "BeamSettings", environment_type: str) -> list[str]:
  """Where SDK workers of ``environment_type`` get the project and TFX from.

  ``DOCKER``: ``--sdk_container_image``, the image they run (``deploy/Dockerfile``, target
  ``beam-sdk``, with the project and the pinned set installed), so that neither Beam nor
  TFX stages packages for it. Otherwise this installation: ``project_setup_args()``.
  """
  if environment_type == "DOCKER" and settings.sdk_image:
    return [f"--sdk_container_image={settings.sdk_image}"]
  return project_setup_args()


def merge_beam_args(defaults: Sequence[str], overrides: Sequence[str]) -> list[str]:
  """``overrides`` win over ``defaults`` option by option (``--name=value`` or ``--flag``)."""
  overridden = {_option_name(a) for a in overrides}
  return [a for a in defaults if _option_name(a) not in overridden] + list(overrides)


def _option_name(arg: str) -> str:
  return arg.split("=", 1)[0]


@dataclasses.dataclass(frozen=True)
class BeamProfile:
  """One named way of running the Beam-powered components.

  Attributes:
    name: the profile's name (``--beam-profile``).
    summary: one line for ``--help`` and error messages.
    required: settings that must be given (keys of ``BeamSettings``' fields).
  """

  name: str
  summary: str
  required: tuple[str, ...]
  _build: Callable[["BeamSettings"], list[str]] = dataclasses.field(repr=False)

  def beam_args(self, settings: "BeamSettings") -> list[str]:
    """The ``--option=value`` list for ``settings`` under this profile.

    Raises:
      ValueError: a required setting is missing, or a setting is invalid for this profile
        (see ``BeamSettings``).
    """
    missing = [key for key in self.required if getattr(settings, key) in (None, "")]
    if missing:
      flags = ", ".join("--beam-" + key.replace("_", "-") for key in missing)
      raise ValueError(f"Beam profile {self.name!r} needs {flags} ({self.summary})")
    if settings.environment_type and settings.environment_type not in ENVIRONMENT_TYPES:
      raise ValueError(
        f"unknown Beam environment type {settings.environment_type!r}; "
        f"choose one of {', '.join(ENVIRONMENT_TYPES)}"
      )
    if settings.parallelism is not None and settings.parallelism < 1:
      raise ValueError(f"Beam parallelism must be >= 1, got {settings.parallelism}")
    return self._build(settings)


@dataclasses.dataclass(frozen=True)
class BeamSettings:
  """What a profile turns into Beam options; unset fields take the profile's default.

  Attributes:
    endpoint: the portable job service (``host:port`` or ``embed``), the Flink master
      (``host:8081``) or the Spark master (``spark://host:7077``).
    environment_type: where SDK workers run: ``DOCKER`` (the image), ``PROCESS``,
      ``EXTERNAL`` (a worker pool at ``environment_config``) or ``LOOPBACK`` (this
      process; local testing only).
    sdk_image: the SDK worker container image with the project installed, pinned by tag or
      digest (``deploy/Dockerfile``, target ``beam-sdk``).
    environment_config: for ``EXTERNAL``, the worker pool's ``host:port``; for
      ``PROCESS``, Beam's JSON ``{"command": "/opt/apache/beam/boot"}``.
    parallelism: Flink's ``--parallelism``, the portable runner's
      ``--sdk_worker_parallelism`` for the others, Dataflow's ``--max_num_workers``.
    project, region, temp_location: Dataflow's Google Cloud project, region and a
      ``gs://`` scratch location.
    pipeline_root: the pipeline root the run writes artifacts to (checked to be shared
      when workers run elsewhere).
  """

  endpoint: str | None = None
  environment_type: str | None = None
  sdk_image: str | None = None
  environment_config: str | None = None
  parallelism: int | None = None
  project: str | None = None
  region: str | None = None
  temp_location: str | None = None
  pipeline_root: str | None = None


def _environment_args(settings: BeamSettings, default_type: str) -> list[str]:
  """``--environment_type`` / ``--environment_config`` for a portable runner.

  Raises:
    ValueError: DOCKER without a pinned image; EXTERNAL without its endpoint; workers off
      this machine with a local pipeline root.
  """
  env_type = settings.environment_type or default_type
  args = [f"--environment_type={env_type}"]
  if env_type == "DOCKER":
    if not settings.sdk_image:
      raise ValueError(
        "environment type DOCKER needs --beam-sdk-image (the image built "
        "from deploy/Dockerfile --target beam-sdk, with the project installed)"
      )
    check_image(settings.sdk_image)
    args.append(f"--environment_config={settings.sdk_image}")
  elif env_type in ("EXTERNAL", "PROCESS"):
    if not settings.environment_config:
      raise ValueError(
        f"environment type {env_type} needs --beam-environment-config "
        "(EXTERNAL: the worker pool's host:port; PROCESS: "
        '\'{"command": "/opt/apache/beam/boot"}\')'
      )
    args.append(f"--environment_config={settings.environment_config}")
  if env_type not in _LOCAL_ENVIRONMENTS and not _pool_on_this_machine(settings):
    _check_shared_root(settings.pipeline_root, f"environment type {env_type}")
  return args + worker_dependency_args(settings, env_type)


def _pool_on_this_machine(settings: BeamSettings) -> bool:
  """An EXTERNAL worker pool at a loopback address (``localhost:PORT``): its workers run
  here and see a local pipeline root (``make bench-beam`` runs such a deployment)."""
  if settings.environment_type != "EXTERNAL" or not settings.environment_config:
    return False
  host = settings.environment_config.rpartition(":")[0].strip("[]")
  return host in ("localhost", "127.0.0.1", "::1")


def _check_shared_root(pipeline_root: str | None, why: str) -> None:
  """Raises ValueError when ``pipeline_root`` is a local path that remote workers can't see."""
  if pipeline_root is not None and not is_remote_uri(pipeline_root):
    raise ValueError(
      f"with {why} Beam's workers run off this machine and read and write the "
      f"pipeline's artifacts, so the pipeline root must be shared storage such as "
      f"gs://BUCKET/PATH (--pipeline-root), not the local {pipeline_root!r}"
    )


def _direct(settings: BeamSettings) -> list[str]:
  if settings.parallelism:
    return _threaded_direct(settings.parallelism)
  return default_beam_pipeline_args()


# Seconds Beam's PortableRunner waits on the job service. Beam 2.60 applies this timeout
# (``--job_server_timeout``, default 60) to the running job's state and message streams
# too (``portable_runner.JobServiceHandle.run``), so with the default every job longer
# than a minute fails with DEADLINE_EXCEEDED (seen: Transform's analysis on the full
# train split, ``make bench-beam``). A day; it also bounds the wait for an unreachable job
# server. ``--beam-arg --job_server_timeout=N`` overrides it.
JOB_SERVER_TIMEOUT_S = 86400


def _portable_runner(
  runner: list[str],
  parallelism_option: str,
  default_environment: str | Callable[[BeamSettings], str],
) -> Callable[[BeamSettings], list[str]]:
  """A builder for a runner on Beam's portability framework (portable, Flink, Spark):
  ``runner`` options and the job service's timeout, then the SDK environment, then
  ``parallelism_option``."""

  def build(settings: BeamSettings) -> list[str]:
    args = [arg.format(endpoint=settings.endpoint) for arg in runner]
    args.append(f"--job_server_timeout={JOB_SERVER_TIMEOUT_S}")
    args += _environment_args(
      settings,
      default_environment(settings) if callable(default_environment) else default_environment,
    )
    if settings.parallelism:
      args.append(f"--{parallelism_option}={settings.parallelism}")
    return args

  return build


_portable = _portable_runner(
  ["--runner=PortableRunner", "--job_endpoint={endpoint}"],
  "sdk_worker_parallelism",
  # Beam's in-process job service runs workers here; a job server elsewhere needs them
  # in containers.
  lambda settings: "LOOPBACK" if settings.endpoint == "embed" else "DOCKER",
)
_flink = _portable_runner(
  ["--runner=FlinkRunner", "--flink_master={endpoint}"], "parallelism", "DOCKER"
)
_spark = _portable_runner(
  ["--runner=SparkRunner", "--spark_master_url={endpoint}"], "sdk_worker_parallelism", "DOCKER"
)


def _dataflow(settings: BeamSettings) -> list[str]:
  if not (settings.temp_location or "").startswith("gs://"):
    raise ValueError(
      f"Dataflow needs --beam-temp-location gs://BUCKET/tmp, got {settings.temp_location!r}"
    )
  if settings.pipeline_root is not None and not settings.pipeline_root.startswith("gs://"):
    raise ValueError(
      "with Dataflow the pipeline root must be in Cloud Storage "
      f"(--pipeline-root gs://BUCKET/PATH), not {settings.pipeline_root!r}"
    )
  check_image(settings.sdk_image)
  args = [
    "--runner=DataflowRunner",
    f"--project={settings.project}",
    f"--region={settings.region}",
    f"--temp_location={settings.temp_location}",
    f"--sdk_container_image={settings.sdk_image}",
    # The image already has the project and the pinned set installed.
    "--experiments=use_runner_v2",
  ]
  if settings.parallelism:
    args.append(f"--max_num_workers={settings.parallelism}")
  return args


PROFILES: dict[str, BeamProfile] = {
  p.name: p
  for p in (
    BeamProfile("direct", "Beam's DirectRunner on this machine", (), _direct),
    BeamProfile(
      "portable", "Beam's PortableRunner against a job service", ("endpoint",), _portable
    ),
    BeamProfile("flink", "FlinkRunner on a Flink cluster", ("endpoint",), _flink),
    BeamProfile("spark", "SparkRunner on a Spark cluster", ("endpoint",), _spark),
    BeamProfile(
      "dataflow",
      "Google Cloud Dataflow",
      ("project", "region", "temp_location", "sdk_image"),
      _dataflow,
    ),
  )
}


def beam_args_for(
  profile: str, settings: BeamSettings = BeamSettings(), extra: Sequence[str] = ()
) -> list[str]:
  """The Beam pipeline arguments of ``profile`` with ``settings``, then ``extra``.

  Args:
    profile: one of ``PROFILES``.
    settings: the profile's settings.
    extra: raw ``--option=value`` arguments (``--beam-arg``); they win over the profile's
      option by option.

  Returns:
    the argument list for ``create_pipeline(beam_pipeline_args=...)``.

  Raises:
    ValueError: an unknown profile, a missing or invalid setting (the message names the
      flag), or a local pipeline root with workers off this machine.
  """
  if profile not in PROFILES:
    raise ValueError(f"unknown Beam profile {profile!r}; choose one of {', '.join(PROFILES)}")
  return merge_beam_args(PROFILES[profile].beam_args(settings), extra)


def settings_from_mapping(values: Mapping[str, object]) -> BeamSettings:
  """``BeamSettings`` from CLI-style values; None and empty strings mean unset.

  Raises:
    ValueError: a key that is not a ``BeamSettings`` field.
  """
  fields = {f.name for f in dataclasses.fields(BeamSettings)}
  unknown = sorted(set(values) - fields)
  if unknown:
    raise ValueError(f"unknown Beam settings {unknown}; known: {sorted(fields)}")
  return BeamSettings(**{k: (None if v == "" else v) for k, v in values.items()})
