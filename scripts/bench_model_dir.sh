#!/usr/bin/env bash
# Prints the TF Serving model directory the serving and CLI benchmarks use: $1 when it
# exists (the pushed model, by default), else a small model trained once into
# outputs/bench/pipeline (1 epoch on train[:4%], the default architecture, so latency is
# representative). The training's own output goes to stderr.
set -euo pipefail
wanted="$1"
if [ -d "$wanted" ]; then echo "$wanted"; exit 0; fi
small=outputs/bench/pipeline/serving_model/imdb_sentiment
if [ ! -d "$small" ]; then
  echo "No pushed model in $wanted: training a small one into outputs/bench/pipeline" >&2
  .venv/bin/imdb-tfx run --train-split 'train[:4%]' --test-split 'test[:2%]' --epochs 1 \
    --min-accuracy 0 --behaviour-threshold all=none --output-dir outputs/bench/pipeline \
    --quiet >&2
fi
echo "$small"
