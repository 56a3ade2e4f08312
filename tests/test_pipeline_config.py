"""Unit tests of pipeline.eval_config, pipeline.pipeline, pipeline.layout, pipeline.runner
and pipeline.code_version (no runs)."""

import dataclasses
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

import pytest
import tensorflow_data_validation as tfdv
import tensorflow_model_analysis as tfma
from google.protobuf import json_format
from tfx import v1 as tfx
from tfx.orchestration.beam.beam_dag_runner import BeamDagRunner

from models.hparams import HParams
from pipeline import beam_profiles, eval_config, layout, runner
from pipeline.layout import CURATED_SCHEMA_PATH, PIPELINE_NAME, PREPROCESSING_FN, RUN_FN, node_ids
from pipeline.pipeline import create_pipeline

EXPECTED_IDS = [
  "ImdbExampleGen",
  "StatisticsGen",
  "SchemaGen",
  "ExampleValidator",
  "AnomaliesGate",
  "Transform",
  "EmbeddingTrainer",
  "Trainer",
  "latest_blessed_model_resolver",
  "Evaluator",
  "BehaviourValidator",
  "Pusher",
]
HP = HParams(max_length=32, vocab_size=500, epochs=1, batch_size=8)


# --- eval_config --------------------------------------------------------------------


def _metric(config, class_name):
  (spec,) = config.metrics_specs
  matches = [m for m in spec.metrics if m.class_name == class_name]
  assert len(matches) == 1, class_name
  return matches[0]


def _overall_threshold(config):
  (per_slice,) = _metric(config, "BinaryAccuracy").per_slice_thresholds
  # Gated on the overall slice only; the length slices are reported, not gated.
  assert [list(s.feature_keys) for s in per_slice.slicing_specs] == [[]]
  return per_slice.threshold


def test_eval_config_accuracy_thresholds():
  config = eval_config.make_eval_config(min_accuracy=0.7, max_accuracy_drop=0.02)
  assert not _metric(config, "BinaryAccuracy").HasField("threshold")
  threshold = _overall_threshold(config)
  assert threshold.value_threshold.lower_bound.value == pytest.approx(0.7)
  assert not threshold.value_threshold.HasField("upper_bound")
  assert threshold.change_threshold.absolute.value == pytest.approx(-0.02)
  assert threshold.change_threshold.direction == tfma.MetricDirection.HIGHER_IS_BETTER


def test_eval_config_metrics_slices_and_model_spec():
  config = eval_config.make_eval_config()
  (spec,) = config.metrics_specs
  names = [m.class_name for m in spec.metrics]
  for name in (
    "ExampleCount",
    "BinaryAccuracy",
    "AUC",
    "Precision",
    "Recall",
    "F1Score",
    "Calibration",
  ):
    assert name in names
  # Only accuracy gates the blessing.
  assert [
    m.class_name for m in spec.metrics if m.HasField("threshold") or m.per_slice_thresholds
  ] == ["BinaryAccuracy"]
  assert [list(s.feature_keys) for s in config.slicing_specs] == [[], ["length_bucket"]]
  (model_spec,) = config.model_specs
  assert model_spec.signature_name == "serving_default"
  assert model_spec.label_key == "label"
  assert model_spec.prediction_key == eval_config.PREDICTION_KEY == "probabilities"
  # The slices are raw features: TFMA must not run the TransformGraph a second time.
  assert list(model_spec.preprocessing_function_names) == []
  default = _overall_threshold(config)
  assert default.value_threshold.lower_bound.value == pytest.approx(0.85)
  assert default.change_threshold.absolute.value == pytest.approx(-0.01)


def test_eval_config_by_span_gates_each_span_slice():
  config = eval_config.make_eval_config(min_accuracy=0.7, max_accuracy_drop=0.02, by_span=True)
  assert [list(s.feature_keys) for s in config.slicing_specs] == [[], ["length_bucket"], ["span"]]
  (per_slice,) = _metric(config, "BinaryAccuracy").per_slice_thresholds
  assert [list(s.feature_keys) for s in per_slice.slicing_specs] == [["span"]]
  assert per_slice.threshold.value_threshold.lower_bound.value == pytest.approx(0.7)
  assert per_slice.threshold.change_threshold.absolute.value == pytest.approx(-0.02)


