"""The development server (TF Serving's gRPC API) and the client, on a tiny exported model.

Every test talks gRPC over a loopback port through ``tensorflow-serving-api``'s stubs.
"""

import os
import shutil
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.apis import (
  classification_pb2,
  get_model_metadata_pb2,
  predict_pb2,
  prediction_log_pb2,
  prediction_service_pb2_grpc,
)
from tensorflow_serving.config import model_server_config_pb2
from tiny_model import copy_version

from core import warmup
from serving.batching import BatchingOptions
from serving.client import SentimentClient, ServingRequestError
from serving.model_manager import sources_from_config, sources_from_flags
from serving.server import DevServer, parse_channel_arguments

MODEL = "imdb_sentiment"
TEXTS = ["Great film, loved it!", "terrible, awful, bad", "", "zzz qqq great"]


def start_server(base_or_sources, **kwargs) -> DevServer:
  sources = (
    sources_from_flags(MODEL, base_or_sources)
    if isinstance(base_or_sources, str)
    else base_or_sources
  )
  kwargs.setdefault("poll_seconds", 0.2)
  kwargs.setdefault("settle_seconds", 0.1)
  server = DevServer(sources, port=0, host="127.0.0.1", **kwargs)
  server.start()
  return server


def wait_for(predicate, timeout_s=30.0, what="condition"):
  deadline = time.monotonic() + timeout_s
  while time.monotonic() < deadline:
    if predicate():
      return
    time.sleep(0.05)
  raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def served(tiny_export, tmp_path_factory):
  base = str(tmp_path_factory.mktemp("models"))
  copy_version(tiny_export.export_dir, base, 1)
  server = start_server(base)
  server.wait_until_available(MODEL)
  client = SentimentClient(f"127.0.0.1:{server.port}", MODEL, retries=0)
  yield server, client, tf.saved_model.load(tiny_export.export_dir)
  client.close()
  server.stop(0)


def _stub(server):
  channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
  return prediction_service_pb2_grpc.PredictionServiceStub(channel)


# --- answers ----------------------------------------------------------------------------


def test_predict_text_matches_the_in_process_signature(served):
  _, client, loaded = served
  predictions = client.predict_text(TEXTS)
  expected = loaded.signatures["predict_text"](text=tf.constant(TEXTS))
  assert [p.text for p in predictions] == TEXTS
  np.testing.assert_allclose(
    [p.probability for p in predictions], expected["probabilities"].numpy(), rtol=1e-6
  )
  assert [p.label for p in predictions] == expected["label"].numpy().tolist()
  assert all(p.model_version == 1 for p in predictions)
  first = predictions[0]
  assert [t.token for t in first.attention] == ["great", "film", "loved", "it"]
  assert sum(t.weight for t in first.attention) == pytest.approx(1.0, rel=1e-5)
  assert predictions[2].attention == ()  # the empty review attends to nothing
  assert first.sentiment == ("positive" if first.label else "negative")


def test_serving_default_and_classify_agree_with_predict_text(served):
  _, client, _ = served
  text_probabilities = [p.probability for p in client.predict_text(TEXTS)]
  probabilities, version = client.predict_examples(TEXTS)
  assert version == 1 and probabilities.dtype == np.float32
  np.testing.assert_allclose(probabilities, text_probabilities, rtol=1e-6)
  results, version = client.classify(TEXTS)
  assert version == 1
  for result, p in zip(results, text_probabilities):
    assert set(result) == {"negative", "positive"}
    assert result["positive"] == pytest.approx(p, rel=1e-6)
    assert result["negative"] == pytest.approx(1 - p, rel=1e-5)


