"""Unit tests of pipeline.history's table and of `imdb-tfx history` without a store."""

import json

from click.testing import CliRunner
from ml_metadata.proto import metadata_store_pb2

from cli import main as cli
from pipeline import history
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
      span_accuracy=0.9,
      behaviour_failure_rate=0.1234,
      blessed=True,
      pushed_version="1700000000",
    ),
    RunRecord(
      "r2", started=86400.0, span=2, version=1, reviews=90, drift="drift", failed_at="DriftGate"
    ),
    RunRecord(
      "r3",
      started=2 * 86400.0,
      span=3,
      version=0,
      window=(1, 3),
      trainer="ran",
      warm_start="1700000000",
      accuracy=0.8,
      span_accuracy=0.7,
      blessed=False,
      not_blessed=(
        "binary_accuracy 0.7000 (span:3) failed >= 0.85",
        'contrast 0.500 > 0.200, e.g. "A, but b." p=0.10',
      ),
    ),
  ]
  lines = format_history(records).splitlines()
  assert len(lines) == 4
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
    "-",
    "0.8765",
    "0.9000",
    "0.123",
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
    "-",
    "-",
    "-",
    "DriftGate",
  ]
  assert lines[3].split()[6:13] == ["1,3", "ran", "1700000000", "0.8000", "0.7000", "-", "no"]
  assert lines[3].split()[13] == "-"  # nothing pushed
  # The capability and its rate; the failing cases are the summary's to show.
  assert lines[3].endswith(
    "  binary_accuracy 0.7000 (span:3) failed >= 0.85; contrast 0.500 > 0.200"
  )


def test_history_without_a_store_says_so(tmp_path):
  result = CliRunner().invoke(cli.main, ["history", "--output-dir", str(tmp_path / "none")])
  assert result.exit_code == 1
  assert "no ML Metadata store" in result.output and "imdb-tfx run" in result.output
  assert not (tmp_path / "none").exists()


def test_a_failed_ingestion_keeps_the_span_it_was_asked_for():
  execution = metadata_store_pb2.Execution()
  execution.custom_properties["range_config"].string_value = json.dumps(
    {"static_range": {"start_span_number": 5, "end_span_number": 5}}
  )
  assert history._requested_span(execution) == 5
  assert history._requested_span(metadata_store_pb2.Execution()) is None  # the latest
  line = format_history([RunRecord("r", 0.0, span=5, failed_at="ReviewExampleGen")])
  assert line.splitlines()[1].split()[2:4] == ["5", "-"]