@pytest.mark.parametrize(
  "kwargs, message",
  [
    ({"min_accuracy": 1.5}, "min_accuracy"),
    ({"min_accuracy": -0.1}, "min_accuracy"),
    ({"max_accuracy_drop": -0.01}, "max_accuracy_drop"),
  ],
)
def test_eval_config_rejects_bad_thresholds(kwargs, message):
  with pytest.raises(ValueError, match=message):
    eval_config.make_eval_config(**kwargs)


# --- create_pipeline ----------------------------------------------------------------


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
  root = tmp_path_factory.mktemp("pipeline")
  return create_pipeline(
    pipeline_root=str(root / "root"),
    serving_model_dir=str(root / "serving"),
    hparams=HP,
    train_split="train[:2%]",
    test_split="test[:1%]",
    eval_percent=15,
    unlabelled_split="unsupervised[:1%]",
    tfds_data_dir=str(root / "tfds"),
    min_accuracy=0.6,
    max_accuracy_drop=0.05,
    beam_pipeline_args=["--direct_num_workers=1", "--direct_running_mode=in_memory"],
    enable_cache=False,
  )


def _component(pipeline, component_id):
  (component,) = [c for c in pipeline.components if c.id == component_id]
  return component


def test_pipeline_components_and_dependency_order(pipeline):
  ids = [c.id for c in pipeline.components]
  assert sorted(ids) == sorted(EXPECTED_IDS)
  chain = [i for i in ids if i != "latest_blessed_model_resolver"]
  assert chain == [i for i in EXPECTED_IDS if i != "latest_blessed_model_resolver"]
  assert ids.index("latest_blessed_model_resolver") < ids.index("Evaluator")


def test_pipeline_has_no_side_effects(tmp_path):
  create_pipeline(pipeline_root=str(tmp_path / "root"), serving_model_dir=str(tmp_path / "serving"))
  assert os.listdir(tmp_path) == []


def test_pipeline_metadata_and_beam_args(pipeline, tmp_path_factory):
  assert pipeline.pipeline_info.pipeline_name == PIPELINE_NAME
  assert pipeline.pipeline_info.pipeline_root.endswith(os.path.join("pipeline0", "root"))
  assert pipeline.beam_pipeline_args == [
    "--direct_num_workers=1",
    "--direct_running_mode=in_memory",
  ]
  assert pipeline.enable_cache is False


def test_pipeline_example_gen_parameters(pipeline):
  props = _component(pipeline, "ImdbExampleGen").exec_properties
  assert props["train_split"] == "train[:2%]"
  assert props["test_split"] == "test[:1%]"
  assert props["eval_percent"] == 15
  assert props["unlabelled_split"] == "unsupervised[:1%]"
  assert props["tfds_data_dir"].endswith("tfds")
  assert props["download"] is False


def test_embedding_trainer_reads_transformed_train_raw_unlabelled_and_feeds_the_trainer(pipeline):
  pretrainer = _component(pipeline, "EmbeddingTrainer")
  props = pretrainer.exec_properties
  # The train reviews' ids as Transform wrote them for the Trainer; the unlabelled
  # reviews raw (ImdbExampleGen's), through Transform's graph.
  assert props["transformed_splits"] == "train"
  assert props["splits"] == "unlabelled"
  assert pretrainer.inputs["transformed_examples"].producer_component_id == "Transform"
  assert pretrainer.inputs["transformed_examples"].output_key == "transformed_examples"
  assert pretrainer.inputs["examples"].producer_component_id == "ImdbExampleGen"
  assert pretrainer.inputs["transform_graph"].producer_component_id == "Transform"
  # Only the fields the pretraining reads: a model-only change keeps its cache.
  config = json.loads(props["custom_config"])
  assert config == HP.pretraining_custom_config()
  assert set(config["hparams"]) == {
    "vocab_size",
    "num_oov_buckets",
    "max_length",
    "head_tokens",
    "negation_scope",
    "contrast_scope",
    "mask_names",
    "embedding_dim",
    "word2vec_epochs",
    "word2vec_window",
    "word2vec_negative",
    "word2vec_sample",
    "word2vec_workers",
    "seed",
  }
  # TFX's warm start: the Trainer's base_model is the pretrainer's Model.
  trainer = _component(pipeline, "Trainer")
  assert trainer.inputs["base_model"].producer_component_id == "EmbeddingTrainer"
  assert trainer.inputs["base_model"].output_key == "embeddings"
  assert trainer.inputs["base_model"].type_name == "Model"


