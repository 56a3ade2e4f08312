"""``python -m analysis.bench_spans``: continuous training on spans, measured, and what the
warm start buys.

Runs, as a user would from the shell (``imdb-tfx`` beside this Python):

1. ``imdb-tfx spans make --spans N`` on ``--split`` (TFDS's train split by default), and
   two more spans after them cut from ``--extra-split``: span N+1 with its labels skewed
   (``--drift 1:label-skew``), span N+2 with ``--bad-rows-percent`` % bad rows;
2. ``imdb-tfx run --input-base ... --span s`` for s = 1..N, each warm-started from the
   model the previous run pushed;
3. the two extra spans, each of which must stop before Transform (exit status 1);
4. a full retrain of span N's window without warm start (``--no-warm-start --span N``),
   in the same store, then of each earlier warm run's window {1..s} in a store of its own
   (``window_retrains``): the same windows, the same golden test split, so their Trainer
   times and accuracies set each warm start's against a retrain.

Writes JSON (default ``outputs/bench/spans.json``): per run its span, exit status, wall
seconds, each component's seconds (``run_summary.json``), golden-test and newest-span
accuracy, blessing, pushed version and the Trainer's warm start and epochs
(``training_summary.json``); the retrains (``full_retrain``: span N's;
``window_retrains``: spans 2..N-1) and each warm start against its retrain
(``warm_vs_retrain``),
then ``imdb-tfx history --json``'s records and the machine.
Wall-clock figures depend on the machine and what else runs on it.
"""

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence

import click

from core import environment

TRAINER_RUNS = os.path.join("pipeline_root", "Trainer", "model_run")


def imdb_tfx_path() -> str:
  """The ``imdb-tfx`` console script beside this Python."""
  return os.path.join(os.path.dirname(sys.executable), "imdb-tfx")


def imdb_tfx(*args: str, log) -> tuple[int, float]:
  """Runs ``imdb-tfx args`` (beside ``sys.executable``), its output appended to ``log``.

  Returns:
    ``(exit status, wall seconds)``.
  """
  executable = imdb_tfx_path()
  log.write(f"\n$ imdb-tfx {' '.join(args)}\n")
  log.flush()
  started = time.monotonic()
  status = subprocess.run([executable, *args], stdout=log, stderr=subprocess.STDOUT).returncode
  return status, round(time.monotonic() - started, 1)


def make_spans(
  spans_dir: str, n: int, split: str, extra_split: str, bad_rows: int, seed: int, log
) -> None:
  """``spans make`` of N ordinary spans, then the drifted span N+1 and the bad-rows span
  N+2 (cut from ``extra_split`` and renamed after the ordinary ones).

  Raises:
    click.ClickException: ``spans make`` failed.
  """
  extra_dir = spans_dir + "-extra"
  for args in (
    ("--out", spans_dir, "--spans", str(n), "--split", split),
    (
      "--out",
      extra_dir,
      "--spans",
      "2",
      "--split",
      extra_split,
      "--drift",
      "1:label-skew",
      "--bad-rows",
      f"2:{bad_rows}",
    ),
  ):
    status, _ = imdb_tfx("spans", "make", *args, "--seed", str(seed), log=log)
    if status:
      raise click.ClickException(f"imdb-tfx spans make {' '.join(args)} failed (see the log)")
  for i in (1, 2):
    os.rename(os.path.join(extra_dir, f"span-{i}"), os.path.join(spans_dir, f"span-{n + i}"))
  shutil.rmtree(extra_dir)


def newest_training_summary(output_dir: str, after: float) -> dict | None:
  """The ``training_summary.json`` of the Trainer execution written after ``after``
  (seconds since the epoch), or None (the Trainer did not run)."""
  root = os.path.join(output_dir, TRAINER_RUNS)
  if not os.path.isdir(root):
    return None
  runs = [os.path.join(root, d) for d in os.listdir(root)]
  runs = [r for r in runs if os.path.getmtime(r) >= after]
  for run in sorted(runs, key=os.path.getmtime, reverse=True):
    path = os.path.join(run, "training_summary.json")
    if os.path.exists(path):
      with open(path) as f:
        return json.load(f)
  return None


