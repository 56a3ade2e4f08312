"""A client for the sentiment model over TF Serving's gRPC API.

It talks to real TF Serving and to ``imdb-tfx serve`` alike, calling the methods of
``tensorflow.serving.PredictionService`` and ``ModelService`` by their gRPC paths with the
message classes of ``serving.apis``, which are built from ``tensorflow-serving-api``'s own
descriptors without importing TensorFlow: importing this module takes well under a second,
where ``tensorflow_serving.apis.predict_pb2`` alone takes ~14 s (it imports TensorFlow).

* ``predict_text``: Predict on the ``predict_text`` signature (raw reviews) ->
  ``Prediction`` per review, with per-token attention weights;
* ``predict_examples``: Predict on ``serving_default`` (serialized tf.Example);
* ``classify``: Classify on the ``classify`` signature;
* ``model_status`` (GetModelStatus), ``model_metadata`` (GetModelMetadata),
  ``wait_until_ready``.

Each call has a deadline; calls failing with UNAVAILABLE or DEADLINE_EXCEEDED (the codes
that mean "try again", per gRPC's status code guide) are retried with exponential backoff
and full jitter; every other code is raised at once as ``ServingRequestError``.
"""

import dataclasses
import random
import time
from collections.abc import Callable, Iterable, Sequence

import grpc
import numpy as np

from core import contract, features
from serving import apis

RETRYABLE_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
# gRPC method paths: /<proto package>.<service>/<method>.
_PREDICT = "/tensorflow.serving.PredictionService/Predict"
_CLASSIFY = "/tensorflow.serving.PredictionService/Classify"
_GET_MODEL_METADATA = "/tensorflow.serving.PredictionService/GetModelMetadata"
_GET_MODEL_STATUS = "/tensorflow.serving.ModelService/GetModelStatus"


class ServingRequestError(Exception):
  """A call failed: ``code`` (``grpc.StatusCode``), ``details`` (the server's message) and
  ``attempts`` (how many tries were made)."""

  def __init__(self, method: str, code: grpc.StatusCode, details: str, attempts: int):
    super().__init__(f"{method} failed with {code.name} after {attempts} attempt(s): {details}")
    self.method = method
    self.code = code
    self.details = details
    self.attempts = attempts


@dataclasses.dataclass(frozen=True)
class TokenWeight:
  """A token of the cleaned review and its attention weight (weights of one review sum
  to 1 over its tokens)."""

  token: str
  weight: float


@dataclasses.dataclass(frozen=True)
class Prediction:
  """The model's answer for one review.

  Attributes:
    text: the review sent.
    probability: P(positive), in [0, 1].
    label: 1 positive, 0 negative (probability >= 0.5).
    attention: the tokens the model read (after cleaning and head+tail truncation) with
      their attention weights, padding removed.
    model_version: the version that answered.
  """

  text: str
  probability: float
  label: int
  attention: tuple[TokenWeight, ...]
  model_version: int

  @property
  def sentiment(self) -> str:
    return "positive" if self.label == 1 else "negative"

  def top_tokens(self, k: int = 5) -> list[TokenWeight]:
    """The ``k`` tokens with the highest attention weight, highest first."""
    return sorted(self.attention, key=lambda t: -t.weight)[:k]

  def to_dict(self) -> dict[str, object]:
    return {
      "text": self.text,
      "probability": self.probability,
      "label": self.label,
      "sentiment": self.sentiment,
      "model_version": self.model_version,
      "attention": [[t.token, t.weight] for t in self.attention],
    }


@dataclasses.dataclass(frozen=True)
class VersionStatus:
  """GetModelStatus for one version: state name (START, LOADING, AVAILABLE, UNLOADING,
  END) and the error, if any (code 0 = OK)."""

  version: int
  state: str
  error_code: int
  error_message: str


def _decode(value: bytes) -> str:
  return value.decode("utf-8", "replace")


def text_example(text: str | bytes) -> bytes:
  """A serialized tf.Example with the ``text`` feature (str encoded as UTF-8, bytes as they
  are), for ``serving_default`` and ``classify``."""
  m = apis.messages()
  example = m.Example(
    features=m.Features(
      feature={
        features.TEXT_KEY: m.Feature(
          bytes_list=m.BytesList(value=[text.encode("utf-8") if isinstance(text, str) else text])
        )
      }
    )
  )
  return example.SerializeToString()


