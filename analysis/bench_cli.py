"""``python -m analysis.bench_cli``: how long ``imdb-tfx`` takes from the shell.

Measures the wall time (seconds, from starting the process to its exit) of, each
``--repeats`` times:

* ``imdb-tfx --help`` and ``imdb-tfx run --help`` (the command line's start-up);
* ``imdb-tfx predict`` of three reviews against a warm local server: ``imdb-tfx serve``
  runs on ``--model-dir`` (a TF Serving model directory: numeric version subdirectories)
  in a child process, is ready (GetModelStatus) and has answered one Predict request before
  the clock starts, so the figure is the client's start-up plus one request.

The ``imdb-tfx`` executable beside this Python (``<venv>/bin/imdb-tfx``) is run, as a user
runs it. Writes JSON (default ``outputs/bench/cli.json``) with the runs, their
min/median/max, the targets (``--help`` under 1 s, ``predict`` under 3 s, judged on the
slowest run) and the machine. Wall-clock figures depend on the machine and on what else
runs on it.

Imports here are light (no TensorFlow): the server's TensorFlow is loaded in its own
process.
"""

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence

import click

from core import contract, environment
from serving.client import SentimentClient
from serving.server_process import ServerProcess

REVIEWS = (
  "A wonderful, moving film with a great cast. Loved every minute of it.",
  "Dull, slow and far too long; the plot made no sense and the acting was wooden.",
  "Not the best film of the year, but charming and funny enough to recommend.",
)
HELP_TARGET_S = 1.0
PREDICT_TARGET_S = 3.0


def imdb_tfx_executable() -> str:
  """The ``imdb-tfx`` console script installed beside ``sys.executable``.

  Raises:
    click.ClickException: it is not there (the project is not installed in this Python).
  """
  path = os.path.join(os.path.dirname(sys.executable), "imdb-tfx")
  if not os.access(path, os.X_OK):
    raise click.ClickException(
      f"no imdb-tfx executable at {path}: install the project "
      "into this Python (make venv, or pip install -e .)"
    )
  return path


def time_command(argv: Sequence[str], repeats: int) -> dict[str, object]:
  """Runs ``argv`` ``repeats`` times, one after the other, and times each run.

  Returns:
    ``{"runs_s": [wall seconds per run], "min_s", "median_s", "max_s"}``.

  Raises:
    click.ClickException: a run exited with a non-zero status (its stderr is shown).
  """
  runs: list[float] = []
  for _ in range(repeats):
    start = time.perf_counter()
    done = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    runs.append(time.perf_counter() - start)
    if done.returncode != 0:
      raise click.ClickException(
        f"{' '.join(argv)} exited with {done.returncode}:\n{done.stderr[-2000:]}"
      )
  return {
    "runs_s": runs,
    "min_s": min(runs),
    "median_s": statistics.median(runs),
    "max_s": max(runs),
  }


def _has_version(model_dir: str) -> bool:
  return os.path.isdir(model_dir) and any(
    name.isdigit() and os.path.isdir(os.path.join(model_dir, name))
    for name in os.listdir(model_dir)
  )


@click.command()
@click.option(
  "--model-dir",
  default=os.path.join("outputs", "serving_model", contract.MODEL_NAME),
  show_default=True,
  help="TF Serving model directory (numeric version subdirectories) to serve for the predict runs.",
)
@click.option(
  "--repeats",
  type=click.IntRange(min=1),
  default=5,
  show_default=True,
  help="Timed runs of each command.",
)
@click.option(
  "--ready-timeout",
  type=click.FloatRange(min=1),
  default=300.0,
  show_default=True,
  help="Seconds to wait for the server's model.",
)
@click.option(
  "--output",
  type=click.Path(dir_okay=False),
  default=os.path.join("outputs", "bench", "cli.json"),
  show_default=True,
)
def main(model_dir, repeats, ready_timeout, output):
  """Time imdb-tfx --help, run --help and predict (warm local server); write JSON."""
  if not _has_version(model_dir):
    raise click.ClickException(
      f"no served model at {model_dir} (a directory of numeric version "
      "subdirectories): run `make run` to train and push one, or pass --model-dir"
    )
  executable = imdb_tfx_executable()
  log_dir = os.path.dirname(os.path.abspath(output))
  os.makedirs(log_dir, exist_ok=True)
  result: dict[str, object] = {}
  click.echo(f"imdb-tfx --help x{repeats}")
  result["help"] = time_command([executable, "--help"], repeats)
  click.echo(f"imdb-tfx run --help x{repeats}")
  result["run_help"] = time_command([executable, "run", "--help"], repeats)
  server = ServerProcess(
    [
      f"--model_name={contract.MODEL_NAME}",
      f"--model_base_path={os.path.abspath(model_dir)}",
      "--file_system_poll_wait_seconds=0",
    ],
    os.path.join(log_dir, "cli_serve.log"),
    timeout_s=ready_timeout,
  )
  try:
    target = f"127.0.0.1:{server.port}"
    with SentimentClient(target, contract.MODEL_NAME, timeout_s=60) as client:
      client.wait_until_ready(ready_timeout)
      client.predict_text(list(REVIEWS))  # warm-up: the server's first request is slow
    click.echo(f"imdb-tfx predict (3 reviews, warm server at {target}) x{repeats}")
    result["predict"] = time_command(
      [executable, "predict", "--server", target, "--model-name", contract.MODEL_NAME, *REVIEWS],
      repeats,
    )
  finally:
    server.stop()
  result["targets"] = {
    "help_under_1s": result["help"]["max_s"] < HELP_TARGET_S,
    "predict_under_3s": result["predict"]["max_s"] < PREDICT_TARGET_S,
  }
  result["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform()}
  with open(output, "w", encoding="utf-8") as f:
    json.dump(result, f, indent=2)
  click.echo(json.dumps(result, indent=2))
  click.echo(f"written to {output}")


if __name__ == "__main__":
  environment.configure()
  main()
