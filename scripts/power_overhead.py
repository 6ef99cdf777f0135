"""What the power sampler costs the measured loop: the same timed loop with and without it.

On one ONNX Runtime session of a model that takes about 1 ms (default: LeNet-5 at batch 64,
CPU), rounds alternate the harness's ``time_latency`` alone with the same loop while a
``PowerSampler`` reads a power source beside it, and print both medians and their ratio.

The source is the one ``--power`` picks here (default ``auto`` for a CPU cell). Where this
machine has none, the sampler reads the RAPL code path over a copy of the test fixture tree
(the same file reads as on a real machine, on a counter that does not move), and says so.

Target: the loop's median with the sampler within 1% of the loop alone (at 20 Hz). Run it
on an otherwise idle machine:
    python scripts/power_overhead.py [--hz 20] [--rounds 6] [--power auto]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ort_session import staged_session  # noqa: E402

from bench.core.settings import MeasureConfig  # noqa: E402
from bench.core.timing import time_latency  # noqa: E402
from bench.power import PowerSource, PowerUnavailable, choose_source  # noqa: E402
from bench.power.rapl import RaplSource  # noqa: E402
from bench.power.sampler import PowerSampler  # noqa: E402

FIXTURE_RAPL = ROOT / "tests" / "fixtures" / "power" / "rapl" / "xeon-2s"


def open_source(setting: str, interval_s: float, scratch: Path) -> tuple[PowerSource, str]:
    """The source ``setting`` picks for a CPU cell here, else RAPL over the fixture tree."""
    try:
        source = choose_source(setting, "cpu", interval_s)
        return source, f"{source.name}: {source.describe()['measures']}"
    except PowerUnavailable as exc:
        root = Path(shutil.copytree(FIXTURE_RAPL, scratch / "rapl"))
        reason = str(exc)[:120]
        return RaplSource(root), f"rapl over the fixture tree (none here: {reason}…)"


def loop_median_ms(
    session,  # noqa: ANN001 - an onnxruntime_rt session
    measure: MeasureConfig,
    source: PowerSource | None,
    interval_s: float,
) -> tuple[float, int]:
    """The median of one timed loop, with the sampler running beside it when ``source`` is
    given; and how many readings the sampler took."""
    sampler = PowerSampler(source, interval_s).start() if source is not None else None
    record = time_latency(
        session.launch, session.synchronize, measure.warmup_rule(), measure.measurement_rule()
    )
    readings = len(sampler.stop()) if sampler is not None else 0
    return float(np.median(record.times_ns)) / 1e6, readings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lenet5")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--hz", type=float, default=20.0, help="sampler rate (default 20)")
    parser.add_argument("--power", default="auto", help="power source, as suite.power")
    parser.add_argument("--measure-s", type=float, default=3.0, help="seconds per loop")
    args = parser.parse_args()

    session, feeds, threads = staged_session(args.model, args.batch)
    measure = MeasureConfig(
        min_duration_s=args.measure_s, warmup_s=min(1.0, args.measure_s), half_width=0.0
    )
    interval_s = 1.0 / args.hz

    with tempfile.TemporaryDirectory() as scratch:
        source, label = open_source(args.power, interval_s, Path(scratch))
        print(f"{args.model} batch {args.batch}, onnxruntime CPU, {threads} threads")
        print(f"sampler: {label}, {args.hz:g} Hz")
        print("round  alone ms  with sampler ms  with/alone  readings")
        alone, beside = [], []
        try:
            for index in range(args.rounds):
                order = (None, source) if index % 2 == 0 else (source, None)  # drift hits both
                for which in order:
                    median, readings = loop_median_ms(session, measure, which, interval_s)
                    (alone if which is None else beside).append(median)
                    if which is not None:
                        taken = readings
                print(
                    f"{index + 1:5d}  {alone[-1]:8.4f}  {beside[-1]:15.4f}  "
                    f"{beside[-1] / alone[-1]:10.4f}  {taken:8d}"
                )
        finally:
            source.close()
    ratio = statistics.median(b / a for a, b in zip(alone, beside, strict=True))
    print(
        f"median of medians: alone {statistics.median(alone):.4f} ms, with sampler "
        f"{statistics.median(beside):.4f} ms; median ratio with/alone = {ratio:.4f} "
        f"({'PASS' if ratio <= 1.01 else 'MISS'}, target within 1%)"
    )


if __name__ == "__main__":
    main()