def test_unlabelled_split_is_neither_validated_nor_in_the_schema(pipeline):
  statistics_gen = _component(pipeline, "StatisticsGen")
  assert json.loads(statistics_gen.exec_properties["exclude_splits"]) == ["unlabelled"]
  validator = _component(pipeline, "ExampleValidator")
  assert json.loads(validator.exec_properties["exclude_splits"]) == ["unlabelled"]
  transform = json.loads(_component(pipeline, "Transform").exec_properties["splits_config"])
  assert "unlabelled" not in transform["transform"]


def test_transform_leaves_the_statistics_to_statistics_gen(pipeline):
  # TFX's Transform would compute the train split's raw statistics a second time, and
  # statistics of token ids.
  assert _component(pipeline, "Transform").exec_properties["disable_statistics"] in (1, True)


def test_no_pretraining_without_word2vec_epochs(tmp_path):
  hp = dataclasses.replace(HP, word2vec_epochs=0)
  built = create_pipeline(
    pipeline_root=str(tmp_path / "root"), serving_model_dir=str(tmp_path / "serving"), hparams=hp
  )
  ids = [c.id for c in built.components]
  assert sorted(ids) == sorted(node_ids(pretraining=False))
  assert "EmbeddingTrainer" not in ids and len(ids) == len(EXPECTED_IDS) - 1
  # Nothing reads unlabelled reviews then.
  assert _component(built, "ImdbExampleGen").exec_properties["unlabelled_split"] == ""
  assert "base_model" not in _component(built, "Trainer").inputs
  with pytest.raises(ValueError, match="EmbeddingTrainer.*is not a node"):
    create_pipeline(
      pipeline_root=str(tmp_path / "root"),
      serving_model_dir=str(tmp_path / "serving"),
      hparams=hp,
      last_node="EmbeddingTrainer",
    )


def test_pretraining_on_train_alone_without_unlabelled_split(tmp_path):
  built = create_pipeline(
    pipeline_root=str(tmp_path / "root"),
    serving_model_dir=str(tmp_path / "serving"),
    hparams=HP,
    unlabelled_split="",
  )
  props = _component(built, "EmbeddingTrainer").exec_properties
  assert (props["transformed_splits"], props["splits"]) == ("train", "")
  assert _component(built, "ImdbExampleGen").exec_properties["unlabelled_split"] == ""


def test_transform_writes_no_analyzer_cache_nothing_reads(pipeline):
  # Writing the cache took 6.7 s of Transform's time; no node feeds it back.
  transform = _component(pipeline, "Transform")
  assert "updated_analyzer_cache" not in transform.outputs
  assert not any("analyzer_cache" in node.inputs for node in pipeline.components)


def test_transform_analyzes_train_only_and_gets_hparams(pipeline):
  transform = _component(pipeline, "Transform")
  props = transform.exec_properties
  splits = json.loads(props["splits_config"])
  # The Trainer's splits only: the Evaluator reads the golden test reviews raw.
  assert splits == {"analyze": ["train"], "transform": ["train", "eval"]}
  assert props["preprocessing_fn"] == PREPROCESSING_FN
  transform_config = json.loads(props["custom_config"])
  assert transform_config == {
    "hparams": {
      "vocab_size": HP.vocab_size,
      "num_oov_buckets": HP.num_oov_buckets,
      "max_length": HP.max_length,
      "head_tokens": HP.head_tokens,
      "negation_scope": HP.negation_scope,
      "contrast_scope": HP.contrast_scope,
      "mask_names": HP.mask_names,
    }
  }
  # What preprocessing_fn reads back agrees with the full hyperparameters.
  restored = HParams.from_custom_config(transform_config)
  assert (restored.vocab_size, restored.max_length, restored.head_tokens) == (
    HP.vocab_size,
    HP.max_length,
    HP.head_tokens,
  )
  assert "AnomaliesGate" in {n.id for n in transform.upstream_nodes}


def test_trainer_custom_config_and_splits(pipeline):
  props = _component(pipeline, "Trainer").exec_properties
  assert props["run_fn"] == RUN_FN
  config = json.loads(props["custom_config"])
  assert config == HP.to_custom_config()
  assert HParams.from_custom_config(config) == HP
  assert json.loads(props["train_args"])["splits"] == ["train"]
  assert json.loads(props["eval_args"])["splits"] == ["eval"]


def test_evaluator_uses_test_split_and_thresholds(pipeline):
  props = _component(pipeline, "Evaluator").exec_properties
  assert json.loads(props["example_splits"]) == ["test"]
  config = json_format.Parse(props["eval_config"], tfma.EvalConfig())
  assert config == eval_config.make_eval_config(0.6, 0.05)


