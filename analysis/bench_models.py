"""``make bench-models``: every model of the family trained through the pipeline, scored on
the official test split, against the seeds' plain-Keras reference.

For each model and seed it runs the pipeline up to the Trainer (``create_pipeline(
last_node="Trainer")``; the data components run once and are cached after that) on the
full train split (90% train, 10% eval for early stopping), then scores the exported
SavedModel's ``predict_text`` on the whole ``test`` split (25,000 reviews) with
``analysis.evaluation.evaluate_saved_model``. From the Trainer's ``training_summary.json`` it
takes seconds per epoch and steady-state training examples/s; it also records parameters,
the exported model's size in bytes and the EmbeddingTrainer's ``pretraining_summary.json``
(the word2vec pretraining runs once per seed: its ``custom_config`` holds no model
setting, so the other models of that seed reuse it from TFX's cache). With ``nb_wide``
it also scores each half of the ensemble alone on the same split
(``analysis.evaluation.evaluate_halves``) and keeps the stacking fitted on eval. In the same
run, ``keras_reference`` trains the default model with plain Keras (no TFX) and its
examples/s is the reference the Trainer's must reach (ratio >= 1.0).

Results are written to ``--output`` (``outputs/bench/models.json``) after every run, and
runs already in that file with the same settings and the same resolved hyperparameters
are not repeated, so an interrupted benchmark resumes, and runs of models or seeds that
an invocation with ``--models`` / ``--seeds`` does not train are kept; a run whose
hyperparameters differ (a changed default, say) is dropped and trained again, and so is
the reference. Changes to the model code itself are not detected: move the file aside to
rerun everything. Wall-clock figures depend on the machine and on what else runs on it.
"""

import json
import os
import platform
import statistics
import time
import types
from collections.abc import Mapping, Sequence
from typing import Any

import click

from core import environment
from models.hparams import MODELS, HParams, parse_overrides

# The targets: mean test accuracy of lstm_attention and of the best model, and the
# Trainer's training throughput relative to the plain-Keras reference.
TARGETS = types.MappingProxyType(
  {"lstm_attention_accuracy": 0.885, "best_accuracy": 0.90, "throughput_ratio": 1.0}
)
# The halves of an nb_wide ensemble scored alone (analysis.evaluation.evaluate_halves).
HALVES = ("attention", "naive_bayes")
# Published from-scratch baselines on the IMDB test split, for the README's table.
BASELINES = types.MappingProxyType(
  {
    "Maas et al. 2011 (word vectors + BoW)": 0.8889,
    "keras-io transformer": 0.875,
    "LSTM + attention (mean)": 0.876,
    "NBSVM-bi (Wang & Manning 2012)": 0.9122,
  }
)


def reusable_runs(
  runs: list[dict[str, Any]], overrides: Mapping[str, Any], epochs: int
) -> list[dict[str, Any]]:
  """The runs of ``runs`` that this benchmark's settings would repeat exactly.

  A run is kept when its recorded hyperparameters (``run["hparams"]``, every HParams
  field) equal ``HParams(**overrides, model=run["model"], seed=run["seed"],
  epochs=epochs)``'s, whether or not this invocation trains that model and seed, so that
  ``--models`` / ``--seeds`` run a part of the benchmark without losing the rest of the
  file. Runs recorded without hyperparameters, of a model no longer offered, or whose
  hyperparameters differ (a default changed since) are left out, to be trained again.
  """
  kept = []
  for run in runs:
    if run.get("hparams") is None or run.get("model") not in MODELS:
      continue
    expected = HParams(
      **{**overrides, "model": run["model"], "seed": run["seed"], "epochs": epochs}
    )
    if expected.to_custom_config()["hparams"] == run["hparams"]:
      kept.append(run)
  return kept


def directory_bytes(path: str) -> int:
  """Total size in bytes of the files under ``path``."""
  return sum(
    os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(path) for name in names
  )


def _mean_std(values: Sequence[float]) -> dict[str, float | None]:
  values = [v for v in values if v is not None]
  if not values:
    return {"mean": None, "std": None}
  return {
    "mean": statistics.fmean(values),
    "std": statistics.stdev(values) if len(values) > 1 else 0.0,
  }


