"""Runs the real ``models.trainer.run_fn`` in this process, as one TFX Trainer worker.

``python tests/trainer_process.py JOB.json``; the multi-worker test starts one per worker,
each with its own ``$TF_CONFIG``. JOB.json holds:

* ``examples_uri``, ``transform_graph_uri``: the transformed Examples and TransformGraph
  artifacts' directories (``tiny_model.write_transformed_data``);
* ``serving_model_dir``, ``model_run_dir``: the Model and ModelRun outputs;
* ``hparams``: ``HParams`` overrides (``custom_config["hparams"]``);
* ``weights_path``: where to save, as ``.npz``, the Keras model's weights at the moment
  ``run_fn`` exports it (on every worker, the chief or not), so the test can check that
  all workers ended with the same model;
* ``logical_cpus`` (optional): split the CPU into this many logical devices before
  TensorFlow starts, so ``--strategy mirrored`` has that many replicas on a machine
  without GPUs.

``FnArgs`` is built by TFX's own ``fn_args_utils.get_common_fn_args`` from Examples and
TransformGraph artifacts, as TFX's GenericExecutor builds it, then given the output
directories as the executor does.
"""

import json
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))
from core import environment

environment.configure()

# ruff: noqa: E402 (TensorFlow is imported after the environment is set)
import numpy as np
from absl import logging
from tfx.components.trainer import fn_args_utils
from tfx.components.util import examples_utils
from tfx.proto import example_gen_pb2, trainer_pb2
from tfx.types import standard_artifacts, standard_component_specs
from tfx.utils import json_utils, proto_utils

from models import signatures, trainer


def build_fn_args(job: dict) -> fn_args_utils.FnArgs:
  """The ``FnArgs`` TFX's Trainer would pass ``run_fn`` for the artifacts in ``job``."""
  examples = standard_artifacts.Examples()
  examples.uri = job["examples_uri"]
  examples.split_names = '["train", "eval"]'
  examples_utils.set_payload_format(examples, example_gen_pb2.FORMAT_TF_EXAMPLE)
  transform_graph = standard_artifacts.TransformGraph()
  transform_graph.uri = job["transform_graph_uri"]
  input_dict = {
    standard_component_specs.EXAMPLES_KEY: [examples],
    standard_component_specs.TRANSFORM_GRAPH_KEY: [transform_graph],
  }
  exec_properties = {
    standard_component_specs.TRAIN_ARGS_KEY: proto_utils.proto_to_json(
      trainer_pb2.TrainArgs(splits=["train"])
    ),
    standard_component_specs.EVAL_ARGS_KEY: proto_utils.proto_to_json(
      trainer_pb2.EvalArgs(splits=["eval"])
    ),
    standard_component_specs.CUSTOM_CONFIG_KEY: json_utils.dumps({"hparams": job["hparams"]}),
  }
  fn_args = fn_args_utils.get_common_fn_args(
    input_dict, exec_properties, working_dir=job["model_run_dir"]
  )
  # What tfx.components.trainer.executor.GenericExecutor._GetFnArgs adds.
  fn_args.transform_output = fn_args.transform_graph_path
  fn_args.serving_model_dir = job["serving_model_dir"]
  fn_args.model_run_dir = job["model_run_dir"]
  return fn_args


def _record_weights(path: str):
  """Wraps ``signatures.export_saved_model`` to also save the exported weights."""
  export = signatures.export_saved_model

  def export_and_record(explain_model, *args, **kwargs):
    export(explain_model, *args, **kwargs)
    np.savez(path, *explain_model.get_weights())

  return export_and_record


def main(argv) -> int:
  """Runs ``run_fn`` for the job file ``argv[1]``; returns the exit status."""
  with open(argv[1], encoding="utf-8") as f:
    job = json.load(f)
  # run_fn's worker role, shard policy and barrier, timestamped, on stderr.
  logging.use_absl_handler()
  logging.set_verbosity(logging.INFO)
  if job.get("logical_cpus"):
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
      cpu, [tf.config.LogicalDeviceConfiguration()] * job["logical_cpus"]
    )
  logging.info("Starting run_fn")
  signatures.export_saved_model = _record_weights(job["weights_path"])
  trainer.run_fn(build_fn_args(job))
  logging.info("run_fn returned")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
