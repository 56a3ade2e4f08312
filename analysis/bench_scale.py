"""``python -m analysis.bench_scale`` (``make bench-scale``): how each component's time and
memory grow with the data, at 1x, 2x and 4x the IMDB reviews.

For each scale k:

1. ``scaled_tfds`` writes a TFDS data directory of ``imdb_reviews/plain_text/1.0.0`` whose
   every split (train, test, unsupervised) holds the prepared IMDB reviews k times, in
   shards of ``SHARD_EXAMPLES`` records at every scale (so a larger dataset is more shards
   of the same size, as TFDS itself shards, and no scale gets extra read parallelism from
   fewer, larger files). The copies are the same reviews: the hash split sends each copy
   of a review to the same split, so every split grows k times.
2. ``imdb-tfx run --tfds-data-dir DIR --epochs 1`` (the pipeline with its defaults, one
   Trainer epoch), in a new output directory, while ``TreeSampler`` reads every
   ``SAMPLE_SECONDS`` the resident set and CPU time of the run's process and all its
   descendants (psutil): the launcher, Beam's worker processes and whatever they start.
3. From ML Metadata, each component's execution window (registration to last update);
   the samples inside it give its peak resident memory (the sum over the process tree:
   "per process, children included") and its CPU utilisation (CPU seconds of the tree
   over wall seconds; 200% = both cores of a 2-core machine). Its examples are what it
   reads (``examples_processed``), so examples/s compares the scales.

Writes JSON (default ``outputs/bench/scale.json``): per component and scale, seconds,
examples, examples/s, peak tree RSS and the largest single process's RSS (bytes), CPU
percent; ``time_ratio_4x_1x`` and ``memory_ratio_4x_1x`` (and 2x/1x); the run's wall and
CPU; settings and machine. And a PNG plot of seconds and peak memory against the scale.
Wall-clock figures depend on the machine and what else runs on it.

Why our own sampler: the components run in one launcher process (TFX's LocalDagRunner)
with Beam's workers as its children, so neither ``getrusage`` (one maximum over all
children, none per component) nor a profiler of one process sees a component's memory.
"""

import json
import math
import os
import platform
import shutil
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import click

from core import environment

TFDS_BUILDER_DIR = ("imdb_reviews", "plain_text", "1.0.0")
DEFAULT_TEMPLATE = "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}"
# Records per shard of a scaled split: half the IMDB train split, so 1x has 2 train shards.
SHARD_EXAMPLES = 12_500
SAMPLE_SECONDS = 0.5
SCALES = (1, 2, 4)
# Nodes whose 1x time is below this are listed without ratios (resolvers, gates, Pusher:
# their time is MLMD bookkeeping, not data).
MIN_RATIO_SECONDS = 2.0


def _shard_path(split_dir: str, template: str, split: str, index: int, count: int) -> str:
  name = (
    template.replace("{DATASET}", "imdb_reviews")
    .replace("{SPLIT}", split)
    .replace("{FILEFORMAT}", "tfrecord")
    .replace("{SHARD_X_OF_Y}", f"{index:05d}-of-{count:05d}")
  )
  return os.path.join(split_dir, name)


