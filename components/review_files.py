"""The data contract of reviews that arrive as files, and the checks every row passes.

A span of new labelled reviews is a folder of files in one of three formats, chosen by the
file name's ending:

* ``.jsonl``: JSON Lines, one object per line: ``{"text": "...", "label": 0 | 1}``, with
  optional ``id`` and ``timestamp`` (kept out of the Examples);
* ``.csv``: comma-separated with a header naming at least ``text`` and ``label``
  (RFC 4180 quoting, so a review may hold commas, quotes and line breaks);
* ``.tfrecord`` or ``.tfrecord.gz``: TFRecords of ``tf.train.Example`` with a bytes
  ``text`` and an int64 ``label``.

Every row becomes either a ``Review`` or a ``Rejection`` naming its file, its line (or
record number) and one of ``REJECTION_REASONS``; nothing is dropped silently. Why our own:
TFX's CSV and import ExampleGens fail the whole execution on the first malformed row and
read no JSON Lines; Beam's text sources give no line numbers.
"""

import csv
import dataclasses
import io
import json

# Why a row was not turned into an Example (the rejected-rows output names one per row).
MALFORMED = "malformed"  # not a JSON object / CSV row / tf.Example
MISSING_TEXT = "missing_text"
EMPTY_TEXT = "empty_text"  # empty or only whitespace
NOT_UTF8 = "not_utf8"
MISSING_LABEL = "missing_label"
BAD_LABEL = "bad_label"  # present, but not 0 or 1
REJECTION_REASONS = (MALFORMED, MISSING_TEXT, EMPTY_TEXT, NOT_UTF8, MISSING_LABEL, BAD_LABEL)
# A review identical to one of the golden test reviews: dropped from training (leakage),
# listed with the rejected rows, but not a fault of the data.
GOLDEN_DUPLICATE = "golden_test_duplicate"

FORMATS = {".jsonl": "jsonl", ".csv": "csv", ".tfrecord": "tfrecord", ".tfrecord.gz": "tfrecord"}
# Characters of a rejected row kept in the rejected-rows output.
RAW_CHARS = 200


@dataclasses.dataclass(frozen=True)
class Review:
  """One accepted row: ``text`` (UTF-8 bytes, as published) and ``label`` (0 negative,
  1 positive), from ``file`` at ``line`` (of a TFRecord file: the record's number)."""

  text: bytes
  label: int
  file: str
  line: int

  @property
  def source(self) -> str:
    """``file:line``, or ``file:record N`` for a TFRecord file."""
    return location(self.file, self.line)


@dataclasses.dataclass(frozen=True)
class Rejection:
  """One refused row: its ``file`` and ``line`` (of a TFRecord file: the record's number,
  from 1), ``reason`` (one of ``REJECTION_REASONS``, or ``GOLDEN_DUPLICATE``), ``detail``
  (what was wrong, for a person) and the start of the row (``raw``, at most ``RAW_CHARS``
  characters)."""

  file: str
  line: int
  reason: str
  detail: str
  raw: str

  @property
  def source(self) -> str:
    """``file:line``, or ``file:record N`` for a TFRecord file."""
    return location(self.file, self.line)

  def to_json(self) -> str:
    """One line of the rejected-rows output."""
    return json.dumps(dataclasses.asdict(self), ensure_ascii=False, sort_keys=True)

  @classmethod
  def from_json(cls, line: str) -> "Rejection":
    return cls(**json.loads(line))


def location(file: str, line: int) -> str:
  """``file:line``, or ``file:record N`` for a TFRecord file, whose rows are records."""
  if file_format(file) == "tfrecord":
    return f"{file}:record {line}"
  return f"{file}:{line}"


def file_format(path: str) -> str | None:
  """``"jsonl"``, ``"csv"`` or ``"tfrecord"`` from ``path``'s ending, None for other
  files (which a span folder may hold, e.g. a README; they are not read)."""
  lowered = path.lower()
  for ending, name in sorted(FORMATS.items(), key=lambda item: -len(item[0])):
    if lowered.endswith(ending):
      return name
  return None


