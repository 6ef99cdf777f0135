"""How long the default suite and the smoke profile take, cold and warm.

Cold: a fresh, empty export cache. Warm: the same cache again. Targets on a 2-core CPU
machine: default suite <= 180 s cold and <= 150 s warm (with early stopping: before it,
<= 300 s and <= 180 s); smoke profile < 60 s.

    python scripts/suite_time.py
    python scripts/suite_time.py --config my.toml     # another suite file (with a smoke profile)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed_run(config: Path, cache_dir: Path, results_dir: Path, *extra: str) -> float:
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "cli.py"),
            "run",
            "--config",
            str(config),
            "--cache-dir",
            str(cache_dir),
            "--results-dir",
            str(results_dir),
            "--no-progress",
            *extra,
        ],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def report(label: str, seconds: float, target: float) -> None:
    verdict = "PASS" if seconds <= target else "MISS"
    print(f"{label:<28} {seconds:7.1f} s   target <= {target:g} s   {verdict}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "bench.toml", help="suite file")
    config = parser.parse_args().config.resolve()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        report(
            "smoke profile, cold cache",
            timed_run(config, root / "c1", root / "r", "--profile", "smoke"),
            60,
        )
        report(
            "smoke profile, warm cache",
            timed_run(config, root / "c1", root / "r", "--profile", "smoke"),
            60,
        )
        report("default suite, cold cache", timed_run(config, root / "c2", root / "r"), 180)
        report("default suite, warm cache", timed_run(config, root / "c2", root / "r"), 150)


if __name__ == "__main__":
    main()
