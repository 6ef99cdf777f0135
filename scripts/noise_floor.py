"""The gate's noise floor on this machine: A/A comparisons of one build against itself.

Runs the same small suite several times (each with ``--repeat``), compares each run with
the next, and prints, per metric, how far the median ratio strays from 1 when nothing
changed, and how often each verdict came out. The default threshold should sit above what
an A/A comparison shows; these figures are what docs/ci.md cites.

    python scripts/noise_floor.py                      # 4 A/A pairs, 5 repetitions each
    python scripts/noise_floor.py --pairs 2 --repeat 3 --models lenet5 --runtimes onnxruntime
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.compare.gate import compare  # noqa: E402

TRIED = (0.03, 0.05, 0.10, 0.15, 0.25)
from bench.compare.sides import load_side  # noqa: E402
from bench.compare.thresholds import Thresholds  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=4, help="A/A comparisons (runs = pairs + 1)")
    parser.add_argument("--repeat", type=int, default=5, help="repetitions per run")
    parser.add_argument("--models", default="lenet5,resnet18")
    parser.add_argument("--runtimes", default="onnxruntime,openvino")
    parser.add_argument("--scenarios", default="latency,throughput")
    parser.add_argument("--min-duration", type=float, default=1.0, help="measure.min_duration_s")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        suite = Path(tmp) / "bench.toml"
        suite.write_text(
            "[suite]\nname = 'noise'\n"
            f"models = {json.dumps(args.models.split(','))}\n"
            f"runtimes = {json.dumps(args.runtimes.split(','))}\n"
            f"scenarios = {json.dumps(args.scenarios.split(','))}\n"
            "[measure]\nwarmup_s = 0.3\nwarmup_min_iters = 5\n"
            f"min_duration_s = {args.min_duration}\nmin_iters = 20\n"
        )
        results = Path(tmp) / "results"
        runs = [
            run_suite(suite, results, args.repeat, i, args.pairs + 1) for i in range(args.pairs + 1)
        ]
        pairs = [(load_side(a), load_side(b)) for a, b in zip(runs, runs[1:], strict=False)]
    figures = summarise([compare(a, b) for a, b in pairs])
    figures["false_alarms"] = false_alarms(pairs)
    print_figures(figures, args)
    if args.out:
        args.out.write_text(
            json.dumps({"settings": vars(args) | {"out": str(args.out)}, **figures}, indent=2)
            + "\n"
        )
    return 0


def run_suite(suite: Path, results: Path, repeat: int, index: int, total: int) -> Path:
    print(f"run {index + 1}/{total} ...", flush=True)
    before = set(results.iterdir()) if results.is_dir() else set()
    subprocess.run(
        [
            sys.executable,
            "cli.py",
            "run",
            "--config",
            str(suite),
            "--results-dir",
            str(results),
            "--repeat",
            str(repeat),
            "--no-progress",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    (new,) = set(results.iterdir()) - before
    return new


def summarise(comparisons: list) -> dict:
    """Per metric: the spread of |ratio - 1| over every cell and pair, and verdict counts."""
    by_metric: dict[str, dict] = {}
    cell_verdicts: dict[str, int] = {}
    for comparison in comparisons:
        for cell in comparison.cells:
            cell_verdicts[cell.verdict] = cell_verdicts.get(cell.verdict, 0) + 1
            for change in cell.changes:
                entry = by_metric.setdefault(change.metric, {"deviations": [], "verdicts": {}})
                entry["deviations"].append(abs(change.ratio - 1))
                entry["verdicts"][change.verdict] = entry["verdicts"].get(change.verdict, 0) + 1
    metrics = {}
    for name, entry in by_metric.items():
        deviations = np.asarray(entry["deviations"])
        metrics[name] = {
            "comparisons": int(deviations.size),
            "median_abs_change": float(np.median(deviations)),
            "p90_abs_change": float(np.percentile(deviations, 90)),
            "max_abs_change": float(deviations.max()),
            "verdicts": entry["verdicts"],
        }
    return {"metrics": metrics, "cell_verdicts": cell_verdicts}


def false_alarms(pairs: list) -> dict[str, dict[str, int]]:
    """Per metric and one threshold for all: how many A/A changes came out regressed or
    improved (both are false alarms when nothing changed)."""
    alarms: dict[str, dict[str, int]] = {}
    for threshold in TRIED:
        for a, b in pairs:
            for cell in compare(a, b, Thresholds(threshold, ())).cells:
                for change in cell.changes:
                    counts = alarms.setdefault(change.metric, {f"{t:.0%}": 0 for t in TRIED})
                    counts[f"{threshold:.0%}"] += change.verdict in ("regressed", "improved")
    return alarms


def print_figures(figures: dict, args: argparse.Namespace) -> None:
    print(
        f"\nA/A noise floor: {args.pairs} pairs, {args.repeat} repetitions per run, "
        f"models {args.models}, runtimes {args.runtimes}, scenarios {args.scenarios}"
    )
    print(f"{'metric':<16} {'n':>4} {'median |Δ|':>11} {'p90 |Δ|':>9} {'max |Δ|':>9}  verdicts")
    for name, m in figures["metrics"].items():
        verdicts = ", ".join(f"{v} {n}" for v, n in sorted(m["verdicts"].items()))
        print(
            f"{name:<16} {m['comparisons']:>4} {m['median_abs_change']:>11.1%} "
            f"{m['p90_abs_change']:>9.1%} {m['max_abs_change']:>9.1%}  {verdicts}"
        )
    cells = ", ".join(f"{v} {n}" for v, n in sorted(figures["cell_verdicts"].items()))
    print(f"cell verdicts with the default thresholds: {cells}")
    print("false alarms (regressed or improved) if every metric had one threshold:")
    print(f"{'metric':<16} " + " ".join(f"{f'{t:.0%}':>5}" for t in TRIED))
    for name, counts in figures["false_alarms"].items():
        print(f"{name:<16} " + " ".join(f"{n:>5}" for n in counts.values()))


if __name__ == "__main__":
    sys.exit(main())
