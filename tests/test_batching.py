"""serving.batching.BatchScheduler with a NumPy model: merging, padding, splitting, limits."""

import threading
import time

import grpc
import numpy as np
import pytest

from serving import tf_serving_protos
from serving.batching import BatchingOptions, BatchScheduler
from serving.errors import ServingError


class RecordingModel:
  """Doubles its input and records each batch's size; optionally slow."""

  def __init__(self, delay_s=0.0):
    self.batch_sizes = []
    self.delay_s = delay_s
    self.lock = threading.Lock()

  def __call__(self, inputs):
    x = inputs["x"]
    with self.lock:
      self.batch_sizes.append(x.shape[0])
    time.sleep(self.delay_s)
    return {"y": x * 2, "n": np.full([x.shape[0]], x.shape[0])}


def run_concurrently(scheduler, requests):
  results, errors = [None] * len(requests), [None] * len(requests)

  def call(i):
    try:
      results[i] = scheduler.submit(requests[i])
    except ServingError as e:
      errors[i] = e

  threads = [threading.Thread(target=call, args=(i,)) for i in range(len(requests))]
  for thread in threads:
    thread.start()
  for thread in threads:
    thread.join()
  return results, errors


def test_concurrent_requests_are_merged_and_answers_split_back():
  model = RecordingModel(delay_s=0.05)
  scheduler = BatchScheduler(
    model, BatchingOptions(max_batch_size=8, batch_timeout_s=0.2, num_batch_threads=1)
  )
  requests = [{"x": np.array([[i, i]], np.float32)} for i in range(16)]
  results, errors = run_concurrently(scheduler, requests)
  scheduler.close()
  assert errors == [None] * 16
  for i, result in enumerate(results):
    np.testing.assert_array_equal(result["y"], [[2 * i, 2 * i]])
  assert sum(model.batch_sizes) == 16
  assert max(model.batch_sizes) == 8 and len(model.batch_sizes) < 16


def test_batches_are_padded_to_allowed_sizes_and_padding_dropped():
  model = RecordingModel()
  scheduler = BatchScheduler(
    model, BatchingOptions(max_batch_size=8, batch_timeout_s=0.0, allowed_batch_sizes=(4, 8))
  )
  result = scheduler.submit({"x": np.arange(3, dtype=np.float32)})
  np.testing.assert_array_equal(result["y"], [0, 2, 4])
  assert result["n"].tolist() == [4, 4, 4]  # the model saw a padded batch of 4
  result = scheduler.submit({"x": np.arange(5, dtype=np.float32)})
  assert result["y"].shape == (5,) and model.batch_sizes == [4, 8]
  scheduler.close()


def test_timeout_runs_a_partial_batch():
  model = RecordingModel()
  scheduler = BatchScheduler(model, BatchingOptions(max_batch_size=32, batch_timeout_s=0.01))
  result = scheduler.submit({"x": np.ones([2], np.float32)})
  assert result["y"].tolist() == [2, 2] and model.batch_sizes == [2]
  scheduler.close()


def test_task_larger_than_max_batch_size():
  model = RecordingModel()
  options = BatchingOptions(max_batch_size=4, batch_timeout_s=0.0)
  scheduler = BatchScheduler(model, options)
  with pytest.raises(ServingError) as raised:
    scheduler.submit({"x": np.ones([5], np.float32)})
  assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
  assert "Task size 5 is larger than maximum input batch size 4" in raised.value.message
  scheduler.close()
  import dataclasses

  splitting = BatchScheduler(model, dataclasses.replace(options, enable_large_batch_splitting=True))
  result = splitting.submit({"x": np.arange(10, dtype=np.float32)})
  np.testing.assert_array_equal(result["y"], np.arange(10) * 2)
  splitting.close()


def test_requests_of_different_shapes_never_share_a_batch():
  model = RecordingModel(delay_s=0.02)
  scheduler = BatchScheduler(
    model, BatchingOptions(max_batch_size=16, batch_timeout_s=0.1, num_batch_threads=1)
  )
  requests = [{"x": np.ones([1, 2 + i % 2], np.float32)} for i in range(8)]
  results, errors = run_concurrently(scheduler, requests)
  scheduler.close()
  assert errors == [None] * 8
  for request, result in zip(requests, results):
    assert result["y"].shape == request["x"].shape


def test_full_queue_is_unavailable():
  model = RecordingModel(delay_s=0.3)
  scheduler = BatchScheduler(
    model,
    BatchingOptions(
      max_batch_size=1, batch_timeout_s=0.0, max_enqueued_batches=1, num_batch_threads=1
    ),
  )
  _, errors = run_concurrently(scheduler, [{"x": np.ones([1], np.float32)}] * 6)
  scheduler.close()
  refused = [e for e in errors if e is not None]
  assert refused and all(e.code == grpc.StatusCode.UNAVAILABLE for e in refused)
  assert "queue" in refused[0].message
  assert len(model.batch_sizes) == 6 - len(refused)


def test_model_errors_reach_every_task_of_the_batch_only():
  def failing(inputs):
    if (inputs["x"] < 0).any():
      raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "negative input")
    return {"y": inputs["x"]}

  scheduler = BatchScheduler(failing, BatchingOptions(max_batch_size=4, batch_timeout_s=0.0))
  with pytest.raises(ServingError, match="negative"):
    scheduler.submit({"x": -np.ones([1], np.float32)})
  assert scheduler.submit({"x": np.ones([1], np.float32)})["y"].tolist() == [1.0]
  scheduler.close()
  with pytest.raises(ServingError) as raised:
    scheduler.submit({"x": np.ones([1], np.float32)})
  assert raised.value.code == grpc.StatusCode.UNAVAILABLE


def test_options_validation_and_from_proto():
  with pytest.raises(ValueError, match="must equal max_batch_size"):
    BatchingOptions(max_batch_size=32, allowed_batch_sizes=(8, 16))
  with pytest.raises(ValueError, match="increase"):
    BatchingOptions(max_batch_size=8, allowed_batch_sizes=(8, 4, 8))
  with pytest.raises(ValueError):
    BatchingOptions(max_batch_size=0)
  params = tf_serving_protos.parse_batching_parameters(
    "max_batch_size { value: 16 } batch_timeout_micros { value: 2500 } "
    "allowed_batch_sizes: 8 allowed_batch_sizes: 16 "
    "enable_large_batch_splitting { value: true }"
  )
  options = BatchingOptions.from_proto(params)
  assert options == BatchingOptions(
    max_batch_size=16,
    batch_timeout_s=0.0025,
    max_enqueued_batches=1000,
    num_batch_threads=2,
    allowed_batch_sizes=(8, 16),
    enable_large_batch_splitting=True,
  )
  assert not BatchingOptions.from_proto(
    tf_serving_protos.BatchingParameters()
  ).enable_large_batch_splitting
