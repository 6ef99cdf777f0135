"""Which change-point library ``history`` uses, chosen by measurement (docs/history.md).

Generates series shaped like a cell's history (one point per run: the median over its
repetitions): log-normal noise of 1-5% CV, 10-60 runs, one or two step changes of 2-20%
at known runs, no-change series, and series with single-run outliers (+20-50%, a noisy
neighbour). Runs each candidate that imports here on the same seeded series and prints,
per scenario, the detection rate (a change point within one run of a true one), the false
change points per series and the time per series. Every candidate sees log values.

    python scripts/change_points.py                     # 200 series per scenario
    python scripts/change_points.py --series 20 --only ruptures-pelt --json cp.json

The libraries do not install side by side: apache-otava pins numpy 2.2.0 and scipy
below 1.17, signal-processing-algorithms needs numpy below 2 and Python 3.11 exactly.
Run it in one environment per library (the same seed gives the same series):

    python -m venv /tmp/otava && /tmp/otava/bin/pip install apache-otava ruptures
    /tmp/otava/bin/python scripts/change_points.py --only otava

With deploybench importable (this project's environment) it also measures the rule
``history`` applies to the newest run (bench.compare.history.segments): a step at the
newest run, and the false alarms of that rule on no-change and outlier series.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

Detector = Callable[[np.ndarray], list[int]]
"""Log values in, the indices where a new segment starts out."""


def noise_sigma(values: np.ndarray) -> float:
    """The noise's standard deviation, robust to steps and outliers: the MAD of the first
    differences (each the difference of two noisy points, hence the 1/sqrt(2))."""
    diffs = np.diff(values)
    if len(diffs) == 0:
        return 0.0
    mad = np.median(np.abs(diffs - np.median(diffs)))
    return float(1.4826 * mad / np.sqrt(2))


def _ruptures(algorithm: str, model: str, beta: float) -> Detector:
    def detect(values: np.ndarray) -> list[int]:
        import ruptures

        sigma = max(noise_sigma(values), 1e-4)
        scale = sigma**2 if model == "l2" else sigma
        penalty = beta * scale * np.log(len(values))
        found = getattr(ruptures, algorithm)(model=model, min_size=2, jump=1)
        return found.fit(values).predict(pen=penalty)[:-1]

    return detect


def _otava(max_pvalue: float) -> Detector:
    def detect(values: np.ndarray) -> list[int]:
        from otava.analysis import compute_change_points

        # a list: given a numpy array, Otava 0.8.0's detector ignores its sliding window
        # (ChangePointDetector.get_change_points slices only lists) and fails on most series
        points, _ = compute_change_points(list(values), window_len=50, max_pvalue=max_pvalue)
        return sorted(point.index for point in points)

    return detect


def _e_divisive(pvalue: float) -> Detector:
    def detect(values: np.ndarray) -> list[int]:
        from signal_processing_algorithms.energy_statistics.energy_statistics import e_divisive

        return sorted(e_divisive(values, pvalue=pvalue, permutations=100))

    return detect


CANDIDATES: dict[str, tuple[str, Detector]] = {
    "ruptures-pelt-l2": ("ruptures", _ruptures("Pelt", "l2", 2.0)),
    "ruptures-pelt-l2-b4": ("ruptures", _ruptures("Pelt", "l2", 4.0)),
    "ruptures-pelt-l1": ("ruptures", _ruptures("Pelt", "l1", 2.0)),
    "ruptures-binseg-l1": ("ruptures", _ruptures("Binseg", "l1", 2.0)),
    "ruptures-bottomup-l1": ("ruptures", _ruptures("BottomUp", "l1", 2.0)),
    "otava": ("otava", _otava(0.001)),
    "otava-p01": ("otava", _otava(0.01)),
    "e-divisive": ("signal_processing_algorithms", _e_divisive(0.05)),
}
"""Name → (module it needs, detector). ruptures: l2 (mean shift) or l1 (median shift)
cost, penalty beta · sigma² · ln n (sigma for l1), segments of 2 runs or more. Otava:
its defaults (window 50, p 0.001) and p 0.01. e-divisive: MongoDB's defaults."""


@dataclass
class Series:
    values: np.ndarray
    changes: list[int]
    """Indices of the first run of each new segment."""
    clear: list[bool] = field(default_factory=list)
    """Per change: is the step at least 3 times the noise's CV (there to be seen)?"""
    outliers: list[int] = field(default_factory=list)


SCENARIOS = ("no change", "one step", "two steps", "outliers", "step + outlier", "newest")


def make_series(scenario: str, rng: np.random.Generator) -> Series:
    """One series of ``scenario``: 10-60 runs, CV 1-5%, steps of 2-20% either way."""
    n = int(rng.integers(10, 61))
    cv = rng.uniform(0.01, 0.05)
    level = np.zeros(n)
    changes: list[int] = []
    if scenario in ("one step", "step + outlier"):
        changes = [int(rng.integers(3, n - 2))]
    elif scenario == "two steps":
        first = int(rng.integers(3, n - 5))
        changes = [first, int(rng.integers(first + 3, n - 2))]
    elif scenario == "newest":
        changes = [n - 1]
    clear = []
    for at in changes:
        step = rng.uniform(0.02, 0.20)
        level[at:] += np.log1p(step * rng.choice([-1, 1]))
        clear.append(step >= 3 * cv)
    values = level + rng.normal(0.0, cv, n)
    outliers: list[int] = []
    if scenario in ("outliers", "step + outlier"):
        count = 1 if scenario == "step + outlier" else int(rng.integers(1, 4))
        inside = [i for i in range(1, n - 1) if all(abs(i - c) > 1 for c in changes)]
        outliers = sorted(int(i) for i in rng.choice(inside, size=count, replace=False))
        values[outliers] += np.log1p(rng.uniform(0.20, 0.50, count))
    return Series(values, changes, clear, outliers)


