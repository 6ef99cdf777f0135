"""The figures behind the ``hw`` targets, each against a plain loop timed in this script:

- GPU (when present): the bf16 matrix figure at 8192 is at least 90% of an 8192x8192x8192
  ``torch.matmul`` timed with CUDA events here;
- CPU: the fp32 matrix figure is within 20% of a plain torch and a plain numpy matmul of
  the same size (best of N, host clock);
- STREAM: each kernel's figure is within 15% of a plain torch loop of that kernel on the
  same arrays' size, timed the same way (host clock on the CPU, CUDA events on a GPU).

Rounds alternate harness and plain loop (the machine drifts); the ratio reported is the
median over rounds. Prints PASS / MISS per target it can check here.

    python scripts/hw_targets.py             # full sizes
    python scripts/hw_targets.py --tiny      # seconds: checks that the script runs
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.hw.clock import DeviceClock  # noqa: E402
from bench.hw.matmul import measure_matmul  # noqa: E402
from bench.hw.records import matmul_flops, stream_bytes  # noqa: E402
from bench.hw.stream import SCALAR, measure_stream, stream_plan  # noqa: E402


def plain_best_s(
    run: Callable[[], object], device: torch.device, calls: int, repeats: int
) -> float:
    """Best seconds per call: ``calls`` back-to-back calls per repeat, CUDA events on a GPU,
    perf_counter on the CPU, after one warm-up call."""
    run()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        best = float("inf")
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(calls):
                run()
            end.record()
            end.synchronize()
            best = min(best, start.elapsed_time(end) / 1e3 / calls)
        return best
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        for _ in range(calls):
            run()
        best = min(best, (time.perf_counter() - began) / calls)
    return best


def verdict(ratio: float, low: float, high: float) -> str:
    return "PASS" if low <= ratio <= high else "MISS"


def matmul_target(device: torch.device, dtype: str, size: int, rounds: int) -> list[str]:
    """Harness figure vs plain torch (and on the CPU numpy) matmul at ``size``."""
    torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    a = torch.randn(size, size, device=device).to(torch_dtype)
    b = torch.randn(size, size, device=device).to(torch_dtype)
    work = matmul_flops(size, size, size)
    once = DeviceClock(torch, device).time(lambda: torch.matmul(a, b))
    calls = max(1, int(0.2 / once))
    x, y = (a.numpy(), b.numpy()) if device.type == "cpu" else (None, None)
    plains: dict[str, list[float]] = {"torch": [], "numpy": []}
    harness = []
    for _ in range(rounds):
        harness.append(measure_matmul(torch, device, dtype, size, 5, 60.0).best)
        plains["torch"].append(work / plain_best_s(lambda: torch.matmul(a, b), device, calls, 5))
        if x is not None:
            plains["numpy"].append(work / plain_best_s(lambda: x @ y, device, calls, 5))
    lines = []
    for name, figures in plains.items():
        if not figures:
            continue
        ratio = statistics.median(h / (p / 1e12) for h, p in zip(harness, figures, strict=True))
        if name == "numpy":  # numpy links its own BLAS: a different library, not the harness
            check = "context: numpy's own BLAS, not a target"
        elif device.type == "cuda":
            check = f"target >= 0.90: {verdict(ratio, 0.9, float('inf'))}"
        else:
            check = f"target 0.80-1.20: {verdict(ratio, 0.8, 1.2)}"
        lines.append(
            f"{device} {dtype} matmul {size}: harness {statistics.median(harness):.3g} TFLOP/s, "
            f"plain {name} {statistics.median(figures) / 1e12:.3g} TFLOP/s, ratio {ratio:.3f} "
            f"({check})"
        )
    return lines


def stream_target(device: torch.device, stream_mib: int | None, rounds: int) -> list[str]:
    """Harness STREAM figures vs plain torch loops of each kernel on arrays of the same size."""
    plan = stream_plan(torch, device, stream_mib)
    n = plan["array_bytes"] // 8
    a = torch.full((n,), 1.0, dtype=torch.float64, device=device)
    b = torch.full((n,), 2.0, dtype=torch.float64, device=device)
    c = torch.zeros(n, dtype=torch.float64, device=device)
    plain = {
        "copy": lambda: c.copy_(a),
        "scale": lambda: torch.mul(c, SCALAR, out=b),
        "add": lambda: torch.add(a, b, out=c),
        "triad": lambda: torch.add(b, c, alpha=SCALAR, out=a),
    }
    ratios: dict[str, list[float]] = {k: [] for k in plain}
    figures: dict[str, list[float]] = {k: [] for k in plain}
    for _ in range(rounds):
        harness = {r.name: r.best for r in measure_stream(torch, device, plan, 10)}
        for name, kernel in plain.items():
            rate = stream_bytes(name, n) / plain_best_s(kernel, device, 1, 10) / 1e9
            figures[name].append(rate)
            ratios[name].append(harness[name] / rate)
    notes = "; ".join(plan["notes"]) or f"arrays {plan['array_bytes'] / 2**20:,.0f} MiB"
    lines = [f"{device} STREAM ({notes})"]
    for name in plain:
        ratio = statistics.median(ratios[name])
        lines.append(
            f"  {name}: plain torch {statistics.median(figures[name]):.3g} GB/s, harness/plain "
            f"{ratio:.3f} (target 0.85-1.15): {verdict(ratio, 0.85, 1.15)}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-size", type=int, default=2048)
    parser.add_argument("--gpu-size", type=int, default=8192)
    parser.add_argument("--stream-mib", type=int, help="per array (default: 4x the LLC)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tiny", action="store_true", help="small sizes, one round")
    args = parser.parse_args()
    if args.tiny:
        args.cpu_size, args.gpu_size, args.stream_mib, args.rounds = 256, 1024, 8, 1
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, numpy {np.__version__}"
    )
    devices = [torch.device("cpu")]
    devices += [torch.device(f"cuda:{i}") for i in range(torch.cuda.device_count())]
    for device in devices:
        if device.type == "cuda":
            print(torch.cuda.get_device_name(device))
            lines = matmul_target(device, "bf16", args.gpu_size, args.rounds)
        else:
            lines = matmul_target(device, "fp32", args.cpu_size, args.rounds)
        lines += stream_target(device, args.stream_mib, args.rounds)
        print("\n".join(lines), flush=True)
    if not torch.cuda.is_available():
        print("GPU bf16 target: not checked here (no CUDA device)")


if __name__ == "__main__":
    main()
