"""``make bench-serving``: latency and throughput of the served model over gRPC.

Measures, on this machine, against one pushed model version:

* the in-process reference: ``predict_text`` called directly on the SavedModel
  (``tf.saved_model.load``) with one review, p50/p99 in milliseconds;
* ``imdb-tfx serve`` (a separate process, as a real deployment) without and with
  server-side batching (``deploy/batching_parameters.txt``): one review per Predict
  request on ``predict_text``, at concurrency 1, 8 and 32 for ``--seconds`` each, giving
  p50/p99 latency (ms), throughput (requests/s = reviews/s) and errors;
* a ``--load-seconds`` load at concurrency 32 on the batched server, counting errors.

Writes everything to a JSON file (default ``outputs/bench/serving.json``) with the
targets of the serving issue evaluated: served p50 at concurrency 1 within 1.5x of the
in-process p50; batched throughput at concurrency 32 at least 2x the unbatched one; zero
errors under the load. Wall-clock figures depend on the machine and on what else runs.
"""

import json
import os
import platform
import threading
import time
from collections.abc import Sequence

import click
import numpy as np

from core import contract, environment
from serving.client import SentimentClient, ServingRequestError
from serving.server_process import ServerProcess

MODEL_NAME = contract.MODEL_NAME


def latency_summary(latencies_s: Sequence[float]) -> dict[str, float]:
  """p50/p90/p99/mean of latencies given in seconds, reported in milliseconds."""
  if not latencies_s:
    return {
      "p50_ms": float("nan"),
      "p90_ms": float("nan"),
      "p99_ms": float("nan"),
      "mean_ms": float("nan"),
    }
  ms = np.asarray(latencies_s) * 1000.0
  return {
    "p50_ms": float(np.percentile(ms, 50)),
    "p90_ms": float(np.percentile(ms, 90)),
    "p99_ms": float(np.percentile(ms, 99)),
    "mean_ms": float(ms.mean()),
  }


def run_load(
  target: str,
  reviews: Sequence[str],
  concurrency: int,
  seconds: float,
  model_name: str = MODEL_NAME,
) -> dict[str, object]:
  """``concurrency`` threads, each with its own channel, send one-review Predict requests
  on ``predict_text`` back to back for ``seconds``.

  Returns:
    ``{"concurrency", "seconds", "requests", "errors", "error_codes",
    "throughput_rps", p50_ms, p90_ms, p99_ms, mean_ms}``; throughput counts successful
    requests per second of wall time.
  """
  latencies: list[list[float]] = [[] for _ in range(concurrency)]
  error_codes: dict[str, int] = {}
  lock = threading.Lock()
  start_barrier = threading.Barrier(concurrency + 1)
  stop_at = [0.0]

  def worker(i: int) -> None:
    with SentimentClient(target, model_name, retries=0, timeout_s=30) as client:
      client.predict_text(reviews[i % len(reviews)])  # connect before the clock starts
      start_barrier.wait()
      n = i
      while time.perf_counter() < stop_at[0]:
        review = reviews[n % len(reviews)]
        n += concurrency
        t0 = time.perf_counter()
        try:
          client.predict_text(review)
          latencies[i].append(time.perf_counter() - t0)
        except ServingRequestError as e:
          with lock:
            error_codes[e.code.name] = error_codes.get(e.code.name, 0) + 1

  threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
  for thread in threads:
    thread.start()
  stop_at[0] = time.perf_counter() + 3600  # placeholder until every worker is connected
  start_barrier.wait()
  began = time.perf_counter()
  stop_at[0] = began + seconds
  for thread in threads:
    thread.join()
  elapsed = time.perf_counter() - began
  flat = [x for per_thread in latencies for x in per_thread]
  return {
    "concurrency": concurrency,
    "seconds": round(elapsed, 3),
    "requests": len(flat),
    "errors": sum(error_codes.values()),
    "error_codes": error_codes,
    "throughput_rps": len(flat) / elapsed,
    **latency_summary(flat),
  }


def in_process_latency(version_dir: str, reviews: Sequence[str], calls: int) -> dict[str, float]:
  """p50/p99 of ``predict_text`` on one review, called directly on the SavedModel."""
  import tensorflow as tf

  predict = tf.saved_model.load(version_dir).signatures["predict_text"]
  for review in reviews[:5]:  # the first calls build the runtime function
    predict(text=tf.constant([review]))
  latencies = []
  for i in range(calls):
    text = tf.constant([reviews[i % len(reviews)]])
    t0 = time.perf_counter()
    predict(text=text)["probabilities"].numpy()
    latencies.append(time.perf_counter() - t0)
  return {"calls": calls, **latency_summary(latencies)}


