"""--strategy multi_worker: two local worker processes train with the real ``run_fn``; and
--strategy mirrored over two logical CPU devices in one process.

Each worker is a ``tests/trainer_process.py`` subprocess with its own TF_CONFIG
(``{"cluster": {"worker": ["localhost:P0", "localhost:P1"]}, "task": {"type": "worker",
"index": i}}``, free loopback ports) and its own output directories, so what each one
wrote can be told apart. A third process trains the same data with ``--strategy default``
at the same global batch. All three run at once on a tiny transformed dataset whose splits
are ONE file each (as Transform writes small splits), so MultiWorkerMirroredStrategy must
shard by DATA. Checked: both workers exit 0; training converged (the chief's TensorBoard
events); only the chief wrote logs and a SavedModel (signatures, warmup file), the
non-chief's temporary directory is gone; both workers ended with identical weights; and
the result equals single-device training: same weights (to float rounding) and the same
``predict_text`` outputs, shapes and dtypes.

A fourth process trains with MirroredStrategy over the CPU split into two logical devices
(two replicas, per-replica batch 4): it converges and its model equals the single-device
one in the same way.

What this does not cover (needs a cluster): workers on separate hosts, shared storage
between them, and the TF_CONFIG that Vertex AI or a Kubernetes Job sets
(deploy/multi_worker.md).
"""

import contextlib
import dataclasses
import glob
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
import tiny_model

from core import warmup
from models import throughput

pytestmark = pytest.mark.e2e

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
TRAINER_PROCESS = os.path.join(REPO_ROOT, "tests", "trainer_process.py")
PROCESS_TIMEOUT_S = 480  # all three processes; ~2 min on 2 busy cores
TRAIN_COPIES = 4  # 80 train examples: 10 steps of global batch 8 per epoch
EPOCHS = 4
# Per-replica batch 4 x 2 workers = global batch 8. No dropout, so that the two workers'
# replicas and the single-device run compute exactly the same function of the same batches.
# No bigram table: with 64 buckets over this 30-word vocabulary the chief's model missed one
# of the 20 training reviews after 4 epochs; the sparse embedding gradients that cross the
# workers are exercised by the token embedding either way. nb_wide: the naive-Bayes linear
# model is trained first under the same strategy, and its weights are exported with the rest.
HPARAMS = dict(
  vocab_size=30,
  num_oov_buckets=2,
  max_length=8,
  embedding_dim=8,
  lstm_units=4,
  dense_units=4,
  max_pooling=False,
  embedding_dropout=0.0,
  dropout=0.0,
  learning_rate=0.02,
  lr_decay=1.0,
  batch_size=4,
  epochs=EPOCHS,
  early_stopping_monitor="val_loss",
  early_stopping_patience=EPOCHS,
  strategy="multi_worker",
  length_buckets=0,
  bigram_buckets=0,
  nb_wide=True,
)
SINGLE_HPARAMS = dict(HPARAMS, strategy="default", batch_size=8)
MIRRORED_HPARAMS = dict(HPARAMS, strategy="mirrored")
TEXTS = [t.decode() for t, _ in tiny_model.REVIEWS] + ["", "zzz qqq unknown words"]


def _free_ports(n: int) -> list[int]:
  """``n`` distinct free TCP ports on the loopback interface (bound to port 0 together,
  then released for the workers to bind)."""
  sockets = []
  try:
    for _ in range(n):
      s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
      s.bind(("localhost", 0))
      sockets.append(s)
    return [s.getsockname()[1] for s in sockets]
  finally:
    for s in sockets:
      s.close()


@dataclasses.dataclass
class Run:
  """One trainer process and what it was told to write."""

  name: str
  root: str
  serving_model_dir: str
  model_run_dir: str
  weights_path: str
  tmpdir: str  # its $TMPDIR
  log_path: str
  process: subprocess.Popen = None
  seconds: float = 0.0

  def log(self) -> str:
    with open(self.log_path, encoding="utf-8", errors="replace") as f:
      return f.read()

  def tail(self, lines: int = 40) -> str:
    return (
      f"--- {self.name} (exit {self.process.returncode}), last lines of its log:\n"
      + "\n".join(self.log().splitlines()[-lines:])
    )