def scaled_tfds(
  source_data_dir: str, dest_data_dir: str, copies: int, shard_examples: int = SHARD_EXAMPLES
) -> dict[str, int]:
  """Writes TFDS's prepared ``imdb_reviews/plain_text/1.0.0`` under ``dest_data_dir`` with
  every split's records ``copies`` times, in shards of ``shard_examples`` records (the
  last one shorter), and a ``dataset_info.json`` that describes them (TFDS reads the
  shard names and lengths from it). The records are copied as bytes, not parsed.

  Args:
    source_data_dir: a TFDS data directory holding the prepared dataset.
    dest_data_dir: where to write it; must not hold the dataset already.
    copies: how many times each split's records are written, >= 1.
    shard_examples: records per shard, >= 1.

  Returns:
    records written per split name (``train``, ``test``, ``unsupervised``).

  Raises:
    ValueError: ``copies`` or ``shard_examples`` < 1.
    FileNotFoundError: no prepared dataset under ``source_data_dir``.
    FileExistsError: ``dest_data_dir`` already holds the dataset.
  """
  import tensorflow as tf

  if copies < 1 or shard_examples < 1:
    raise ValueError(f"copies and shard_examples must be >= 1, got {copies}, {shard_examples}")
  source = os.path.join(source_data_dir, *TFDS_BUILDER_DIR)
  dest = os.path.join(dest_data_dir, *TFDS_BUILDER_DIR)
  info_path = os.path.join(source, "dataset_info.json")
  if not os.path.exists(info_path):
    raise FileNotFoundError(f"no prepared imdb_reviews in {source_data_dir} ({info_path})")
  if os.path.exists(dest):
    raise FileExistsError(f"{dest} exists")
  with open(info_path, encoding="utf-8") as f:
    info = json.load(f)
  # Written under a temporary name and renamed once complete: an interrupted copy never
  # looks like a prepared dataset.
  partial = dest + ".partial"
  shutil.rmtree(partial, ignore_errors=True)
  os.makedirs(partial)
  for name in os.listdir(source):
    if not name.startswith("imdb_reviews-") and name != "dataset_info.json":
      shutil.copy(os.path.join(source, name), partial)
  counts = {}
  for split in info["splits"]:
    template = split.get("filepathTemplate", DEFAULT_TEMPLATE)
    lengths = [int(n) for n in split["shardLengths"]]
    files = [
      _shard_path(source, template, split["name"], i, len(lengths)) for i in range(len(lengths))
    ]
    total = sum(lengths) * copies
    shards = max(1, math.ceil(total / shard_examples))
    written, size = [], 0
    records = (r for _ in range(copies) for r in tf.data.TFRecordDataset(files).as_numpy_iterator())
    for index in range(shards):
      path = _shard_path(partial, template, split["name"], index, shards)
      count = 0
      with tf.io.TFRecordWriter(path) as writer:
        for record in records:
          writer.write(record)
          count += 1
          if count == shard_examples:
            break
      written.append(count)
      size += os.path.getsize(path)
    split["shardLengths"] = [str(n) for n in written]
    split["numBytes"] = str(size)
    counts[split["name"]] = sum(written)
  with open(os.path.join(partial, "dataset_info.json"), "w", encoding="utf-8") as f:
    json.dump(info, f, indent=2)
  os.rename(partial, dest)
  return counts


@dataclass
class TreeSampler:
  """Samples, every ``interval`` seconds on a thread, a process and all its descendants:
  the sum of their resident set sizes (bytes), the largest one's, and their CPU seconds
  (user + system, with the CPU of children they have reaped). Processes that end between
  two samples are missed: a peak shorter than ``interval`` may be too.

  Attributes:
    pid: the root process.
    interval: seconds between samples.
    samples: ``(time.time(), tree RSS bytes, largest process RSS bytes, CPU seconds)``.
  """

  pid: int
  interval: float = SAMPLE_SECONDS
  samples: list[tuple[float, int, int, float]] = field(default_factory=list)
  _stop: threading.Event = field(default_factory=threading.Event)
  _thread: threading.Thread | None = None

  def sample(self) -> tuple[float, int, int, float] | None:
    """One sample of the tree now, or None once the root has ended."""
    import psutil

    try:
      root = psutil.Process(self.pid)
      processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
      return None
    total = largest = 0
    cpu = 0.0
    for process in processes:
      try:
        with process.oneshot():
          rss = process.memory_info().rss
          times = process.cpu_times()
      except psutil.NoSuchProcess:
        continue
      total += rss
      largest = max(largest, rss)
      cpu += times.user + times.system + times.children_user + times.children_system
    return time.time(), total, largest, cpu

  def _loop(self) -> None:
    while not self._stop.is_set():
      sample = self.sample()
      if sample is None:
        return
      self.samples.append(sample)
      self._stop.wait(self.interval)

  def start(self) -> "TreeSampler":
    self._thread = threading.Thread(target=self._loop, daemon=True)
    self._thread.start()
    return self

  def stop(self) -> None:
    self._stop.set()
    if self._thread:
      self._thread.join()

  def window(self, start: float, end: float) -> dict:
    """The samples from ``start`` to ``end`` (seconds since the epoch).

    Returns:
      ``{"peak_rss_bytes", "peak_process_rss_bytes", "cpu_percent", "samples"}``; the
      first three None when no sample falls in the window.
    """
    inside = [s for s in self.samples if start <= s[0] <= end]
    if not inside:
      return {
        "peak_rss_bytes": None,
        "peak_process_rss_bytes": None,
        "cpu_percent": None,
        "samples": 0,
      }
    span = inside[-1][0] - inside[0][0]
    return {
      "peak_rss_bytes": max(s[1] for s in inside),
      "peak_process_rss_bytes": max(s[2] for s in inside),
      "cpu_percent": round(100 * (inside[-1][3] - inside[0][3]) / span, 1) if span > 0 else None,
      "samples": len(inside),
    }


