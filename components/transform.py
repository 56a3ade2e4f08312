"""TFX's standard Transform, whose transformed Examples are named by their contents.

Why a subclass: when Transform reads a split of several files on several Beam workers,
each worker's bundle becomes one output file, and Beam's file sink numbers the files by
the sorted random ids of the writers that wrote them (``apache_beam.io.filebasedsink``:
a uuid4 per writer), so which records are ``transformed_examples-00000-of-00002.gz``
changes from run to run although each file's records do not. The Trainer and the
EmbeddingTrainer read a split's files in name order (tf.data's ``list_files`` sorts them),
so their example order, and with it a seeded run's reproducibility (docs/models.md), would
change too. Beam offers deterministic names only through a fixed shard count, which
groups the records by shard key and loses their order. This executor runs TFX's own
executor unchanged, then gives the files of each split their names in the order of their
contents (``name_shards_by_content``).
"""

import os

import tensorflow as tf
from tfx.components.transform import component as transform_component
from tfx.components.transform import executor as transform_executor
from tfx.dsl.components.base import executor_spec
from tfx.types import artifact_utils, standard_component_specs


def name_shards_by_content(directory: str) -> None:
  """Renames the GZIP TFRecord files of tf.Example in ``directory`` among their own names
  so that name order is the order of their first records (each parsed and serialized
  deterministically: protobuf writes a tf.Example's feature map in no fixed order).

  Files whose first records are equal keep their relative name order. Renames go through
  temporary names in two passes, so no file is overwritten; a failure leaves the
  directory with every record still in some file (TFX discards the outputs of a failed
  execution).

  Raises:
    tf.errors.OpError: a file that cannot be read or renamed.
  """
  files = sorted(os.path.join(directory, name) for name in tf.io.gfile.listdir(directory))
  if len(files) < 2:
    return
  keys = {path: _first_record(path) for path in files}
  ordered = sorted(files, key=lambda path: keys[path])
  moves = {source: target for source, target in zip(ordered, files) if source != target}
  for source in moves:
    tf.io.gfile.rename(source, source + ".renaming")
  for source, target in moves.items():
    tf.io.gfile.rename(source + ".renaming", target)


def _first_record(path: str) -> bytes:
  """The first tf.Example of a GZIP TFRecord file, deterministically serialized; b"" for
  an empty file."""
  for record in tf.data.TFRecordDataset(path, compression_type="GZIP").take(1):
    return tf.train.Example.FromString(record.numpy()).SerializeToString(deterministic=True)
  return b""


class Executor(transform_executor.Executor):
  """TFX's Transform executor, then ``name_shards_by_content`` on each split of the
  transformed Examples."""

  def Do(self, input_dict, output_dict, exec_properties) -> None:  # noqa: N802 - TFX's name
    """As TFX's ``Executor.Do``; raises what it raises, and ``name_shards_by_content``'s
    errors."""
    super().Do(input_dict, output_dict, exec_properties)
    for examples in output_dict.get(standard_component_specs.TRANSFORMED_EXAMPLES_KEY, []):
      for split in artifact_utils.decode_split_names(examples.split_names):
        name_shards_by_content(artifact_utils.get_split_uri([examples], split))


class Transform(transform_component.Transform):
  """TFX's ``Transform`` (same parameters, outputs and node id) with ``Executor``."""

  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