def aggregate(runs: list[dict[str, Any]], reference: dict[str, Any] | None) -> dict[str, Any]:
  """Per-model means and standard deviations (sample std, n-1) over seeds, and the
  targets evaluated.

  Args:
    runs: one dict per (model, seed): ``model``, ``seed``, ``test_accuracy``,
      ``mean_seconds_per_epoch``, ``examples_per_second``, ``parameters``,
      ``export_bytes``, ``epochs``.
    reference: the plain-Keras run (``examples_per_second``), or None.
    With ``nb_wide`` each run also has ``halves_test_accuracy`` (``HALVES`` alone, from
    ``analysis.evaluation.evaluate_halves``): averaged per model, and the best model's
    margin over its better half is the target ``best_model_beats_its_halves``.

  Returns:
    ``{"models": {name: {...}}, "best_model", "targets": {name: {"target", "value",
    "met"}}}``; a target whose value is missing has ``met`` None.
  """
  models: dict[str, Any] = {}
  for name in dict.fromkeys(r["model"] for r in runs):
    mine = [r for r in runs if r["model"] == name]
    accuracy = _mean_std([r["test_accuracy"] for r in mine])
    models[name] = {
      "seeds": [r["seed"] for r in mine],
      "test_accuracy": accuracy,
      "seconds_per_epoch": _mean_std([r["mean_seconds_per_epoch"] for r in mine]),
      "examples_per_second": _mean_std([r["examples_per_second"] for r in mine]),
      "epochs": [r["epochs"] for r in mine],
      "parameters": mine[0]["parameters"],
      "export_bytes": mine[0]["export_bytes"],
    }
    halves = [r.get("halves_test_accuracy") for r in mine]
    if all(halves):
      models[name]["halves_test_accuracy"] = {
        half: _mean_std([h[half] for h in halves]) for half in HALVES
      }
  best = max(models, key=lambda n: models[n]["test_accuracy"]["mean"] or 0.0, default=None)

  def target(name, value):
    return {
      "target": TARGETS[name],
      "value": value,
      "met": None if value is None else value >= TARGETS[name],
    }

  lstm = models.get("lstm_attention", {})
  trainer_speed = (lstm.get("examples_per_second") or {}).get("mean")
  reference_speed = (reference or {}).get("examples_per_second")
  ratio = trainer_speed / reference_speed if trainer_speed and reference_speed else None
  targets = {
    "lstm_attention_accuracy": target(
      "lstm_attention_accuracy", (lstm.get("test_accuracy") or {}).get("mean")
    ),
    "best_accuracy": target(
      "best_accuracy", models[best]["test_accuracy"]["mean"] if best else None
    ),
    "throughput_ratio": target("throughput_ratio", ratio),
  }
  if best and "halves_test_accuracy" in models[best]:
    # An ensemble counts only if it beats each of its halves alone.
    halves = models[best]["halves_test_accuracy"]
    margin = models[best]["test_accuracy"]["mean"] - max(halves[half]["mean"] for half in HALVES)
    targets["best_model_beats_its_halves"] = {
      "target": "> 0 (ensemble - best half)",
      "value": margin,
      "met": margin > 0,
    }
  return {"models": models, "best_model": best, "targets": targets}


def _node_output_uris(
  metadata_path: str, pipeline_name: str, since_ms: int, node_ids: Sequence[str]
) -> dict[str, dict[str, str]]:
  """``{node id: {output key: URI}}`` of the last execution of each of ``node_ids``
  registered since ``since_ms`` (a cached one included), from one MLMD connection.

  Raises:
    RuntimeError: one of those components did not run.
  """
  from ml_metadata import metadata_store
  from tfx import v1 as tfx

  from pipeline import mlmd_queries

  store = metadata_store.MetadataStore(
    tfx.orchestration.metadata.sqlite_metadata_connection_config(metadata_path)
  )
  uris = {}
  for node_id in node_ids:
    executions = mlmd_queries.node_executions(store, pipeline_name, node_id, since_ms)
    if not executions:
      raise RuntimeError(f"the {node_id} did not run")
    outputs = mlmd_queries.execution_outputs(store, executions[-1].id)
    uris[node_id] = {key: artifacts[0].uri for key, artifacts in outputs.items()}
  return uris