def examples_processed(node_id: str, outputs: dict) -> int | None:
  """How many examples ``node_id`` read in one run (None where that is not defined):
  ImdbExampleGen and StatisticsGen every review of every split; Transform the train,
  eval and test splits (it analyses train and transforms all three); the EmbeddingTrainer
  the reviews of its corpus (its ``pretraining_summary.json``); the Trainer one epoch of
  the train split; the Evaluator the test split. The split counts are ImdbExampleGen's
  ``num_examples_<split>`` custom properties.

  Args:
    node_id: the component.
    outputs: ``{node id: {output key: [Artifact]}}`` of the run (MLMD).
  """
  from models import pretraining
  from pipeline import mlmd_queries

  examples = (outputs.get("ImdbExampleGen", {}).get("examples") or [None])[0]
  if examples is None:
    return None

  def count(*splits: str) -> int:
    return sum(mlmd_queries.custom_property(examples, f"num_examples_{s}") or 0 for s in splits)

  if node_id == "ImdbExampleGen":
    return count("train", "eval", "test", "unlabelled")
  if node_id == "StatisticsGen":  # every split but unlabelled (pipeline.pipeline)
    return count("train", "eval", "test")
  if node_id == "Transform":  # analyses train, transforms train and eval (pipeline.pipeline)
    return count("train", "eval")
  if node_id == "Trainer":
    return count("train")
  if node_id == "Evaluator":
    return count("test")
  if node_id == "EmbeddingTrainer":
    run = (outputs.get(node_id, {}).get("pretraining_run") or [None])[0]
    path = run and os.path.join(run.uri, pretraining.SUMMARY_FILE)
    if path and os.path.exists(path):
      with open(path, encoding="utf-8") as f:
        return json.load(f)["reviews"]
  return None


def measure_run(output_dir: str, sampler: TreeSampler, since_ms: int) -> dict:
  """Each component of the pipeline run that started at ``since_ms`` (ms since the epoch),
  from MLMD and ``sampler``: ``{node id: {"state", "seconds", "examples",
  "examples_per_second", "peak_rss_bytes", "peak_process_rss_bytes", "cpu_percent"}}``."""
  from pipeline import metadata_store, mlmd_queries
  from pipeline.layout import PIPELINE_NAME

  store = mlmd_queries.open_store(metadata_store.connection_config(output_dir, environ={}))
  node_of = mlmd_queries.executions_by_node(store, PIPELINE_NAME)
  executions = {}
  for execution in sorted(store.get_executions_by_id(list(node_of)), key=lambda e: e.id):
    if execution.create_time_since_epoch >= since_ms:
      executions[node_of[execution.id]] = execution  # the node's latest
  outputs = {
    node: mlmd_queries.execution_outputs(store, execution.id)
    for node, execution in executions.items()
  }
  components = {}
  for node, execution in sorted(executions.items(), key=lambda item: item[1].id):
    seconds = mlmd_queries.execution_seconds(execution)
    examples = examples_processed(node, outputs)
    window = sampler.window(
      execution.create_time_since_epoch / 1e3, execution.last_update_time_since_epoch / 1e3
    )
    components[node] = {
      "state": mlmd_queries.state_name(execution),
      "seconds": round(seconds, 1),
      "examples": examples,
      "examples_per_second": round(examples / seconds, 1) if examples and seconds > 0 else None,
      **{k: v for k, v in window.items() if k != "samples"},
    }
  return components