def _start(
  run: Run,
  data: tiny_model.TinyTransformedData,
  hparams: dict,
  tf_config: dict | None = None,
  logical_cpus: int = 0,
) -> None:
  for path in (run.root, run.tmpdir):
    os.makedirs(path, exist_ok=True)
  job = dict(
    examples_uri=data.examples_uri,
    transform_graph_uri=data.transform_graph_uri,
    serving_model_dir=run.serving_model_dir,
    model_run_dir=run.model_run_dir,
    hparams=hparams,
    weights_path=run.weights_path,
    logical_cpus=logical_cpus,
  )
  job_path = os.path.join(run.root, "job.json")
  with open(job_path, "w", encoding="utf-8") as f:
    json.dump(job, f)
  env = dict(
    os.environ,
    TF_USE_LEGACY_KERAS="1",
    CUDA_VISIBLE_DEVICES="",
    TF_CPP_MIN_LOG_LEVEL="2",
    TMPDIR=run.tmpdir,
    PYTHONUNBUFFERED="1",
  )
  env.pop("TF_CONFIG", None)
  if tf_config is not None:
    env["TF_CONFIG"] = json.dumps(tf_config)
  with open(run.log_path, "wb") as log:
    # Own session (process group), so a failure can kill whatever it started.
    run.process = subprocess.Popen(
      [sys.executable, TRAINER_PROCESS, job_path],
      env=env,
      cwd=REPO_ROOT,
      stdout=log,
      stderr=subprocess.STDOUT,
      stdin=subprocess.DEVNULL,
      start_new_session=True,
    )


def _kill(run: Run) -> None:
  if run.process is not None and run.process.poll() is None:
    with contextlib.suppress(ProcessLookupError):
      os.killpg(run.process.pid, signal.SIGKILL)
    run.process.wait(timeout=30)


def _wait_all(runs: list[Run], started: float) -> None:
  """Waits for every run to exit 0; on a failure or the deadline kills the rest (a worker
  whose peer died would wait for it) and fails with each one's log tail."""
  deadline = started + PROCESS_TIMEOUT_S
  pending = list(runs)
  while pending:
    for run in list(pending):
      if run.process.poll() is not None:
        run.seconds = time.monotonic() - started
        pending.remove(run)
        if run.process.returncode != 0:
          for other in runs:
            _kill(other)
          pytest.fail(
            f"{run.name} exited {run.process.returncode}\n\n" + "\n\n".join(r.tail() for r in runs)
          )
    if pending and time.monotonic() > deadline:
      for other in runs:
        _kill(other)
      pytest.fail(
        f"{[r.name for r in pending]} still running after {PROCESS_TIMEOUT_S} s"
        "\n\n" + "\n\n".join(r.tail() for r in runs)
      )
    time.sleep(0.5)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Run]:
  """Trains two MultiWorkerMirroredStrategy workers, one default-strategy process and one
  MirroredStrategy process over two logical CPUs concurrently; returns their ``Run``s by
  name (``worker0``, ``worker1``, ``single``, ``mirrored``)."""
  root = str(tmp_path_factory.mktemp("multi_worker"))
  data = tiny_model.write_transformed_data(os.path.join(root, "data"), train_copies=TRAIN_COPIES)
  runs = {}
  for name in ("worker0", "worker1", "single", "mirrored"):
    base = os.path.join(root, name)
    runs[name] = Run(
      name=name,
      root=base,
      serving_model_dir=os.path.join(base, "Format-Serving"),
      model_run_dir=os.path.join(base, "model_run"),
      weights_path=os.path.join(base, "weights.npz"),
      tmpdir=os.path.join(base, "tmp"),
      log_path=os.path.join(base, "log.txt"),
    )
  ports = _free_ports(2)
  cluster = {"worker": [f"localhost:{p}" for p in ports]}
  started = time.monotonic()
  try:
    for i in range(2):
      _start(
        runs[f"worker{i}"],
        data,
        HPARAMS,
        {"cluster": cluster, "task": {"type": "worker", "index": i}},
      )
    _start(runs["single"], data, SINGLE_HPARAMS)
    _start(runs["mirrored"], data, MIRRORED_HPARAMS, logical_cpus=2)
    _wait_all(list(runs.values()), started)
  finally:
    for run in runs.values():  # no orphans, whatever happened
      _kill(run)
  for run in runs.values():
    print(f"{run.name}: {run.seconds:.0f} s")
  return runs