class SentimentClient:
  """gRPC client of one served model.

  Args:
    target: ``host:port`` of TF Serving's gRPC port (or ``imdb-tfx serve``).
    model_name: ``model_spec.name``.
    version: serve from this version (``model_spec.version``); None = the latest.
    version_label: or from this label (``stable``, ``canary``); not with ``version``.
    timeout_s: deadline of each attempt, seconds.
    retries: extra attempts on UNAVAILABLE / DEADLINE_EXCEEDED.
    backoff_s / max_backoff_s: first and largest backoff, seconds (doubling, full jitter).
    max_message_bytes: largest message sent or received, bytes.
    tls_ca: PEM file of the CA to trust; None = plaintext.
    tls_server_name: override the name checked in the server's certificate.

  Raises (constructor):
    ValueError: both ``version`` and ``version_label``, or bad numbers.
    FileNotFoundError: ``tls_ca`` does not exist.
  """

  def __init__(
    self,
    target: str = "localhost:8500",
    model_name: str = "imdb_sentiment",
    *,
    version: int | None = None,
    version_label: str | None = None,
    timeout_s: float = 10.0,
    retries: int = 3,
    backoff_s: float = 0.1,
    max_backoff_s: float = 2.0,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    tls_ca: str | None = None,
    tls_server_name: str | None = None,
  ):
    if version is not None and version_label:
      raise ValueError("give a model version or a version label, not both")
    if timeout_s <= 0 or retries < 0 or backoff_s < 0 or max_message_bytes <= 0:
      raise ValueError("timeout_s and max_message_bytes must be > 0, retries and backoff_s >= 0")
    self.target = target
    self.model_name = model_name
    self.version = version
    self.version_label = version_label
    self.timeout_s = timeout_s
    self.retries = retries
    self.backoff_s = backoff_s
    self.max_backoff_s = max_backoff_s
    options = [
      ("grpc.max_send_message_length", max_message_bytes),
      ("grpc.max_receive_message_length", max_message_bytes),
    ]
    if tls_server_name:
      options.append(("grpc.ssl_target_name_override", tls_server_name))
    if tls_ca:
      with open(tls_ca, "rb") as f:
        credentials = grpc.ssl_channel_credentials(root_certificates=f.read())
      self._channel = grpc.secure_channel(target, credentials, options=options)
    else:
      self._channel = grpc.insecure_channel(target, options=options)
    # One set of message classes per client, so its requests and responses never mix
    # classes of two pools.
    self._messages = apis.messages()
    m = self._messages
    self._predict = self._method(_PREDICT, m.PredictResponse)
    self._classify = self._method(_CLASSIFY, m.ClassificationResponse)
    self._get_model_metadata = self._method(_GET_MODEL_METADATA, m.GetModelMetadataResponse)
    self._get_model_status = self._method(_GET_MODEL_STATUS, m.GetModelStatusResponse)

  def close(self) -> None:
    self._channel.close()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()

  # --- plumbing ---------------------------------------------------------------------

  def _method(self, path: str, response_class: type) -> Callable:
    """A unary-unary gRPC method of the channel, sending ``serving.apis`` messages and
    answering with ``response_class`` instances."""
    return self._channel.unary_unary(
      path,
      request_serializer=lambda request: request.SerializeToString(),
      response_deserializer=response_class.FromString,
    )

  def _spec(self, spec, signature_name: str | None = None) -> None:
    spec.name = self.model_name
    if self.version is not None:
      spec.version.value = self.version
    elif self.version_label:
      spec.version_label = self.version_label
    if signature_name is not None:
      spec.signature_name = signature_name

  def _call(self, method: str, rpc: Callable, request):
    attempt = 0
    while True:
      attempt += 1
      try:
        return rpc(request, timeout=self.timeout_s)
      except grpc.RpcError as e:
        code = e.code()
        if code not in RETRYABLE_CODES or attempt > self.retries:
          raise ServingRequestError(method, code, e.details() or "", attempt) from e
        delay = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
        time.sleep(random.uniform(0, delay))

  # --- Predict / Classify -----------------------------------------------------------

  def predict_raw(
    self, signature_name: str, inputs: dict[str, np.ndarray], output_filter: Sequence[str] = ()
  ) -> tuple[dict[str, np.ndarray], int]:
    """Predict on any signature: ``({output: array}, model version)``.

    Args:
      signature_name: the signature to run.
      inputs: numpy arrays by input name: float32, float64, int32, int64, or strings
        (object arrays of str/bytes); encoded as ``tf.make_tensor_proto`` would.
      output_filter: the outputs to return (empty: all).
    Returns:
      The outputs as numpy arrays (strings as object arrays of bytes) and the version
      that answered.
    Raises:
      TypeError: an input of another dtype.
      ServingRequestError: the call failed (after retries where the code allows).
    """
    request = self._messages.PredictRequest()
    self._spec(request.model_spec, signature_name)
    for key, value in inputs.items():
      apis.fill_tensor(request.inputs[key], value)
    request.output_filter.extend(output_filter)
    response = self._call("Predict", self._predict, request)
    outputs = {k: apis.tensor_to_numpy(v) for k, v in response.outputs.items()}
    return outputs, response.model_spec.version.value

  def predict_text(self, reviews: str | Sequence[str]) -> list[Prediction]:
    """Scores raw reviews in one request on ``predict_text``.

    Args:
      reviews: a review or a batch of them (str; bytes are sent as they are).
    Returns:
      One ``Prediction`` per review, in order.
    Raises:
      ServingRequestError: the call failed (after retries where the code allows).
    """
    texts = [reviews] if isinstance(reviews, (str, bytes)) else list(reviews)
    encoded = [t.encode("utf-8") if isinstance(t, str) else t for t in texts]
    outputs, version = self.predict_raw(
      contract.PREDICT_TEXT, {features.TEXT_KEY: np.array(encoded, dtype=object)}
    )
    predictions = []
    for i, text in enumerate(texts):
      tokens = outputs["tokens"][i]
      weights = outputs["attention_weights"][i]
      attention = tuple(
        TokenWeight(_decode(tok), float(w)) for tok, w in zip(tokens, weights) if tok
      )
      predictions.append(
        Prediction(
          text=text if isinstance(text, str) else _decode(text),
          probability=float(outputs[contract.PROBABILITIES][i]),
          label=int(outputs["label"][i]),
          attention=attention,
          model_version=version,
        )
      )
    return predictions

  def predict_examples(self, examples: Sequence[str | bytes]) -> tuple[np.ndarray, int]:
    """P(positive) float32 [n] from ``serving_default``, and the model version.

    ``examples``: serialized tf.Examples (bytes), or review texts (str), which are wrapped
    in tf.Examples with the ``text`` feature.
    """
    serialized = [text_example(e) if isinstance(e, str) else e for e in examples]
    outputs, version = self.predict_raw(
      contract.SERVING_DEFAULT, {"examples": np.array(serialized, dtype=object)}
    )
    return outputs[contract.PROBABILITIES], version

  def classify(
    self, reviews: Sequence[str], signature_name: str = contract.CLASSIFY
  ) -> tuple[list[dict[str, float]], int]:
    """Classify API: ``[{class label: score}]`` per review, and the model version."""
    request = self._messages.ClassificationRequest()
    self._spec(request.model_spec, signature_name)
    for text in reviews:
      request.input.example_list.examples.add().ParseFromString(text_example(text))
    response = self._call("Classify", self._classify, request)
    results = [{c.label: c.score for c in row.classes} for row in response.result.classifications]
    return results, response.model_spec.version.value

  # --- model status and metadata ----------------------------------------------------

  def model_status(self) -> list[VersionStatus]:
    """GetModelStatus for the model (or the configured version/label)."""
    request = self._messages.GetModelStatusRequest()
    self._spec(request.model_spec)
    response = self._call("GetModelStatus", self._get_model_status, request)
    states = self._messages.model_version_states
    return [
      VersionStatus(
        s.version, states.get(s.state, str(s.state)), s.status.error_code, s.status.error_message
      )
      for s in response.model_version_status
    ]

  def model_metadata(self) -> tuple[int, dict[str, object]]:
    """GetModelMetadata: ``(version, {signature name: SignatureDef proto})`` (the
    ``tensorflow.SignatureDef`` messages of ``serving.apis``, not of TensorFlow's module)."""
    request = self._messages.GetModelMetadataRequest()
    self._spec(request.model_spec)
    request.metadata_field.append("signature_def")
    response = self._call("GetModelMetadata", self._get_model_metadata, request)
    signature_map = self._messages.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signature_map)
    return response.model_spec.version.value, dict(signature_map.signature_def)

  def wait_until_ready(self, timeout_s: float = 60.0, poll_s: float = 0.5) -> int:
    """Polls GetModelStatus until a version the client would use is AVAILABLE.

    Returns:
      The highest AVAILABLE version.
    Raises:
      TimeoutError: not ready within ``timeout_s`` seconds (the last reason is given).
    """
    deadline = time.monotonic() + timeout_s
    reason = "no answer yet"
    while time.monotonic() < deadline:
      try:
        available = [s.version for s in self.model_status() if s.state == "AVAILABLE"]
        if available:
          return max(available)
        reason = "no version is AVAILABLE"
      except ServingRequestError as e:
        reason = str(e)
      time.sleep(poll_s)
    raise TimeoutError(
      f"model {self.model_name} at {self.target} not ready after {timeout_s} s: {reason}"
    )


def format_prediction(prediction: Prediction, top_k: int = 5) -> str:
  """One readable block: sentiment, probability, version and the most attended tokens."""
  text = prediction.text if len(prediction.text) <= 70 else prediction.text[:67] + "..."
  tokens = ", ".join(f"{t.token} {t.weight:.3f}" for t in prediction.top_tokens(top_k))
  return (
    f"{prediction.sentiment:8s} p(positive)={prediction.probability:.4f}  "
    f"v{prediction.model_version}  {text!r}\n"
    f"         attention: {tokens or '(no tokens)'}"
  )


def read_reviews(lines: Iterable[str]) -> list[str]:
  """Non-empty lines, stripped of their line ending."""
  return [line.rstrip("\r\n") for line in lines if line.strip()]
