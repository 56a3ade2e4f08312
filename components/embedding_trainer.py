"""EmbeddingTrainer: word2vec pretraining of the token embedding (``models.pretraining``).

Why a custom component: no standard TFX component pretrains embeddings. A second
standard ``Trainer`` with a pretraining ``run_fn`` was tried first; it runs under the
LocalDagRunner and the BeamDagRunner, but on Airflow TFX's legacy component launcher names
every output artifact ``<output key>:<run id>``, so its ``model`` collided with the model
Trainer's ``model`` in MLMD ("UNIQUE constraint failed: Artifact.type_id, Artifact.name")
and the DAG run failed. This component's outputs have their own keys (``embeddings``,
``pretraining_run``), keep TFX's artifact types (Model, ModelRun) and the Model's
``Format-Serving`` layout, so the Trainer takes ``embeddings`` as its standard
``base_model`` (TFX's warm start).

With spans it is also given the serving (latest blessed) Model, ``warm_start_model``, and
names it in its own Model (``models.warm_start.write_source``): the Trainer has a single
``base_model``, and its warm start needs both the word2vec vectors of the new vocabulary
(for the new tokens) and the serving model's weights.
"""

import json

from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import io_utils, path_utils

from models import pretraining, warm_start
from models.hparams import HParams


@component
def EmbeddingTrainer(  # noqa: N802 - TFX names a component (a function here) like a class
  examples: InputArtifact[standard_artifacts.Examples],
  transform_graph: InputArtifact[standard_artifacts.TransformGraph],
  embeddings: OutputArtifact[standard_artifacts.Model],
  pretraining_run: OutputArtifact[standard_artifacts.ModelRun],
  warm_start_model: InputArtifact[standard_artifacts.Model] = None,
  transformed_examples: InputArtifact[standard_artifacts.Examples] = None,
  splits: Parameter[str] = "train,unlabelled",
  transformed_splits: Parameter[str] = "",
  custom_config: Parameter[str] = "{}",
) -> None:
  """Trains word2vec on the reviews of ``transformed_splits`` (their token ids as Transform
  wrote them) and on the raw reviews of ``splits`` (through the TransformGraph).

  Args:
    examples: ImdbExampleGen's raw Examples (``unlabelled`` has no ``label``).
    transform_graph: Transform's TransformGraph (vocabulary and preprocessing).
    transformed_examples: optional, Transform's transformed Examples; reading a split's
      ids from them saves running the TransformGraph over its reviews a second time.
    embeddings: output Model: ``Format-Serving/embeddings.npy`` (float32
      [vocab_size + num_oov_buckets + 1, embedding_dim], one row per token id) and
      ``Format-Serving/word_vectors.bin`` (word2vec format, keyed by word).
    pretraining_run: output ModelRun: ``pretraining_summary.json``.
    warm_start_model: optional, the serving model the Trainer warm-starts from; its
      SavedModel directory is named in ``Format-Serving/warm_start.json``.
    splits: comma-separated split names of ``examples`` to read raw.
    transformed_splits: comma-separated split names of ``transformed_examples`` to read.
    custom_config: JSON of ``HParams.pretraining_custom_config()`` (plus the runner's
      ``code_version``).

  Raises:
    ValueError: no split given, a split its Examples do not have (or transformed splits
      without ``transformed_examples``), bad hyperparameters, ``word2vec_epochs`` 0, or
      no tokens in the splits.
  """
  hp = HParams.from_custom_config(json.loads(custom_config))
  raw_names, transformed_names = _names(splits), _names(transformed_splits)
  if not raw_names and not transformed_names:
    raise ValueError("no splits to pretrain on: give splits or transformed_splits")
  if transformed_names and transformed_examples is None:
    raise ValueError(
      f"transformed_splits {transformed_names} without transformed_examples to read them from"
    )
  model_dir = path_utils.serving_model_dir(embeddings.uri)
  pretraining.pretrain(
    _split_patterns(examples, raw_names),
    transform_graph.uri,
    hp,
    model_dir,
    pretraining_run.uri,
    transformed_patterns=_split_patterns(transformed_examples, transformed_names),
  )
  if warm_start_model is not None:
    warm_start.write_source(
      model_dir, path_utils.serving_model_dir(warm_start_model.uri), warm_start_model.id
    )


def _names(splits: str) -> list[str]:
  return [name.strip() for name in splits.split(",") if name.strip()]


def _split_patterns(examples, names: list[str]) -> list[str]:
  """Each split's files in ``examples``; ValueError naming the splits it does not have."""
  if not names:
    return []
  available = artifact_utils.decode_split_names(examples.split_names)
  missing = [name for name in names if name not in available]
  if missing:
    raise ValueError(f"splits {names} to pretrain on: {missing}; the Examples have {available}")
  return [
    io_utils.all_files_pattern(artifact_utils.get_split_uri([examples], name)) for name in names
  ]
