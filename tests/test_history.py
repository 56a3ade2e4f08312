"""Unit tests of pipeline.history's table and of `imdb-tfx history` without a store."""

from click.testing import CliRunner

from cli import main as cli
from pipeline.history import RunRecord, format_history


def test_format_history_one_line_per_run_with_dashes_for_absent_values():
  records = [
    RunRecord(
      "r1",
      started=0.0,
      span=1,
      version=0,
      reviews=250,
      rejected=3,
      drift="passed",
      window=(1,),
      trainer="ran",
      accuracy=0.87654,
      blessed=True,
      pushed_version="1700000000",
    ),
    RunRecord(
      "r2", started=86400.0, span=2, version=1, reviews=90, drift="drift", failed_at="DriftGate"
    ),
  ]
  lines = format_history(records).splitlines()
  assert len(lines) == 3
  assert lines[0].split()[:3] == ["started", "(UTC)", "span"]
  assert lines[1].split() == [
    "1970-01-01",
    "00:00:00",
    "1.v0",
    "250",
    "3",
    "passed",
    "1",
    "ran",
    "0.8765",
    "yes",
    "1700000000",
    "-",
  ]
  assert lines[2].split() == [
    "1970-01-02",
    "00:00:00",
    "2.v1",
    "90",
    "-",
    "drift",
    "-",
    "-",
    "-",
    "-",
    "-",
    "DriftGate",
  ]


def test_history_without_a_store_says_so(tmp_path):
  result = CliRunner().invoke(cli.main, ["history", "--output-dir", str(tmp_path / "none")])
  assert result.exit_code == 1
  assert "no ML Metadata store" in result.output and "imdb-tfx run" in result.output
  assert not (tmp_path / "none").exists()
