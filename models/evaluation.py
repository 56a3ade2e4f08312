"""Scoring an exported SavedModel on a TFDS split, outside TFX (as a user of it would)."""

import os
import time
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from components.imdb_example_gen import DATASET_NAME, prepare_builder, resolve_data_dir


def latest_version_dir(model_dir: str) -> str:
  """``model_dir`` itself if it is a SavedModel, else its highest numeric version
  subdirectory (TF Serving's layout ``<base>/<version>/saved_model.pb``).

  Raises:
    FileNotFoundError: neither a SavedModel nor a version directory holding one.
  """
  if tf.io.gfile.exists(os.path.join(model_dir, "saved_model.pb")):
    return model_dir
  versions = [int(name.rstrip("/")) for name in tf.io.gfile.listdir(model_dir)
              if name.rstrip("/").isdigit() and tf.io.gfile.exists(
                  os.path.join(model_dir, name.rstrip("/"), "saved_model.pb"))]
  if not versions:
    raise FileNotFoundError(f"no SavedModel in {model_dir} nor in a numeric version "
                            "subdirectory of it")
  return os.path.join(model_dir, str(max(versions)))


def load_reviews(split: str, tfds_data_dir: Optional[str] = None) -> List[Tuple[str, int]]:
  """``(text, label)`` pairs of a TFDS ``imdb_reviews`` split spec (e.g. ``"test[:2]"``),
  in the split's order; label 1 = positive.

  Raises:
    components.imdb_example_gen.DatasetNotFoundError: the dataset is not prepared under
      the data dir (a FileNotFoundError).
    ValueError: a bad split spec.
  """
  dataset = prepare_builder(tfds_data_dir, split, split).as_dataset(split=split)
  return [(example["text"].decode("utf-8", "replace"), int(example["label"]))
          for example in tfds.as_numpy(dataset)]


def evaluate_saved_model(model_dir: str, split: str = "test",
                         tfds_data_dir: Optional[str] = None,
                         batch_size: int = 256) -> Dict[str, Any]:
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
    raise ValueError(f"{path} has no 'predict_text' signature "
                     f"(has {sorted(loaded.signatures)})")
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
  return {"model_path": path, "split": split, "examples": total,
          "accuracy": correct / max(total, 1), "seconds": round(seconds, 2),
          "examples_per_second": total / max(seconds, 1e-9)}
