"""The gate's operating curve on this machine: how often ``compare`` calls a real latency
regression of 2, 5 and 10% ``regressed``, and how often it raises a false alarm when
nothing changed, per repetition count and threshold.

The slowdown is a calibrated extra cost inside each timed request (the test fixture
``tests/fixtures/slowdown`` busy-waits that fraction of the request's own time), not a
sleep outside it. Pools of repetitions are measured for each condition, interleaved in
rounds (each round in a shuffled order) so that the machine's drift touches every pool
alike: two pools with no slowdown
(the A/A pairs draw one side from each) and one per slowdown. A pair of N repetitions a
side is then drawn from two pools (without replacement within a pool) and assessed by the
gate's own statistics (``bench.compare.significance.assess`` on the per-repetition medians), many
times over: a resampling estimate of each rate from the pools' repetitions.

    python scripts/process_curve.py                       # 30 repetitions a condition
    python scripts/process_curve.py --rounds 1 --repeat 3 --sizes 3 --draws 20   # a check
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.compare.significance import REGRESSED, assess  # noqa: E402
from bench.harness.results import read_records  # noqa: E402

SLOWDOWN_FIXTURE = ROOT / "tests" / "fixtures" / "slowdown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slowdowns", default="0.02,0.05,0.10", help="fractions to inject")
    parser.add_argument("--rounds", type=int, default=6, help="rounds over every condition")
    parser.add_argument("--repeat", type=int, default=5, help="repetitions per run")
    parser.add_argument("--sizes", default="3,5,8,10,15", help="repetitions a side to assess")
    parser.add_argument("--thresholds", default="0.03,0.05,0.10")
    parser.add_argument("--draws", type=int, default=400, help="pairs drawn per rate")
    parser.add_argument("--model", default="lenet5")
    parser.add_argument("--runtime", default="onnxruntime")
    parser.add_argument("--min-duration", type=float, default=0.5, help="measure.min_duration_s")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()

    slowdowns = [float(s) for s in args.slowdowns.split(",")]
    conditions = [("A", 0.0), ("A'", 0.0), *((f"+{s:.0%}", s) for s in slowdowns)]
    pools: dict[str, list[float]] = {name: [] for name, _ in conditions}
    with tempfile.TemporaryDirectory() as tmp:
        suite = write_suite(Path(tmp) / "bench.toml", args)
        order = np.random.default_rng(1)
        for round_ in range(args.rounds):  # each round in its own order: no seat is favoured
            for index in order.permutation(len(conditions)):
                name, slowdown = conditions[index]
                print(f"round {round_ + 1}/{args.rounds}: {name}", flush=True)
                results = Path(tmp) / f"results-{round_}-{index}"
                pools[name] += run_medians(suite, results, args.repeat, slowdown)
    sizes = [int(n) for n in args.sizes.split(",")]
    thresholds = [float(t) for t in args.thresholds.split(",")]
    figures = curve(pools, sizes, thresholds, args.draws)
    print_figures(figures, pools)
    if args.out:
        settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
        document = {"settings": settings, "pools_ms": pools, **figures}
        args.out.write_text(json.dumps(document, indent=2) + "\n")
    return 0


def write_suite(path: Path, args: argparse.Namespace) -> Path:
    path.write_text(
        "[suite]\nname = 'curve'\n"
        f"models = [{json.dumps(args.model)}]\nruntimes = [{json.dumps(args.runtime)}]\n"
        "scenarios = ['latency']\n"
        "[measure]\nwarmup_s = 0.2\nwarmup_min_iters = 10\n"
        f"min_duration_s = {args.min_duration}\nmin_iters = 50\n"
    )
    return path


def run_medians(suite: Path, results: Path, repeat: int, slowdown: float) -> list[float]:
    """The median latency (ms) of each repetition of one run with ``slowdown``."""
    env = {**os.environ, "DEPLOYBENCH_TEST_SLOWDOWN": str(slowdown)}
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(SLOWDOWN_FIXTURE), env.get("PYTHONPATH")])
    )
    argv = [sys.executable, "cli.py", "run", "--config", str(suite), "--results-dir", str(results)]
    argv += ["--repeat", str(repeat), "--no-progress"]
    subprocess.run(argv, cwd=ROOT, env=env, check=True, capture_output=True)
    (run_dir,) = results.iterdir()
    return [r.median_ms for r in read_records(run_dir / "results.jsonl") if r.ok and r.median_ms]


def curve(
    pools: dict[str, list[float]], sizes: list[int], thresholds: list[float], draws: int
) -> dict:
    """Per threshold and repetitions a side: the share of A/A pairs called regressed (and
    regressed or improved), and of each slowdown's pairs called regressed."""
    rng = np.random.default_rng(0)
    baseline = np.asarray(pools["A"])
    rows = []
    for threshold in thresholds:
        for n in sizes:
            if n > min(len(p) for p in pools.values()):
                continue
            row = {"threshold": threshold, "repetitions": n}
            for name, pool in pools.items():
                if name == "A":
                    continue
                verdicts = [
                    assess(
                        "latency_median",
                        list(rng.choice(baseline, n, replace=False)),
                        list(rng.choice(np.asarray(pool), n, replace=False)),
                        True,
                        threshold,
                        seed=draw,
                    ).verdict
                    for draw in range(draws)
                ]
                row[name] = sum(v == REGRESSED for v in verdicts) / draws
                if name == "A'":
                    row["A/A any alarm"] = (
                        sum(v in (REGRESSED, "improved") for v in verdicts) / draws
                    )
            rows.append(row)
    return {"rows": rows}


def print_figures(figures: dict, pools: dict[str, list[float]]) -> None:
    base = np.median(pools["A"])
    print("\npools (median of repetition medians, vs A):")
    for name, pool in pools.items():
        median = float(np.median(pool))
        print(f"  {name:<6} {len(pool):>3} repetitions, {median:.4f} ms ({median / base - 1:+.1%})")
    names = [n for n in pools if n != "A"]
    print("\nshare of pairs called regressed (A' = no change: false alarms)")
    print(f"{'threshold':>9} {'reps':>4} " + " ".join(f"{n:>8}" for n in names) + "  A/A any")
    for row in figures["rows"]:
        cells = " ".join(f"{row[n]:>8.1%}" for n in names)
        alarms = row["A/A any alarm"]
        print(f"{row['threshold']:>9.0%} {row['repetitions']:>4} {cells}  {alarms:>7.1%}")


if __name__ == "__main__":
    sys.exit(main())