def check_row(text, label, file: str, line: int, raw: str) -> Review | Rejection:
  """A ``Review`` when ``text`` is non-empty UTF-8 and ``label`` is 0 or 1, else the
  ``Rejection`` saying why.

  Args:
    text: str or bytes, or None when the row had none.
    label: int (0/1), a string of one ("0", "1"; CSV has nothing else), or None.
    file: the file the row came from.
    line: its line (of a TFRecord file, its record's number).
    raw: the row as read, for the rejection.
  """

  def rejected(reason: str, detail: str) -> Rejection:
    return Rejection(file, line, reason, detail, raw[:RAW_CHARS])

  if text is None:
    return rejected(MISSING_TEXT, "no text")
  if isinstance(text, bytes):
    try:
      decoded = text.decode("utf-8")
    except UnicodeDecodeError as e:
      return rejected(NOT_UTF8, f"text is not UTF-8: {e.reason} at byte {e.start}")
  elif isinstance(text, str):
    decoded = text
  else:
    return rejected(MALFORMED, f"text is a {type(text).__name__}, not a string")
  if not decoded.strip():
    return rejected(EMPTY_TEXT, "text is empty")
  if label is None or (isinstance(label, str) and not label.strip()):
    return rejected(MISSING_LABEL, "no label")
  if isinstance(label, bool) or str(label).strip() not in ("0", "1"):
    return rejected(BAD_LABEL, f"label {label!r} is not 0 or 1")
  return Review(decoded.encode("utf-8"), int(str(label).strip()), file, line)


def parse_jsonl(path: str, data: bytes):
  """Yields a ``Review`` or ``Rejection`` per non-blank line of a JSON Lines file."""
  for number, line in enumerate(data.split(b"\n"), start=1):
    if not line.strip():
      continue
    raw = line.decode("utf-8", "replace")
    try:
      decoded = line.decode("utf-8")
    except UnicodeDecodeError as e:
      yield Rejection(
        path, number, NOT_UTF8, f"line is not UTF-8: {e.reason} at byte {e.start}", raw[:RAW_CHARS]
      )
      continue
    try:
      row = json.loads(decoded)
    except json.JSONDecodeError as e:
      yield Rejection(path, number, MALFORMED, f"not JSON: {e}", raw[:RAW_CHARS])
      continue
    if not isinstance(row, dict):
      yield Rejection(
        path, number, MALFORMED, f"a JSON {type(row).__name__}, not an object", raw[:RAW_CHARS]
      )
      continue
    yield check_row(row.get("text"), row.get("label"), path, number, raw)


def parse_csv(path: str, data: bytes):
  """Yields a ``Review`` or ``Rejection`` per row of a CSV file with a header; the line of
  a row is the line it starts on.

  Raises:
    ValueError: the file is not UTF-8, or its header lacks ``text`` or ``label`` (the
      whole file is unreadable, so it is not a row's fault).
  """
  try:
    content = data.decode("utf-8-sig")
  except UnicodeDecodeError as e:
    raise ValueError(f"{path}: not a UTF-8 CSV file ({e})") from e
  reader = csv.reader(io.StringIO(content, newline=""), strict=True)
  try:
    header = next(reader)
  except StopIteration:
    return
  except csv.Error as e:
    raise ValueError(f"{path}:1: unreadable CSV header: {e}") from e
  columns = [name.strip() for name in header]
  missing = [name for name in ("text", "label") if name not in columns]
  if missing:
    raise ValueError(f"{path}:1: the CSV header {columns} has no {' or '.join(missing)} column")
  text_at, label_at = columns.index("text"), columns.index("label")
  line = reader.line_num + 1
  while True:
    try:
      row = next(reader)
    except StopIteration:
      return
    except csv.Error as e:
      yield Rejection(path, line, MALFORMED, f"unreadable CSV row: {e}", "")
      line = reader.line_num + 1
      continue
    start, raw = line, ",".join(row)
    line = reader.line_num + 1
    if not row or row == [""]:
      continue
    if len(row) != len(columns):
      yield Rejection(
        path, start, MALFORMED, f"{len(row)} fields, the header has {len(columns)}", raw[:RAW_CHARS]
      )
      continue
    yield check_row(row[text_at], row[label_at], path, start, raw)


def parse_example(path: str, number: int, record: bytes) -> Review | Rejection:
  """A ``Review`` or ``Rejection`` for record ``number`` (1-based) of a TFRecord file of
  serialized ``tf.train.Example`` (bytes ``text``, int64 ``label``)."""
  from tensorflow.core.example import example_pb2

  example = example_pb2.Example()
  try:
    example.ParseFromString(record)
  except Exception as e:  # protobuf's DecodeError, whatever its implementation
    return Rejection(path, number, MALFORMED, f"not a tf.train.Example: {e}", "")
  feature = example.features.feature
  text = label = None
  if "text" in feature and feature["text"].bytes_list.value:
    text = feature["text"].bytes_list.value[0]
  if "label" in feature and feature["label"].int64_list.value:
    label = feature["label"].int64_list.value[0]
  raw = str(example)[:RAW_CHARS]
  return check_row(text, label, path, number, raw)