def measured(
  command: list[str], log_path: str, cwd: str | None = None
) -> tuple[int, float, TreeSampler, int]:
  """Runs ``command`` (output to ``log_path``, in ``cwd``) under a ``TreeSampler``.

  Returns:
    ``(exit status, wall seconds, the sampler, start in ms since the epoch)``.
  """
  since_ms = int(time.time() * 1000)
  started = time.monotonic()
  with open(log_path, "wb") as log:
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=cwd)
    sampler = TreeSampler(process.pid).start()
    status = process.wait()
    sampler.stop()
  return status, time.monotonic() - started, sampler, since_ms


def _run_command(executable: str, output_dir: str, data_dir: str, run_args: Sequence[str]):
  return [
    executable,
    "run",
    "--output-dir",
    output_dir,
    "--tfds-data-dir",
    data_dir,
    "--epochs",
    "1",
    *run_args,
  ]


def run_scale(
  copies: int, source_data_dir: str, work_dir: str, run_args: Sequence[str], executable: str
) -> dict:
  """One scale: the scaled dataset, a measured ``imdb-tfx run`` on it, the dataset removed
  again (module docstring).

  Returns:
    ``{"copies", "records", "exit_status", "wall_s", "cpu_percent", "peak_rss_bytes",
    "components"}``.
  """
  data_dir = _data_dir(work_dir, copies)
  output_dir = os.path.join(work_dir, f"run-{copies}x")
  records = scaled_tfds(source_data_dir, data_dir, copies)
  status, wall, sampler, since_ms = measured(
    _run_command(executable, output_dir, data_dir, run_args),
    os.path.join(work_dir, f"run-{copies}x.log"),
  )
  whole = sampler.window(since_ms / 1e3, time.time())
  shutil.rmtree(data_dir)
  return {
    "copies": copies,
    "records": records,
    "exit_status": status,
    "wall_s": round(wall, 1),
    "cpu_percent": whole["cpu_percent"],
    "peak_rss_bytes": whole["peak_rss_bytes"],
    "components": measure_run(output_dir, sampler, since_ms),
  }


def rerun_node(
  copies: int,
  node: str,
  source_data_dir: str,
  work_dir: str,
  run_args: Sequence[str],
  executable: str,
) -> dict:
  """``node`` again on the ``copies`` scale's pipeline outputs (``run_scale``'s), after a
  change to it: the scaled dataset written again where it was (``imdb-tfx run`` checks
  that it is there), then ``imdb-tfx run ... --until node`` with the scale's arguments, so
  the nodes before it come from the cache and ``node``, whose execution properties or
  code changed, runs; measured as ``run_scale`` measures it; the dataset removed again.

  Returns:
    the node's figures (``measure_run``'s).

  Raises:
    click.ClickException: the run failed, or ``node`` was cached (nothing changed it).
  """
  output_dir = os.path.join(work_dir, f"run-{copies}x")
  log_path = os.path.join(work_dir, f"rerun-{node}-{copies}x.log")
  data_dir = _data_dir(work_dir, copies)
  scaled_tfds(source_data_dir, data_dir, copies)
  command = _run_command(executable, output_dir, data_dir, run_args)
  status, _, sampler, since_ms = measured([*command, "--until", node], log_path)
  shutil.rmtree(data_dir)
  figures = measure_run(output_dir, sampler, since_ms).get(node)
  if status or not figures or figures["state"] != "COMPLETE":
    raise click.ClickException(f"{node} did not run again at {copies}x: see {log_path}")
  return figures