@dataclass
class Tally:
    series: int = 0
    true: int = 0
    found: int = 0
    clear: int = 0
    clear_found: int = 0
    false: int = 0
    errors: int = 0
    """Series on which the detector raised an exception (counted as finding nothing)."""
    seconds: float = 0.0

    def add(self, series: Series, detected: list[int], seconds: float) -> None:
        self.series += 1
        self.true += len(series.changes)
        self.clear += sum(series.clear)
        self.seconds += seconds
        left = list(detected)
        for point, clear in zip(series.changes, series.clear, strict=True):
            near = [d for d in left if abs(d - point) <= 1]
            if near:
                self.found += 1
                self.clear_found += clear
                left.remove(min(near, key=lambda d: abs(d - point)))
        self.false += len(left)

    def figures(self) -> dict[str, float | None]:
        return {
            "series": self.series,
            "detection": self.found / self.true if self.true else None,
            "detection_clear": self.clear_found / self.clear if self.clear else None,
            "false_per_series": self.false / self.series,
            "ms_per_series": 1e3 * self.seconds / self.series,
            "errors": self.errors,
        }


def measure(names: list[str], count: int, seed: int) -> dict[str, dict[str, dict]]:
    """Every available candidate on ``count`` series of each scenario."""
    figures: dict[str, dict[str, dict]] = {}
    for name in names:
        module, detect = CANDIDATES[name]
        try:
            __import__(module)
        except ImportError:
            print(f"{name}: {module} is not installed here, left out")
            continue
        figures[name] = {}
        for scenario in SCENARIOS:
            rng = np.random.default_rng([seed, SCENARIOS.index(scenario)])
            np.random.seed(seed)  # e-divisive permutes with numpy's global generator
            tally = Tally()
            for _ in range(count):
                series = make_series(scenario, rng)
                start = time.perf_counter()
                try:
                    detected = detect(series.values)
                except Exception:  # a library's own bug: counted, and the series goes on
                    detected = []
                    tally.errors += 1
                tally.add(series, detected, time.perf_counter() - start)
            figures[name][scenario] = tally.figures()
    return figures


def newest_rule(count: int, seed: int, threshold: float) -> dict[str, dict] | None:
    """``history``'s own rule on the newest run: how often a step there is found as a
    change point at the newest run, and how often the exit code would be 1 (a worse
    step beyond ``threshold``), against the same on series where nothing changed."""
    try:
        from bench.compare.history import segments
    except ImportError:
        return None
    found: dict[str, dict] = {}
    for scenario in ("newest", "no change", "outliers"):
        rng = np.random.default_rng([seed, 100 + SCENARIOS.index(scenario)])
        starts = alarms = worse_steps = caught = 0
        for _ in range(count):
            series = make_series(scenario, rng)
            values = np.exp(series.values)
            starts_here = (len(values) - 1) in segments(values)
            starts += starts_here
            step = values[-1] / np.median(values[:-1]) - 1  # latency: higher is worse
            beyond = step > threshold
            alarms += starts_here and beyond
            if scenario == "newest" and beyond:
                worse_steps += 1
                caught += starts_here
        found[scenario] = {
            "series": count,
            "newest_starts_segment": starts / count,
            "exit_1": alarms / count,
        }
        if scenario == "newest":
            found[scenario]["worse_beyond_threshold"] = worse_steps
            found[scenario]["caught_of_those"] = caught / worse_steps if worse_steps else None
    return found


def print_figures(figures: dict[str, dict[str, dict]], rule: dict | None) -> None:
    width = max((len(name) for name in figures), default=10)
    print(
        f"{'detector':<{width}}  {'scenario':<15} {'detected':>9} {'step>=3CV':>10} "
        f"{'false/series':>13} {'ms':>7} {'errors':>7}"
    )
    for name, scenarios in figures.items():
        for scenario, row in scenarios.items():
            rate, clear = (
                "-" if row[key] is None else f"{row[key]:.0%}"
                for key in ("detection", "detection_clear")
            )
            print(
                f"{name:<{width}}  {scenario:<15} {rate:>9} {clear:>10} "
                f"{row['false_per_series']:>13.2f} {row['ms_per_series']:>7.2f} "
                f"{row['errors']:>7}"
            )
    if rule:
        print("\nhistory's newest-run rule (bench.compare.history):")
        for scenario, row in rule.items():
            extra = ""
            if "caught_of_those" in row and row["caught_of_those"] is not None:
                extra = (
                    f", of the {row['worse_beyond_threshold']} worse steps beyond the "
                    f"threshold {row['caught_of_those']:.0%} caught"
                )
            print(
                f"  {scenario}: newest run starts a segment in {row['newest_starts_segment']:.0%}"
                f", exit 1 in {row['exit_1']:.0%}{extra}"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=200, help="series per scenario")
    parser.add_argument("--seed", type=int, default=29)
    parser.add_argument(
        "--only", help=f"comma-separated candidates (default: all of {', '.join(CANDIDATES)})"
    )
    parser.add_argument("--threshold", type=float, default=0.10, help="for the newest rule")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(CANDIDATES)
    unknown = [name for name in names if name not in CANDIDATES]
    if unknown:
        parser.error(f"unknown candidate {unknown[0]}: choose from {', '.join(CANDIDATES)}")
    figures = measure(names, args.series, args.seed)
    rule = newest_rule(args.series, args.seed, args.threshold)
    print(f"{args.series} series per scenario, seed {args.seed}\n")
    print_figures(figures, rule)
    if args.json:
        settings = {"series": args.series, "seed": args.seed, "threshold": args.threshold}
        document = {"settings": settings, "detectors": figures, "newest_rule": rule}
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