def bench_reviews(tfds_data_dir: str | None, count: int = 256) -> list[str]:
  """Reviews to send: the first ``count`` of TFDS ``train`` when it is prepared (never the
  test split), else the warmup samples."""
  try:
    import tensorflow_datasets as tfds

    dataset = tfds.load(
      "imdb_reviews", split=f"train[:{count}]", data_dir=tfds_data_dir, download=False
    )
    return [ex["text"].decode("utf-8") for ex in tfds.as_numpy(dataset)]
  except Exception:
    from core import warmup

    return list(warmup.SAMPLE_REVIEWS)


@click.command()
@click.option(
  "--model-dir",
  type=click.Path(exists=True, file_okay=False),
  default=os.path.join("outputs", "serving_model", MODEL_NAME),
  show_default=True,
  help="TF Serving model directory (its latest version is benchmarked).",
)
@click.option(
  "--batching-parameters",
  type=click.Path(exists=True, dir_okay=False),
  default=os.path.join("deploy", "batching_parameters.txt"),
  show_default=True,
)
@click.option(
  "--seconds",
  type=click.FloatRange(min=1),
  default=15.0,
  show_default=True,
  help="Length of each concurrency measurement.",
)
@click.option(
  "--load-seconds",
  type=click.FloatRange(min=1),
  default=60.0,
  show_default=True,
  help="Length of the concurrency-32 load on the batched server.",
)
@click.option("--in-process-calls", type=click.IntRange(min=10), default=200, show_default=True)
@click.option("--tfds-data-dir", default=None, help="[default: $TFDS_DATA_DIR]")
@click.option(
  "--output",
  type=click.Path(dir_okay=False),
  default=os.path.join("outputs", "bench", "serving.json"),
  show_default=True,
)
def main(
  model_dir, batching_parameters, seconds, load_seconds, in_process_calls, tfds_data_dir, output
):
  """Benchmark imdb-tfx serve against the in-process model call; write JSON."""
  from analysis.evaluation import latest_version_dir

  version_dir = latest_version_dir(model_dir)
  reviews = bench_reviews(tfds_data_dir)
  log_dir = os.path.dirname(os.path.abspath(output))
  os.makedirs(log_dir, exist_ok=True)
  result = {
    "machine": {
      "cpus": os.cpu_count(),
      "platform": platform.platform(),
      "python": platform.python_version(),
    },
    "model": {
      "version_dir": os.path.abspath(version_dir),
      "reviews": len(reviews),
      "mean_review_chars": float(np.mean([len(r) for r in reviews])),
    },
    "settings": {
      "seconds": seconds,
      "load_seconds": load_seconds,
      "batching_parameters": batching_parameters,
    },
  }
  click.echo(f"in-process reference: {in_process_calls} calls")
  result["in_process"] = in_process_latency(version_dir, reviews, in_process_calls)
  click.echo(f"  p50 {result['in_process']['p50_ms']:.1f} ms")
  base_args = [
    f"--model_name={MODEL_NAME}",
    f"--model_base_path={os.path.dirname(os.path.abspath(version_dir))}",
    "--file_system_poll_wait_seconds=0",
  ]
  for mode, extra in (
    ("unbatched", []),
    ("batched", ["--enable_batching", f"--batching_parameters_file={batching_parameters}"]),
  ):
    server = ServerProcess(base_args + extra, os.path.join(log_dir, f"serve_{mode}.log"))
    try:
      target = f"127.0.0.1:{server.port}"
      SentimentClient(target, MODEL_NAME).wait_until_ready(120)
      result[mode] = {}
      for concurrency in (1, 8, 32):
        stats = run_load(target, reviews, concurrency, seconds)
        result[mode][str(concurrency)] = stats
        click.echo(
          f"{mode} c={concurrency}: {stats['throughput_rps']:.1f} req/s, p50 "
          f"{stats['p50_ms']:.1f} ms, p99 {stats['p99_ms']:.1f} ms, "
          f"{stats['errors']} errors"
        )
      if mode == "batched":
        result["load"] = run_load(target, reviews, 32, load_seconds)
        click.echo(
          f"load c=32 {load_seconds:.0f} s: {result['load']['requests']} requests, "
          f"{result['load']['errors']} errors"
        )
    finally:
      server.stop()
  p50_ratio = result["unbatched"]["1"]["p50_ms"] / result["in_process"]["p50_ms"]
  speedup = result["batched"]["32"]["throughput_rps"] / result["unbatched"]["32"]["throughput_rps"]
  result["targets"] = {
    "served_p50_over_in_process_p50": p50_ratio,
    "served_p50_within_1_5x": p50_ratio <= 1.5,
    "batched_over_unbatched_throughput_c32": speedup,
    "batched_throughput_at_least_2x": speedup >= 2.0,
    "load_errors": result["load"]["errors"],
    "zero_errors_under_load": result["load"]["errors"] == 0,
  }
  with open(output, "w", encoding="utf-8") as f:
    json.dump(result, f, indent=2)
  click.echo(json.dumps(result["targets"], indent=2))
  click.echo(f"written to {output}")


if __name__ == "__main__":
  environment.configure()
  main()