def _data_dir(work_dir: str, copies: int) -> str:
  return os.path.join(work_dir, f"tfds-{copies}x")


def ratios(runs: dict[int, dict], low: int, high: int) -> dict[str, dict]:
  """Per component, ``time_ratio_{high}x_{low}x`` and ``memory_ratio_{high}x_{low}x``
  (seconds and peak tree RSS at ``high`` over ``low``), beside each scale's raw figures
  (``scales``: ``{"1": {...}, ...}``). Components under ``MIN_RATIO_SECONDS`` at ``low``
  get None ratios.

  Args:
    runs: ``run_scale``'s results by copies.
  """
  nodes = {}
  for copies, run in sorted(runs.items()):
    for node, figures in run["components"].items():
      nodes.setdefault(node, {"scales": {}})["scales"][str(copies)] = figures
  suffix = f"{high}x_{low}x"
  for entry in nodes.values():
    a, b = entry["scales"].get(str(low)), entry["scales"].get(str(high))
    time_ratio = memory_ratio = None
    if a and b and a["seconds"] >= MIN_RATIO_SECONDS:
      time_ratio = round(b["seconds"] / a["seconds"], 3)
      if a["peak_rss_bytes"] and b["peak_rss_bytes"]:
        memory_ratio = round(b["peak_rss_bytes"] / a["peak_rss_bytes"], 3)
    entry[f"time_ratio_{suffix}"] = time_ratio
    entry[f"memory_ratio_{suffix}"] = memory_ratio
  return nodes


def plot(components: dict[str, dict], path: str) -> None:
  """Seconds and peak tree RSS (GiB) against the scale, one line per component that took
  at least ``MIN_RATIO_SECONDS`` at the smallest scale, with the linear-growth line from
  it for the seconds; written to ``path``."""
  import matplotlib

  matplotlib.use("Agg")
  from matplotlib import pyplot as plt

  fig, (time_ax, memory_ax) = plt.subplots(1, 2, figsize=(11, 4.5))
  for node, entry in components.items():
    scales = sorted(int(k) for k in entry["scales"])
    if entry["scales"][str(scales[0])]["seconds"] < MIN_RATIO_SECONDS:
      continue
    seconds = [entry["scales"][str(k)]["seconds"] for k in scales]
    memory = [(entry["scales"][str(k)]["peak_rss_bytes"] or 0) / 2**30 for k in scales]
    (line,) = time_ax.plot(scales, seconds, marker="o", label=node)
    time_ax.plot(scales, [seconds[0] * k / scales[0] for k in scales], ls=":", c=line.get_color())
    memory_ax.plot(scales, memory, marker="o", label=node)
  time_ax.set(xlabel="data (x IMDB)", ylabel="seconds", title="Wall time (dotted: linear)")
  memory_ax.set(xlabel="data (x IMDB)", ylabel="GiB", title="Peak resident memory (tree)")
  memory_ax.set_ylim(bottom=0)
  for ax in (time_ax, memory_ax):
    ax.set_xticks(sorted({int(k) for e in components.values() for k in e["scales"]}))
    ax.grid(alpha=0.3)
  time_ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


