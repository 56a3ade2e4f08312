"""Command-line options shared by ``imdb-tfx run``, ``schedule airflow`` and
``compile kubeflow``: the three build the same ``create_pipeline()``, so the options that
feed it are declared once, with one meaning and one default."""

import functools
import os
from collections.abc import Callable

import click

from models.hparams import HParams, parse_overrides
from pipeline.layout import (
  DEFAULT_BEHAVIOUR_THRESHOLDS,
  DEFAULT_MAX_LABEL_LINF,
  DEFAULT_MAX_LENGTH_JS,
  DEFAULT_MAX_OOV_INCREASE,
  OutputPaths,
  SpanInput,
)


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


def parse_behaviour_thresholds(pairs: tuple[str, ...]) -> dict[str, float]:
  """The BehaviourValidator's thresholds: ``DEFAULT_BEHAVIOUR_THRESHOLDS`` with each
  ``CAPABILITY=RATE`` of ``--behaviour-threshold`` set over it (``CAPABILITY=none`` drops
  that capability's gate; ``all=none`` drops every default).

  Raises:
    click.BadParameter: a pair without ``=``, a capability the suite does not have, or a
      rate that is not a number in [0, 1].
  """
  from behaviour import suite

  thresholds = dict(DEFAULT_BEHAVIOUR_THRESHOLDS)
  known = [c.name for c in suite.CAPABILITIES]
  for pair in pairs:
    name, sep, value = pair.partition("=")
    name, value = name.strip(), value.strip()
    if not sep:
      raise click.BadParameter(
        f"expected CAPABILITY=RATE, got {pair!r}", param_hint="--behaviour-threshold"
      )
    if name == "all" and value == "none":
      thresholds = {}
      continue
    if name not in known:
      raise click.BadParameter(
        f"no capability {name!r} in the behavioural suite; known: {', '.join(known)}",
        param_hint="--behaviour-threshold",
      )
    if value == "none":
      thresholds.pop(name, None)
      continue
    try:
      rate = float(value)
    except ValueError:
      rate = -1.0
    if not 0.0 <= rate <= 1.0:
      raise click.BadParameter(
        f"the rate of {name} must be a number in [0, 1] or none, got {value!r}",
        param_hint="--behaviour-threshold",
      )
    thresholds[name] = rate
  return thresholds


# --min-accuracy, --max-accuracy-drop: the Evaluator's blessing thresholds;
# --behaviour-threshold: the BehaviourValidator's.
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
  click.option(
    "--behaviour-threshold",
    "behaviour_thresholds",
    multiple=True,
    metavar="CAPABILITY=RATE",
    help="Push only a model failing at most this share of a capability's cases in the "
    "behavioural suite (repeatable; CAPABILITY=none drops a default gate, all=none all of "
    "them). The defaults are in the README.",
  ),
)


# The span options' parameter names, which span_options turns into one ``spans``.
_SPAN_PARAMETERS = (
  "input_base",
  "input_pattern",
  "window_spans",
  "max_rejected_fraction",
  "max_label_linf",
  "max_length_js",
  "max_oov_increase",
  "warm_start",
)