def run_span(output_dir: str, spans_dir: str, span: int, run_args: Sequence[str], log) -> dict:
  """One ``imdb-tfx run`` of ``span``; what it did (module docstring)."""
  started = time.time()
  summary_path = os.path.join(output_dir, "run_summary.json")
  if os.path.exists(summary_path):
    os.remove(summary_path)
  status, seconds = imdb_tfx(
    "run",
    "--input-base",
    spans_dir,
    "--span",
    str(span),
    "--output-dir",
    output_dir,
    *run_args,
    log=log,
  )
  record = {
    "span": span,
    "args": list(run_args),
    "exit_status": status,
    "wall_seconds": seconds,
    # The machine's 1-, 5- and 15-minute load averages when the run ended.
    "loadavg": os.getloadavg(),
  }
  if os.path.exists(summary_path):
    with open(summary_path) as f:
      summary = json.load(f)
    record["components"] = {c["node_id"]: c["seconds"] for c in summary["components"]}
    record["states"] = {c["node_id"]: c["state"] for c in summary["components"]}
    record["golden_accuracy"] = summary["metrics"].get("binary_accuracy")
    record["newest_span_accuracy"] = summary.get("span_metrics", {}).get("binary_accuracy")
    record["blessed"] = summary["blessed"]
    record["pushed_path"] = summary["pushed_path"]
  training = newest_training_summary(output_dir, started)
  if training:
    record["trainer"] = {
      key: training.get(key)
      for key in ("epochs", "seconds_per_epoch", "examples_per_second", "warm_start")
    }
  return record


