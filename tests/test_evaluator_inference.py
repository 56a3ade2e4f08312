"""components.evaluator_inference: the Evaluator's model calls one batch ahead of TFMA."""

import threading

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma
import tiny_model
from apache_beam.transforms import window
from tensorflow_model_analysis.extractors import predictions_extractor
from tensorflow_model_analysis.utils import model_util
from tfx import v1 as tfx
from tfx.components.util import udf_utils

from components import evaluator, evaluator_inference
from components.imdb_beam import to_tf_example
from pipeline.eval_config import make_eval_config


def _batch(reviews) -> dict:
  """A batch of extracts as TFMA's input extractor makes them: serialized tf.Examples."""
  serialized = [to_tf_example(text, label).SerializeToString() for text, label in reviews]
  return {tfma.INPUT_KEY: np.array(serialized, dtype=object)}


BATCHES = [
  _batch(tiny_model.REVIEWS[:3]),
  _batch(tiny_model.REVIEWS[3:8]),
  _batch(tiny_model.REVIEWS[8:10]),
]


def _config_and_model(export_dir):
  """The EvalConfig and the tiny model as TFX's Evaluator hands them TFMA: the config with
  TFMA's defaults, a first model (no baseline) rubber-stamped."""
  config = tfma.utils.update_eval_config_with_defaults(
    make_eval_config(), has_baseline=False, rubber_stamp=True
  )
  model = tfma.default_eval_shared_model(eval_saved_model_path=export_dir, eval_config=config)
  return config, model


def _dofns(export_dir):
  """(ours, TFMA's ModelSignaturesDoFn), both set up, for the tiny model."""
  config, model = _config_and_model(export_dir)
  ours = evaluator_inference.predictions_extractor_one_ahead(config, model).ptransform.fn
  tfmas = model_util.ModelSignaturesDoFn(
    model_specs=list(config.model_specs),
    eval_shared_models={"": model},
    output_keypath=[tfma.PREDICTIONS_KEY],
    signature_names={"": ["serving_default"]},
    prefer_dict_outputs=False,
  )
  ours.setup()
  tfmas.setup()
  return ours, tfmas


def test_outputs_are_tfmas_one_batch_later_in_their_windows(tiny_export, monkeypatch):
  ours, tfmas = _dofns(tiny_export.export_dir)
  expected = [list(tfmas.process(batch)) for batch in BATCHES]
  threads = []
  call = model_util.ModelSignaturesDoFn._batch_reducible_process

  def spy(self, batch):
    threads.append(threading.current_thread().name)
    return call(self, batch)

  monkeypatch.setattr(model_util.ModelSignaturesDoFn, "_batch_reducible_process", spy)
  windows = [window.IntervalWindow(i, i + 10) for i in range(len(BATCHES))]
  ours.start_bundle()
  emitted = [list(ours.process(b, timestamp=i, window=windows[i])) for i, b in enumerate(BATCHES)]
  emitted.append(list(ours.finish_bundle()))
  ours.teardown()
  assert emitted[0] == []  # the first batch's model call is still running
  for i, outputs in enumerate(emitted[1:]):
    assert [o.timestamp.micros for o in outputs] == [i * 1_000_000]
    assert [list(o.windows) for o in outputs] == [[windows[i]]]
    [got], [want] = [o.value for o in outputs], expected[i]
    assert set(got) == set(want) == {tfma.INPUT_KEY, tfma.PREDICTIONS_KEY}
    np.testing.assert_array_equal(got[tfma.INPUT_KEY], BATCHES[i][tfma.INPUT_KEY])
    np.testing.assert_allclose(got[tfma.PREDICTIONS_KEY], want[tfma.PREDICTIONS_KEY], rtol=1e-6)
    assert got[tfma.PREDICTIONS_KEY].shape == (len(BATCHES[i][tfma.INPUT_KEY]),)
  # Every batch went through the model once, in the worker thread.
  assert len(threads) == len(BATCHES)
  assert all(name.startswith("tfma-inference") for name in threads)


def test_a_batch_the_model_rejects_raises_after_the_batch_before_it(tiny_export):
  ours, _ = _dofns(tiny_export.export_dir)
  bad = {tfma.INPUT_KEY: np.array([b"not a tf.Example"], dtype=object)}
  where = {"timestamp": 0, "window": window.GlobalWindow()}
  ours.start_bundle()
  assert list(ours.process(BATCHES[0], **where)) == []
  # The good batch comes out whole; the rejected one, retried review by review as TFMA
  # does, fails the bundle.
  [good] = list(ours.process(bad, **where))
  assert good.value[tfma.PREDICTIONS_KEY].shape == (3,)
  with pytest.raises(ValueError, match="signature"):
    list(ours.finish_bundle())
  ours.teardown()


def test_custom_extractors_are_tfmas_with_our_predictions(tiny_export):
  config, model = _config_and_model(tiny_export.export_dir)
  ours = evaluator_inference.custom_extractors(model, config, None)
  default = tfma.default_extractors(eval_shared_model=model, eval_config=config)
  # TFMA leaves out its transformed-features stage beside a predictions extractor of ours;
  # the model has no signature it would call.
  assert "ExtractTransformedFeatures" in [e.stage_name for e in default]
  assert [e.stage_name for e in ours] == [
    e.stage_name for e in default if e.stage_name != "ExtractTransformedFeatures"
  ]
  loaded = tf.saved_model.load(tiny_export.export_dir)
  assert not {"transformed_features", "transformed_labels"} & set(loaded.signatures)
  [predictions] = [
    e for e in ours if e.stage_name == predictions_extractor.PREDICTIONS_EXTRACTOR_STAGE_NAME
  ]
  assert isinstance(predictions.ptransform.fn, evaluator_inference.OneAheadInferenceDoFn)


def _evaluator(**kwargs):
  return evaluator.Evaluator(
    examples=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Examples),
    model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
    eval_config=make_eval_config(),
    **kwargs,
  )


def test_tfx_loads_our_extractors_from_the_evaluators_module_path():
  properties = _evaluator().exec_properties
  assert properties["module_path"] == evaluator.EXTRACTORS_MODULE
  loaded = udf_utils.try_get_fn(properties, "custom_extractors")
  assert loaded is evaluator_inference.custom_extractors
  # A module of the caller's own stays the one TFX loads.
  assert _evaluator(module_path="my.module").exec_properties["module_path"] == "my.module"
  mine = _evaluator(module_file="/x/module.py").exec_properties
  assert mine["module_file"] == "/x/module.py" and not mine.get("module_path")
