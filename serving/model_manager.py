"""Which model versions are served: discovery under a base path, version policy and
labels, loading with warmup, and unloading without dropping requests.

This mirrors what TF Serving's file-system source and server core do for the options
this development server supports (``tensorflow_serving/config/model_server_config.proto``):

* each model has a ``base_path`` whose numeric subdirectories are versions;
* ``model_version_policy``: ``latest { num_versions }`` (default 1), ``all {}`` or
  ``specific { versions }``; ``version_labels`` map a label to a version;
* a version is loaded only when its directory is complete and unchanged over
  ``settle_seconds`` (see ``servable.version_dir_problem``), then its warmup requests
  run, and only then is it AVAILABLE;
* a version leaving the policy is unloaded after its replacement is AVAILABLE
  (TF Serving's availability-preserving policy); requests already holding it finish.
"""

import contextlib
import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence

import grpc
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.config import model_server_config_pb2

from serving import errors
from serving.servable import Servable, dir_fingerprint, version_dir_problem

State = get_model_status_pb2.ModelVersionStatus.State
LOG = logging.getLogger("imdb_tfx.serve")


@dataclasses.dataclass(frozen=True)
class ModelSource:
  """One served model.

  Attributes:
    name: the model name clients put in ``model_spec.name``.
    base_path: the directory holding numeric version subdirectories.
    policy: ``"latest"``, ``"all"`` or ``"specific"``.
    num_versions: for ``latest``, how many of the highest versions to serve.
    versions: for ``specific``, the versions to serve.
    labels: version label -> version.
  """

  name: str
  base_path: str
  policy: str = "latest"
  num_versions: int = 1
  versions: tuple[int, ...] = ()
  labels: tuple[tuple[str, int], ...] = ()

  def aspired(self, ready: Sequence[int]) -> list[int]:
    """The versions to serve among the complete ones in ``ready``."""
    if self.policy == "all":
      return sorted(ready)
    if self.policy == "specific":
      return sorted(v for v in ready if v in self.versions)
    return sorted(ready)[-self.num_versions :]


def sources_from_flags(model_name: str, model_base_path: str) -> list[ModelSource]:
  """``--model_name`` / ``--model_base_path``: one model, latest version."""
  return [ModelSource(model_name, os.path.abspath(model_base_path))]


def sources_from_config(
  config: model_server_config_pb2.ModelServerConfig, config_dir: str = "."
) -> list[ModelSource]:
  """``--model_config_file``'s ``model_config_list``.

  Relative base paths are taken relative to ``config_dir`` (``imdb-tfx serve`` passes the
  working directory, as ``tensorflow_model_server`` resolves them).

  Raises:
    ValueError: no ``model_config_list``, a repeated or empty name, a platform other than
      ``tensorflow``, or a label pointing at a version a ``specific`` policy excludes.
  """
  if config.WhichOneof("config") != "model_config_list":
    raise ValueError("the model config file must hold a model_config_list")
  sources, names = [], set()
  for model in config.model_config_list.config:
    if not model.name or model.name in names:
      raise ValueError(f"model names must be set and unique, got {model.name!r}")
    names.add(model.name)
    if model.model_platform not in ("", "tensorflow"):
      raise ValueError(
        f"model {model.name}: platform {model.model_platform!r} is not "
        "supported (only 'tensorflow')"
      )
    policy = model.model_version_policy.WhichOneof("policy_choice") or "latest"
    num_versions = model.model_version_policy.latest.num_versions or 1 if policy == "latest" else 1
    versions = tuple(model.model_version_policy.specific.versions)
    labels = tuple(sorted(model.version_labels.items()))
    if policy == "specific":
      for label, version in labels:
        if version not in versions:
          raise ValueError(
            f"model {model.name}: label {label!r} points at version "
            f"{version}, which the specific version policy does not serve"
          )
    sources.append(
      ModelSource(
        model.name,
        os.path.join(config_dir, model.base_path),
        policy,
        num_versions,
        versions,
        labels,
      )
    )
  return sources


@dataclasses.dataclass
class _Version:
  version: int
  state: int = State.START
  servable: Servable | None = None
  error: errors.ServingError | None = None
  fingerprint: tuple = ()


