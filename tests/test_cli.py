"""Unit tests of the imdb-tfx command line (cli.main), without running the pipeline."""

import os
import re

import click
import pytest
from click.testing import CliRunner

from cli import main as cli
from cli.options import parse_behaviour_thresholds, parse_hparams
from pipeline.layout import DEFAULT_BEHAVIOUR_THRESHOLDS

RUN_OPTIONS = [
  "--runner",
  "--beam-arg",
  "--model",
  "--epochs",
  "--train-split",
  "--test-split",
  "--output-dir",
  "--no-cache",
  "--tfds-data-dir",
  "--strategy",
  "--hparam",
  "--schema-path",
  "--min-accuracy",
  "--max-accuracy-drop",
  "--eval-percent",
  "--unlabelled-split",
  "--download",
  "--quiet",
]


@pytest.fixture
def runner():
  return CliRunner()


def test_main_help_lists_commands(runner):
  result = runner.invoke(cli.main, ["--help"])
  assert result.exit_code == 0
  assert "run" in result.output and "evaluate" in result.output


def test_run_help_lists_every_option(runner):
  result = runner.invoke(cli.main, ["run", "--help"])
  assert result.exit_code == 0, result.output
  for option in RUN_OPTIONS:
    assert option in result.output, option
  assert "lstm_attention" in result.output
  for runner_name in ("local", "beam"):
    assert runner_name in result.output


def test_run_missing_dataset_fails_before_writing(runner, tmp_path):
  empty = tmp_path / "empty_tfds"
  empty.mkdir()
  out = tmp_path / "out"
  result = runner.invoke(cli.main, ["run", "--tfds-data-dir", str(empty), "--output-dir", str(out)])
  assert result.exit_code != 0
  assert str(empty) in result.output
  assert "--download" in result.output
  assert not out.exists()
  assert os.listdir(empty) == []


def test_run_unknown_hparam_names_it(runner, tmp_path):
  out = tmp_path / "out"
  result = runner.invoke(cli.main, ["run", "--hparam", "bogus=1", "--output-dir", str(out)])
  assert result.exit_code != 0
  assert "bogus" in result.output
  assert not out.exists()


def test_run_hparam_out_of_range_is_a_usage_error(runner, tmp_path):
  out = tmp_path / "out"
  result = runner.invoke(cli.main, ["run", "--hparam", "max_length=0", "--output-dir", str(out)])
  assert result.exit_code != 0
  assert "max_length must be >= 1" in result.output
  assert not out.exists()


@pytest.mark.parametrize("pair", ["dropout=abc", "max_length=null"])
def test_run_hparam_wrong_type_is_a_clean_error(runner, tmp_path, pair):
  result = runner.invoke(cli.main, ["run", "--hparam", pair, "--output-dir", str(tmp_path / "out")])
  assert result.exit_code == 1
  assert isinstance(result.exception, SystemExit)  # ClickException, not a traceback
  assert pair.split("=")[0] in result.output


def test_run_hparam_without_equals_is_rejected(runner, tmp_path):
  result = runner.invoke(
    cli.main, ["run", "--hparam", "dropout", "--output-dir", str(tmp_path / "out")]
  )
  assert result.exit_code != 0
  assert "KEY=VALUE" in result.output


def test_run_bad_split_spec_fails(runner, tmp_path, tfds_data_dir):
  out = tmp_path / "out"
  result = runner.invoke(
    cli.main,
    [
      "run",
      "--tfds-data-dir",
      tfds_data_dir,
      "--train-split",
      "train[:abc]",
      "--output-dir",
      str(out),
    ],
  )
  assert result.exit_code != 0
  assert "train[:abc]" in result.output
  assert not out.exists()


@pytest.mark.parametrize(
  "args",
  [
    ["--runner", "kubeflow"],
    ["--strategy", "gpu"],
    ["--epochs", "0"],
    ["--min-accuracy", "1.5"],
    ["--eval-percent", "0"],
  ],
)
def test_run_rejects_bad_option_values(runner, tmp_path, args):
  result = runner.invoke(cli.main, ["run", *args, "--output-dir", str(tmp_path / "out")])
  assert result.exit_code == 2  # click usage error
  assert args[0] in result.output


def test_parse_hparams_json_values():
  parsed = parse_hparams(
    ("lstm_units=32", "dropout=0.3", "strategy=mirrored", "train_examples=null", "max_pooling=true")
  )
  assert parsed == {
    "lstm_units": 32,
    "dropout": 0.3,
    "strategy": "mirrored",
    "train_examples": None,
    "max_pooling": True,
  }
  assert parse_hparams(("a=b=c",)) == {"a": "b=c"}
  with pytest.raises(click.BadParameter, match="expected KEY=VALUE, got 'epochs'"):
    parse_hparams(("epochs",))