def test_model_status_and_metadata(served):
  _, client, _ = served
  [status] = client.model_status()
  assert (status.version, status.state, status.error_code) == (1, "AVAILABLE", 0)
  version, signatures = client.model_metadata()
  assert version == 1
  assert {"serving_default", "predict_text", "classify", "transform_features"} <= set(signatures)
  assert signatures["classify"].method_name == "tensorflow/serving/classify"
  text_input = signatures["predict_text"].inputs["text"]
  assert text_input.dtype == tf.string.as_datatype_enum
  assert [d.size for d in text_input.tensor_shape.dim] == [-1]
  assert set(signatures["predict_text"].outputs) == {
    "probabilities",
    "label",
    "attention_weights",
    "tokens",
  }


def test_awkward_reviews_are_answered(served):
  _, client, _ = served
  huge = ("a great film " * 90_000)[:1_000_000]  # 1 MB of text
  reviews = ["", "   ", b"\xff\xfe\xc3( not utf-8 but great", huge, "<br /><br />"]
  predictions = client.predict_text(reviews)
  assert len(predictions) == len(reviews)
  for p in predictions:
    assert 0.0 <= p.probability <= 1.0 and not np.isnan(p.probability)
  assert "great" in [t.token for t in predictions[2].attention]
  assert len(predictions[3].attention) == 8  # max_length of the tiny model
  probabilities, _ = client.predict_examples(["", huge])
  assert probabilities.shape == (2,)
  with pytest.raises(ServingRequestError) as raised:  # a tf.Example without "text"
    client.predict_examples([b""])
  assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
  assert "text" in raised.value.details


def test_empty_batch_gives_empty_outputs(served):
  _, client, _ = served
  assert client.predict_text([]) == []


def _predict_request(signature="predict_text", inputs=None, name=MODEL, **spec):
  request = predict_pb2.PredictRequest()
  request.model_spec.name = name
  request.model_spec.signature_name = signature
  for key, value in spec.items():
    if key == "version":
      request.model_spec.version.value = value
    else:
      setattr(request.model_spec, key, value)
  inputs = {"text": tf.make_tensor_proto([b"good film"])} if inputs is None else inputs
  for key, proto in inputs.items():
    request.inputs[key].CopyFrom(proto)
  return request


BAD_PREDICTS = {
  "unknown model": (
    _predict_request(name="no_such_model"),
    grpc.StatusCode.NOT_FOUND,
    "no_such_model",
  ),
  "unknown version": (_predict_request(version=42), grpc.StatusCode.NOT_FOUND, "42"),
  "unknown label": (_predict_request(version_label="canary"), grpc.StatusCode.NOT_FOUND, "canary"),
  "no model name": (_predict_request(name=""), grpc.StatusCode.INVALID_ARGUMENT, "model_spec.name"),
  "unknown signature": (
    _predict_request("no_such_signature"),
    grpc.StatusCode.FAILED_PRECONDITION,
    "no_such_signature",
  ),
  "missing input key": (
    _predict_request(inputs={"review": tf.make_tensor_proto([b"x"])}),
    grpc.StatusCode.INVALID_ARGUMENT,
    "Missing but required: ['text']",
  ),
  "extra input key": (
    _predict_request(
      inputs={"text": tf.make_tensor_proto([b"x"]), "other": tf.make_tensor_proto([1])}
    ),
    grpc.StatusCode.INVALID_ARGUMENT,
    "Sent extra: ['other']",
  ),
  "wrong dtype": (
    _predict_request(inputs={"text": tf.make_tensor_proto([1.5, 2.0])}),
    grpc.StatusCode.INVALID_ARGUMENT,
    "expects dtype string but got float",
  ),
  "wrong rank": (
    _predict_request(inputs={"text": tf.make_tensor_proto([[b"a", b"b"]])}),
    grpc.StatusCode.INVALID_ARGUMENT,
    "expects shape [-1]",
  ),
  "scalar input": (
    _predict_request(inputs={"text": tf.make_tensor_proto(b"a")}),
    grpc.StatusCode.INVALID_ARGUMENT,
    "expects shape [-1]",
  ),
}


