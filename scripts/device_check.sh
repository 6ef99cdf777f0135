#!/usr/bin/env bash
# One prepared check of the GPU paths on a lent CUDA machine (see docs/verified.md, "What was verified
# where"). Writes everything under $OUT (or ./device-out when run elsewhere).
#   bash scripts/device_check.sh
set -uo pipefail
source "$(dirname "$0")/device_env.sh"
{
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
    $PY -c "import torch, onnxruntime; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available()); print('onnxruntime', onnxruntime.__version__, onnxruntime.get_available_providers())"
    $PY cli.py list
    $PY cli.py run --devices cpu,cuda --models mlp,resnet18 \
        --runtimes pytorch,onnxruntime --batch-sizes 1,8 --scenarios latency,throughput \
        --results-dir "$OUT/results" --no-progress
    echo "run exit code: $?"
    $PY -m pytest -q -p no:cacheprovider -m gpu tests/test_runtimes_conformance.py tests/test_cli.py
} 2>&1 | tee "$OUT/device_check.log"