def _epoch_scalars(event_dir: str) -> dict[str, list[float]]:
  """Keras TensorBoard's per-epoch scalars in ``event_dir``: tag -> values by step."""
  values = {}
  for path in sorted(glob.glob(os.path.join(event_dir, "events.out.tfevents.*"))):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        if value.tag.startswith("epoch_"):
          values.setdefault(value.tag, []).append(
            (event.step, float(tf.make_ndarray(value.tensor)))
          )
  return {tag: [v for _, v in sorted(pairs)] for tag, pairs in values.items()}


def _weights(run: Run) -> list[np.ndarray]:
  with np.load(run.weights_path) as npz:
    return [npz[f"arr_{i}"] for i in range(len(npz.files))]


@pytest.fixture(scope="module")
def served(trained) -> dict[str, dict]:
  """Each export (``worker0``: the chief's, ``single``), loaded in this process, which has
  no cluster: its signature names and ``predict_text`` outputs for TEXTS."""
  result = {}
  for name in ("worker0", "single", "mirrored"):
    loaded = tf.saved_model.load(trained[name].serving_model_dir)
    result[name] = {
      "signatures": set(loaded.signatures),
      "predict_text": dict(loaded.signatures["predict_text"](text=tf.constant(TEXTS))),
    }
  return result


def test_training_converged(trained, served):
  scalars = _epoch_scalars(os.path.join(trained["worker0"].model_run_dir, "train"))
  losses, accuracies = scalars["epoch_loss"], scalars["epoch_accuracy"]
  assert len(losses) == EPOCHS, scalars
  assert losses[-1] < 0.5 * losses[0], losses
  assert accuracies[-1] >= 0.9, accuracies
  validation = _epoch_scalars(os.path.join(trained["worker0"].model_run_dir, "validation"))
  assert len(validation["epoch_loss"]) == EPOCHS
  assert validation["epoch_loss"][-1] < validation["epoch_loss"][0], validation
  # The chief's model separates the (trivially separable) reviews it was trained on.
  labels = served["worker0"]["predict_text"]["label"].numpy()
  np.testing.assert_array_equal(
    labels[: len(tiny_model.REVIEWS)], [y for _, y in tiny_model.REVIEWS]
  )


def test_only_the_chief_wrote_model_and_logs(trained, served):
  chief, other = trained["worker0"], trained["worker1"]
  export_dir = chief.serving_model_dir
  for name in ("saved_model.pb", "variables/variables.index", "assets/vocabulary"):
    assert os.path.isfile(os.path.join(export_dir, name)), name
  logs = list(warmup.read_warmup_file(warmup.warmup_path(export_dir)))
  assert len(logs) == len(warmup.PREDICT_TEXT_BATCH_SIZES) + 2
  assert (
    served["worker0"]["signatures"]
    == served["single"]["signatures"]
    == {"serving_default", "predict_text", "classify", "transform_features"}
  )
  assert glob.glob(os.path.join(chief.model_run_dir, "train", "events.out.tfevents.*"))
  assert not glob.glob(os.path.join(chief.root, "**", "workertemp*"), recursive=True)

  # The non-chief wrote nothing where it was told to write ...
  assert not os.path.exists(other.serving_model_dir)
  assert not os.path.exists(other.model_run_dir)
  # ... but did run the same writes (as TensorFlow's guide prescribes) into temporary
  # directories under its $TMPDIR, which it removed.
  log = other.log()
  temp_dirs = re.findall(r"is not the chief: writing \S+ into (\S+) \(removed afterwards\)", log)
  assert len(temp_dirs) == 2, log[-3000:]
  for path in temp_dirs:
    assert path.startswith(other.tmpdir + os.sep) and not os.path.exists(path), path
  assert not [n for n in os.listdir(other.tmpdir) if n.startswith("workertemp")]
  assert "is not the chief" not in chief.log()


def test_single_file_splits_are_sharded_by_data_and_workers_wait_for_each_other(trained):
  for name in ("worker0", "worker1"):
    log = trained[name].log()
    assert "of 2 workers" in log and "{'train': 'DATA', 'eval': 'DATA'}" in log, log[-3000:]
    assert "All 2 workers (2 replicas) have finished" in log, log[-3000:]
  single = trained["single"].log()
  assert "tf.data auto-shard policy" not in single
  assert "1 replica(s) (_DefaultDistributionStrategy), global batch 8" in single
  # MultiWorkerMirroredStrategy's class is CollectiveAllReduceStrategy.
  assert "2 replica(s) (CollectiveAllReduceStrategy), global batch 8" in trained["worker0"].log()