class ModelManager:
  """Keeps the aspired versions of each ``ModelSource`` loaded.

  Args:
    sources: the models.
    warmup_fn: ``warmup_fn(servable)`` runs the version's warmup requests (raises to fail
      the load); None skips warmup.
    settle_seconds: a version directory must be unchanged for this long to be loaded.
  """

  def __init__(
    self,
    sources: Sequence[ModelSource],
    warmup_fn: Callable[[Servable], int] | None = None,
    settle_seconds: float = 0.5,
  ):
    self._sources = {s.name: s for s in sources}
    self._warmup_fn = warmup_fn
    self._settle_seconds = settle_seconds
    self._lock = threading.Lock()
    self._versions: dict[str, dict[int, _Version]] = {s.name: {} for s in sources}
    self._stop = threading.Event()
    self._thread: threading.Thread | None = None

  # --- lookup -------------------------------------------------------------------------

  @contextlib.contextmanager
  def servable(self, name: str, version: int | None = None, label: str | None = None):
    """``with manager.servable(...) as servable:`` the AVAILABLE servable for a request's
    model spec, kept loaded until the block ends (an unload waits for it).

    Raises:
      ServingError: as ``get_servable``.
    """
    with self._lock:
      servable = self._lookup(name, version, label)
      servable.acquire()
    try:
      yield servable
    finally:
      servable.release()

  def get_servable(
    self, name: str, version: int | None = None, label: str | None = None
  ) -> Servable:
    """The AVAILABLE servable for a request's model spec, for a look at its metadata
    (requests use ``servable()``, which keeps it loaded while they run).

    Raises:
      ServingError: NOT_FOUND (unknown model, version or label, or nothing AVAILABLE);
        INVALID_ARGUMENT (both version and label).
    """
    with self._lock:
      return self._lookup(name, version, label)

  def _lookup(self, name: str, version: int | None, label: str | None) -> Servable:
    if version is not None and label:
      raise errors.invalid_argument("model_spec has both a version and a version_label")
    source = self._sources.get(name)
    if source is None:
      raise errors.not_found(
        f"Servable not found for request: Latest({name}). Served models: {sorted(self._sources)}"
      )
    if label:
      labels = dict(source.labels)
      if label not in labels:
        raise errors.not_found(
          f"Unrecognized servable version label: {label} for model {name}; labels: {sorted(labels)}"
        )
      version = labels[label]
    available = {
      v: entry for v, entry in self._versions[name].items() if entry.state == State.AVAILABLE
    }
    if version is None:
      if not available:
        raise errors.not_found(
          f"Servable not found for request: Latest({name}); no version is available yet"
        )
      return available[max(available)].servable
    if version not in available:
      raise errors.not_found(
        f"Servable not found for request: Specific({name}, "
        f"{version}); available versions: {sorted(available)}"
      )
    return available[version].servable

  def model_names(self) -> list[str]:
    return sorted(self._sources)

  def statuses(
    self, name: str, version: int | None = None
  ) -> list[get_model_status_pb2.ModelVersionStatus]:
    """GetModelStatus's versions, newest first.

    Raises:
      ServingError: NOT_FOUND for an unknown model, or a version never seen.
    """
    with self._lock:
      if name not in self._sources:
        raise errors.not_found(f"Could not find any versions of model {name}")
      entries = sorted(self._versions[name].values(), key=lambda e: -e.version)
      if version is not None:
        entries = [e for e in entries if e.version == version]
        if not entries:
          raise errors.not_found(f"Could not find version {version} of model {name}")
      if not entries:
        raise errors.not_found(f"Could not find any versions of model {name}")
      result = []
      for entry in entries:
        status = get_model_status_pb2.ModelVersionStatus(version=entry.version, state=entry.state)
        if entry.error is not None:
          status.status.error_code = entry.error.code.value[0]
          status.status.error_message = entry.error.message
        result.append(status)
      return result

  def set_sources(self, sources: Sequence[ModelSource]) -> None:
    """Replaces the served models (a re-read model config file): models no longer listed
    are unloaded, new ones and changed policies/labels take effect, then one poll runs."""
    new = {s.name: s for s in sources}
    with self._lock:
      removed = [name for name in self._sources if name not in new]
      old_sources, self._sources = self._sources, new
      for name in new:
        self._versions.setdefault(name, {})
      removed_versions = {name: self._versions.pop(name) for name in removed}
    for name, versions in removed_versions.items():
      for entry in versions.values():
        if entry.state == State.AVAILABLE:
          self._unload(old_sources[name], entry)
    self.poll_once()

  # --- the poll loop ------------------------------------------------------------------

  def start(self, poll_seconds: float) -> None:
    """Polls once now; then every ``poll_seconds`` in a thread when it is > 0 (0: once,
    < 0: never, as TF Serving's ``--file_system_poll_wait_seconds``)."""
    if poll_seconds < 0:
      return
    self.poll_once()
    if poll_seconds > 0:
      self._thread = threading.Thread(
        target=self._loop, args=(poll_seconds,), daemon=True, name="version-poll"
      )
      self._thread.start()

  def _loop(self, poll_seconds: float) -> None:
    while not self._stop.wait(poll_seconds):
      try:
        self.poll_once()
      except Exception:  # any failure of one poll: the poller must outlive it
        LOG.exception("version poll failed; retrying in %.1f s", poll_seconds)

  def poll_once(self) -> None:
    """Loads newly aspired versions, then unloads versions no longer aspired."""
    for source in list(self._sources.values()):
      self._poll_source(source)

  def _complete_versions(self, source: ModelSource) -> dict[int, tuple]:
    """version -> fingerprint for complete, unchanging version directories."""
    try:
      names = os.listdir(source.base_path)
    except FileNotFoundError:
      LOG.warning("model %s: base path %s does not exist (yet)", source.name, source.base_path)
      return {}
    found = {}
    for name in names:
      path = os.path.join(source.base_path, name)
      if not name.isdigit() or not os.path.isdir(path):
        continue
      version = int(name)
      with self._lock:
        known = self._versions.get(source.name, {}).get(version)
      if known is not None and known.state in (State.LOADING, State.AVAILABLE):
        found[version] = known.fingerprint
        continue
      problem = version_dir_problem(path)
      if problem:
        LOG.info("model %s version %d not loaded: %s", source.name, version, problem)
        continue
      found[version] = dir_fingerprint(path)
    with self._lock:
      known = dict(self._versions.get(source.name, {}))
    pending = [
      v for v in found if v not in known or known[v].state not in (State.LOADING, State.AVAILABLE)
    ]
    if pending and self._settle_seconds > 0:
      time.sleep(self._settle_seconds)
      for version in pending:
        again = dir_fingerprint(os.path.join(source.base_path, str(version)))
        if again != found[version]:
          LOG.info("model %s version %d is still being written", source.name, version)
          del found[version]
    return found

  def _poll_source(self, source: ModelSource) -> None:
    complete = self._complete_versions(source)
    aspired = source.aspired(list(complete))
    with self._lock:
      versions = self._versions.get(source.name)
    if versions is None:
      return  # removed by set_sources meanwhile
    for version in aspired:
      entry = versions.get(version)
      if entry is not None and entry.state in (State.LOADING, State.AVAILABLE):
        continue
      if entry is not None and entry.error is not None and entry.fingerprint == complete[version]:
        continue  # failed before and unchanged since: do not retry on every poll
      self._load(source, version, complete[version])
    aspired_available = [
      v for v in aspired if versions.get(v) and versions[v].state == State.AVAILABLE
    ]
    if not aspired_available and any(e.state == State.AVAILABLE for e in versions.values()):
      return  # keep serving the old version(s) until a new one is AVAILABLE
    for version, entry in list(versions.items()):
      if entry.state == State.AVAILABLE and version not in aspired:
        self._unload(source, entry)

  def _load(self, source: ModelSource, version: int, fingerprint: tuple) -> None:
    path = os.path.join(source.base_path, str(version))
    entry = _Version(version, State.LOADING, fingerprint=fingerprint)
    with self._lock:
      self._versions.setdefault(source.name, {})[version] = entry
    LOG.info("model %s version %d: loading %s", source.name, version, path)
    start = time.monotonic()
    try:
      servable = Servable(source.name, version, path)
      warmed = self._warmup_fn(servable) if self._warmup_fn else 0
    except Exception as e:  # whatever a version's load raises is that version's error
      error = (
        e
        if isinstance(e, errors.ServingError)
        else errors.ServingError(
          grpc.StatusCode.UNKNOWN, f"loading {path} failed: {type(e).__name__}: {e}"
        )
      )
      LOG.error("model %s version %d failed to load: %s", source.name, version, error.message)
      with self._lock:
        entry.state, entry.error = State.END, error
      return
    with self._lock:
      entry.servable, entry.state = servable, State.AVAILABLE
    LOG.info(
      "model %s version %d: AVAILABLE after %.1f s (%d warmup requests)",
      source.name,
      version,
      time.monotonic() - start,
      warmed,
    )

  def _unload(self, source: ModelSource, entry: _Version) -> None:
    with self._lock:
      entry.state = State.UNLOADING
      servable, entry.servable = entry.servable, None
    # No new request gets it now; close() waits for those using it, lets queued batches
    # run, then frees its functions.
    servable.close()
    with self._lock:
      entry.state = State.END
    LOG.info("model %s version %d: unloaded", source.name, entry.version)

  def stop(self) -> None:
    """Stops polling and unloads every version."""
    self._stop.set()
    if self._thread is not None:
      self._thread.join()
    with self._lock:
      all_versions = [(name, list(v.values())) for name, v in self._versions.items()]
    for name, versions in all_versions:
      for entry in versions:
        if entry.state == State.AVAILABLE:
          self._unload(self._sources[name], entry)