@pytest.mark.parametrize("case", sorted(BAD_PREDICTS))
def test_bad_predict_requests_get_tf_serving_codes_and_server_keeps_serving(served, case):
  server, client, _ = served
  request, code, fragment = BAD_PREDICTS[case]
  with pytest.raises(grpc.RpcError) as raised:
    _stub(server).Predict(request, timeout=10)
  assert raised.value.code() == code
  assert fragment in raised.value.details()
  assert len(client.predict_text(["still answering"])) == 1


def test_bad_output_filter_and_filtering(served):
  server, client, _ = served
  request = _predict_request()
  request.output_filter.append("probabilities")
  response = _stub(server).Predict(request, timeout=10)
  assert set(response.outputs) == {"probabilities"}
  assert response.model_spec.version.value == 1
  assert response.model_spec.signature_name == "predict_text"
  request.output_filter.append("no_such_output")
  with pytest.raises(grpc.RpcError) as raised:
    _stub(server).Predict(request, timeout=10)
  assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
  assert "no_such_output" in raised.value.details()
  assert client.predict_text("fine")[0].model_version == 1


def test_bad_classify_and_metadata_requests(served):
  server, client, _ = served
  stub = _stub(server)
  request = classification_pb2.ClassificationRequest()
  request.model_spec.name = MODEL
  request.model_spec.signature_name = "predict_text"
  request.input.example_list.examples.add()
  with pytest.raises(grpc.RpcError) as raised:
    stub.Classify(request, timeout=10)
  assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
  assert "tensorflow/serving/classify" in raised.value.details()
  request = classification_pb2.ClassificationRequest()
  request.model_spec.name = MODEL
  request.model_spec.signature_name = "classify"
  with pytest.raises(grpc.RpcError) as raised:
    stub.Classify(request, timeout=10)
  assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
  assert "Input is empty" in raised.value.details()
  metadata = get_model_metadata_pb2.GetModelMetadataRequest()
  metadata.model_spec.name = MODEL
  metadata.metadata_field.append("graph")
  with pytest.raises(grpc.RpcError) as raised:
    stub.GetModelMetadata(metadata, timeout=10)
  assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
  with pytest.raises(ServingRequestError) as raised:
    SentimentClient(f"127.0.0.1:{server.port}", "nope", retries=2).model_status()
  assert raised.value.code == grpc.StatusCode.NOT_FOUND
  assert raised.value.attempts == 1  # NOT_FOUND is never retried
  assert client.model_status()[0].state == "AVAILABLE"


def test_oversized_message_is_resource_exhausted(tiny_export, tmp_path):
  base = str(tmp_path)
  copy_version(tiny_export.export_dir, base, 1)
  server = start_server(
    base,
    channel_arguments=parse_channel_arguments("grpc.max_receive_message_length=65536"),
    enable_warmup=False,
  )
  try:
    server.wait_until_available(MODEL)
    client = SentimentClient(f"127.0.0.1:{server.port}", MODEL, retries=0)
    with pytest.raises(ServingRequestError) as raised:
      client.predict_text(["x" * 100_000])
    assert raised.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert len(client.predict_text(["small enough"])) == 1
  finally:
    server.stop(0)


# --- versions ---------------------------------------------------------------------------


