"""The paired gate's operating curve on this machine: how often ``ab`` calls a latency
regression of 2, 5 and 10% (injected), and a real model change of about 5% more work,
``regressed``, and how often it raises a false alarm when nothing changed.

The injected slowdown is a calibrated extra cost inside each timed request of the new
side only (the test fixture ``tests/fixtures/slowdown`` busy-waits that fraction of the
request's own time), not a sleep outside it. The real change is
``scripts.gate_variants:resnet18_deeper`` against ``resnet18`` (+4.98% multiply-adds).

Pools of paired workers (``ab``'s own worker: both sides in one process, requests
alternated in random order) are measured for each condition, interleaved in rounds, each
round in a shuffled order, so that the machine's drift touches every pool alike. Each
trial then replays ``ab``'s rules on workers drawn from a pool in a random order without
replacement: workers are added until the interval's half-width is reached or the time
cap, then an alert is confirmed by the next, fresh workers of the same pool. A trial's
gate time is the sum of its workers' wall times (the two exports are cached). Trials
share workers, so the rates are a resampling estimate from the pools.

    python scripts/gate_curve.py                       # 40 workers a condition, ~20 min
    python scripts/gate_curve.py --rounds 2 --trials 20 --model lenet5   # a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402

from bench.commands.ab import AbRequest, Pairing, pairing  # noqa: E402
from bench.compare.ab import CONFIRMATION, FIRST, Stage  # noqa: E402
from bench.compare.pairs import WorkerPairs  # noqa: E402
from bench.compare.significance import IMPROVED, REGRESSED  # noqa: E402
from bench.harness.config import AbConfig  # noqa: E402
from bench.harness.isolation import run_in_worker  # noqa: E402
from bench.harness.pairs import measure_pair  # noqa: E402

SLOWDOWN_FIXTURE = ROOT / "tests" / "fixtures" / "slowdown"
VARIANTS = "scripts.gate_variants"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slowdowns", default="0.02,0.05,0.10", help="fractions to inject")
    parser.add_argument("--rounds", type=int, default=40, help="workers per condition")
    parser.add_argument("--trials", type=int, default=400, help="gates replayed per condition")
    parser.add_argument(
        "--model",
        default="resnet18",
        choices=["resnet18", "lenet5"],
        help="resnet18 (with the real change) or lenet5 (a quick check)",
    )
    parser.add_argument("--runtime", default="onnxruntime")
    parser.add_argument("--worker-s", type=float, help="a worker's window (default: [ab])")
    parser.add_argument("--half-width", type=float, help="default: [ab] half_width")
    parser.add_argument("--threshold", type=float, help="default: [ab] threshold")
    parser.add_argument("--max-s", type=float, help="a stage's time cap (default: [ab] max_s)")
    parser.add_argument("--cache-dir", type=Path)
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()

    given = {
        "worker_s": args.worker_s,
        "half_width": args.half_width,
        "threshold": args.threshold,
        "max_s": args.max_s,
    }
    settings = AbConfig(**{k: v for k, v in given.items() if v is not None})
    conditions = [("A/A", None, 0.0)]
    conditions += [(f"+{s:.0%}", None, s) for s in map(float, args.slowdowns.split(","))]
    if args.model == "resnet18":
        conditions.append(("real +5% work", f"{VARIANTS}:resnet18_deeper", 0.0))
    console = Console(stderr=True)
    sides = {new or copy_of(args.model) for _, new, _ in conditions}  # each pair prepared once
    prepared_sides = {new: prepared(args, new, settings, console) for new in sorted(sides)}
    pairings = {name: prepared_sides[new or copy_of(args.model)] for name, new, _ in conditions}
    pools: dict[str, list[tuple[WorkerPairs, float]]] = {name: [] for name, _, _ in conditions}
    order = np.random.default_rng(1)
    started = time.perf_counter()
    for round_ in range(args.rounds):
        for index in order.permutation(len(conditions)):
            name, _, slowdown = conditions[index]
            pools[name].append(one_worker(pairings[name], slowdown, seed=round_ * 100 + index))
        print(f"round {round_ + 1}/{args.rounds} ({time.perf_counter() - started:.0f} s)")
    figures = {name: replay(pool, settings, args.trials) for name, pool in pools.items()}
    print_figures(figures, pools, settings)
    if args.out:
        document = {
            "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "ab": settings.model_dump(),
            "figures": figures,
            "workers": {
                name: [{"ratio": w.ratio, "pairs": w.size, "seconds": s} for w, s in pool]
                for name, pool in pools.items()
            },
        }
        args.out.write_text(json.dumps(document, indent=2) + "\n")
    return 0


def copy_of(model: str) -> str:
    """The new side of an A/A or injected condition: the base under another name."""
    return f"{VARIANTS}:{model}_copy"


def prepared(args: argparse.Namespace, new: str, settings: AbConfig, console: Console) -> Pairing:
    base = f"{VARIANTS}:{args.model}"
    request = AbRequest(
        base=base,
        new=new,
        config_path=ROOT / "bench.toml",
        overrides={"suite": {"runtimes": [args.runtime], "precisions": ["fp32"]}},
        cache_dir=args.cache_dir,
        settings=settings.model_dump(),
    )
    return pairing(request, console)


def one_worker(paired: Pairing, slowdown: float, seed: int) -> tuple[WorkerPairs, float]:
    """One paired worker of the suite's first cell, the new side slowed by ``slowdown``."""
    (cell,) = [c for c in paired.cells if c.status == "ok"][:1]
    os.environ["PYTHONPATH"] = str(SLOWDOWN_FIXTURE)
    os.environ["DEPLOYBENCH_TEST_SLOWDOWN"] = str(slowdown)
    os.environ["DEPLOYBENCH_TEST_SLOWDOWN_MODEL"] = paired.models[1].name
    start = time.perf_counter()
    outcome = run_in_worker(measure_pair, paired.job(cell, seed), 600)
    seconds = time.perf_counter() - start
    if outcome.status != "ok":
        raise SystemExit(f"worker {outcome.status} in {outcome.phase}: {outcome.reason}")
    times = outcome.payload
    return WorkerPairs(times.base_ns, times.new_ns, times.base_first), seconds


