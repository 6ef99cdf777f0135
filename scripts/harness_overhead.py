"""How much the harness adds: its reported median against a bare ``session.run`` loop.

Two comparisons on a model that takes about 1 ms (default: LeNet-5 at batch 64 on ONNX
Runtime CPU):

1. in one process, on one ONNX Runtime session, rounds that alternate a bare
   ``perf_counter_ns`` + ``session.run`` loop with the harness's ``time_latency`` on the
   same session (same warm-up and measurement rules);
2. the whole path (``cli.py run`` in its worker process) against the bare loop timed in
   this process just before and just after.

Target: the harness median within 3% of the bare loop. Run it on an otherwise idle machine:
    python scripts/harness_overhead.py
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ort_session import staged_session  # noqa: E402

from bench.core.settings import MeasureConfig  # noqa: E402
from bench.core.timing import time_latency  # noqa: E402
from bench.harness.results import read_records  # noqa: E402
from exporters.cache import default_cache_dir  # noqa: E402


def bare_median_ms(run, feeds, measure: MeasureConfig) -> float:  # noqa: ANN001
    """The plainest timed loop: warm-up by the same rule, then perf_counter_ns around run."""
    warmup = measure.warmup_rule()
    start = time.perf_counter_ns()
    count = 0
    while not warmup.done(time.perf_counter_ns() - start, count):
        run(None, feeds)
        count += 1
    times = []
    rule = measure.measurement_rule()
    start = time.perf_counter_ns()
    while not rule.done(time.perf_counter_ns() - start, len(times)):
        t0 = time.perf_counter_ns()
        run(None, feeds)
        times.append(time.perf_counter_ns() - t0)
    return float(np.median(times)) / 1e6


def harness_median_ms(session, measure: MeasureConfig) -> float:  # noqa: ANN001
    record = time_latency(
        session.launch, session.synchronize, measure.warmup_rule(), measure.measurement_rule()
    )
    return float(np.median(record.times_ns)) / 1e6


def cli_median_ms(
    model: str, batch: int, threads: int, cache_dir: Path, measure: MeasureConfig
) -> float:
    """The median ``cli.py run`` reports for the one cell (ONNX Runtime CPU fp32, latency),
    measured by the same rules as the bare loop."""
    with tempfile.TemporaryDirectory() as scratch:
        suite = Path(scratch) / "bench.toml"
        rules = "\n".join(f"{name} = {value!r}" for name, value in measure.model_dump().items())
        suite.write_text(
            f'[suite]\nmodels = ["{model}"]\nruntimes = ["onnxruntime"]\nprecisions = ["fp32"]\n'
            f"batch_sizes = [{batch}]\nthreads = {threads}\n[measure]\n{rules}\n"
        )
        subprocess.run(
            [
                *(sys.executable, str(ROOT / "cli.py"), "run", "--config", str(suite)),
                *("--cache-dir", str(cache_dir), "--results-dir", scratch, "--no-progress"),
            ],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        (record,) = read_records(next(Path(scratch).glob("*/results.jsonl")))
        assert record.median_ms is not None, f"the cell is {record.status}: {record.reason}"
        return record.median_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lenet5")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--measure-s", type=float, default=3.0, help="each timed window (warm-up: a third)"
    )
    args = parser.parse_args()

    session, feeds, threads = staged_session(args.model, args.batch)
    cache_dir = default_cache_dir()
    measure = MeasureConfig(
        min_duration_s=args.measure_s, warmup_s=args.measure_s / 3, half_width=0.0
    )
    raw_run = session._session.run  # the very session the harness times

    print(
        f"{args.model} batch {args.batch}, onnxruntime CPU, {threads} threads, "
        f"warm-up {measure.warmup_s:g} s/{measure.warmup_min_iters}, "
        f"measure {measure.min_duration_s:g} s/{measure.min_iters}"
    )
    print("round  bare ms  harness ms  harness/bare")
    bare, harness = [], []
    for index in range(args.rounds):
        if index % 2:  # alternate which goes first, so that drift favours neither
            harness.append(harness_median_ms(session, measure))
            bare.append(bare_median_ms(raw_run, feeds, measure))
        else:
            bare.append(bare_median_ms(raw_run, feeds, measure))
            harness.append(harness_median_ms(session, measure))
        print(
            f"{index + 1:5d}  {bare[-1]:7.4f}  {harness[-1]:10.4f}  {harness[-1] / bare[-1]:12.4f}"
        )
    ratio = statistics.median(h / b for h, b in zip(harness, bare, strict=True))
    verdict = "PASS" if abs(ratio - 1) <= 0.03 else "MISS"
    print(f"in-process: median ratio harness/bare = {ratio:.4f} ({verdict}, target within 3%)")

    before = bare_median_ms(raw_run, feeds, measure)
    through_cli = cli_median_ms(args.model, args.batch, threads, cache_dir, measure)
    after = bare_median_ms(raw_run, feeds, measure)
    reference = (before + after) / 2
    ratio = through_cli / reference
    verdict = "PASS" if abs(ratio - 1) <= 0.03 else "MISS"
    print(
        f"whole path: cli.py worker median {through_cli:.4f} ms, "
        f"bare before/after {before:.4f}/{after:.4f} ms "
        f"-> ratio {ratio:.4f} ({verdict}, target within 3%)"
    )


if __name__ == "__main__":
    main()
