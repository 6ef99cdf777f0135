# Sourced by the prepared device checks: $OUT for what comes back, $PY, the wheels the
# device image lacks (carried from the dev machine in .whl/), an unbuffered log and a
# model cache outside the checkout.
OUT=${OUT:-device-out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
if [ -d .whl ]; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
export PYTHONUNBUFFERED=1 DEPLOYBENCH_CACHE_DIR=/tmp/deploybench-cache