def test_pusher_reads_the_behaviour_validators_blessing(pipeline):
  validator = _component(pipeline, "BehaviourValidator")
  pusher = _component(pipeline, "Pusher")
  assert pusher.inputs["model_blessing"] is validator.outputs["behaviour_blessing"]
  assert validator.inputs["model_blessing"] is _component(pipeline, "Evaluator").outputs["blessing"]
  assert validator.inputs["model"] is _component(pipeline, "Trainer").outputs["model"]
  resolver = _component(pipeline, "latest_blessed_model_resolver")
  assert validator.inputs["baseline_model"] is resolver.outputs["model"]
  # Only the validator's blessings make a model the baseline, never the Evaluator's alone:
  # the compiled resolver reads ModelBlessings of the BehaviourValidator's node, any run.
  from tfx.dsl.compiler import compiler

  (node,) = [
    n.pipeline_node
    for n in compiler.Compiler().compile(pipeline).nodes
    if n.pipeline_node.node_info.id == "latest_blessed_model_resolver"
  ]
  blessings = [
    channel
    for spec in node.inputs.inputs.values()
    for channel in spec.channels
    if channel.artifact_query.type.name == "ModelBlessing"
  ]
  assert len(blessings) == 1 and blessings[0].output_key == "behaviour_blessing"
  contexts = {q.type.name: q.name.field_value.string_value for q in blessings[0].context_queries}
  assert contexts == {"pipeline": PIPELINE_NAME, "node": f"{PIPELINE_NAME}.BehaviourValidator"}


def test_behaviour_thresholds_default_canonical_and_checked(tmp_path):
  def thresholds(**kwargs):
    built = create_pipeline(
      pipeline_root=str(tmp_path / "root"), serving_model_dir=str(tmp_path / "s"), **kwargs
    )
    return _component(built, "BehaviourValidator").exec_properties["thresholds"]

  defaults = dict(layout.DEFAULT_BEHAVIOUR_THRESHOLDS)
  assert json.loads(thresholds() or "{}") == defaults
  assert thresholds(behaviour_thresholds={}) == ""
  assert thresholds(behaviour_thresholds={"inv_typo": 0.05, "contrast": 0.2}) == (
    '{"contrast": 0.2, "inv_typo": 0.05}'
  )
  with pytest.raises(ValueError, match="no capability 'sarcasm'"):
    thresholds(behaviour_thresholds={"sarcasm": 0.1})


def test_pusher_destination(pipeline):
  props = _component(pipeline, "Pusher").exec_properties
  destination = json.loads(props["push_destination"])
  assert destination["filesystem"]["base_directory"].endswith("serving")


def test_schema_gen_excludes_eval_test_and_unlabelled(pipeline):
  schema_gen = _component(pipeline, "SchemaGen")
  assert isinstance(schema_gen, tfx.components.SchemaGen)
  assert bool(schema_gen.exec_properties["infer_feature_shape"]) is True
  assert json.loads(schema_gen.exec_properties["exclude_splits"]) == ["eval", "test", "unlabelled"]


def test_curated_schema_uses_import_schema_gen(tmp_path):
  p = create_pipeline(
    pipeline_root=str(tmp_path / "root"),
    serving_model_dir=str(tmp_path / "serving"),
    schema_path=CURATED_SCHEMA_PATH,
  )
  ids = [c.id for c in p.components]
  assert "ImportSchemaGen" in ids and "SchemaGen" not in ids
  assert len(ids) == len(EXPECTED_IDS)
  schema_gen = _component(p, "ImportSchemaGen")
  assert schema_gen.exec_properties["schema_file"] == CURATED_SCHEMA_PATH


def test_curated_schema_parses_with_four_features_and_the_optional_span():
  schema = tfdv.load_schema_text(CURATED_SCHEMA_PATH)
  by_name = {f.name: f for f in schema.feature}
  assert set(by_name) == {"text", "label", "review_length", "length_bucket", "span"}
  span = by_name.pop("span")  # spans only: optional, of no fixed shape (a VarLenFeature)
  assert span.presence.min_fraction == 0 and not span.HasField("shape")
  assert by_name["label"].int_domain.min == 0 and by_name["label"].int_domain.max == 1
  domain = tfdv.get_domain(schema, "length_bucket")
  from core import features

  assert set(domain.value) == {features.length_bucket(n) for n in (0, 200, 300, 600)}
  assert all(f.shape.dim[0].size == 1 for f in by_name.values())


# --- runner -------------------------------------------------------------------------


