"""Why the paired worker's ONNX Runtime sessions share one thread pool: the spread of paired
workers' ratios for two identical sessions, with a thread pool each (spinning off) and
with one pool shared by both, on an idle machine and with another process busy on one
core (``--hog``).

Each worker is a fresh process with two sessions of one model, timed in pairs (which
session first drawn per pair) for ``--seconds``; its ratio is the median of its pairs'
ratios. Nothing differs between the two sessions, so every worker's ratio should be 1.

    python scripts/thread_pools.py --hog                     # ResNet-18, 16 workers a mode
    python scripts/thread_pools.py --model mlp --workers 2 --seconds 0.2   # a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODES = ("per session", "shared")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18", help="a zoo model")
    parser.add_argument("--workers", type=int, default=16, help="workers a mode")
    parser.add_argument("--seconds", type=float, default=3.0, help="a worker's window")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--hog", action="store_true", help="keep the last CPU busy meanwhile")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)  # mode, ONNX file, seed
    args = parser.parse_args()
    if args.worker:
        mode, path, seed = args.worker
        timed = worker(mode, args.model, Path(path), args.threads, args.seconds, int(seed))
        print(json.dumps(timed))
        return 0
    onnx = exported(args.model)
    last = max(os.sched_getaffinity(0))
    hog = (
        subprocess.Popen(["taskset", "-c", str(last), sys.executable, "-c", "while 1: pass"])
        if args.hog
        else None
    )
    try:
        for mode in MODES:
            runs = [run_worker(mode, onnx, args, seed) for seed in range(args.workers)]
            ratios = np.array([r["ratio"] for r in runs])
            print(
                f"{'hog on CPU ' + str(last) if hog else 'idle'}, {mode}: "
                f"ratios {np.round(ratios, 3).tolist()}; spread {np.log(ratios).std(ddof=1):.2%}"
                f"; base {np.median([r['base_ms'] for r in runs]):.2f} ms a request",
                flush=True,
            )
    finally:
        if hog is not None:
            hog.kill()
    return 0


def exported(model: str) -> Path:
    """The zoo model's ONNX file (exported, or found in the cache)."""
    from bench.harness.config import BenchConfig
    from bench.harness.plan import ModelRequest
    from bench.harness.runner import prepare
    from exporters.cache import default_cache_dir

    request = ModelRequest(model, "zoo", model)
    return prepare(request, BenchConfig(), default_cache_dir()).onnx_path


def run_worker(mode: str, onnx: Path, args: argparse.Namespace, seed: int) -> dict:
    argv = [sys.executable, __file__, "--worker", mode, str(onnx), str(seed)]
    argv += ["--model", args.model, "--threads", str(args.threads)]
    argv += ["--seconds", str(args.seconds)]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def worker(mode: str, model: str, onnx: Path, threads: int, seconds: float, seed: int) -> dict:
    """Two sessions of ``onnx`` (zoo ``model``), a pool each or one shared, timed in pairs."""
    import time

    import onnxruntime

    from bench.core.spec import BATCH, make_inputs
    from exporters.zoo import get_entry

    if mode == "shared":
        from onnxruntime.capi import _pybind_state

        _pybind_state.set_global_thread_pool_sizes(threads, 1)

    def session() -> onnxruntime.InferenceSession:
        options = onnxruntime.SessionOptions()
        if mode == "shared":
            options.use_per_session_threads = False
        else:
            options.intra_op_num_threads = threads
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return onnxruntime.InferenceSession(str(onnx), options, providers=["CPUExecutionProvider"])

    base, new = session(), session()
    feeds = make_inputs(get_entry(model).inputs, {BATCH: 1}, 0)
    for _ in range(10):
        base.run(None, feeds)
        new.run(None, feeds)
    rng = np.random.default_rng(seed)
    ratios, base_ns = [], []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        took = {}
        for side in (base, new) if rng.random() < 0.5 else (new, base):
            start = time.perf_counter_ns()
            side.run(None, feeds)
            took[id(side)] = time.perf_counter_ns() - start
        ratios.append(took[id(new)] / took[id(base)])
        base_ns.append(took[id(base)])
    return {"ratio": float(np.median(ratios)), "base_ms": float(np.median(base_ns)) / 1e6}


if __name__ == "__main__":
    sys.exit(main())