def test_new_version_is_picked_up_without_dropping_requests(tiny_export, tmp_path):
  base = str(tmp_path)
  copy_version(tiny_export.export_dir, base, 1)
  server = start_server(base, enable_warmup=False)
  errors, stop = [], threading.Event()
  per_thread = [[] for _ in range(4)]
  versions = []  # every answer's version, in completion order

  def load(seen):
    # A dropped request fails at once (NOT_FOUND, UNAVAILABLE); the long deadline only
    # keeps a slow first call on a busy machine (the new version's graph runs for the
    # first time, unwarmed) from reading as one.
    with SentimentClient(f"127.0.0.1:{server.port}", MODEL, retries=0, timeout_s=120.0) as client:
      while not stop.is_set():
        try:
          version = client.predict_text(["a great film"])[0].model_version
          seen.append(version)
          versions.append(version)
        except ServingRequestError as e:
          errors.append(e)

  try:
    server.wait_until_available(MODEL)
    threads = [threading.Thread(target=load, args=(seen,)) for seen in per_thread]
    for thread in threads:
      thread.start()
    wait_for(lambda: len(versions) > 20, what="requests on version 1")
    copy_version(tiny_export.export_dir, base, 2)
    wait_for(lambda: versions and versions[-1] == 2, what="version 2 to serve")
    n = len(versions)
    wait_for(lambda: len(versions) > n + 20, what="requests on version 2")
    stop.set()
    for thread in threads:
      thread.join()
    assert errors == []
    assert set(versions) == {1, 2}
    for seen in per_thread:  # once a caller got version 2, it never gets version 1 again
      assert seen == sorted(seen), "".join(map(str, seen))
    client = SentimentClient(f"127.0.0.1:{server.port}", MODEL)
    states = {s.version: s.state for s in client.model_status()}
    assert states == {2: "AVAILABLE", 1: "END"}
  finally:
    stop.set()
    server.stop(0)


def test_incomplete_or_broken_versions_are_never_served(tiny_export, tmp_path):
  base = str(tmp_path)
  copy_version(tiny_export.export_dir, base, 1)
  server = start_server(base, enable_warmup=False)
  try:
    server.wait_until_available(MODEL)
    client = SentimentClient(f"127.0.0.1:{server.port}", MODEL, retries=0)
    # Version 5: saved_model.pb present but no variables yet (a copy in progress).
    partial = os.path.join(base, "5")
    os.makedirs(os.path.join(partial, "variables"))
    shutil.copy(os.path.join(tiny_export.export_dir, "saved_model.pb"), partial)
    time.sleep(1.0)  # several polls
    assert {s.version for s in client.model_status()} == {1}
    # Version 6: complete layout but a corrupt graph: tried once, reported, not served.
    broken = copy_version(tiny_export.export_dir, base, 6)
    with open(os.path.join(broken, "saved_model.pb"), "wb") as f:
      f.write(b"not a SavedModel")
    wait_for(lambda: 6 in {s.version for s in client.model_status()}, what="version 6 tried")
    time.sleep(0.5)
    states = {s.version: s for s in client.model_status()}
    assert 5 not in states
    assert states[6].state == "END" and states[6].error_code != 0
    assert "saved_model.pb" in states[6].error_message
    assert states[1].state == "AVAILABLE"
    assert client.predict_text("still v1")[0].model_version == 1
    # Repairing version 6 changes its files, so it is tried again, loads and serves.
    shutil.rmtree(broken)
    copy_version(tiny_export.export_dir, base, 6)
    # (Status first: a Predict while version 6 loads can pass its deadline on a busy machine.)
    wait_for(
      lambda: any(s.version == 6 and s.state == "AVAILABLE" for s in client.model_status()),
      what="version 6 available",
    )
    assert client.predict_text("x")[0].model_version == 6
    assert 5 not in {s.version for s in client.model_status()}
  finally:
    server.stop(0)


def test_failing_warmup_keeps_version_unavailable(tiny_export, tmp_path):
  base = str(tmp_path)
  copy_version(tiny_export.export_dir, base, 1)
  bad = copy_version(tiny_export.export_dir, base, 2)
  request = predict_pb2.PredictRequest()
  request.model_spec.signature_name = "no_such_signature"
  with tf.io.TFRecordWriter(warmup.warmup_path(bad)) as writer:
    writer.write(
      prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=request)
      ).SerializeToString()
    )
  server = start_server(
    sources_from_config(
      text_format.Parse(
        f'model_config_list {{ config {{ name: "{MODEL}" base_path: "{base}" '
        'model_platform: "tensorflow" model_version_policy { all {} } } }',
        model_server_config_pb2.ModelServerConfig(),
      )
    )
  )
  try:
    client = SentimentClient(f"127.0.0.1:{server.port}", MODEL)
    client.wait_until_ready(30)
    states = {s.version: s for s in client.model_status()}
    assert states[1].state == "AVAILABLE"
    assert states[2].state == "END" and "warmup" in states[2].error_message
    assert client.predict_text("x")[0].model_version == 1
  finally:
    server.stop(0)


