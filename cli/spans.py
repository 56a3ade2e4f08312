"""``imdb-tfx spans make``: span folders cut from TFDS's IMDB reviews, to try continuous
training without reviews of one's own (``components.demo_spans``)."""

import json

import click


def _span_values(pairs: tuple[str, ...], option: str, cast) -> dict[int, object]:
  """``("3:label-skew",)`` -> ``{3: "label-skew"}``.

  Raises:
    click.BadParameter: a pair that is not ``SPAN:VALUE``.
  """
  values = {}
  for pair in pairs:
    span, _, value = pair.partition(":")
    try:
      values[int(span)] = cast(value)
    except ValueError as e:
      raise click.BadParameter(f"expected SPAN:VALUE, got {pair!r}", param_hint=option) from e
  return values


@click.group()
def spans():
  """Span folders of new labelled reviews (the --input-base of imdb-tfx run)."""


@spans.command("make")
@click.option(
  "--out",
  required=True,
  type=click.Path(file_okay=False),
  help="Folder to write span-1/ ... span-N/ into (then imdb-tfx run --input-base).",
)
@click.option(
  "--spans",
  "count",
  type=click.IntRange(min=1),
  default=5,
  show_default=True,
  help="How many spans to deal the reviews into.",
)
@click.option(
  "--split",
  default="train",
  show_default=True,
  help="TFDS imdb_reviews split spec to cut (never the golden test split).",
)
@click.option(
  "--drift",
  multiple=True,
  metavar="SPAN:KIND",
  help="Drift to give a span on purpose (repeatable): label-skew, short-reviews "
  "or foreign-text, e.g. --drift 3:label-skew.",
)
@click.option(
  "--bad-rows",
  multiple=True,
  metavar="SPAN:K",
  help="Bad rows to put among a span's lines (repeatable), e.g. --bad-rows 4:50.",
)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option(
  "--tfds-data-dir",
  type=click.Path(file_okay=False),
  default=None,
  help="TFDS data directory [default: $TFDS_DATA_DIR].",
)
def make(out, count, split, drift, bad_rows, seed, tfds_data_dir):
  """Deal a TFDS split's reviews into span folders of JSON Lines, with optional drift
  and bad rows."""
  from analysis.evaluation import load_reviews
  from components import demo_spans

  if split.split("[")[0].strip() == "test":
    raise click.BadParameter(
      "the test split is the golden set: never train on it", param_hint="--split"
    )
  drifts = _span_values(drift, "--drift", str)
  bad = _span_values(bad_rows, "--bad-rows", int)
  try:
    reviews = [(text, label) for text, label in load_reviews(split, tfds_data_dir)]
    written = demo_spans.make_spans(reviews, out, count, drifts, bad, seed)
  except (ValueError, FileExistsError, FileNotFoundError) as e:
    raise click.ClickException(str(e)) from e
  for span, info in written.items():
    extra = "".join(
      [
        f", drift {drifts[span]}" if span in drifts else "",
        f", {info['bad_rows']} bad rows" if info["bad_rows"] else "",
      ]
    )
    click.echo(
      f"{demo_spans.span_dir(out, span)}: {info['reviews']} reviews, "
      f"{info['positive']} positive{extra}"
    )
  click.echo(json.dumps({"out": out, "spans": len(written)}))