def test_evaluate_missing_model_dir_is_usage_error(runner, tmp_path):
  result = runner.invoke(cli.main, ["evaluate", "--model-dir", str(tmp_path / "nope")])
  assert result.exit_code == 2
  assert "nope" in result.output


def test_evaluate_dir_without_saved_model(runner, tmp_path):
  result = runner.invoke(cli.main, ["evaluate", "--model-dir", str(tmp_path)])
  assert result.exit_code == 1
  assert "no SavedModel" in result.output


@pytest.mark.parametrize(
  "args, message",
  [
    (["--max-label-linf", "0"], "--max-label-linf"),
    (["--max-length-js", "1.5"], "--max-length-js"),
    (["--max-oov-increase", "0"], "--max-oov-increase"),
    (["--window-spans", "0"], "--window-spans"),
    (["--input-pattern", "reviews/*.jsonl"], "names no span"),
  ],
)
def test_run_rejects_bad_span_options(runner, tmp_path, args, message):
  (tmp_path / "spans").mkdir()
  out = tmp_path / "out"
  result = runner.invoke(
    cli.main, ["run", "--input-base", str(tmp_path / "spans"), *args, "--output-dir", str(out)]
  )
  assert result.exit_code == 2, result.output  # click usage error
  assert message in result.output
  assert not out.exists()


def test_run_input_base_must_be_a_folder(runner, tmp_path):
  result = runner.invoke(cli.main, ["run", "--input-base", str(tmp_path / "missing")])
  assert result.exit_code == 2
  assert "is not a folder" in result.output


def test_schedule_airflow_carries_the_drift_thresholds_and_warm_start(runner, tmp_path):
  (tmp_path / "spans").mkdir()
  result = runner.invoke(
    cli.main,
    [
      "schedule",
      "airflow",
      "--input-base",
      str(tmp_path / "spans"),
      "--max-label-linf",
      "0.2",
      "--max-length-js",
      "0.05",
      "--max-oov-increase",
      "0.1",
      "--no-warm-start",
      "--output-dir",
      str(tmp_path / "out"),
    ],
  )
  assert result.exit_code == 0, result.output
  assert "'max_label_linf': 0.2" in result.output
  assert "'max_length_js': 0.05" in result.output
  assert "'max_oov_increase': 0.1" in result.output
  assert "'warm_start': False" in result.output


def test_parse_behaviour_thresholds_sets_over_the_defaults():
  defaults = dict(DEFAULT_BEHAVIOUR_THRESHOLDS)
  assert parse_behaviour_thresholds(()) == defaults
  assert parse_behaviour_thresholds(("contrast=0.3", "inv_typo = 0")) == {
    **defaults,
    "contrast": 0.3,
    "inv_typo": 0.0,
  }
  assert parse_behaviour_thresholds(("all=none", "contrast=0.5")) == {"contrast": 0.5}
  assert "contrast" not in parse_behaviour_thresholds(("contrast=0.3", "contrast=none"))


@pytest.mark.parametrize(
  "pair, message",
  [
    ("contrast", "expected CAPABILITY=RATE"),
    ("sarcasm=0.1", "no capability 'sarcasm'"),
    ("contrast=1.5", r"must be a number in \[0, 1\] or none, got '1.5'"),
    ("contrast=lots", "got 'lots'"),
  ],
)
def test_run_rejects_a_bad_behaviour_threshold(runner, tmp_path, pair, message):
  out = tmp_path / "out"
  result = runner.invoke(cli.main, ["run", "--behaviour-threshold", pair, "--output-dir", str(out)])
  assert result.exit_code == 2, result.output
  assert "--behaviour-threshold" in result.output
  assert re.search(message, " ".join(result.output.split()))
  assert not out.exists()


def test_schedule_airflow_carries_the_behaviour_thresholds(runner, tmp_path):
  result = runner.invoke(
    cli.main,
    [
      "schedule",
      "airflow",
      "--behaviour-threshold",
      "all=none",
      "--behaviour-threshold",
      "contrast=0.25",
      "--output-dir",
      str(tmp_path / "out"),
    ],
  )
  assert result.exit_code == 0, result.output
  assert "'behaviour_thresholds': {'contrast': 0.25}" in result.output
