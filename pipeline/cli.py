"""``imdb-tfx``: run the pipeline, or evaluate a pushed model on a TFDS split.

This module is an entry point: it sets ``TF_USE_LEGACY_KERAS=1`` before anything imports
TensorFlow, because tf.Transform 1.16 works only with Keras 2 (``tf_keras``).
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# TensorFlow's C++ INFO/WARNING lines (graph shape notes, oneDNN) drown the progress lines.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import warnings  # pylint: disable=wrong-import-position

# google-cloud-aiplatform (a TFX dependency) warns about Python 3.10 on every import; the
# environment variable carries the filter into Beam's worker processes.
warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\.")
os.environ.setdefault("PYTHONWARNINGS", "ignore::FutureWarning")

import json  # pylint: disable=wrong-import-position
import sys  # pylint: disable=wrong-import-position
from typing import Dict, Optional, Tuple  # pylint: disable=wrong-import-position

import click  # pylint: disable=wrong-import-position

from models.hparams import HParams, MODELS, STRATEGIES  # pylint: disable=wrong-import-position
from pipeline.runner import RUNNERS  # pylint: disable=wrong-import-position


def _parse_hparams(pairs: Tuple[str, ...]) -> Dict[str, object]:
  """``("lstm_units=32", "dropout=0.3")`` -> ``{"lstm_units": 32, "dropout": 0.3}``."""
  parsed = {}
  for pair in pairs:
    if "=" not in pair:
      raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--hparam")
    key, value = pair.split("=", 1)
    try:
      parsed[key] = json.loads(value)
    except json.JSONDecodeError:
      parsed[key] = value
  return parsed


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main():
  """IMDB sentiment TFX pipeline: TFDS -> TFDV -> tf.Transform -> attention model ->
  TFMA blessing -> TF Serving model directory."""


@main.command()
@click.option("--runner", type=click.Choice(RUNNERS), default="local", show_default=True,
              help="Orchestrator: TFX LocalDagRunner or BeamDagRunner.")
@click.option("--beam-arg", "beam_args", multiple=True, metavar="--OPTION=VALUE",
              help="A Beam pipeline option for the Beam-powered components (repeatable); "
              "overrides the DirectRunner defaults (multi_processing, one worker per core).")
@click.option("--model", type=click.Choice(MODELS), default="lstm_attention",
              show_default=True, help="Model builder.")
@click.option("--epochs", type=click.IntRange(min=1), default=HParams.epochs,
              show_default=True, help="Maximum epochs (early stopping on eval may stop sooner).")
@click.option("--strategy", type=click.Choice(STRATEGIES), default="auto", show_default=True,
              help="tf.distribute strategy; auto = TPU if resolvable, Mirrored for >1 GPU, "
              "one GPU, else the default CPU strategy.")
@click.option("--hparam", "hparams", multiple=True, metavar="KEY=VALUE",
              help="Override any hyperparameter of models.hparams.HParams (repeatable), "
              "e.g. --hparam max_length=200.")
@click.option("--train-split", default="train", show_default=True,
              help="TFDS split spec for train+eval, e.g. 'train[:2%]'.")
@click.option("--test-split", default="test", show_default=True,
              help="TFDS split spec the Evaluator blesses on, e.g. 'test[:2%]'.")
@click.option("--eval-percent", type=click.IntRange(1, 99), default=10, show_default=True,
              help="Percent of the train split held out as the eval split.")
@click.option("--tfds-data-dir", type=click.Path(file_okay=False), default=None,
              help="TFDS data directory [default: $TFDS_DATA_DIR, else ~/tensorflow_datasets].")
@click.option("--download/--no-download", default=False, show_default=True,
              help="Let TFDS download imdb_reviews when it is not prepared.")
@click.option("--schema-path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Curated schema.pbtxt to import instead of inferring one "
              "(pipeline/schema/schema.pbtxt is the checked-in one).")
@click.option("--min-accuracy", type=click.FloatRange(0, 1), default=0.85, show_default=True,
              help="Blessing threshold: test accuracy must be at least this.")
@click.option("--max-accuracy-drop", type=click.FloatRange(min=0), default=0.01,
              show_default=True,
              help="Blessing threshold: at most this far below the last blessed model.")
@click.option("--output-dir", type=click.Path(file_okay=False), default="outputs",
              show_default=True,
              help="Holds metadata.sqlite, pipeline_root/, serving_model/imdb_sentiment/.")
@click.option("--no-cache", is_flag=True, help="Re-run every component instead of reusing "
              "cached executions.")
@click.option("--quiet", is_flag=True, help="No per-component progress lines.")
def run(runner, beam_args, model, epochs, strategy, hparams, train_split, test_split,
        eval_percent, tfds_data_dir, download, schema_path, min_accuracy, max_accuracy_drop,
        output_dir, no_cache, quiet):
  """Run the whole pipeline and push a blessed model to the serving directory."""
  from components.imdb_example_gen import prepare_builder  # pylint: disable=import-outside-toplevel
  from pipeline import runner as runner_lib  # pylint: disable=import-outside-toplevel
  from pipeline.pipeline import create_pipeline  # pylint: disable=import-outside-toplevel
  from tfx import v1 as tfx  # pylint: disable=import-outside-toplevel

  overrides = {"model": model, "epochs": epochs, "strategy": strategy,
               **_parse_hparams(hparams)}
  try:
    hp = HParams.from_custom_config({"hparams": overrides})
    # Fail before anything is written when the data is missing or a split spec is bad.
    prepare_builder(tfds_data_dir, train_split, test_split, download)
  except (ValueError, FileNotFoundError) as e:
    raise click.ClickException(str(e)) from e

  paths = runner_lib.OutputPaths(os.path.abspath(output_dir))
  os.makedirs(paths.output_dir, exist_ok=True)
  pipeline = create_pipeline(
      pipeline_root=paths.pipeline_root, serving_model_dir=paths.serving_model_dir,
      metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
          paths.metadata_path),
      hparams=hp, train_split=train_split, test_split=test_split, eval_percent=eval_percent,
      tfds_data_dir=os.path.abspath(tfds_data_dir) if tfds_data_dir else None,
      download=download, schema_path=os.path.abspath(schema_path) if schema_path else None,
      min_accuracy=min_accuracy, max_accuracy_drop=max_accuracy_drop,
      beam_pipeline_args=runner_lib.merge_beam_args(
          runner_lib.default_beam_pipeline_args(), beam_args),
      enable_cache=not no_cache)
  result = runner_lib.run_pipeline(pipeline, runner, show_progress=not quiet)
  with open(paths.summary_path, "w", encoding="utf-8") as f:
    f.write(result.to_json())
  click.echo(result.format())
  click.echo(f"Summary written to {paths.summary_path}")


@main.command()
@click.option("--model-dir", type=click.Path(exists=True, file_okay=False),
              default=os.path.join("outputs", "serving_model", "imdb_sentiment"),
              show_default=True,
              help="A SavedModel, or a TF Serving model directory (its latest version is used).")
@click.option("--split", default="test", show_default=True, help="TFDS split spec to score.")
@click.option("--tfds-data-dir", type=click.Path(file_okay=False), default=None,
              help="TFDS data directory [default: $TFDS_DATA_DIR].")
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def evaluate(model_dir, split, tfds_data_dir, batch_size, as_json):
  """Score a pushed model's predict_text signature on a TFDS imdb_reviews split."""
  from models import evaluation  # pylint: disable=import-outside-toplevel
  try:
    result = evaluation.evaluate_saved_model(model_dir, split, tfds_data_dir, batch_size)
  except (ValueError, FileNotFoundError) as e:
    raise click.ClickException(str(e)) from e
  if as_json:
    click.echo(json.dumps(result, indent=2))
  else:
    click.echo(f"{result['model_path']}: accuracy {result['accuracy']:.4f} on "
               f"{result['examples']} examples of '{split}' "
               f"({result['examples_per_second']:.0f} examples/s)")


if __name__ == "__main__":
  sys.exit(main())
