"""Feature keys shared by the ingestion component, Transform, Trainer, Evaluator and serving.

Raw features (written by ``components.imdb_example_gen``), one value per tf.Example:

* ``text`` (bytes): the review as published, HTML line breaks included.
* ``label`` (int64): 0 = negative, 1 = positive (TFDS ``imdb_reviews`` ClassLabel).
* ``review_length`` (int64): number of whitespace-separated words in ``text``.
* ``length_bucket`` (bytes): ``review_length`` bucketed by ``LENGTH_BUCKET_BOUNDARIES``,
  for TFMA slicing.
* ``span`` (int64, optional): with reviews arriving as spans, the span a review arrived
  in (written by ``components.review_example_gen``), and 0 for TFDS's golden test split;
  the Evaluator slices by it. Absent from the bootstrap's (TFDS-only) Examples; never an
  input of the model.

Transformed features (written by Transform's ``preprocessing_fn``):

* ``tokens`` (int64, shape [max_length]): vocabulary ids, 0 = padding, 1..vocab_size =
  vocabulary, vocab_size+1.. = OOV buckets.
* ``label`` (int64, shape []): passed through.
"""

from collections.abc import Sequence

TEXT_KEY = "text"
LABEL_KEY = "label"
REVIEW_LENGTH_KEY = "review_length"
LENGTH_BUCKET_KEY = "length_bucket"
SPAN_KEY = "span"
# The ``span`` of the golden test reviews (TFDS's test split) in a pipeline of spans.
GOLDEN_SPAN = 0

TOKENS_KEY = "tokens"

# Word-count boundaries of the review-length slices: [0,128), [128,256), [256,512), [512,inf).
LENGTH_BUCKET_BOUNDARIES: Sequence[int] = (128, 256, 512)

PADDING_ID = 0
VOCABULARY_NAME = "vocabulary"


def length_bucket(num_words: int, boundaries: Sequence[int] = LENGTH_BUCKET_BOUNDARIES) -> str:
  """Names the length slice a review of ``num_words`` words falls into.

  Args:
    num_words: whitespace-separated word count, >= 0.
    boundaries: strictly increasing upper bounds (exclusive) of all but the last bucket.

  Returns:
    A zero-padded, sortable range name such as ``"0128-0255"`` or ``"0512+"``.

  Raises:
    ValueError: if ``num_words`` is negative.
  """
  if num_words < 0:
    raise ValueError(f"num_words must be >= 0, got {num_words}")
  lower = 0
  for upper in boundaries:
    if num_words < upper:
      return f"{lower:04d}-{upper - 1:04d}"
    lower = upper
  return f"{lower:04d}+"
