"""How many measurements ``tune``'s searches need to find the best configuration
(docs/tune.md), on synthetic spaces whose truth is known.

A configuration's samples/s, p99 latency, peak memory and accuracy verdict come from a
model of how they behave (``synthetic``: samples/s saturating with batch and requests in
flight, p99 and memory growing with both; one runtime's bf16 failing accuracy), so the
best configuration under each constraint set is known by brute force. Each search is
counted until it first measures that configuration:

- exhaustive: every configuration (what a grid without pruning measures);
- grid: ``tune``'s grid, smallest first, a rejected configuration ruling out every
  larger one of its path (bench.harness.tuner.grid): all it measures;
- optuna: Optuna's constrained TPE sampler as ``tune`` drives it, no budget, per seed;
- random: configurations in a random order, per seed.

    python scripts/tune_search.py                       # 4 bounds, 10 seeds
    python scripts/tune_search.py --bounds 12 --seeds 2 --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.core.cell import Cell  # noqa: E402
from bench.core.record import Accuracy, CellRecord, Measured, Memory, Throughput  # noqa: E402
from bench.core.stats import Summary  # noqa: E402
from bench.harness.tuner import (  # noqa: E402
    Configuration,
    Constraints,
    decide,
    grid,
    judge,
    optuna_search,
    space,
)

SPEED = {"onnxruntime": 1.0, "openvino": 1.3, "pytorch": 0.6}
PRECISION = {"fp32": 1.0, "fp16": 1.5, "bf16": 1.7, "int8": 2.6}
SPACE = space(SPEED, ["cpu"], PRECISION, [1, 2, 4, 8, 16, 32], [1, 2, 4, 8])


def synthetic(c: Configuration) -> tuple[float, float, float, str]:
    """samples/s, p99 ms, peak MB and the accuracy verdict of a configuration."""
    service_ms = c.batch * 2.0 / (SPEED[c.runtime] * PRECISION[c.precision]) + 0.5
    rate = c.batch * 1e3 / service_ms * min(c.in_flight, 2) ** 0.8
    p99 = service_ms * c.in_flight * 1.2
    memory = 100 + 20 * c.batch * c.in_flight
    verdict = "fail" if (c.runtime, c.precision) == ("openvino", "bf16") else "pass"
    return rate, p99, memory, verdict


def record_of(c: Configuration) -> CellRecord:
    """The record a measurement of ``c`` would give (``synthetic``)."""
    rate, p99, memory, verdict = synthetic(c)
    cell = Cell("synthetic", c.runtime, c.device, c.precision, c.batch, "throughput")
    measured = Measured(
        latency_ms=Summary(count=100, min=p99 / 3, mean=p99 / 2, median=p99 / 2, p99=p99),
        throughput=Throughput(samples_per_s=rate),
        memory=Memory(peak_rss_mb=memory),
        accuracy=Accuracy(verdict=verdict),
    )
    return CellRecord.new("synthetic", cell, "ok", measured=measured)


def best(limits: Constraints) -> Configuration | None:
    """The configuration ``tune`` should choose, by brute force."""
    chosen = decide([judge(c, record_of(c), limits) for c in SPACE], "all").chosen
    return chosen.configuration if chosen else None


class Found(Exception):
    """The best configuration was measured: the search need go no further."""


def counted(search, limits: Constraints, target: Configuration) -> int | None:  # noqa: ANN001
    """Measurements until ``target`` was measured (None if it never was)."""
    order: list[Configuration] = []

    def measure(c: Configuration) -> CellRecord:
        order.append(c)
        if c == target:
            raise Found
        return record_of(c)

    try:
        search(measure, limits)
    except Found:
        return len(order)
    return None


def compare(bound_ms: float, seeds: int) -> dict:
    """Every search on the space under ``bound_ms`` (and a 2 GB memory limit)."""
    limits = Constraints(latency_bound_ms=bound_ms, max_memory_mb=2000)
    target = best(limits)
    grid_all = grid(SPACE, record_of, limits).measurements
    grid_found = counted(lambda m, lim: grid(SPACE, m, lim), limits, target)
    optuna, rand = [], []
    for seed in range(seeds):
        found = counted(
            lambda m, lim, s=seed: optuna_search(SPACE, m, lim, len(SPACE), seed=s),
            limits,
            target,
        )
        optuna.append(found or len(SPACE))
        order = np.random.default_rng(seed).permutation(len(SPACE))
        rand.append(int(np.where(order == SPACE.index(target))[0][0]) + 1)
    return {
        "bound_ms": bound_ms,
        "configurations": len(SPACE),
        "best": target.label if target else None,
        "exhaustive": len(SPACE),
        "grid_measured": grid_all,
        "grid_found_at": grid_found,
        "optuna_found_at_median": float(np.median(optuna)),
        "optuna_found_at_max": int(max(optuna)),
        "random_found_at_median": float(np.median(rand)),
        "seeds": seeds,
    }


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bounds", default="3,6,12,24", help="p99 bounds, ms (comma-separated)")
    parser.add_argument("--seeds", type=int, default=10, help="seeds of optuna and random")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    rows = [compare(float(b), args.seeds) for b in args.bounds.split(",")]
    print(f"{len(SPACE)} configurations; measurements until the best was measured")
    print(f"{'bound':>6} {'best':<28} {'grid all':>8} {'grid@':>6} {'optuna@':>8} {'random@':>8}")
    for row in rows:
        print(
            f"{row['bound_ms']:>6g} {row['best'] or '-':<28} {row['grid_measured']:>8} "
            f"{row['grid_found_at'] or '-':>6} {row['optuna_found_at_median']:>8g} "
            f"{row['random_found_at_median']:>8g}"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()