@click.command()
@click.option("--out-dir", default="outputs/bench/spans_run", show_default=True)
@click.option("--spans", "n", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--split", default="train", show_default=True)
@click.option("--extra-split", default="train[:8%]", show_default=True)
@click.option("--bad-rows-percent", type=click.FloatRange(0, 100), default=2.0, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option(
  "--run-arg", "run_args", multiple=True, help="Passed to every imdb-tfx run (repeatable)."
)
@click.option("--output", default="outputs/bench/spans.json", show_default=True)
@click.option(
  "--resume",
  is_flag=True,
  help="Go on with an interrupted benchmark: keep --out-dir and the runs --output holds.",
)
def main(out_dir, n, split, extra_split, bad_rows_percent, seed, run_args, output, resume):
  """Continuous training on N spans, a drifted and a bad span, and full retrains."""
  environment.configure()
  result = {"spans": n, "split": split, "run_args": list(run_args), "runs": []}
  if resume:
    result = _resumed(out_dir, output, result)
  elif os.path.exists(out_dir):
    raise click.ClickException(f"{out_dir} exists: give a new --out-dir (or --resume)")
  os.makedirs(out_dir, exist_ok=True)
  spans_dir, output_dir = os.path.join(out_dir, "spans"), os.path.join(out_dir, "outputs")
  with open(os.path.join(out_dir, "bench.log"), "a") as log:
    if "bad_rows" not in result:
      # Half the extra span's reviews, times the share: bad rows of span N+2.
      extra_reviews = _reviews_in(extra_split) // 2
      bad_rows = max(1, round(extra_reviews * bad_rows_percent / 100))
      make_spans(spans_dir, n, split, extra_split, bad_rows, seed, log)
      result["bad_rows"] = {"span": n + 2, "rows": bad_rows, "of_about": extra_reviews}
    for span in range(len(result["runs"]) + 1, n + 3):
      result["runs"].append(run_span(output_dir, spans_dir, span, run_args, log))
      _write(output, result)
    if "full_retrain" not in result:
      result["full_retrain"] = run_span(
        output_dir, spans_dir, n, [*run_args, "--no-warm-start"], log
      )
      _write(output, result)
    window_retrains(out_dir, spans_dir, n, run_args, result, output, log)
    result["warm_vs_retrain"] = []
    for retrain in [*result["window_retrains"], result["full_retrain"]]:
      try:
        result["warm_vs_retrain"].append(
          warm_vs_retrain(result["runs"][retrain["span"] - 1], retrain)
        )
      except ValueError as e:  # recorded; the runs' records are what was measured
        result["warm_vs_retrain"].append({"span": retrain["span"], "error": str(e)})
    shown = subprocess.run(
      [imdb_tfx_path(), "history", "--json", "--output-dir", output_dir],
      capture_output=True,
      text=True,
    )
    result["history"] = [json.loads(line) for line in shown.stdout.splitlines() if line[:1] == "{"]
  result["machine"] = {
    "cpus": os.cpu_count(),
    "platform": platform.platform(),
    "loadavg_at_end": os.getloadavg(),
  }
  _write(output, result)
  click.echo(f"wrote {output}")


def window_retrains(
  out_dir: str, spans_dir: str, n: int, run_args: Sequence[str], result: dict, output: str, log
) -> None:
  """Full retrains of the windows {1..s}, s = 2..N-1, in a store of their own
  (``<out_dir>/retrain_outputs``), into ``result["window_retrains"]``.

  A retrain cannot share the warm runs' store: every run there trains on all the spans
  published so far, so after span N a run of ``--span s`` is span N's window again. The
  retrain store ingests span 1 alone (``--until DriftGate``), then runs ``--span s
  --no-warm-start`` for s = 2, 3, ...: each trains from scratch on the window {1..s},
  with the same spans, vocabulary analysis, word2vec corpus and golden test split as the
  warm run of span s. Records already in ``result`` (``--resume``) are kept.
  """
  retrain_dir = os.path.join(out_dir, "retrain_outputs")
  done = {r["span"] for r in result.setdefault("window_retrains", [])}
  for span in range(2, n):
    if span in done:
      continue
    if span == 2 or not os.path.exists(retrain_dir):
      shutil.rmtree(retrain_dir, ignore_errors=True)
      for earlier in range(1, span):
        ingested = run_span(
          retrain_dir, spans_dir, earlier, [*run_args, "--until", "DriftGate"], log
        )
        if ingested["exit_status"]:
          raise click.ClickException(f"ingesting span {earlier} for the retrains failed")
    retrain = run_span(retrain_dir, spans_dir, span, [*run_args, "--no-warm-start"], log)
    result["window_retrains"].append(retrain)
    _write(output, result)


def _resumed(out_dir: str, output: str, fresh: dict) -> dict:
  """The interrupted benchmark's record in ``output``, for ``--resume``.

  Raises:
    click.ClickException: no such record or folder, or it measured other spans or
      arguments.
  """
  if not (os.path.exists(out_dir) and os.path.exists(output)):
    raise click.ClickException(f"--resume needs {out_dir} and {output} of an earlier run")
  with open(output) as f:
    result = json.load(f)
  mismatched = [k for k in ("spans", "split", "run_args") if result.get(k) != fresh[k]]
  if mismatched:
    raise click.ClickException(f"{output} measured other {', '.join(mismatched)}: not resumed")
  return result


def warm_vs_retrain(warm: dict, retrain: dict) -> dict:
  """What the warm start of a span's run bought against the full retrain of the same
  window: both runs' Trainer seconds (the component's wall time, as
  ``run_summary.json`` records it), ``trainer_time_ratio`` = warm / retrain (the
  continuous-training issue asks <= 0.5), both runs' epochs and golden-test accuracies.

  Args:
    warm, retrain: ``run_span`` records.

  Raises:
    ValueError: either run recorded no Trainer time (it stopped before training, or the
      Trainer was cached).
  """
  runs = {"warm": warm, "retrain": retrain}
  seconds = {name: (run.get("components") or {}).get("Trainer") for name, run in runs.items()}
  for name, run in runs.items():
    if not seconds[name]:
      raise ValueError(f"the {name} run (span {run.get('span')}) recorded no Trainer time")
  return {
    "span": warm.get("span"),
    "trainer_seconds": seconds,
    "trainer_time_ratio": round(seconds["warm"] / seconds["retrain"], 3),
    "epochs": {name: (run.get("trainer") or {}).get("epochs") for name, run in runs.items()},
    "golden_accuracy": {name: run.get("golden_accuracy") for name, run in runs.items()},
  }


def _reviews_in(split: str) -> int:
  """Reviews in a TFDS ``imdb_reviews`` split spec (from TFDS's metadata; nothing read)."""
  import tensorflow_datasets as tfds

  builder = tfds.builder("imdb_reviews", data_dir=os.environ.get("TFDS_DATA_DIR"))
  return builder.info.splits[split].num_examples


def _write(path: str, result: dict) -> None:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "w") as f:
    json.dump(result, f, indent=2)


if __name__ == "__main__":
  main()
