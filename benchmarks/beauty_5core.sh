#!/usr/bin/env bash
# Pop and ID-SASRec (DESIGN defaults: max_len 200, up to 200 epochs, patience 20) on the full
# Beauty 5-core of ../shared/data; prints the run tables (test HR@10/NDCG@10, s/epoch).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
$PY -m harness run --model pop --dataset beauty-5core --profile paper "$@"
$PY -m harness run --model sasrec --dataset beauty-5core --profile paper train.progress=false "$@"
