"""components.evaluator: TFX's Evaluator reading its Examples in batches of bytes."""

import pytest
from absl import flags
from tfx import v1 as tfx
from tfx_bsl.coders import batch_util

from components import evaluator
from pipeline.eval_config import make_eval_config


def _batches_by_bytes() -> bool:
  # TFXIO's BatchElements arguments: a fixed byte target, or Beam's timing of each batch.
  kwargs = batch_util.GetBatchElementsKwargs(None)
  return "element_size_fn" in kwargs and kwargs["min_batch_size"] == kwargs["max_batch_size"]


def test_byte_size_batching_holds_inside_the_block_only():
  assert not _batches_by_bytes()
  with evaluator.byte_size_batching():
    assert _batches_by_bytes()
    assert batch_util.GetBatchElementsKwargs(None)["min_batch_size"] == 20 * 1024 * 1024
    # A batch size given by the caller still wins.
    assert batch_util.GetBatchElementsKwargs(64) == {"min_batch_size": 64, "max_batch_size": 64}
  assert not _batches_by_bytes()
  assert flags.FLAGS[evaluator.BYTE_SIZE_BATCHING_FLAG].value is False


def test_byte_size_batching_is_undone_when_the_block_raises():
  with pytest.raises(RuntimeError, match="evaluation failed"), evaluator.byte_size_batching():
    raise RuntimeError("evaluation failed")
  assert not _batches_by_bytes()


def test_byte_size_batching_leaves_every_flag_as_it_was():
  before = flags.FLAGS.flag_values_dict()
  with evaluator.byte_size_batching():
    pass
  # Marked parsed, so that tfx_bsl reads the flag at all; absl's verbosity, too, unchanged.
  assert flags.FLAGS.is_parsed()
  assert flags.FLAGS.flag_values_dict() == before


def test_evaluator_is_tfx_evaluator_with_the_batching_executor():
  component = evaluator.Evaluator(
    examples=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Examples),
    model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
    eval_config=make_eval_config(),
  )
  assert isinstance(component, tfx.components.Evaluator)
  assert component.id == "Evaluator"
  assert component.executor_spec.executor_class is evaluator.Executor
  assert issubclass(evaluator.Executor, tfx.components.Evaluator.EXECUTOR_SPEC.executor_class)
