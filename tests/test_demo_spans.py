"""Span folders cut from a list of reviews (components.demo_spans), read back with the
contract's parser (components.review_files)."""

import os

import pytest

from components import demo_spans, review_files

REVIEWS = [(f"Review number {i} was {'good' if i % 2 else 'bad'}.", i % 2) for i in range(100)]


def _read(out, span):
  path = os.path.join(demo_spans.span_dir(out, span), demo_spans.SPAN_FILE)
  with open(path, "rb") as f:
    return list(review_files.parse_jsonl(path, f.read()))


def test_spans_partition_the_reviews(tmp_path):
  written = demo_spans.make_spans(REVIEWS, str(tmp_path), spans=3)
  assert [written[s]["reviews"] for s in (1, 2, 3)] == [34, 33, 33]
  texts = [r.text.decode() for s in (1, 2, 3) for r in _read(str(tmp_path), s)]
  assert sorted(texts) == sorted(t for t, _ in REVIEWS)
  # Seeded: the same call deals the same spans.
  assert demo_spans.deal(REVIEWS, 3) == demo_spans.deal(REVIEWS, 3)
  assert demo_spans.deal(REVIEWS, 3) != demo_spans.deal(REVIEWS, 3, seed=7)


def test_bad_rows_are_rejected_with_each_reason(tmp_path):
  demo_spans.make_spans(REVIEWS, str(tmp_path), spans=2, bad_rows={2: 4})
  rows = _read(str(tmp_path), 2)
  rejected = [r.reason for r in rows if isinstance(r, review_files.Rejection)]
  assert sorted(rejected) == sorted(
    [
      review_files.MALFORMED,
      review_files.BAD_LABEL,
      review_files.EMPTY_TEXT,
      review_files.NOT_UTF8,
    ]
  )
  assert sum(isinstance(r, review_files.Review) for r in rows) == 50


def test_drifts(tmp_path):
  written = demo_spans.make_spans(
    REVIEWS * 10,
    str(tmp_path),
    spans=3,
    drift={1: "label-skew", 2: "short-reviews", 3: "foreign-text"},
  )
  skewed = written[1]
  assert skewed["positive"] / skewed["reviews"] > 0.85
  long_review = " ".join(["word"] * 50)
  assert list(demo_spans.drifted([(long_review, 1)], "short-reviews")) == [
    (" ".join(["word"] * 20), 1)
  ]
  (foreign,) = [r.text.decode() for r in _read(str(tmp_path), 3)][:1]
  assert foreign and not any("a" <= c <= "z" for c in foreign.lower())


def test_refusals(tmp_path):
  with pytest.raises(ValueError, match="unknown drift 'noise'"):
    list(demo_spans.drifted(REVIEWS, "noise"))
  with pytest.raises(ValueError, match="span 4 is not among the spans 1..3"):
    demo_spans.make_spans(REVIEWS, str(tmp_path), spans=3, bad_rows={4: 1})
  with pytest.raises(ValueError, match="2 reviews cannot make 3 spans"):
    demo_spans.deal(REVIEWS[:2], 3)
  demo_spans.make_spans(REVIEWS, str(tmp_path), spans=2)
  with pytest.raises(FileExistsError, match="span-1 already holds reviews.jsonl"):
    demo_spans.make_spans(REVIEWS, str(tmp_path), spans=2)
