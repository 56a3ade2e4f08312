"""components.transform: TFX's Transform whose output files are named by their contents."""

import os

import tensorflow as tf
from tfx import v1 as tfx

from components import transform

CONTENTS = {  # first tokens of each file's records; the first record decides the order
  "a": [[7, 1], [2]],
  "b": [[3], [9, 9]],
  "c": [[5, 5, 5]],
}


def _example(tokens) -> bytes:
  feature = {"tokens": tf.train.Feature(int64_list=tf.train.Int64List(value=tokens))}
  feature["label"] = tf.train.Feature(int64_list=tf.train.Int64List(value=[len(tokens) % 2]))
  return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _write_shards(directory, names):
  """Writes CONTENTS' files under ``names`` (one per content, in CONTENTS' order)."""
  os.makedirs(directory)
  for name, records in zip(names, CONTENTS.values()):
    with tf.io.TFRecordWriter(os.path.join(directory, name), "GZIP") as writer:
      for tokens in records:
        writer.write(_example(tokens))


def _read_shards(directory):
  """{file name: [tokens of each record]}."""
  return {
    name: [
      list(tf.train.Example.FromString(r.numpy()).features.feature["tokens"].int64_list.value)
      for r in tf.data.TFRecordDataset(os.path.join(directory, name), "GZIP")
    ]
    for name in sorted(os.listdir(directory))
  }


def test_name_shards_by_content_gives_the_same_names_whichever_names_beam_gave(tmp_path):
  names = [f"transformed_examples-{i:05d}-of-00003.gz" for i in range(3)]
  first, second = str(tmp_path / "first"), str(tmp_path / "second")
  _write_shards(first, names)
  _write_shards(second, [names[2], names[0], names[1]])
  assert _read_shards(first) != _read_shards(second)
  transform.name_shards_by_content(first)
  transform.name_shards_by_content(second)
  assert _read_shards(first) == _read_shards(second)
  assert sorted(os.listdir(first)) == names  # the same names, no temporary one left
  assert sorted(map(str, _read_shards(first).values())) == sorted(map(str, CONTENTS.values()))


def test_name_shards_by_content_puts_an_empty_file_first_and_leaves_one_file_alone(tmp_path):
  directory = str(tmp_path / "split")
  _write_shards(directory, ["part-1.gz", "part-2.gz", "part-3.gz"])
  with tf.io.TFRecordWriter(os.path.join(directory, "part-4.gz"), "GZIP"):
    pass
  transform.name_shards_by_content(directory)
  assert _read_shards(directory)["part-1.gz"] == []
  alone = str(tmp_path / "alone")
  _write_shards(alone, ["only.gz"])
  transform.name_shards_by_content(alone)
  assert _read_shards(alone) == {"only.gz": CONTENTS["a"]}


def test_transform_is_tfx_transform_with_the_naming_executor():
  component = transform.Transform(
    examples=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Examples),
    schema=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Schema),
    preprocessing_fn="models.preprocessing.preprocessing_fn",
  )
  assert isinstance(component, tfx.components.Transform)
  assert component.id == "Transform"
  assert component.executor_spec.executor_class is transform.Executor
  assert issubclass(transform.Executor, tfx.components.Transform.EXECUTOR_SPEC.executor_class)
