"""EvaluationExamples: what a candidate of a pipeline of spans is judged on, as one
Examples artifact: the golden ``test`` split (TFDS's test reviews, ``span`` 0) and the
newest span's held-out ``eval`` split (``span`` N).

Why a component of our own: TFX's Evaluator reads the same ``example_splits`` from every
Examples artifact it is given and fails when one lacks a split ("Split does not exist
over all example artifacts"), so the golden Examples (``test``, ``unlabelled``) and a
span's Examples (``train``, ``eval``) cannot both be its input. One artifact holding both
splits can; the Evaluator then slices by ``span`` (``pipeline.eval_config``), and each
slice is gated on its own. The copy costs the golden test split's files once per span
(about 13 MB for 25,000 reviews, gzipped).
"""

from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils, standard_artifacts

from components.drift_gate import copy_split_artifact
from components.imdb_beam import EVAL, TEST


@component
def EvaluationExamples(  # noqa: N802 - TFX names a component (a function here) like a class
  golden_examples: InputArtifact[standard_artifacts.Examples],
  span_examples: InputArtifact[standard_artifacts.Examples],
  examples: OutputArtifact[standard_artifacts.Examples],
):
  """Copies ``golden_examples``' ``test`` split and ``span_examples``' ``eval`` split into
  ``examples`` (split names ``test`` and ``eval``; span and version ``span_examples``').

  Raises:
    ValueError: ``golden_examples`` has no ``test`` split or ``span_examples`` no
      ``eval`` split.
  """
  for source, split in ((golden_examples, TEST), (span_examples, EVAL)):
    available = artifact_utils.decode_split_names(source.split_names)
    if split not in available:
      raise ValueError(f"Examples {source.uri} have no {split!r} split, only {available}")
  copy_split_artifact(golden_examples, examples, [TEST])
  copy_split_artifact(span_examples, examples, [EVAL])
  examples.split_names = artifact_utils.encode_split_names([TEST, EVAL])