def test_warmup_replays_every_record(served, tiny_export):
  server, _, _ = served
  from serving.server import _Inference, make_warmup_fn

  servable = server.manager.get_servable(MODEL)
  expected = len(list(warmup.read_warmup_file(warmup.warmup_path(tiny_export.export_dir))))
  assert (
    make_warmup_fn(_Inference(None))(servable)
    == expected
    == len(warmup.PREDICT_TEXT_BATCH_SIZES) + 2
  )
  assert make_warmup_fn(_Inference(None), enabled=False)(servable) == 0


def test_model_config_labels_and_specific_versions(tiny_export, tmp_path):
  base = str(tmp_path / "imdb")
  for version in (3, 7, 9):
    copy_version(tiny_export.export_dir, base, version)
  config = text_format.Parse(
    f"""
      model_config_list {{ config {{
        name: "{MODEL}" base_path: "imdb" model_platform: "tensorflow"
        model_version_policy {{ specific {{ versions: 3 versions: 7 }} }}
        version_labels {{ key: "stable" value: 3 }}
        version_labels {{ key: "canary" value: 7 }}
      }} }}""",
    model_server_config_pb2.ModelServerConfig(),
  )
  server = start_server(sources_from_config(config, str(tmp_path)), enable_warmup=False)
  try:
    target = f"127.0.0.1:{server.port}"
    SentimentClient(target, MODEL).wait_until_ready(30)
    assert SentimentClient(target, MODEL).predict_text("x")[0].model_version == 7
    assert (
      SentimentClient(target, MODEL, version_label="stable").predict_text("x")[0].model_version == 3
    )
    assert (
      SentimentClient(target, MODEL, version_label="canary").predict_text("x")[0].model_version == 7
    )
    assert SentimentClient(target, MODEL, version=3).predict_text("x")[0].model_version == 3
    with pytest.raises(ServingRequestError) as raised:
      SentimentClient(target, MODEL, version=9, retries=0).predict_text("x")
    assert raised.value.code == grpc.StatusCode.NOT_FOUND
    statuses = SentimentClient(target, MODEL, version_label="stable").model_status()
    assert [(s.version, s.state) for s in statuses] == [(3, "AVAILABLE")]
  finally:
    server.stop(0)


def test_reloaded_config_adds_relabels_and_removes_models(tiny_export, tmp_path):
  for version in (1, 2):
    copy_version(tiny_export.export_dir, str(tmp_path / "a"), version)
  copy_version(tiny_export.export_dir, str(tmp_path / "b"), 1)

  def config(text):
    return sources_from_config(
      text_format.Parse(text, model_server_config_pb2.ModelServerConfig()), str(tmp_path)
    )

  server = start_server(
    config(
      'model_config_list { config { name: "a" base_path: "a" model_version_policy '
      '{ all {} } version_labels { key: "stable" value: 1 } } }'
    ),
    enable_warmup=False,
  )
  try:
    target = f"127.0.0.1:{server.port}"
    SentimentClient(target, "a").wait_until_ready(30)
    assert (
      SentimentClient(target, "a", version_label="stable").predict_text("x")[0].model_version == 1
    )
    server.manager.set_sources(
      config(
        'model_config_list { config { name: "a" base_path: "a" model_version_policy '
        '{ all {} } version_labels { key: "stable" value: 2 } } '
        'config { name: "b" base_path: "b" } }'
      )
    )
    assert (
      SentimentClient(target, "a", version_label="stable").predict_text("x")[0].model_version == 2
    )
    assert SentimentClient(target, "b").predict_text("x")[0].model_version == 1
    server.manager.set_sources(config('model_config_list { config { name: "b" base_path: "b" } }'))
    with pytest.raises(ServingRequestError) as raised:
      SentimentClient(target, "a", retries=0).predict_text("x")
    assert raised.value.code == grpc.StatusCode.NOT_FOUND
    assert SentimentClient(target, "b").predict_text("x")[0].model_version == 1
  finally:
    server.stop(0)


