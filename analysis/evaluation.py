"""Scoring an exported SavedModel on a TFDS split, outside TFX (as a user of it would)."""

import os
import time
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from components.imdb_beam import serialize_examples
from components.imdb_example_gen import DATASET_NAME, prepare_builder, resolve_data_dir
from core import features
from models.hparams import HParams


def latest_version_dir(model_dir: str) -> str:
  """``model_dir`` itself if it is a SavedModel, else its highest numeric version
  subdirectory (TF Serving's layout ``<base>/<version>/saved_model.pb``).

  Raises:
    FileNotFoundError: neither a SavedModel nor a version directory holding one.
  """
  if tf.io.gfile.exists(os.path.join(model_dir, "saved_model.pb")):
    return model_dir
  versions = [
    int(name.rstrip("/"))
    for name in tf.io.gfile.listdir(model_dir)
    if name.rstrip("/").isdigit()
    and tf.io.gfile.exists(os.path.join(model_dir, name.rstrip("/"), "saved_model.pb"))
  ]
  if not versions:
    raise FileNotFoundError(
      f"no SavedModel in {model_dir} nor in a numeric version subdirectory of it"
    )
  return os.path.join(model_dir, str(max(versions)))


def load_reviews(split: str, tfds_data_dir: str | None = None) -> list[tuple[str, int]]:
  """``(text, label)`` pairs of a TFDS ``imdb_reviews`` split spec (e.g. ``"test[:2]"``),
  in the split's order; label 1 = positive.

  Raises:
    components.imdb_example_gen.DatasetNotFoundError: the dataset is not prepared under
      the data dir (a FileNotFoundError).
    ValueError: a bad split spec.
  """
  dataset = prepare_builder(tfds_data_dir, split, split).as_dataset(split=split)
  return [
    (example["text"].decode("utf-8", "replace"), int(example["label"]))
    for example in tfds.as_numpy(dataset)
  ]


def evaluate_saved_model(
  model_dir: str, split: str = "test", tfds_data_dir: str | None = None, batch_size: int = 256
) -> dict[str, Any]:
  """Accuracy of ``predict_text``'s ``label`` on a TFDS ``imdb_reviews`` split.

  Returns:
    ``{"model_path", "split", "examples", "accuracy", "seconds",
    "examples_per_second"}``; seconds are wall time of the prediction loop.

  Raises:
    FileNotFoundError: no model, or the dataset is not prepared.
    ValueError: the model has no ``predict_text`` signature.
  """
  path = latest_version_dir(model_dir)
  loaded = tf.saved_model.load(path)
  if "predict_text" not in loaded.signatures:
    raise ValueError(f"{path} has no 'predict_text' signature (has {sorted(loaded.signatures)})")
  predict = loaded.signatures["predict_text"]
  data_dir = resolve_data_dir(tfds_data_dir)
  dataset = tfds.load(DATASET_NAME, split=split, data_dir=data_dir, download=False)
  correct = total = 0
  start = time.perf_counter()
  for batch in tfds.as_numpy(dataset.batch(batch_size)):
    labels = predict(text=tf.constant(batch["text"]))["label"].numpy()
    correct += int(np.sum(labels == batch["label"]))
    total += len(labels)
  seconds = time.perf_counter() - start
  return {
    "model_path": path,
    "split": split,
    "examples": total,
    "accuracy": correct / max(total, 1),
    "seconds": round(seconds, 2),
    "examples_per_second": total / max(seconds, 1e-9),
  }


def evaluate_halves(
  model_dir: str,
  hp: HParams,
  split: str = "test",
  tfds_data_dir: str | None = None,
  batch_size: int = 256,
) -> dict[str, Any]:
  """Accuracy of each half of an ``nb_wide`` export (``models.stacking``) on a TFDS
  ``imdb_reviews`` split, beside the served prediction's.

  The export's signatures return the ensemble only, so the Keras explanation model is
  rebuilt from ``hp`` and the export's variables are restored into it: a SavedModel's
  ``variables/`` is a TF2 checkpoint of the exported module, whose ``explain_model`` is the
  model (``signatures.ExportModule``). The reviews go through the export's own
  ``transform_features`` signature, then the halves' logits are read from the rebuilt
  model; ``served`` is ``predict_text``'s label. The reviews are made into tf.Examples as
  ExampleGen makes them (``serialize_examples``), so every raw feature the transform parses is
  there.

  Args:
    model_dir: a SavedModel or a TF Serving model directory (its latest version).
    hp: the ``HParams`` the model was trained with (``nb_wide`` True).
    split: a TFDS split spec.

  Returns:
    ``{"model_path", "split", "examples", "accuracy": {"attention", "naive_bayes",
    "mean", "stacked", "served"} (fractions), "stacking": {"attention_weight",
    "naive_bayes_weight", "intercept"}}``.

  Raises:
    FileNotFoundError: no model, or the dataset is not prepared.
    ValueError: ``hp.nb_wide`` is False, or the export does not hold a model built from
      ``hp`` (a variable of the rebuilt model is missing from it or shaped otherwise).
  """
  from models import model as model_lib  # Keras and scikit-learn: only here
  from models import stacking

  if not hp.nb_wide:
    raise ValueError("evaluate_halves needs an nb_wide model (hp.nb_wide=True)")
  path = latest_version_dir(model_dir)
  loaded = tf.saved_model.load(path)
  _, explain_model = model_lib.build(hp)
  checkpoint = tf.train.Checkpoint(explain_model=explain_model)
  try:
    checkpoint.read(os.path.join(path, "variables", "variables")).assert_existing_objects_matched()
  except (AssertionError, ValueError) as error:  # a missing or a differently shaped one
    raise ValueError(
      f"{path} does not hold a {hp.model} model built from these hyperparameters: {error}"
    ) from error
  logits_model = stacking.half_logits_model(explain_model)
  kernel, bias = explain_model.get_layer(model_lib.STACKING_LAYER).get_weights()
  weights = {
    "attention_weight": float(kernel[0, 0]),
    "naive_bayes_weight": float(kernel[1, 0]),
    "intercept": float(bias[0]),
  }
  transform = loaded.signatures["transform_features"]
  predict = loaded.signatures["predict_text"]
  dataset = tfds.load(
    DATASET_NAME, split=split, data_dir=resolve_data_dir(tfds_data_dir), download=False
  )
  logits, labels, served = [], [], []
  for batch in tfds.as_numpy(dataset.batch(batch_size)):
    examples = serialize_examples(batch["text"].tolist(), batch["label"].tolist())
    tokens = transform(examples=tf.constant(examples))[features.TOKENS_KEY]
    logits.append(logits_model(tokens, training=False).numpy())
    served.append(predict(text=tf.constant(batch["text"]))["label"].numpy())
    labels.append(batch["label"])
  logits, labels = np.concatenate(logits), np.concatenate(labels)
  accuracy = stacking.accuracies(logits, labels, **weights)
  accuracy["served"] = float(np.mean(np.concatenate(served) == labels))
  return {
    "model_path": path,
    "split": split,
    "examples": int(labels.size),
    "accuracy": accuracy,
    "stacking": weights,
  }
