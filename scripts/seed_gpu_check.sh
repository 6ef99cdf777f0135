#!/usr/bin/env bash
# The prepared GPU check of the seed reproduction (docs/reproducing.md, "Reproducing the seed's
# benchmarks"): `hw` with the GPU sheet, the u39kun profile and a Lambda-style run at
# batch 32, on a lent CUDA machine, each step under its own time limit so that one fits a
# 10-minute call. Writes everything under $OUT (or ./device-out elsewhere).
#   bash scripts/seed_gpu_check.sh
set -uo pipefail
source "$(dirname "$0")/device_env.sh"
{
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
    timeout 120 $PY cli.py hw --devices cuda --results-dir "$OUT/results"
    echo "hw exit code: $?"
    timeout 300 $PY cli.py run --profile u39kun --results-dir "$OUT/results" --no-progress
    echo "u39kun exit code: $?"
    timeout 120 $PY cli.py run --profile lambda --batch-sizes 32 \
        --results-dir "$OUT/results" --no-progress
    echo "lambda exit code: $?"
    $PY cli.py report "$OUT"/results/*-u39kun "$OUT"/results/*-hw --markdown "$OUT/report.md"
} 2>&1 | tee "$OUT/seed_gpu_check.log"