def test_model_config_errors():
  def parse(text):
    return sources_from_config(text_format.Parse(text, model_server_config_pb2.ModelServerConfig()))

  with pytest.raises(ValueError, match="points at version 8"):
    parse(
      'model_config_list { config { name: "m" base_path: "/m" model_version_policy '
      '{ specific { versions: 1 } } version_labels { key: "stable" value: 8 } } }'
    )
  with pytest.raises(ValueError, match="unique"):
    parse(
      'model_config_list { config { name: "m" base_path: "/a" } '
      'config { name: "m" base_path: "/b" } }'
    )
  with pytest.raises(ValueError, match="platform"):
    parse('model_config_list { config { name: "m" base_path: "/a" model_platform: "onnx" } }')
  with pytest.raises(ValueError, match="model_config_list"):
    parse("")


# --- batching ---------------------------------------------------------------------------


def test_batched_server_answers_concurrent_requests_like_unbatched(served, tiny_export, tmp_path):
  _, unbatched, _ = served
  base = str(tmp_path)
  copy_version(tiny_export.export_dir, base, 1)
  # Warmup runs through the batch scheduler too, so its largest batch (32) must fit.
  server = start_server(
    base,
    batching=BatchingOptions(
      max_batch_size=32, batch_timeout_s=0.05, allowed_batch_sizes=(8, 16, 32)
    ),
  )
  try:
    server.wait_until_available(MODEL)
    texts = [f"review {i} {'great' if i % 2 else 'awful'} film" for i in range(33)]
    expected = [p.probability for p in unbatched.predict_text(texts)]
    results = [None] * 24

    def call(i):
      with SentimentClient(f"127.0.0.1:{server.port}", MODEL, retries=0) as client:
        results[i] = client.predict_text([texts[i]])[0].probability

    threads = [threading.Thread(target=call, args=(i,)) for i in range(24)]
    for thread in threads:
      thread.start()
    for thread in threads:
      thread.join()
    np.testing.assert_allclose(results[:24], expected[:24], rtol=1e-5)
    with pytest.raises(ServingRequestError) as raised:  # larger than max_batch_size
      SentimentClient(f"127.0.0.1:{server.port}", MODEL, retries=0).predict_text(texts)
    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
  finally:
    server.stop(0)


# --- client -----------------------------------------------------------------------------


def test_client_retries_unavailable_then_fails():
  import socket

  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  client = SentimentClient(f"127.0.0.1:{port}", MODEL, retries=2, backoff_s=0.01, timeout_s=2)
  with pytest.raises(ServingRequestError) as raised:
    client.predict_text("nobody listens")
  assert raised.value.code == grpc.StatusCode.UNAVAILABLE
  assert raised.value.attempts == 3
  with pytest.raises(TimeoutError, match="not ready"):
    client.wait_until_ready(timeout_s=0.3, poll_s=0.1)


def test_client_argument_errors():
  with pytest.raises(ValueError, match="not both"):
    SentimentClient("localhost:1", version=1, version_label="stable")
  with pytest.raises(ValueError):
    SentimentClient("localhost:1", timeout_s=0)
  with pytest.raises(FileNotFoundError):
    SentimentClient("localhost:1", tls_ca="/no/such/ca.pem")


