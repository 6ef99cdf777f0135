"""Do this suite's ONNX Runtime numbers agree with ONNX Runtime's own session timing?

ONNX Runtime's profiler records a ``model_run`` event, timed inside the session, for every
``run`` call. On the same ONNX file this script compares:

1. the same runs: the harness's per-request times (``time_latency`` around ``run``) against
   the profiler's ``model_run`` durations of those very calls;
2. the harness with profiling off (what ``cli.py run`` reports) against the profiler's
   median with profiling on.

    python scripts/ort_agreement.py [--model resnet18 --batch 1]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.core.settings import MeasureConfig  # noqa: E402
from bench.core.timing import time_latency  # noqa: E402
from exporters.cache import default_cache_dir  # noqa: E402
from exporters.onnx_export import prepare_zoo_model  # noqa: E402
from exporters.reference import load_reference  # noqa: E402


def session(path: Path, threads: int, profile: bool):  # noqa: ANN201
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.enable_profiling = profile
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def harness_times_ms(sess, feeds, measure: MeasureConfig) -> tuple[np.ndarray, int]:  # noqa: ANN001
    record = time_latency(
        lambda: sess.run(None, feeds),
        lambda: None,
        measure.warmup_rule(),
        measure.measurement_rule(),
    )
    return np.asarray(record.times_ns) / 1e6, record.warmup_count


def profiled_run_ms(sess) -> np.ndarray:  # noqa: ANN001
    path = Path(sess.end_profiling())
    events = json.loads(path.read_text())
    path.unlink()
    return np.asarray([e["dur"] / 1e3 for e in events if e.get("name") == "model_run"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--batch", type=int, default=1)
    args = parser.parse_args()

    threads = psutil.cpu_count(logical=False) or 1
    prepared = prepare_zoo_model(args.model, [args.batch], default_cache_dir())
    feeds, _ = load_reference(prepared.reference, args.batch)
    measure = MeasureConfig()
    print(f"{args.model} batch {args.batch}, onnxruntime CPU, {threads} threads")

    profiled = session(prepared.onnx_path, threads, profile=True)
    harness, warmups = harness_times_ms(profiled, feeds, measure)
    ort_runs = profiled_run_ms(profiled)[warmups:]  # the profiler saw the warm-up calls too
    if len(ort_runs) != len(harness):
        sys.exit(f"expected {len(harness)} model_run events after warm-up, found {len(ort_runs)}")
    same = np.median(harness) / np.median(ort_runs)
    print(
        f"same runs ({len(harness)}): harness median {np.median(harness):.3f} ms, "
        f"ORT model_run median {np.median(ort_runs):.3f} ms, ratio {same:.4f}"
    )

    plain = session(prepared.onnx_path, threads, profile=False)
    unprofiled, _ = harness_times_ms(plain, feeds, measure)
    ratio = np.median(unprofiled) / np.median(ort_runs)
    print(
        f"profiling off: harness median {np.median(unprofiled):.3f} ms vs ORT-profiled "
        f"{np.median(ort_runs):.3f} ms, ratio {ratio:.4f}"
    )


if __name__ == "__main__":
    main()
