"""SavedModel warmup requests, in the format TF Serving documents.

TF Serving runs the requests in ``<version>/assets.extra/tf_serving_warmup_requests`` (a
TFRecord file of ``tensorflow.serving.PredictionLog``, at most 1000 records) before it marks a
version AVAILABLE, so the first real requests do not pay for graph tracing, kernel
selection or memory growth (https://www.tensorflow.org/tfx/serving/saved_model_warmup).
The Trainer writes this file next to the exported model; the Pusher copies it with the
model; both the real ``tensorflow_model_server`` and ``imdb-tfx serve`` replay it.

Only ``model_spec.signature_name`` of a warmup request is used by TF Serving (the model name
and version come from the servable being loaded), so the records leave the name empty.
"""

import os
from collections.abc import Iterator, Sequence

import tensorflow as tf
from tensorflow_serving.apis import classification_pb2, predict_pb2, prediction_log_pb2

from core import contract, features

WARMUP_DIR = "assets.extra"
WARMUP_FILE = "tf_serving_warmup_requests"
MAX_WARMUP_RECORDS = 1000  # TF Serving reads no more than this many records.

# Representative reviews: short, with HTML and punctuation, and one longer than any
# max_length so the head+tail truncation path is traced too.
SAMPLE_REVIEWS = (
  "A wonderful film, with a great cast and a story that stays with you.",
  "Dull.<br /><br />The plot goes nowhere and the acting is wooden; I want my two hours back!",
  " ".join(["The first half drags, but the ending is worth the wait."] * 80),
)
# Batch sizes to warm for predict_text: one review, and the sizes server-side batching
# pads to with deploy/batching_parameters.txt (allowed_batch_sizes 1, 4, 8, 16 and 32).
PREDICT_TEXT_BATCH_SIZES = (1, 4, 8, 16, 32)


def warmup_path(version_dir: str) -> str:
  """``<version_dir>/assets.extra/tf_serving_warmup_requests``."""
  return os.path.join(version_dir, WARMUP_DIR, WARMUP_FILE)


def _text_example(text: str) -> tf.train.Example:
  return tf.train.Example(
    features=tf.train.Features(
      feature={
        features.TEXT_KEY: tf.train.Feature(
          bytes_list=tf.train.BytesList(value=[text.encode("utf-8")])
        )
      }
    )
  )


def _batch(size: int) -> list[bytes]:
  return [SAMPLE_REVIEWS[i % len(SAMPLE_REVIEWS)].encode("utf-8") for i in range(size)]


def build_warmup_logs(signature_names: Sequence[str]) -> list[prediction_log_pb2.PredictionLog]:
  """PredictionLogs for the signatures this project exports that are in ``signature_names``.

  * ``predict_text``: Predict with ``text`` string [n] for n in ``PREDICT_TEXT_BATCH_SIZES``.
  * ``serving_default``: Predict with ``examples`` string [1] (a serialized tf.Example).
  * ``classify``: Classify with one tf.Example in ``input.example_list``.
  """
  logs = []
  if contract.PREDICT_TEXT in signature_names:
    for size in PREDICT_TEXT_BATCH_SIZES:
      request = predict_pb2.PredictRequest()
      request.model_spec.signature_name = contract.PREDICT_TEXT
      request.inputs[features.TEXT_KEY].CopyFrom(
        tf.make_tensor_proto(_batch(size), dtype=tf.string)
      )
      logs.append(
        prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
      )
  if contract.SERVING_DEFAULT in signature_names:
    request = predict_pb2.PredictRequest()
    request.model_spec.signature_name = contract.SERVING_DEFAULT
    request.inputs["examples"].CopyFrom(
      tf.make_tensor_proto([_text_example(SAMPLE_REVIEWS[0]).SerializeToString()], dtype=tf.string)
    )
    logs.append(
      prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
    )
  if contract.CLASSIFY in signature_names:
    request = classification_pb2.ClassificationRequest()
    request.model_spec.signature_name = contract.CLASSIFY
    request.input.example_list.examples.add().CopyFrom(_text_example(SAMPLE_REVIEWS[1]))
    logs.append(
      prediction_log_pb2.PredictionLog(classify_log=prediction_log_pb2.ClassifyLog(request=request))
    )
  return logs


def write_warmup_file(version_dir: str, signature_names: Sequence[str]) -> str:
  """Writes ``build_warmup_logs(signature_names)`` as an uncompressed TFRecord file.

  The file is written under a temporary name and renamed, so a reader never sees half of it.

  Returns:
    The path written.
  Raises:
    ValueError: none of ``signature_names`` has warmup requests.
  """
  logs = build_warmup_logs(signature_names)
  if not logs:
    raise ValueError(f"no warmup requests for signatures {sorted(signature_names)}")
  path = warmup_path(version_dir)
  tf.io.gfile.makedirs(os.path.dirname(path))
  tmp_path = path + ".tmp"
  with tf.io.TFRecordWriter(tmp_path) as writer:
    for log in logs:
      writer.write(log.SerializeToString())
  tf.io.gfile.rename(tmp_path, path, overwrite=True)
  return path


def read_warmup_file(path: str) -> Iterator[prediction_log_pb2.PredictionLog]:
  """Yields the PredictionLogs in ``path`` (at most ``MAX_WARMUP_RECORDS``).

  Raises:
    ValueError: a record is not a PredictionLog, or the file has more than
      ``MAX_WARMUP_RECORDS`` records (TF Serving rejects such a version too).
  """
  for i, record in enumerate(tf.data.TFRecordDataset(path).as_numpy_iterator()):
    if i >= MAX_WARMUP_RECORDS:
      raise ValueError(f"{path}: more than {MAX_WARMUP_RECORDS} warmup records")
    log = prediction_log_pb2.PredictionLog()
    try:
      log.ParseFromString(record)
    except Exception as e:  # google.protobuf.message.DecodeError
      raise ValueError(f"{path}: record {i} is not a tensorflow.serving.PredictionLog: {e}") from e
    yield log
