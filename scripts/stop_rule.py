"""How the stop rule's settings trade time for agreement, replayed on recorded requests.

Records the default suite once with no warm-up and long fixed windows (every request's
latency kept), then replays the stop rule of bench.core.stopping on each cell's sequence
for each candidate setting, against the fixed windows of today's rule on the same
sequence: seconds of warm-up and window, how each window ended, and the ratio of its
median to the fixed windows' median. A second check asks whether a window's stated
interval is honest: consecutive windows of the same sequence, whose medians should
differ by more than their joint interval in about 5% of pairs.

    python scripts/stop_rule.py                       # record (about 7 minutes), then replay
    python scripts/stop_rule.py --traces RUN_DIR      # replay a run recorded before
    python scripts/stop_rule.py --record-s 2 --config tiny.toml   # what the tests run
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from itertools import pairwise
from pathlib import Path

import numpy as np

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10 (JetPack 6)
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.core.settings import MeasureConfig  # noqa: E402
from bench.core.stopping import Progress, StopRule, half_width  # noqa: E402

MS = 1_000_000
CANDIDATES = [  # (half_width, settle, max_duration_s); the defaults: 0.01, 0.05, 5
    (0.005, 0.05, 5.0),
    (0.01, 0.05, 5.0),
    (0.02, 0.05, 5.0),
    (0.01, 0.10, 5.0),
    (0.01, 0.05, 10.0),
]


def record(config: Path, seconds: float, cache_dir: Path | None, results: Path) -> Path:
    """Run the suite with warm-up off and fixed windows of ``seconds``; its run folder."""
    suite = tomllib.loads(config.read_text())
    suite.pop("profiles", None)
    measure = {"warmup_s": 0.0, "warmup_min_iters": 1, "min_duration_s": seconds}
    measure |= {"min_iters": 1, "max_duration_s": 4 * seconds, "half_width": 0.0}
    suite["measure"] = {**suite.get("measure", {}), **measure}
    path = results / "traces.toml"
    path.write_text(_toml(suite))
    subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), "run", "--config", str(path)]
        + (["--cache-dir", str(cache_dir)] if cache_dir else [])
        + ["--results-dir", str(results), "--no-progress"],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return next(p for p in results.iterdir() if p.is_dir())


def _toml(table: dict, prefix: str = "") -> str:
    """A suite as TOML: its tables of numbers, strings, booleans and lists."""
    text = f"[{prefix}]\n" if prefix else ""
    text += "".join(f"{k} = {json.dumps(v)}\n" for k, v in table.items() if not isinstance(v, dict))
    for key, value in table.items():
        if isinstance(value, dict):
            text += _toml(value, f"{prefix}.{key}" if prefix else key)
    return text


def sequences(run_dir: Path) -> dict[str, np.ndarray]:
    """Each measured latency cell's request times (ns), in the order they ran."""
    found = {}
    for line in (run_dir / "results.jsonl").read_text().splitlines():
        data = json.loads(line)
        if data.get("status") == "ok" and data["cell"]["scenario"] == "latency":
            found[data["key"]] = np.round(np.asarray(data["raw_times_ms"]) * MS).astype(np.int64)
    return found


def replay(times: np.ndarray, warmup: StopRule, measure: StopRule) -> tuple | None:
    """(seconds used, how the window ended, its half-width, its median ms) of the rules on
    ``times``, requests back to back; None where the sequence ran out first."""
    ends = np.cumsum(times)
    progress, warm_end = Progress(warmup, 0, "median"), None
    for i, (latency, end) in enumerate(zip(times.tolist(), ends.tolist(), strict=True)):
        if warm_end is None:
            if progress.add(latency, end):
                warm_end = i + 1
                progress = Progress(measure, end, "median")
        elif progress.add(latency, end):
            ending = progress.ending(end)
            median = float(np.median(times[warm_end : i + 1])) / MS
            return end / 1e9, ending.stop, ending.half_width, median
    return None


