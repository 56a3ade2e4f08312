"""The Evaluator's model calls, one batch ahead of TFMA's metrics.

TFX's Evaluator runs TFMA's extractors and metric combiners in one fused Beam stage, so
each batch of Examples goes through the model (TensorFlow, both cores) and then through
TFMA's per-example Python (unbatching, slicing, the metric combiners: one core, under
the GIL) before the next batch reaches the model. On the golden test split the two took
turns: about 6 s of model calls at 185% CPU, then about 4 s at 100% (/proc samples of the
executor alone, 2-core machine, 2026-12-06). ``OneAheadInferenceDoFn`` calls the model
on a batch in a worker thread while the previous batch's extracts go on downstream, so
TensorFlow's kernels (which release the GIL) run beside TFMA's Python.

TFX loads ``custom_extractors`` from the Evaluator's ``module_path``
(``components.evaluator.Evaluator`` sets it); this module imports Beam and TFMA only, as
Beam's workers import it to unpickle the DoFn. Given a predictions extractor of its own,
TFMA leaves out its ``TransformedFeaturesExtractor``, which calls a model's
``transformed_features`` and ``transformed_labels`` signatures or the EvalConfig's
``preprocessing_function_names``: our models have neither signature and our EvalConfig
names no function (``pipeline.eval_config``), so it extracted nothing.
"""

import concurrent.futures
import dataclasses
from typing import Any

import apache_beam as beam
import tensorflow_model_analysis as tfma
from apache_beam.utils.windowed_value import WindowedValue
from tensorflow_model_analysis.extractors import predictions_extractor
from tensorflow_model_analysis.utils import model_util


@dataclasses.dataclass
class _Ahead:
  """A batch whose model call runs in the worker thread, with its window and timestamp."""

  batch: Any  # tfma.types.Extracts of one batch
  outputs: concurrent.futures.Future
  timestamp: Any
  window: Any


class OneAheadInferenceDoFn(model_util.ModelSignaturesDoFn):
  """TFMA's ``ModelSignaturesDoFn`` (the ``PredictionsExtractor``'s DoFn: same arguments,
  same output extracts, in the same order, each in its input's window and timestamp)
  whose model call on a batch runs in a worker thread while ``process`` hands the
  previous batch's extracts downstream; the last batch of a bundle comes out of
  ``finish_bundle``. At most two batches are held at once.

  Each result goes through TFMA's own ``process`` in Beam's thread, so its fallback (a
  batch the model rejects is retried review by review) and its Beam metrics (batch
  sizes, instances; Beam counts metrics of its own threads only) stay as they are.
  Why our own: TFMA has no option to overlap its model calls with its metrics, and a
  second Beam worker instead (``--direct_num_workers=2``) ran the Evaluator slower (see
  ``pipeline.beam_profiles.evaluator_beam_args``).

  Raises:
    what TFMA's DoFn raises, for a batch, from the ``process`` call of the batch after it
    or from ``finish_bundle``.
  """

  def setup(self):
    # Before TFMA loads the model, so that teardown finds the pool whatever setup raised.
    self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="tfma-inference")
    self._ahead: _Ahead | None = None
    self._ready: concurrent.futures.Future | None = None
    super().setup()

  def process(self, element, timestamp=beam.DoFn.TimestampParam, window=beam.DoFn.WindowParam):
    previous, self._ahead = (
      self._ahead,
      _Ahead(element, self._pool.submit(self._call_model, element), timestamp, window),
    )
    if previous is not None:
      yield from self._outputs(previous)

  def finish_bundle(self):
    last, self._ahead = self._ahead, None
    if last is not None:
      yield from self._outputs(last)
    super().finish_bundle()

  def teardown(self):
    self._pool.shutdown(wait=True)
    super().teardown()

  def _call_model(self, batch):
    """TFMA's model call on ``batch`` (run in the worker thread)."""
    return super()._batch_reducible_process(batch)

  def _batch_reducible_process(self, batch):
    """The worker thread's result for the batch ``_outputs`` hands TFMA's ``process``; a
    direct model call for the single reviews of TFMA's fallback."""
    ready, self._ready = self._ready, None
    if ready is not None:
      return ready.result()
    return self._call_model(batch)

  def _outputs(self, ahead: _Ahead):
    """``ahead``'s extracts, through TFMA's ``process``, in its window and timestamp."""
    self._ready = ahead.outputs
    for extracts in super().process(ahead.batch):
      yield WindowedValue(extracts, ahead.timestamp, [ahead.window])


def predictions_extractor_one_ahead(
  eval_config: tfma.EvalConfig, eval_shared_model: tfma.types.MaybeMultipleEvalSharedModels
) -> tfma.extractors.Extractor:
  """TFMA's ``PredictionsExtractor`` (same stage name, same extracts under
  ``tfma.PREDICTIONS_KEY``) on ``OneAheadInferenceDoFn``.

  Args:
    eval_config: the EvalConfig with TFMA's defaults filled in (what TFX's Evaluator
      passes ``custom_extractors``): one ModelSpec per model, the baseline's among them.
    eval_shared_model: one model, or the candidate and the baseline, as TFX loaded them.

  Raises:
    ValueError (from TFMA): no model.
  """
  models = model_util.verify_and_update_eval_shared_models(eval_shared_model)
  if not models:
    raise ValueError("the predictions extractor needs a model; TFX's Evaluator loads one")
  model_specs = list(eval_config.model_specs)
  # As TFMA's PredictionsExtractor: one model is named "", several by their ModelSpec.
  signature_names = {
    ("" if len(model_specs) == 1 else spec.name): [spec.signature_name] for spec in model_specs
  }
  return tfma.extractors.Extractor(
    stage_name=predictions_extractor.PREDICTIONS_EXTRACTOR_STAGE_NAME,
    ptransform=beam.ParDo(
      OneAheadInferenceDoFn(
        model_specs=model_specs,
        eval_shared_models={model.model_name: model for model in models},
        output_keypath=[tfma.PREDICTIONS_KEY],
        signature_names=signature_names,
        prefer_dict_outputs=False,
      )
    ),
  )


def custom_extractors(eval_shared_model, eval_config, tensor_adapter_config):
  """TFX Evaluator's ``custom_extractors`` hook: TFMA's default extractors, the
  predictions coming from ``predictions_extractor_one_ahead`` (TFMA's
  ``custom_predict_extractor``).

  Args (as TFX's executor passes them):
    eval_shared_model: the candidate model, or ``[candidate, baseline]``.
    eval_config: ``tfma.EvalConfig`` with TFMA's defaults filled in.
    tensor_adapter_config: how TFMA gets tensors from the Examples' Arrow batches.

  Returns:
    the ``tfma.extractors.Extractor`` list for ``tfma.ExtractEvaluateAndWriteResults``.
  """
  return tfma.default_extractors(
    eval_shared_model=eval_shared_model,
    eval_config=eval_config,
    tensor_adapter_config=tensor_adapter_config,
    custom_predict_extractor=predictions_extractor_one_ahead(eval_config, eval_shared_model),
  )