def test_both_workers_ended_with_identical_weights(trained):
  chief, other = _weights(trained["worker0"]), _weights(trained["worker1"])
  assert len(chief) == len(other) > 0
  for a, b in zip(chief, other):
    # Synchronous training: every step applies the same all-reduced gradients.
    np.testing.assert_array_equal(a, b)


def test_every_run_trained_the_naive_bayes_model_first(trained):
  features = HPARAMS["vocab_size"] + HPARAMS["num_oov_buckets"] + 1
  for name, run in trained.items():
    log = run.log()
    assert f"Naive-Bayes log-count ratios of {features} features" in log, (name, log[-3000:])
    assert log.index("Naive-Bayes log-count ratios") < log.index("Stacked ensemble on eval")


def test_multi_worker_training_equals_single_device_training(trained, served):
  # Same data, same global batch, DATA sharding splits each global batch between the two
  # workers: the same training, up to float summation order.
  multi_weights, single_weights = _weights(trained["worker0"]), _weights(trained["single"])
  assert len(multi_weights) == len(single_weights) > 0
  for a, b in zip(multi_weights, single_weights):
    assert a.shape == b.shape and a.dtype == b.dtype
    np.testing.assert_allclose(a, b, atol=1e-3)

  multi, single = served["worker0"]["predict_text"], served["single"]["predict_text"]
  assert set(multi) == set(single) == {"probabilities", "label", "attention_weights", "tokens"}
  for key in multi:
    assert multi[key].dtype == single[key].dtype, key
    assert multi[key].shape == single[key].shape, key
  n = len(TEXTS)
  assert multi["probabilities"].shape == (n,)
  assert multi["attention_weights"].shape == (n, HPARAMS["max_length"])
  probabilities = multi["probabilities"].numpy()
  assert np.all((probabilities >= 0.0) & (probabilities <= 1.0))
  np.testing.assert_allclose(probabilities, single["probabilities"].numpy(), atol=1e-3)
  np.testing.assert_array_equal(multi["tokens"].numpy(), single["tokens"].numpy())
  np.testing.assert_allclose(
    multi["attention_weights"].numpy(), single["attention_weights"].numpy(), atol=1e-3
  )


def test_chief_export_loads_outside_the_cluster(trained):
  """No op of the export is pinned to the cluster's devices (/job:worker/task:N): TF
  Serving and the Evaluator load it in processes that have only /job:localhost."""
  from tensorflow.core.protobuf import saved_model_pb2

  saved_model = saved_model_pb2.SavedModel()
  with open(os.path.join(trained["worker0"].serving_model_dir, "saved_model.pb"), "rb") as f:
    saved_model.ParseFromString(f.read())
  devices = set()
  for meta_graph in saved_model.meta_graphs:
    devices.update(n.device for n in meta_graph.graph_def.node)
    for function in meta_graph.graph_def.library.function:
      devices.update(n.device for n in function.node_def)
  assert not [d for d in devices if "/job:" in d], devices


def test_mirrored_over_two_logical_cpus_converges_and_equals_single_device(trained, served):
  mirrored = trained["mirrored"]
  assert "2 replica(s) (MirroredStrategy), global batch 8" in mirrored.log()
  summary = throughput.read_summary(mirrored.model_run_dir)
  assert summary["replicas"] == 2 and summary["strategy"] == "MirroredStrategy"
  losses = summary["history"]["loss"]
  assert len(losses) == EPOCHS and losses[-1] < 0.5 * losses[0], losses
  assert summary["examples_per_second"] > 0
  for a, b in zip(_weights(mirrored), _weights(trained["single"])):
    np.testing.assert_allclose(a, b, atol=1e-3)
  ours, single = served["mirrored"]["predict_text"], served["single"]["predict_text"]
  np.testing.assert_allclose(
    ours["probabilities"].numpy(), single["probabilities"].numpy(), atol=1e-3
  )
  np.testing.assert_array_equal(ours["label"].numpy(), single["label"].numpy())
  np.testing.assert_allclose(
    ours["attention_weights"].numpy(), single["attention_weights"].numpy(), atol=1e-3
  )
