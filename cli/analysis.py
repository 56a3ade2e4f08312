"""``imdb-tfx evaluate`` and ``imdb-tfx explain``: look at a pushed model outside TFX."""

import json
import os

import click

from pipeline import layout


@click.command()
@click.option(
  "--model-dir",
  type=click.Path(exists=True, file_okay=False),
  default=layout.OutputPaths().serving_model_dir,
  show_default=True,
  help="A SavedModel, or a TF Serving model directory (its latest version is used).",
)
@click.option("--split", default="test", show_default=True, help="TFDS split spec to score.")
@click.option(
  "--tfds-data-dir",
  type=click.Path(file_okay=False),
  default=None,
  help="TFDS data directory [default: $TFDS_DATA_DIR].",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def evaluate(model_dir, split, tfds_data_dir, batch_size, as_json):
  """Score a pushed model's predict_text signature on a TFDS imdb_reviews split."""
  from analysis import evaluation

  try:
    result = evaluation.evaluate_saved_model(model_dir, split, tfds_data_dir, batch_size)
  except (ValueError, FileNotFoundError) as e:
    raise click.ClickException(str(e)) from e
  if as_json:
    click.echo(json.dumps(result, indent=2))
  else:
    click.echo(
      f"{result['model_path']}: accuracy {result['accuracy']:.4f} on "
      f"{result['examples']} examples of '{split}' "
      f"({result['examples_per_second']:.0f} examples/s)"
    )


@click.command()
@click.argument("reviews", nargs=-1)
@click.option(
  "--model-dir",
  type=click.Path(exists=True, file_okay=False),
  default=layout.OutputPaths().serving_model_dir,
  show_default=True,
  help="A SavedModel, or a TF Serving model directory (its latest version is used).",
)
@click.option(
  "--from-split",
  default=None,
  metavar="SPLIT",
  help="Also explain the reviews of this TFDS imdb_reviews split spec, e.g. 'test[:2]'.",
)
@click.option(
  "--tfds-data-dir",
  type=click.Path(file_okay=False),
  default=None,
  help="TFDS data directory for --from-split [default: $TFDS_DATA_DIR].",
)
@click.option(
  "--output-dir",
  type=click.Path(file_okay=False),
  default=os.path.join("outputs", "explain"),
  show_default=True,
  help="Where review_<i>.png and review_<i>.html are written.",
)
@click.option(
  "--top",
  type=click.IntRange(min=1),
  default=8,
  show_default=True,
  help="Most attended words to print per review.",
)
def explain(reviews, model_dir, from_split, tfds_data_dir, output_dir, top):
  """Render the attention over each review's words as a PNG heatmap and an HTML page."""
  from analysis import explain as explain_lib

  reviews = list(reviews)
  try:
    if from_split:
      from analysis.evaluation import load_reviews

      reviews += [text for text, _ in load_reviews(from_split, tfds_data_dir)]
    if not reviews:
      raise ValueError("give a review text, or --from-split")
    explanations = explain_lib.explain(model_dir, reviews)
  except (ValueError, FileNotFoundError) as e:
    raise click.ClickException(str(e)) from e
  paths = explain_lib.write_explanations(explanations, output_dir)
  for i, e in enumerate(explanations):
    words = ", ".join(f"{t} {w:.3f}" for t, w in e.top_tokens(top))
    click.echo(f"[{i}] {e.sentiment} ({e.probability:.3f}): {words}")
    click.echo(f"    {paths[2 * i]}\n    {paths[2 * i + 1]}")