def test_output_paths_layout():
  paths = layout.OutputPaths("/tmp/out")
  assert paths.metadata_path == "/tmp/out/metadata.sqlite"
  assert paths.pipeline_root == "/tmp/out/pipeline_root"
  assert paths.serving_model_dir == "/tmp/out/serving_model/imdb_sentiment"
  assert paths.summary_path == "/tmp/out/run_summary.json"
  started = time.mktime((2026, 12, 1, 11, 3, 2, 0, 0, -1))  # local time, as the names
  assert paths.run_summary_path(started) == "/tmp/out/summaries/run-20261201-110302.json"
  assert paths.log_path(started) == "/tmp/out/logs/run-20261201-110302.log"
  assert layout.OutputPaths().output_dir == "outputs"


def test_default_beam_pipeline_args():
  setup_file = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "setup.py")
  assert beam_profiles.project_setup_args() == [f"--setup_file={setup_file}"]
  assert beam_profiles.default_beam_pipeline_args(1) == [
    "--direct_running_mode=in_memory",
    "--direct_num_workers=1",
    f"--setup_file={setup_file}",
  ]
  assert beam_profiles.default_beam_pipeline_args(2) == [
    "--direct_running_mode=multi_threading",
    "--direct_num_workers=2",
    f"--setup_file={setup_file}",
  ]
  assert len(beam_profiles.default_beam_pipeline_args()) == 3


IN_MEMORY = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]


@pytest.mark.parametrize(
  "args, expected",
  [
    (["--direct_running_mode=multi_threading", "--direct_num_workers=2"], IN_MEMORY),
    (["--direct_running_mode=multi_threading", "--direct_num_workers=1"], IN_MEMORY),
    (["--direct_running_mode=multi_processing", "--direct_num_workers=2"], []),
    (IN_MEMORY, []),
    (["--runner=PortableRunner", "--job_endpoint=embed"], []),
    ([], []),
  ],
)
def test_evaluator_runs_in_memory_under_the_threaded_direct_runner(args, expected):
  assert beam_profiles.evaluator_beam_args(args) == expected


def test_the_evaluators_own_options_win_over_the_pipelines(tmp_path):
  """TFX puts component-level options after the pipeline's: Beam reads the Evaluator's
  in-memory runner, and the other Beam components keep the pipeline's two threads."""
  from apache_beam.options import pipeline_options as po

  threaded = ["--direct_running_mode=multi_threading", "--direct_num_workers=2"]
  pipeline = create_pipeline(
    pipeline_root=str(tmp_path / "root"),
    serving_model_dir=str(tmp_path / "serving"),
    beam_pipeline_args=threaded,
  )

  def direct(component_id):
    args = _component(pipeline, component_id).executor_spec.beam_pipeline_args
    options = po.PipelineOptions(args).view_as(po.DirectOptions)
    return options.direct_running_mode, options.direct_num_workers

  assert direct("Evaluator") == ("in_memory", 1)
  assert direct("StatisticsGen") == direct("Transform") == ("multi_threading", 2)


def test_merge_beam_args_overrides_option_by_option():
  defaults = ["--direct_running_mode=multi_processing", "--direct_num_workers=2", "--flag"]
  merged = beam_profiles.merge_beam_args(
    defaults, ["--direct_num_workers=4", "--runner=DirectRunner"]
  )
  assert merged == [
    "--direct_running_mode=multi_processing",
    "--flag",
    "--direct_num_workers=4",
    "--runner=DirectRunner",
  ]
  assert beam_profiles.merge_beam_args(defaults, []) == defaults
  assert beam_profiles.merge_beam_args(defaults, ["--flag=false"]) == [
    *defaults[:2],
    "--flag=false",
  ]


def test_orchestrator_names():
  assert isinstance(runner.orchestrator("local"), tfx.orchestration.LocalDagRunner)
  assert isinstance(runner.orchestrator("beam"), BeamDagRunner)
  with pytest.raises(ValueError, match="nope"):
    runner.orchestrator("nope")


def test_training_only_change_keeps_transform_properties(tmp_path):
  def props(hparams, component="Transform"):
    built = create_pipeline(
      pipeline_root=str(tmp_path / "root"),
      serving_model_dir=str(tmp_path / "serving"),
      hparams=hparams,
    )
    return _component(built, component).exec_properties["custom_config"]

  base = props(HP)
  assert props(dataclasses.replace(HP, seed=7, epochs=5, dropout=0.3)) == base
  assert props(dataclasses.replace(HP, max_length=HP.max_length + 1)) != base
  # The pretrained embeddings are reused across models and their training settings.
  pretraining = props(HP, "EmbeddingTrainer")
  assert (
    props(dataclasses.replace(HP, model="multi_head", epochs=5, dropout=0.3), "EmbeddingTrainer")
    == pretraining
  )
  assert props(dataclasses.replace(HP, word2vec_window=2), "EmbeddingTrainer") != pretraining