def replay(pool: list[tuple[WorkerPairs, float]], settings: AbConfig, trials: int) -> dict:
    """``trials`` gates replayed on ``pool``: the share of each final verdict, how often
    an alert was confirmed, and the gate's time (median and 95th percentile)."""
    rng = np.random.default_rng(0)
    verdicts: list[str] = []
    seconds: list[float] = []
    first_alerts = exhausted = 0
    for _ in range(trials):
        drawn = iter(rng.permutation(len(pool)))
        stages = []
        for name in (FIRST, CONFIRMATION):
            stage = Stage(name, target=settings.half_width)
            for index in drawn:
                stage.add(*pool[index], settings.threshold)
                if stage.done(settings):
                    break
            else:
                exhausted += 1
            stages.append(stage)
            if stage.verdict != REGRESSED or not settings.confirm:
                break
        first_alerts += stages[0].verdict == REGRESSED
        final = stages[0].verdict
        if final == REGRESSED and len(stages) > 1:
            final = REGRESSED if stages[1].verdict == REGRESSED else "unconfirmed"
        verdicts.append(final)
        seconds.append(sum(stage.seconds for stage in stages))
    share = {v: verdicts.count(v) / trials for v in sorted(set(verdicts))}
    return {
        "trials": trials,
        "regressed": share.get(REGRESSED, 0.0),
        "improved": share.get(IMPROVED, 0.0),
        "verdicts": share,
        "first_stage_alerts": first_alerts / trials,
        "pool_exhausted": exhausted,
        "gate_s_median": float(np.median(seconds)),
        "gate_s_p95": float(np.percentile(seconds, 95)),
    }


def print_figures(
    figures: dict[str, dict], pools: dict[str, list[tuple[WorkerPairs, float]]], settings: AbConfig
) -> None:
    print(
        f"\nab settings: threshold {settings.threshold:.1%}, "
        f"half-width ±{settings.half_width:.1%}, cap {settings.max_s:g} s a stage, "
        f"worker window {settings.worker_s:g} s, confirm {settings.confirm}"
    )
    print(
        f"{'condition':<14} {'workers':>7} {'ratio':>8} {'sd':>6} {'regressed':>9} "
        f"{'improved':>8} {'1st alert':>9} {'gate s':>7} {'p95 s':>6}"
    )
    for name, figure in figures.items():
        ratios = np.log([w.ratio for w, _ in pools[name]])
        print(
            f"{name:<14} {len(pools[name]):>7} {np.exp(ratios.mean()):>8.4f} "
            f"{ratios.std(ddof=1):>6.2%} {figure['regressed']:>9.1%} {figure['improved']:>8.1%} "
            f"{figure['first_stage_alerts']:>9.1%} {figure['gate_s_median']:>7.0f} "
            f"{figure['gate_s_p95']:>6.0f}"
        )


if __name__ == "__main__":
    sys.exit(main())
