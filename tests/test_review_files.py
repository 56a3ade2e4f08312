"""The reviews' file formats and the row checks (components.review_files)."""

import pytest
import tensorflow as tf

from components import review_files as rf


def _reasons(rows):
  return [(r.source, r.reason) for r in rows if isinstance(r, rf.Rejection)]


def test_file_format_by_ending():
  assert rf.file_format("span-1/a.jsonl") == "jsonl"
  assert rf.file_format("span-1/B.CSV") == "csv"
  assert rf.file_format("x.tfrecord") == rf.file_format("x.tfrecord.gz") == "tfrecord"
  assert rf.file_format("README.md") is None


@pytest.mark.parametrize(
  ("text", "label", "reason"),
  [
    (None, 1, rf.MISSING_TEXT),
    ("   ", 1, rf.EMPTY_TEXT),
    (b"\xff\xfe bad", 0, rf.NOT_UTF8),
    (12, 0, rf.MALFORMED),
    ("fine", None, rf.MISSING_LABEL),
    ("fine", "", rf.MISSING_LABEL),
    ("fine", 2, rf.BAD_LABEL),
    ("fine", "yes", rf.BAD_LABEL),
    ("fine", True, rf.BAD_LABEL),
    ("fine", 0.5, rf.BAD_LABEL),
  ],
)
def test_check_row_rejects_with_the_reason(text, label, reason):
  row = rf.check_row(text, label, "f.jsonl", 3, "raw row")
  assert isinstance(row, rf.Rejection)
  assert (row.source, row.reason, row.raw) == ("f.jsonl:3", reason, "raw row")
  assert rf.Rejection.from_json(row.to_json()) == row


def test_check_row_accepts_text_and_binary_labels():
  assert rf.check_row("Great fun.", 1, "s.csv", 2, "") == rf.Review(b"Great fun.", 1, "s.csv", 2)
  assert rf.check_row(b"Dull.", "0", "s.csv", 3, "").label == 0
  assert rf.check_row("Caf\u00e9 scene", " 1 ", "s", 4, "").text == "Caf\u00e9 scene".encode()


def test_parse_jsonl_names_each_bad_line():
  data = b"\n".join(
    [
      b'{"text": "A fine film.", "label": 1, "id": "a1", "timestamp": "2026-11-30"}',
      b"",
      b"{not json",
      b'["a list"]',
      b'{"text": "No label"}',
      b'{"text": "Three", "label": 3}',
      b'{"text": "Last one.", "label": 0}',
    ]
  )
  rows = list(rf.parse_jsonl("day.jsonl", data))
  assert [r.text for r in rows if isinstance(r, rf.Review)] == [b"A fine film.", b"Last one."]
  assert _reasons(rows) == [
    ("day.jsonl:3", rf.MALFORMED),
    ("day.jsonl:4", rf.MALFORMED),
    ("day.jsonl:5", rf.MISSING_LABEL),
    ("day.jsonl:6", rf.BAD_LABEL),
  ]
  assert rows[-1].source == "day.jsonl:7"


def test_parse_csv_quoted_fields_and_line_numbers():
  data = (
    b'id,text,label\n1,"Funny, and ""warm"".",1\n2,"Two\nlines",0\n3,too,many,fields\n'
    b"4,,1\n5,Fine.,maybe\n"
  )
  rows = list(rf.parse_csv("day.csv", data))
  reviews = [r for r in rows if isinstance(r, rf.Review)]
  assert [(r.text, r.label, r.source) for r in reviews] == [
    (b'Funny, and "warm".', 1, "day.csv:2"),
    (b"Two\nlines", 0, "day.csv:3"),
  ]
  assert _reasons(rows) == [
    ("day.csv:5", rf.MALFORMED),
    ("day.csv:6", rf.EMPTY_TEXT),
    ("day.csv:7", rf.BAD_LABEL),
  ]


def test_parse_csv_refuses_a_file_without_the_columns():
  with pytest.raises(
    ValueError, match=r"day.csv:1: the CSV header \['review', 'label'\] has no text"
  ):
    list(rf.parse_csv("day.csv", b"review,label\nx,1\n"))


def _example(**features) -> bytes:
  feature = {}
  for key, value in features.items():
    if isinstance(value, bytes):
      feature[key] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
    else:
      feature[key] = tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
  return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def test_parse_example_reads_text_and_label():
  good = rf.parse_example("d.tfrecord", 1, _example(text=b"Good.", label=1))
  assert (good.text, good.label, good.source) == (b"Good.", 1, "d.tfrecord:record 1")
  assert rf.parse_example("d.tfrecord", 2, _example(text=b"Good.")).reason == rf.MISSING_LABEL
  assert rf.parse_example("d.tfrecord", 3, _example(text=b"x", label=5)).reason == rf.BAD_LABEL
  bad = rf.parse_example("d.tfrecord", 4, b"\x0a\xff\xff")
  assert (bad.source, bad.reason) == ("d.tfrecord:record 4", rf.MALFORMED)