def train_through_pipeline(
  hp: HParams, work_dir: str, train_split: str, tfds_data_dir: str | None
) -> dict[str, Any]:
  """Runs the pipeline up to the Trainer with ``hp``; returns the Trainer's
  ``training_summary.json`` plus ``model_dir`` (the exported SavedModel),
  ``pipeline_seconds`` (wall seconds of the whole pipeline call) and, with
  ``hp.pretrains_embeddings``, ``pretraining`` (the EmbeddingTrainer's
  ``pretraining_summary.json``; a cached execution's, when the embeddings were reused)."""

  from tfx import v1 as tfx

  from models import pretraining, throughput
  from pipeline import code_version
  from pipeline import runner as runner_lib
  from pipeline.beam_profiles import default_beam_pipeline_args
  from pipeline.layout import PIPELINE_NAME, OutputPaths
  from pipeline.pipeline import create_pipeline

  paths = OutputPaths(work_dir)
  pipeline = create_pipeline(
    pipeline_root=paths.pipeline_root,
    serving_model_dir=paths.serving_model_dir,
    metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
      paths.metadata_path
    ),
    hparams=hp,
    train_split=train_split,
    tfds_data_dir=tfds_data_dir,
    beam_pipeline_args=default_beam_pipeline_args(),
    last_node="Trainer",
    code_versions=code_version.code_versions(),
  )
  started_ms = int(time.time() * 1000)
  start = time.perf_counter()
  runner_lib.run_pipeline(pipeline, "local", show_progress=False)
  seconds = time.perf_counter() - start
  nodes = ["Trainer"] + (["EmbeddingTrainer"] if hp.pretrains_embeddings else [])
  uris = _node_output_uris(paths.metadata_path, PIPELINE_NAME, started_ms, nodes)
  summary = throughput.read_summary(uris["Trainer"]["model_run"])
  summary["model_dir"] = os.path.join(uris["Trainer"]["model"], "Format-Serving")
  if hp.pretrains_embeddings:
    summary["pretraining"] = throughput.read_summary(
      uris["EmbeddingTrainer"]["pretraining_run"], pretraining.SUMMARY_FILE
    )
  summary["pipeline_seconds"] = round(seconds, 1)
  return summary


def _load(path: str) -> dict[str, Any]:
  if os.path.exists(path):
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  return {}


def _save(path: str, result: dict[str, Any]) -> None:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  temp = path + ".tmp"
  with open(temp, "w", encoding="utf-8") as f:
    json.dump(result, f, indent=2, sort_keys=True)
  os.replace(temp, path)