def test_parse_channel_arguments():
  assert parse_channel_arguments("grpc.max_receive_message_length=10, a.b=text") == [
    ("grpc.max_receive_message_length", 10),
    ("a.b", "text"),
  ]
  assert parse_channel_arguments("") == []
  with pytest.raises(ValueError, match="KEY=VALUE"):
    parse_channel_arguments("grpc.keepalive")


def _self_signed_pem(host: str):
  """(key PEM, certificate PEM) of a self-signed certificate for ``host``."""
  import datetime

  from cryptography import x509
  from cryptography.hazmat.primitives import hashes, serialization
  from cryptography.hazmat.primitives.asymmetric import ec
  from cryptography.x509.oid import NameOID

  key = ec.generate_private_key(ec.SECP256R1())
  name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
  now = datetime.datetime.now(datetime.timezone.utc)
  cert = (
    x509.CertificateBuilder()
    .subject_name(name)
    .issuer_name(name)
    .public_key(key.public_key())
    .serial_number(x509.random_serial_number())
    .not_valid_before(now - datetime.timedelta(minutes=1))
    .not_valid_after(now + datetime.timedelta(days=1))
    .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
    .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    .sign(key, hashes.SHA256())
  )
  key_pem = key.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
  ).decode()
  return key_pem, cert.public_bytes(serialization.Encoding.PEM).decode()


def test_tls_with_ssl_config_file(tiny_export, tmp_path):
  from serving import serve_main

  base = str(tmp_path / "models")
  copy_version(tiny_export.export_dir, base, 1)
  key_pem, cert_pem = _self_signed_pem("localhost")
  (tmp_path / "ca.pem").write_text(cert_pem)
  (tmp_path / "ssl.config").write_text(
    f"server_key: {key_pem!r}\nserver_cert: {cert_pem!r}\n".replace("'", '"')
  )
  options = serve_main.ServeOptions(
    port=0,
    model_name=MODEL,
    model_base_path=base,
    ssl_config_file=str(tmp_path / "ssl.config"),
    bind_address="127.0.0.1",
    enable_model_warmup=False,
  )
  server = serve_main.build_server(options)
  server.start()
  try:
    server.wait_until_available(MODEL)
    secure = SentimentClient(
      f"localhost:{server.port}", MODEL, tls_ca=str(tmp_path / "ca.pem"), retries=0
    )
    assert secure.predict_text("a great film")[0].model_version == 1
    plaintext = SentimentClient(
      f"localhost:{server.port}", MODEL, retries=1, backoff_s=0.01, timeout_s=2
    )
    with pytest.raises(ServingRequestError) as raised:
      plaintext.predict_text("a great film")
    assert raised.value.code == grpc.StatusCode.UNAVAILABLE
  finally:
    server.stop(0)


def test_serve_options_errors(tmp_path):
  from serving import serve_main

  with pytest.raises(ValueError, match="either --model_config_file or --model_base_path"):
    serve_main.model_sources(serve_main.ServeOptions())
  bad = tmp_path / "batching.txt"
  bad.write_text("max_batch_size { value: 32 }\nallowed_batch_sizes: 8\n")
  with pytest.raises(ValueError, match="must equal max_batch_size"):
    serve_main.batching_options(
      serve_main.ServeOptions(enable_batching=True, batching_parameters_file=str(bad))
    )
  bad.write_text("max_batch_size: 32\n")
  with pytest.raises(ValueError, match="batching.txt"):
    serve_main.batching_options(
      serve_main.ServeOptions(enable_batching=True, batching_parameters_file=str(bad))
    )
  deploy = os.path.join(os.path.dirname(__file__), "..", "deploy", "batching_parameters.txt")
  options = serve_main.batching_options(
    serve_main.ServeOptions(enable_batching=True, batching_parameters_file=deploy)
  )
  assert options.max_batch_size == max(warmup.PREDICT_TEXT_BATCH_SIZES)
  assert set(options.allowed_batch_sizes) <= set(warmup.PREDICT_TEXT_BATCH_SIZES)


