"""The served model's contract: what the Trainer exports and every client relies on.

TF Serving serves each model under a name from a base directory of numeric version
subdirectories (``<base>/<version>/saved_model.pb``). The exported SavedModel's
signatures (``models.signatures`` writes them, ``serving`` and ``analysis`` call them):

* ``serving_default``: ``examples`` string [batch] of serialized tf.Example ->
  ``probabilities`` float32 [batch];
* ``predict_text``: ``text`` string [batch] -> ``probabilities`` float32 [batch],
  ``label`` int64 [batch], ``attention_weights`` float32 [batch, max_length], ``tokens``
  string [batch, max_length];
* ``classify``: TF Serving's Classify API, ``inputs`` string [batch] of serialized
  tf.Example -> ``classes`` string [batch, 2], ``scores`` float32 [batch, 2].
"""

MODEL_NAME = "imdb_sentiment"

SERVING_DEFAULT = "serving_default"
PREDICT_TEXT = "predict_text"
CLASSIFY = "classify"

# Output of every signature but classify: P(positive), float32 [batch].
PROBABILITIES = "probabilities"
# A review is positive when its probability is at least this.
DECISION_THRESHOLD = 0.5
# Classify's class names, in the order of its scores.
CLASS_NAMES = ("negative", "positive")