def independent_half_width(times: np.ndarray) -> float:
    """The median's 95% interval if requests were independent (binomial order statistics,
    as MLPerf LoadGen bounds its percentiles), relative to the median."""
    ordered, n = np.sort(times), len(times)
    low = max(0, int(np.floor(n / 2 - 0.98 * np.sqrt(n))))
    high = min(n - 1, int(np.ceil(n / 2 + 0.98 * np.sqrt(n))))
    return float(ordered[high] - ordered[low]) / 2 / float(np.median(times))


def honesty(seqs: dict[str, np.ndarray], window_s: float) -> tuple[int, int, int]:
    """Over consecutive windows of ``window_s`` after a 1 s warm-up: (pairs, pairs whose
    medians differ beyond their joint batch-median interval, beyond their joint interval
    as if requests were independent)."""
    pairs = beyond = beyond_independent = 0
    for times in seqs.values():
        ends = np.cumsum(times)
        cuts = np.searchsorted(ends, np.arange(1e9, ends[-1], window_s * 1e9))
        windows = [(a, b) for a, b in pairwise(cuts) if b - a >= 5]
        for (a1, b1), (a2, b2) in zip(windows[:-1:2], windows[1::2], strict=True):
            figures = []
            for a, b in ((a1, b1), (a2, b2)):
                part, edges = times[a:b], ends[a:b]
                width, _ = half_width(part, edges, ends[a - 1], edges[-1], "median")
                figures.append((float(np.median(part)), width, independent_half_width(part)))
            (m1, w1, i1), (m2, w2, i2) = figures
            if w1 is None or w2 is None:
                continue
            pairs += 1
            beyond += abs(m1 / m2 - 1) > np.hypot(w1, w2)
            beyond_independent += abs(m1 / m2 - 1) > np.hypot(i1, i2)
    return pairs, beyond, beyond_independent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "bench.toml", help="suite file")
    parser.add_argument("--traces", type=Path, help="a run recorded by this script before")
    parser.add_argument("--record-s", type=float, default=10.0, help="seconds per cell")
    parser.add_argument("--cache-dir", type=Path, help="export cache (default: the usual)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        run_dir = args.traces or record(args.config.resolve(), args.record_s, args.cache_dir, root)
        seqs = sequences(run_dir)
        print(f"{len(seqs)} latency cells from {run_dir}")
        today = MeasureConfig(half_width=0.0, max_duration_s=60.0)  # before early stopping
        rules = today.warmup_rule(), today.measurement_rule()
        fixed = {k: v for k, t in seqs.items() if (v := replay(t, *rules)) is not None}
        print(f"fixed windows: {sum(v[0] for v in fixed.values()):.1f} s in all")
        for target, settle, cap in CANDIDATES:
            config = MeasureConfig(half_width=target, settle=settle, max_duration_s=cap)
            rows = [
                (replay(seqs[k], config.warmup_rule(), config.measurement_rule()), v)
                for k, v in fixed.items()
            ]
            rows = [(new, old) for new, old in rows if new is not None]
            ratios = np.array([new[3] / old[3] for new, old in rows])
            stops = [new[1] for new, _ in rows]
            print(
                f"half_width {target:<5} settle {settle:<4} cap {cap:>4g} s: "
                f"{sum(new[0] for new, _ in rows):6.1f} s, "
                + ", ".join(f"{stops.count(s)} {s}" for s in ("early", "window", "cap"))
                + f"; median / fixed windows' median: middle {np.median(ratios):.3f}, "
                f"median deviation {np.median(np.abs(ratios - 1)):.3f}, "
                f"largest {np.max(np.abs(ratios - 1)):.3f}"
            )
        for window_s in (1.0, 2.0):
            pairs, beyond, independent = honesty(seqs, window_s)
            print(
                f"consecutive {window_s:g} s windows, {pairs} pairs: medians differ beyond "
                f"their joint 95% interval in {beyond / max(pairs, 1):.0%} (batch medians), "
                f"{independent / max(pairs, 1):.0%} (requests as independent); "
                "an honest interval: about 5%"
            )


if __name__ == "__main__":
    main()