def test_bench_load_generator_counts_requests_and_latencies(served):
  from analysis import bench_serving as bench

  server, _, _ = served
  stats = bench.run_load(
    f"127.0.0.1:{server.port}", ["a great film", "awful"], concurrency=3, seconds=1.0
  )
  assert stats["concurrency"] == 3 and stats["errors"] == 0
  assert stats["requests"] > 3
  assert stats["throughput_rps"] == pytest.approx(stats["requests"] / stats["seconds"], rel=1e-2)
  assert 0 < stats["p50_ms"] <= stats["p99_ms"]
  summary = bench.latency_summary([0.001, 0.002, 0.003])
  assert summary["p50_ms"] == pytest.approx(2.0) and summary["mean_ms"] == pytest.approx(2.0)


# --- command line -----------------------------------------------------------------------


def test_cli_predict_and_status(served, tmp_path):
  import json

  from click.testing import CliRunner

  from cli import main as cli

  server, client, _ = served
  target = ["--server", f"127.0.0.1:{server.port}", "--model-name", MODEL]
  runner = CliRunner()
  result = runner.invoke(cli.main, ["predict", *target, "Great film, loved it!", "bad"])
  assert result.exit_code == 0, result.output
  assert result.output.count("p(positive)=") == 2
  assert "attention: " in result.output and "great 0." in result.output
  reviews = tmp_path / "reviews.txt"
  reviews.write_text("\n".join([*TEXTS[:2], "one", "two", "three"]) + "\n")
  result = runner.invoke(
    cli.main, ["predict", *target, "--file", str(reviews), "--json", "--batch-size", "2"]
  )
  assert result.exit_code == 0, result.output
  rows = json.loads(result.output)
  assert [r["text"] for r in rows] == [*TEXTS[:2], "one", "two", "three"]
  expected = [p.probability for p in client.predict_text([r["text"] for r in rows])]
  assert [r["probability"] for r in rows] == pytest.approx(expected, rel=1e-6)
  assert rows[0]["attention"][0][0] == "great"
  for signature in ("serving_default", "classify"):
    result = runner.invoke(
      cli.main,
      ["predict", *target, "--signature", signature, "--json", "--batch-size", "1", "a", "b", "c"],
    )
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.output)) == 3
  result = runner.invoke(cli.main, ["status", *target, "--json", "--wait-ready", "5"])
  assert result.exit_code == 0, result.output
  status = json.loads(result.output)
  assert status["versions"][0]["state"] == "AVAILABLE"
  assert status["signatures"]["predict_text"]["inputs"] == ["text"]
  result = runner.invoke(
    cli.main, ["predict", "--server", f"127.0.0.1:{server.port}", "--model-name", "nope", "x"]
  )
  assert result.exit_code == 1 and "NOT_FOUND" in result.output
  result = runner.invoke(cli.main, ["predict", *target])
  assert result.exit_code == 2 and "give reviews" in result.output


def test_cli_serve_help_and_errors():
  from click.testing import CliRunner

  from cli import main as cli

  runner = CliRunner()
  result = runner.invoke(cli.main, ["serve", "--help"])
  assert result.exit_code == 0
  flat = " ".join(result.output.split())
  assert "DEVELOPMENT server compatible with TF Serving's gRPC API" in flat
  assert "It is not TF Serving" in flat
  for flag in (
    "--port",
    "--model_name",
    "--model_base_path",
    "--model_config_file",
    "--file_system_poll_wait_seconds",
    "--enable_batching",
    "--batching_parameters_file",
  ):
    assert flag in result.output
  result = runner.invoke(cli.main, ["serve", "--port=0"])
  assert result.exit_code == 1
  assert "either --model_config_file or --model_base_path" in result.output
