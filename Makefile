# `make run` and `make test` bootstrap .venv themselves: find Python 3.10, create the venv,
# install the pinned set (requirements.lock, hash-checked) and the project, then act.
SHELL := /bin/bash
PYTHON ?= $(shell scripts/find_python.sh)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
UV_VERSION := 0.13.9
# The prepared TFDS directory beside the checkout, when there is one and nothing else is set.
SHARED_TFDS := $(abspath ../shared/data/tensorflow_datasets)
ifeq ($(origin TFDS_DATA_DIR), undefined)
ifneq ($(wildcard $(SHARED_TFDS)/imdb_reviews),)
export TFDS_DATA_DIR := $(SHARED_TFDS)
endif
endif
export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL ?= 1

ARGS ?=
PYTEST_ARGS ?=
# Test files run on this many pytest-xdist workers, a file to a worker (0: in this process).
PYTEST_WORKERS ?= 2
PYTEST := $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile

.PHONY: run test test-unit test-e2e lint format bench bench-serving bench-models bench-models-nb \
  bench-beam bench-vs-tfx bench-scale bench-cli bench-spans bench-behaviour bench-report serve airflow-up airflow-down \
  airflow-status venv lock clean

venv: $(STAMP)

$(STAMP): requirements.lock setup.py
	@test -n "$(PYTHON)" || { echo "Python 3.10 is required (see scripts/find_python.sh)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(BIN)/uv pip sync --python $(BIN)/python --require-hashes --compile-bytecode requirements.lock
	$(BIN)/uv pip install --python $(BIN)/python --no-deps -e .
	touch $(STAMP)

## The main job: the whole pipeline on the full IMDB data (pass options with ARGS="...").
run: $(STAMP)
	$(BIN)/imdb-tfx run $(ARGS)

## Unit and end-to-end tests (what CI runs).
test: $(STAMP)
	$(PYTEST) $(PYTEST_ARGS)

## Style and architecture (what .ci/run checks before the tests): ruff's lint and format
## check, and import-linter's layer contract (pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

## Reformat the code and apply ruff's safe fixes.
format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test-unit: $(STAMP)
	$(PYTEST) -m "not e2e" $(PYTEST_ARGS)

test-e2e: $(STAMP)
	$(PYTEST) -m e2e $(PYTEST_ARGS)

## Benchmarks (write JSON under outputs/bench/; never part of `make test`).
bench: bench-cli bench-serving bench-models bench-models-nb

# Every model x seed trained through the pipeline on the full train split, scored on the
# 25,000-review test split, against the plain-Keras reference -> outputs/bench/models.json
# (resumes: runs already in that file are kept). Hours on 2 CPU cores; e.g.
# BENCH_MODELS_ARGS="--seeds 42 --models lstm_attention" for a part of it.
BENCH_MODELS_ARGS ?=
bench-models: $(STAMP)
	$(BIN)/python -m analysis.bench_models $(BENCH_MODELS_ARGS)

# The same with the naive-Bayes wide path (--hparam nb_wide=true: every model as an
# ensemble with the NB-weighted linear model) -> outputs/bench/models_nb_wide.json.
bench-models-nb: $(STAMP)
	$(BIN)/python -m analysis.bench_models --hparam nb_wide=true \
	  --output outputs/bench/models_nb_wide.json $(BENCH_MODELS_ARGS)

# The pushed model to benchmark; without one, a small pipeline run provides it
# (scripts/bench_model_dir.sh).
BENCH_MODEL_DIR ?= outputs/serving_model/imdb_sentiment
BENCH_ARGS ?=
bench-serving: $(STAMP)
	model_dir=$$(scripts/bench_model_dir.sh "$(BENCH_MODEL_DIR)") && \
	$(BIN)/python -m analysis.bench_serving --model-dir "$$model_dir" $(BENCH_ARGS)

# Start-up of the command line: `imdb-tfx --help`, `imdb-tfx run --help` and `imdb-tfx
# predict` of three reviews against a warm local server -> outputs/bench/cli.json.
bench-cli: $(STAMP)
	model_dir=$$(scripts/bench_model_dir.sh "$(BENCH_MODEL_DIR)") && \
	$(BIN)/python -m analysis.bench_cli --model-dir "$$model_dir" $(BENCH_ARGS)

# StatisticsGen, Transform and the Evaluator on the DirectRunner and on Beam's portable
# job service with a separately started pool of SDK workers (--environment_type=EXTERNAL),
# outputs compared -> outputs/bench/beam_external.json. About 25 min on 2 CPU cores; e.g.
# BENCH_BEAM_ARGS="--train-split train[:10%] --test-split test[:10%]" for a small one.
BENCH_BEAM_ARGS ?=
bench-beam: $(STAMP)
	$(BIN)/python -m analysis.bench_beam $(BENCH_BEAM_ARGS)

# `make run`'s pipeline beside TFX's own IMDB example (tfx/examples/imdb from the installed
# wheel, with the settings its comments give for the full data), one after the other ->
# outputs/bench/pipeline_vs_tfx_example.json. About 15 min on 2 CPU cores.
bench-vs-tfx: $(STAMP)
	$(BIN)/python -m analysis.bench_vs_tfx run $(BENCH_ARGS)

# The pipeline (defaults, one Trainer epoch) on IMDB repeated 1x, 2x and 4x: each
# component's seconds, examples/s, peak memory of its process tree and CPU ->
# outputs/bench/scale.json and scale.png. About 80 min on 2 CPU cores; e.g.
# BENCH_SCALE_ARGS="--scale 1 --scale 2" for a shorter one, or
# BENCH_SCALE_ARGS="--rerun-node Transform" to measure one changed component again.
BENCH_SCALE_ARGS ?=
bench-scale: $(STAMP)
	$(BIN)/python -m analysis.bench_scale $(BENCH_SCALE_ARGS)

# The run report's cost: writing the latest run's report in outputs/ (after `make run`),
# with and without its attention heatmaps -> outputs/bench/report.json.
bench-report: $(STAMP)
	$(BIN)/python -m analysis.bench_report $(BENCH_ARGS)

# Continuous training: five spans of the train split, one run each (warm-started), a
# label-skewed and a 2%-bad-rows span that must stop, and a full retrain of each
# warm-started run's window -> outputs/bench/spans.json. About an hour on 2 idle CPU
# cores (add --resume to go on with an interrupted one); e.g.
# BENCH_SPANS_ARGS="--split train[:8%] --run-arg=--test-split=test[:4%]" for a small one.
# The behaviour suite's gate is off: the first span's model (4,500 reviews) fails it, and
# the benchmark measures the chain of warm starts, which an unpushed model would cut.
BENCH_SPANS_ARGS ?= --run-arg=--min-accuracy=0.8 --run-arg=--behaviour-threshold=all=none
bench-spans: $(STAMP)
	$(BIN)/python -m analysis.bench_spans $(BENCH_SPANS_ARGS)

# The behavioural suite's failure rates, golden-test accuracy and ECE of the previous
# default model against the current one, 3 seeds each, on the full data ->
# outputs/bench/behaviour.json. About 1.5 hours on 2 CPU cores.
BENCH_BEHAVIOUR_ARGS ?=
bench-behaviour: $(STAMP)
	$(BIN)/python -m analysis.bench_behaviour $(BENCH_BEHAVIOUR_ARGS)

## The scheduled deployment (deploy/airflow.md): PostgreSQL for Airflow and ML Metadata,
## Airflow's scheduler (LocalExecutor) and webserver on 127.0.0.1:8089, the DAG from
## `imdb-tfx schedule airflow $(AIRFLOW_ARGS)`; all under $(OUTPUT_DIR)/airflow.
## airflow-down stops what airflow-up started and keeps the data.
OUTPUT_DIR ?= outputs
AIRFLOW_ARGS ?=
airflow-up: $(STAMP)
	OUTPUT_DIR=$(OUTPUT_DIR) deploy/airflow/airflow.sh up $(AIRFLOW_ARGS)

airflow-down:
	OUTPUT_DIR=$(OUTPUT_DIR) deploy/airflow/airflow.sh down

airflow-status:
	OUTPUT_DIR=$(OUTPUT_DIR) deploy/airflow/airflow.sh status

## The development server (TF Serving's gRPC API) on the pushed model, port 8500.
serve: $(STAMP)
	$(BIN)/imdb-tfx serve --port=8500 --model_name=imdb_sentiment \
	  --model_base_path=outputs/serving_model/imdb_sentiment $(ARGS)

## Re-resolve requirements.in into the pinned, hashed requirements.lock.
lock: $(STAMP)
	$(BIN)/uv pip compile requirements.in --python-version 3.10 \
	  --python-platform x86_64-manylinux_2_28 --generate-hashes -o requirements.lock

clean:
	rm -rf $(VENV) outputs .pytest_cache