# --input-base and the other span options: new labelled reviews arriving as span folders
# (pipeline.layout.SpanInput). Without --input-base, TFDS's train split is trained on.
_span_click_options = _apply(
  click.option(
    "--input-base",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder of span folders of new labelled reviews (span-1/, span-2/ ..., files .jsonl, "
    ".csv or .tfrecord; see the README). Trains on them instead of TFDS's train split; "
    "TFDS's test split stays the golden set every model is blessed on.",
  ),
  click.option(
    "--input-pattern",
    default="span-{SPAN}/*",
    show_default=True,
    help="A span's files below --input-base: span-{SPAN}/version-{VERSION}/* for re-delivered "
    "spans, {YYYY}-{MM}-{DD}/* for daily folders.",
  ),
  click.option(
    "--window-spans",
    type=click.IntRange(min=1),
    default=None,
    help="Train on the last K spans [default: all of them].",
  ),
  click.option(
    "--max-rejected-fraction",
    type=click.FloatRange(0, 1),
    default=0.01,
    show_default=True,
    help="Stop the run when a span's refused rows (malformed, no or bad label, empty or "
    "non-UTF-8 text) pass this share of its rows.",
  ),
  click.option(
    "--max-label-linf",
    type=click.FloatRange(0, 1, min_open=True),
    default=DEFAULT_MAX_LABEL_LINF,
    show_default=True,
    help="Drift: stop the run before Transform when the share of a label in the new span "
    "moved further than this from the previous span's (L-infinity distance).",
  ),
  click.option(
    "--max-length-js",
    type=click.FloatRange(0, 1, min_open=True),
    default=DEFAULT_MAX_LENGTH_JS,
    show_default=True,
    help="Drift: likewise for the review length histogram (Jensen-Shannon divergence).",
  ),
  click.option(
    "--max-oov-increase",
    type=click.FloatRange(0, 1, min_open=True),
    default=DEFAULT_MAX_OOV_INCREASE,
    show_default=True,
    help="Drift: likewise when the share of the span's words outside the serving model's "
    "vocabulary rose by more than this.",
  ),
  click.option(
    "--warm-start/--no-warm-start",
    default=True,
    show_default=True,
    help="Start training from the serving (latest blessed) model's weights, embedding rows "
    "carried over by token, for --hparam warm_start_epochs epochs; --no-warm-start trains "
    "from scratch every time. No effect until a model was blessed.",
  ),
)


def span_options(command: Callable) -> Callable:
  """Adds the span options to a click command, which receives them as one keyword
  argument, ``spans`` (``span_input``'s SpanInput, or None without ``--input-base``),
  with the command's own ``--span`` when it has one."""

  @functools.wraps(command)
  def with_spans(*args, **kwargs):
    values = {name: kwargs.pop(name) for name in _SPAN_PARAMETERS}
    return command(*args, spans=span_input(**values, span=kwargs.pop("span", None)), **kwargs)

  return _span_click_options(with_spans)


def span_input(
  input_base,
  input_pattern,
  window_spans,
  max_rejected_fraction,
  span=None,
  max_label_linf=DEFAULT_MAX_LABEL_LINF,
  max_length_js=DEFAULT_MAX_LENGTH_JS,
  warm_start=True,
  max_oov_increase=DEFAULT_MAX_OOV_INCREASE,
):
  """The ``pipeline.layout.SpanInput`` of the span options; None without ``--input-base``.

  Raises:
    click.BadParameter: ``--input-base`` is not a folder, or a bad ``--input-pattern``.
  """
  if not input_base:
    return None
  if not os.path.isdir(input_base):
    raise click.BadParameter(f"{input_base} is not a folder", param_hint="--input-base")
  try:
    return SpanInput(
      os.path.abspath(input_base),
      input_pattern,
      span=span,
      window_spans=window_spans,
      max_rejected_fraction=max_rejected_fraction,
      max_label_linf=max_label_linf,
      max_length_js=max_length_js,
      max_oov_increase=max_oov_increase,
      warm_start=warm_start,
    )
  except ValueError as e:
    raise click.BadParameter(str(e), param_hint="--input-pattern") from e


# ``--output-dir`` of the commands that read what runs left there (``history``,
# ``report``).
past_runs_output_dir = click.option(
  "--output-dir",
  default="outputs",
  show_default=True,
  type=click.Path(file_okay=False),
  help="The --output-dir of imdb-tfx run (its metadata.sqlite is read, or the "
  "database server the IMDB_TFX_MLMD_POSTGRES_*/MYSQL_* variables name).",
)


def past_runs_store(output_dir: str):
  """The layout of ``output_dir`` and its ML Metadata connection
  (``pipeline.metadata_store``), a SQLite store checked to exist (checked here: the
  connection would create the file it names).

  Raises:
    click.ClickException: no SQLite store there, naming the path; a bad database
      server environment, naming the variable; a server that cannot be reached or
      refuses the credentials, with libpq's reason.
  """
  from pipeline import metadata_store

  paths = OutputPaths(os.path.abspath(output_dir))
  try:
    config = metadata_store.connection_config(paths.output_dir)
    metadata_store.check_connection(config)
  except (ValueError, ConnectionError) as e:
    raise click.ClickException(str(e)) from e
  if config.HasField("sqlite") and not os.path.exists(paths.metadata_path):
    raise click.ClickException(
      f"no ML Metadata store at {paths.metadata_path}: has imdb-tfx run --output-dir "
      f"{output_dir} run yet?"
    )
  return paths, config