def test_code_versions_go_into_each_components_custom_config(tmp_path):
  versions = {"transform": "t" * 16, "pretraining": "p" * 16, "trainer": "m" * 16}
  built = create_pipeline(
    pipeline_root=str(tmp_path / "root"),
    serving_model_dir=str(tmp_path / "serving"),
    hparams=HP,
    code_versions=versions,
  )
  transform = json.loads(_component(built, "Transform").exec_properties["custom_config"])
  pretrainer = json.loads(_component(built, "EmbeddingTrainer").exec_properties["custom_config"])
  trainer = json.loads(_component(built, "Trainer").exec_properties["custom_config"])
  assert transform == {**HP.preprocessing_custom_config(), "code_version": "t" * 16}
  assert pretrainer == {**HP.pretraining_custom_config(), "code_version": "p" * 16}
  assert trainer == {**HP.to_custom_config(), "code_version": "m" * 16}
  # What preprocessing_fn and run_fn read back is unchanged.
  assert HParams.from_custom_config(trainer) == HP


def _project_copy(tmp_path) -> pathlib.Path:
  """The project's packages copied under ``tmp_path`` (sources only)."""
  from pipeline import code_version

  root = pathlib.Path(__file__).resolve().parents[1]
  for package in code_version.PROJECT_PACKAGES:
    shutil.copytree(
      root / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
    )
  return tmp_path


def _code_versions_of(project: pathlib.Path) -> dict:
  """``code_versions()`` computed in a fresh interpreter importing from ``project``."""
  script = (
    "import json; from pipeline import code_version; "
    "print(json.dumps(code_version.code_versions()))"
  )
  done = subprocess.run(
    [sys.executable, "-c", script],
    cwd=project,
    check=True,
    capture_output=True,
    text=True,
    env={**os.environ, "PYTHONPATH": str(project)},
  )
  return json.loads(done.stdout)


def _edit(path: pathlib.Path) -> None:
  with open(path, "a", encoding="utf-8") as f:
    f.write("\n# changed\n")


def test_code_versions_follow_the_import_graph(tmp_path):
  from pipeline import code_version

  project = _project_copy(tmp_path)
  ours = _code_versions_of(project)
  assert ours == code_version.code_versions()
  assert all(len(v) == 16 and int(v, 16) >= 0 for v in ours.values())
  # Reached by run_fn only indirectly (trainer -> signatures -> warmup): a new Trainer.
  _edit(project / "core" / "warmup.py")
  warmup = _code_versions_of(project)
  assert warmup["trainer"] != ours["trainer"]
  assert warmup["transform"] == ours["transform"]
  assert warmup["pretraining"] == ours["pretraining"]
  # Imported by no component: nothing re-runs.
  _edit(project / "analysis" / "explain.py")
  _edit(project / "serving" / "server.py")
  assert _code_versions_of(project) == warmup
  # The word2vec pretraining: new embeddings, and run_fn reads them with its code.
  _edit(project / "models" / "pretraining.py")
  pretraining = _code_versions_of(project)
  assert pretraining["pretraining"] != warmup["pretraining"]
  assert pretraining["trainer"] != warmup["trainer"]
  assert pretraining["transform"] == ours["transform"]
  # preprocessing_fn: Transform, and the Trainer, whose predict_text tokenizes with it
  # (the EmbeddingTrainer re-runs anyway: its TransformGraph input is new).
  _edit(project / "models" / "preprocessing.py")
  again = _code_versions_of(project)
  assert again["transform"] != pretraining["transform"]
  assert again["trainer"] != pretraining["trainer"]
  assert again["pretraining"] == pretraining["pretraining"]
  # A new import in run_fn's graph brings the new module's code in.
  (project / "models" / "extra.py").write_text("X = 1\n")
  assert _code_versions_of(project) == again
  with open(project / "models" / "inputs.py", "a", encoding="utf-8") as f:
    f.write("from models import extra  # noqa\n")
  with_extra = _code_versions_of(project)
  (project / "models" / "extra.py").write_text("X = 2\n")
  assert _code_versions_of(project)["trainer"] != with_extra["trainer"]