@click.command()
@click.option(
  "--models",
  "model_names",
  default=",".join(MODELS),
  show_default=True,
  help="Comma-separated models to train.",
)
@click.option(
  "--seeds",
  default="42,7,1234",
  show_default=True,
  help="Comma-separated seeds; every model trains once per seed.",
)
@click.option(
  "--epochs",
  type=click.IntRange(min=1),
  default=HParams.epochs,
  show_default=True,
  help="Maximum epochs (early stopping may stop sooner).",
)
@click.option(
  "--hparam",
  "hparams",
  multiple=True,
  metavar="KEY=VALUE",
  help="Hyperparameter override for every model (repeatable).",
)
@click.option("--train-split", default="train", show_default=True)
@click.option("--test-split", default="test", show_default=True)
@click.option(
  "--reference-steps",
  type=click.IntRange(min=0),
  default=100,
  show_default=True,
  help="Steps the plain-Keras reference is timed for (0 = skip it).",
)
@click.option("--tfds-data-dir", default=None)
@click.option(
  "--work-dir",
  default="outputs/bench/models",
  show_default=True,
  help="Pipeline root and MLMD store of the benchmark's runs.",
)
@click.option("--output", default="outputs/bench/models.json", show_default=True)
def main(
  model_names,
  seeds,
  epochs,
  hparams,
  train_split,
  test_split,
  reference_steps,
  tfds_data_dir,
  work_dir,
  output,
):
  """Train, score and time every model (see the module docstring)."""
  from analysis.evaluation import evaluate_halves, evaluate_saved_model
  from analysis.keras_reference import train_reference

  try:
    overrides = parse_overrides(hparams)
  except ValueError as e:
    raise click.BadParameter(str(e), param_hint="--hparam") from e
  try:
    seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    names = [n.strip() for n in model_names.split(",") if n.strip()]
    configs = [
      HParams(**{**overrides, "model": n, "seed": s, "epochs": epochs})
      for n in names
      for s in seed_list
    ]
  except ValueError as e:
    raise click.ClickException(str(e)) from e
  work_dir = os.path.abspath(work_dir)
  result = _load(output)
  settings = {
    "train_split": train_split,
    "test_split": test_split,
    "epochs": epochs,
    "hparam_overrides": overrides,
  }
  if result.get("settings") != settings:
    result = {"settings": settings, "runs": [], "reference": None}
  result["machine"] = {
    "platform": platform.platform(),
    "cpus": os.cpu_count(),
    "python": platform.python_version(),
  }
  result["baselines"] = dict(BASELINES)

  reference_hp = HParams(**{**overrides, "epochs": 1})
  reference_key = {"steps": reference_steps, "hparams": reference_hp.to_custom_config()["hparams"]}
  reference = result.get("reference") or {}
  if reference_steps and {k: reference.get(k) for k in reference_key} != reference_key:
    click.echo(f"Plain-Keras reference ({reference_hp.model}, {reference_steps} steps)...")
    result["reference"] = {
      **train_reference(reference_hp, tfds_data_dir=tfds_data_dir, steps=reference_steps),
      **reference_key,
    }
    _save(output, result)

  kept = reusable_runs(result["runs"], overrides, epochs)
  if len(kept) < len(result["runs"]):
    click.echo(
      f"Dropping {len(result['runs']) - len(kept)} run(s) of {output} whose "
      "hyperparameters differ from this benchmark's"
    )
    result["runs"] = kept
  done = {(run["model"], run["seed"]) for run in kept}
  for hp in configs:
    if (hp.model, hp.seed) in done:
      click.echo(f"{hp.model} seed {hp.seed}: already in {output}, skipped")
      continue
    click.echo(f"{hp.model} seed {hp.seed}: training through the pipeline...")
    trained = train_through_pipeline(hp, work_dir, train_split, tfds_data_dir)
    if hp.nb_wide:
      # Its "served" accuracy is predict_text's over the same split: one pass, not two.
      halves = evaluate_halves(
        trained["model_dir"], hp, split=test_split, tfds_data_dir=tfds_data_dir
      )
      scored = {"accuracy": halves["accuracy"]["served"], "examples": halves["examples"]}
    else:
      scored = evaluate_saved_model(
        trained["model_dir"], split=test_split, tfds_data_dir=tfds_data_dir
      )
    run = {
      "model": hp.model,
      "seed": hp.seed,
      "attention": hp.attention,
      "hparams": hp.to_custom_config()["hparams"],
      "test_accuracy": scored["accuracy"],
      "test_examples": scored["examples"],
      "epochs": trained["epochs"],
      "seconds_per_epoch": trained["seconds_per_epoch"],
      "mean_seconds_per_epoch": trained["mean_seconds_per_epoch"],
      "examples_per_second": trained["examples_per_second"],
      "parameters": trained["parameters"],
      "export_bytes": directory_bytes(trained["model_dir"]),
      "history": trained["history"],
      "model_dir": trained["model_dir"],
      "pipeline_seconds": trained["pipeline_seconds"],
      "pretraining": trained.get("pretraining"),
    }
    if hp.nb_wide:
      run["halves_test_accuracy"] = halves["accuracy"]
      run["stacking"] = trained.get("stacking")
    result["runs"].append(run)
    result.update(aggregate(result["runs"], result.get("reference")))
    _save(output, result)
    click.echo(
      f"  test accuracy {run['test_accuracy']:.4f}, "
      f"{run['mean_seconds_per_epoch']} s/epoch, "
      f"{run['examples_per_second']} examples/s"
    )
    if hp.nb_wide:
      click.echo(f"  halves alone: {json.dumps(run['halves_test_accuracy'])}")
  result.update(aggregate(result["runs"], result.get("reference")))
  _save(output, result)
  click.echo(json.dumps(result["targets"], indent=2))


if __name__ == "__main__":
  environment.configure()
  main()
