"""Command-line options shared by ``imdb-tfx run``, ``schedule airflow`` and
``compile kubeflow``: the three build the same ``create_pipeline()``, so the options that
feed it are declared once, with one meaning and one default."""

from collections.abc import Callable

import click

from models.hparams import HParams, parse_overrides


def parse_hparams(pairs: tuple[str, ...]) -> dict[str, object]:
  """``models.hparams.parse_overrides`` for a click command.

  Raises:
    click.BadParameter: a pair without ``=`` (named in the message).
  """
  try:
    return parse_overrides(pairs)
  except ValueError as e:
    raise click.BadParameter(str(e), param_hint="--hparam") from e


def _apply(*decorators: Callable) -> Callable:
  def wrap(command):
    for decorator in reversed(decorators):
      command = decorator(command)
    return command

  return wrap


# --epochs and --hparam KEY=VALUE (repeatable): the Trainer's custom_config.
training_options = _apply(
  click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=HParams.epochs,
    show_default=True,
    help="Maximum epochs (early stopping on eval may stop sooner).",
  ),
  click.option(
    "--hparam",
    "hparams",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override any hyperparameter of models.hparams.HParams (repeatable), "
    "e.g. --hparam max_length=200.",
  ),
)

# --train-split, --test-split, --eval-percent, --unlabelled-split: what ImdbExampleGen reads
# and holds out.
split_options = _apply(
  click.option(
    "--train-split",
    default="train",
    show_default=True,
    help="TFDS split spec for train+eval, e.g. 'train[:2%]'.",
  ),
  click.option(
    "--test-split",
    default="test",
    show_default=True,
    help="TFDS split spec the Evaluator blesses on, e.g. 'test[:2%]'.",
  ),
  click.option(
    "--eval-percent",
    type=click.IntRange(1, 99),
    default=10,
    show_default=True,
    help="Percent of the train split held out as the eval split.",
  ),
  click.option(
    "--unlabelled-split",
    default="unsupervised",
    show_default=True,
    help="TFDS split spec of unlabelled reviews the word2vec pretraining of "
    "the token embedding reads besides train, e.g. 'unsupervised[:2%]'; '' = "
    "train alone. Unused with --hparam word2vec_epochs=0.",
  ),
)

# --min-accuracy, --max-accuracy-drop: the Evaluator's blessing thresholds.
blessing_options = _apply(
  click.option(
    "--min-accuracy",
    type=click.FloatRange(0, 1),
    default=0.85,
    show_default=True,
    help="Blessing threshold: test accuracy must be at least this.",
  ),
  click.option(
    "--max-accuracy-drop",
    type=click.FloatRange(min=0),
    default=0.01,
    show_default=True,
    help="Blessing threshold: at most this far below the last blessed model.",
  ),
)
