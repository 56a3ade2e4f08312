"""Span folders cut from TFDS's IMDB train split, to try continuous training without data of
one's own (``imdb-tfx spans make``).

The reviews of the split are shuffled with a seed and dealt into ``spans`` folders of equal
size, ``<out>/span-1/reviews.jsonl`` ... ``<out>/span-N/reviews.jsonl``, in the contract
``components.review_files`` reads. A span can be given drift on purpose:

* ``label-skew``: the span keeps its positive reviews and a tenth of its negative ones;
* ``short-reviews``: every review is cut to its first 20 words;
* ``foreign-text``: every review's letters are replaced one for one by letters of another
  script, so its words are unknown to a vocabulary built on English reviews;

and bad rows (malformed JSON, a label of 2, empty text, invalid UTF-8, taken in turn),
placed at seeded positions among the span's lines.
"""

import json
import os
import random
from collections.abc import Iterable, Mapping, Sequence

DRIFTS = ("label-skew", "short-reviews", "foreign-text")
SPAN_FILE = "reviews.jsonl"
# Bad rows, in the order they are used (each a line of a JSON Lines file).
BAD_ROWS = (
  b'{"text": "an unfinished line", "label": 1',
  b'{"text": "A label out of range.", "label": 2}',
  b'{"text": "   ", "label": 0}',
  b'{"text": "Invalid UTF-8: \xff\xfe", "label": 1}',
)
_SHORT_WORDS = 20
# Latin letters to Cyrillic ones of the same case: each review keeps its shape and length.
_FOREIGN = str.maketrans(
  "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
  "абцдефгхийклмнопярстужвьызАБЦДЕФГХИЙКЛМНОПЯРСТУЖВЬЫЗ",
)


def span_dir(out: str, span: int) -> str:
  """``<out>/span-<span>``: the folder ``--input-base <out>`` reads as that span."""
  return os.path.join(out, f"span-{span}")


def deal(
  reviews: Sequence[tuple[str, int]], spans: int, seed: int = 42
) -> list[list[tuple[str, int]]]:
  """``reviews`` shuffled with ``seed`` and dealt into ``spans`` lists of equal size (the
  first ``len % spans`` one longer).

  Raises:
    ValueError: ``spans`` < 1, or fewer reviews than spans.
  """
  if spans < 1:
    raise ValueError(f"spans must be >= 1, got {spans}")
  if len(reviews) < spans:
    raise ValueError(f"{len(reviews)} reviews cannot make {spans} spans")
  order = list(reviews)
  random.Random(seed).shuffle(order)
  return [order[i::spans] for i in range(spans)]


def drifted(reviews: Iterable[tuple[str, int]], drift: str, seed: int = 42):
  """``reviews`` with ``drift`` (one of ``DRIFTS``, module docstring) applied.

  Raises:
    ValueError: an unknown drift.
  """
  if drift not in DRIFTS:
    raise ValueError(f"unknown drift {drift!r}; choose one of {', '.join(DRIFTS)}")
  rng = random.Random(seed)
  for text, label in reviews:
    if drift == "label-skew":
      if label == 1 or rng.random() < 0.1:
        yield text, label
    elif drift == "short-reviews":
      yield " ".join(text.split()[:_SHORT_WORDS]), label
    else:
      yield text.translate(_FOREIGN), label


def span_lines(reviews: Iterable[tuple[str, int]], bad_rows: int = 0, seed: int = 42):
  """The JSON Lines of a span file (bytes, without newlines): one object per review, with
  ``bad_rows`` of ``BAD_ROWS`` (in turn) inserted at seeded positions."""
  lines = [
    json.dumps({"text": text, "label": int(label)}, ensure_ascii=False).encode("utf-8")
    for text, label in reviews
  ]
  rng = random.Random(seed)
  for i in range(bad_rows):
    lines.insert(rng.randint(0, len(lines)), BAD_ROWS[i % len(BAD_ROWS)])
  return lines


def write_span(out: str, span: int, lines: Sequence[bytes]) -> str:
  """Writes ``lines`` to ``<out>/span-<span>/reviews.jsonl`` (under a temporary name, then
  renamed: a reader never sees half a span). Returns the file's path.

  Raises:
    FileExistsError: the span folder already holds the file (spans are never rewritten;
      re-deliver a span as ``version-<N>/`` inside its folder instead).
  """
  folder = span_dir(out, span)
  path = os.path.join(folder, SPAN_FILE)
  if os.path.exists(path):
    raise FileExistsError(f"{path} exists: a span is written once")
  os.makedirs(folder, exist_ok=True)
  with open(path + ".tmp", "wb") as f:
    for line in lines:
      f.write(line + b"\n")
  os.replace(path + ".tmp", path)
  return path


def make_spans(
  reviews: Sequence[tuple[str, int]],
  out: str,
  spans: int,
  drift: Mapping[int, str] | None = None,
  bad_rows: Mapping[int, int] | None = None,
  seed: int = 42,
) -> dict[int, dict[str, int]]:
  """Writes ``spans`` span folders under ``out`` from ``reviews`` (``deal``), with the
  drift ``drift[span]`` and ``bad_rows[span]`` bad rows where given.

  Returns:
    ``{span: {"reviews": n, "positive": n, "bad_rows": n}}`` as written.

  Raises:
    ValueError: bad counts or drift names, or a span number outside 1..``spans``.
    FileExistsError: a span file already exists (nothing of this call is written then).
  """
  drift, bad_rows = dict(drift or {}), dict(bad_rows or {})
  for span in (*drift, *bad_rows):
    if not 1 <= span <= spans:
      raise ValueError(f"span {span} is not among the spans 1..{spans}")
  for span in range(1, spans + 1):
    if os.path.exists(os.path.join(span_dir(out, span), SPAN_FILE)):
      raise FileExistsError(f"{span_dir(out, span)} already holds {SPAN_FILE}")
  written = {}
  for span, dealt in enumerate(deal(reviews, spans, seed), start=1):
    if span in drift:
      dealt = list(drifted(dealt, drift[span], seed + span))
    write_span(out, span, span_lines(dealt, bad_rows.get(span, 0), seed + span))
    written[span] = {
      "reviews": len(dealt),
      "positive": sum(label for _, label in dealt),
      "bad_rows": bad_rows.get(span, 0),
    }
  return written