@click.command()
@click.option("--out-dir", default="outputs/bench/scale_run", show_default=True)
@click.option(
  "--tfds-data-dir",
  type=click.Path(file_okay=False),
  envvar="TFDS_DATA_DIR",
  default=None,
  help="Where TFDS's imdb_reviews is prepared [default: $TFDS_DATA_DIR].",
)
@click.option(
  "--scale",
  "scales",
  type=click.IntRange(min=1),
  multiple=True,
  default=SCALES,
  show_default=True,
)
@click.option(
  "--run-arg", "run_args", multiple=True, help="Passed to every imdb-tfx run (repeatable)."
)
@click.option(
  "--rerun-node",
  default=None,
  help="Measure only this component again, on every scale of an earlier --out-dir and "
  "--output (after a change to it), and replace its figures there.",
)
@click.option("--output", default="outputs/bench/scale.json", show_default=True)
def main(out_dir, tfds_data_dir, scales, run_args, rerun_node, output):
  """The pipeline at 1x, 2x and 4x the IMDB data, each component timed and its memory
  sampled (module docstring)."""
  from analysis.bench_spans import imdb_tfx_path

  environment.configure()
  if not tfds_data_dir or not os.path.isdir(tfds_data_dir):
    raise click.ClickException("give --tfds-data-dir (or TFDS_DATA_DIR): where imdb_reviews is")
  if rerun_node:
    rerun(rerun_node, tfds_data_dir, out_dir, output, imdb_tfx_path())
    return
  if os.path.exists(out_dir):
    raise click.ClickException(f"{out_dir} exists: remove it, or choose another --out-dir")
  os.makedirs(out_dir)
  runs = {}
  result = {
    "what": "imdb-tfx run (defaults, one Trainer epoch) on IMDB repeated 1x/2x/4x "
    "(analysis.bench_scale)",
    "settings": {
      "run_args": ["--epochs", "1", *run_args],
      "shard_examples": SHARD_EXAMPLES,
      "sample_seconds": SAMPLE_SECONDS,
    },
  }
  for copies in sorted(set(scales)):
    click.echo(f"{copies}x ...")
    runs[copies] = run_scale(copies, tfds_data_dir, out_dir, run_args, imdb_tfx_path())
    runs[copies]["loadavg_at_end"] = os.getloadavg()
    if runs[copies]["exit_status"]:
      raise click.ClickException(f"the {copies}x run failed: see {out_dir}/run-{copies}x.log")
    result["runs"] = {
      str(k): {key: v for key, v in run.items() if key != "components"} for k, run in runs.items()
    }
    result["components"] = all_ratios(runs)
    result["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform()}
    _write(output, result)
  plot(result["components"], os.path.splitext(output)[0] + ".png")
  click.echo(f"written: {output}")


def all_ratios(runs: dict[int, dict]) -> dict[str, dict]:
  """``ratios`` of the largest scale and, with three or more, of the second smallest, to
  the smallest."""
  low = min(runs)
  components = ratios(runs, low, max(runs))
  if len(runs) > 2:
    for node, entry in ratios(runs, low, sorted(runs)[1]).items():
      components[node].update({k: v for k, v in entry.items() if k != "scales"})
  return components


def rerun(node: str, source_data_dir: str, out_dir: str, output: str, executable: str) -> None:
  """``--rerun-node``: ``rerun_node`` at every scale of ``output``; the node's figures
  and ratios replaced there, the rerun listed under ``reruns``, the plot redrawn.

  Raises:
    click.ClickException: no earlier result or outputs, or the node did not run again.
  """
  if not os.path.exists(output) or not os.path.isdir(out_dir):
    raise click.ClickException(f"--rerun-node needs an earlier {output} and {out_dir}")
  with open(output, encoding="utf-8") as f:
    result = json.load(f)
  run_args = result["settings"]["run_args"][2:]  # after "--epochs 1"
  runs = {int(k): {"components": {}} for k in result["runs"]}
  for name, entry in result["components"].items():
    for k, figures in entry["scales"].items():
      runs[int(k)]["components"][name] = figures
  for copies in sorted(runs):
    click.echo(f"{node} at {copies}x ...")
    runs[copies]["components"][node] = rerun_node(
      copies, node, source_data_dir, out_dir, run_args, executable
    )
  result["components"] = all_ratios(runs)
  result.setdefault("reruns", []).append(
    {"node": node, "at": time.strftime("%Y-%m-%dT%H:%M:%S"), "loadavg_at_end": os.getloadavg()}
  )
  _write(output, result)
  plot(result["components"], os.path.splitext(output)[0] + ".png")
  click.echo(f"written: {output}")


def _write(path: str, result: dict) -> None:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "w", encoding="utf-8") as f:
    json.dump(result, f, indent=2)


if __name__ == "__main__":
  main()
