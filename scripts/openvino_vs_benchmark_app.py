"""Do this suite's OpenVINO numbers agree with OpenVINO's own benchmark_app?

Both run the same ONNX file on the same device with the same performance hint (latency,
throughput), inference precision (``-infer_precision``) and input shape, for about the
same time; neither sets streams or requests, so both take the hint's choice. The model
stays as the file declares it (a dynamic batch axis for the zoo exports): benchmark_app
gets ``-data_shape``, as the suite compiles the file itself and feeds batch 1.
benchmark_app's figures are read from its JSON report, the suite's from results.jsonl.

What each figure is: benchmark_app's latency is each request's own ``latency`` (timed in
C++ around the inference, Python's wrapper outside it); the suite's latency scenario times
the whole Python ``infer()`` call. Throughput is requests ÷ wall time for both, but
benchmark_app's wall time also holds its Python loop (re-binding the inputs every
iteration for a dynamic model, bookkeeping): about 0.1 to 0.3 ms per request on the
2-core development machine, which shows as a lower throughput in its latency mode.

    python scripts/openvino_vs_benchmark_app.py [--onnx FILE --shape input=1x3x224x224]
        [--precisions fp32,bf16,int8 --scenarios latency,throughput --duration 10 --rounds 3]

Default model: the zoo resnet18 export from the export cache. Target: the suite's median
latency and throughput within 5% of benchmark_app's (PASS / MISS per row).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness.results import read_records  # noqa: E402
from exporters.cache import default_cache_dir  # noqa: E402
from exporters.onnx_file import inspect_onnx, parse_shape_args  # noqa: E402

TOLERANCE = 0.05
INFER_PRECISION = {"fp32": "f32", "fp16": "f16", "bf16": "bf16", "int8": "f32"}
"""int8 runs the suite's QDQ copy of the model (its Q/DQ layers in int8, the rest f32): the
suite makes it, benchmark_app is given that very file."""


@dataclass(frozen=True)
class Figures:
    """One tool's result for one row: median latency, samples per second, requests in
    flight, measured requests, and how it ran."""

    median_ms: float
    throughput: float
    in_flight: int
    count: int
    note: str
    model: Path | None = None
    """The file the suite's cell ran, where it was not the given one (an int8 QDQ copy)."""


def benchmark_app() -> Path:
    """benchmark_app next to this Python (a venv's bin), else on PATH."""
    beside = Path(sys.executable).parent / "benchmark_app"
    found = beside if beside.exists() else shutil.which("benchmark_app")
    if not found:
        sys.exit("benchmark_app not found: pip install openvino (it ships benchmark_app)")
    return Path(found)


def run_benchmark_app(
    onnx: Path,
    shapes: dict[str, tuple[int, ...]],
    device: str,
    precision: str,
    scenario: str,
    duration: int,
    workdir: Path,
) -> Figures:
    """benchmark_app with the hint, precision and data shapes; figures from its JSON report."""
    report = workdir / "benchmark_app"
    report.mkdir()
    data_shape = ",".join(f"{name}[{','.join(map(str, dims))}]" for name, dims in shapes.items())
    command = [
        str(benchmark_app()),
        "-m",
        str(onnx),
        "-d",
        device.upper(),
        "-hint",
        scenario,
        "-infer_precision",
        INFER_PRECISION[precision],
        "-data_shape",
        data_shape,
        "-t",
        str(duration),
        "-report_type",
        "no_counters",
        "-report_folder",
        str(report),
        "-json_stats",
    ]
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"benchmark_app failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    stats = json.loads((report / "benchmark_report.json").read_text())
    results, setup = stats["execution_results"], stats["configuration_setup"]
    return Figures(
        median_ms=float(results["latency (ms)"]),
        throughput=float(results["throughput"]),
        in_flight=int(setup["number of parallel infer requests"]),
        count=int(results["total number of iterations"]),
        note=f"{setup['API']} API, inference_only {setup['inference_only']}",
    )


def run_suite(
    onnx: Path,
    shapes: dict[str, tuple[int, ...]],
    device: str,
    precision: str,
    scenario: str,
    duration: int,
    workdir: Path,
) -> Figures:
    """``cli.py run`` for one OpenVINO cell, the measurement as long as benchmark_app's."""
    config = workdir / "bench.toml"
    config.write_text(
        f'[suite]\nname = "ov-vs-benchmark-app"\nthreads = 0\nin_flight = 0\n'
        f"cell_timeout_s = {duration * 10 + 300}\n"
        f"[measure]\nwarmup_s = 1.0\nwarmup_min_iters = 10\nmin_duration_s = {duration}\n"
        f"min_iters = 50\nmax_duration_s = {duration * 3}\n"
    )
    results = workdir / "results"
    command = [
        sys.executable,
        "cli.py",
        "run",
        "--config",
        str(config),
        "--results-dir",
        str(results),
        "--runtimes",
        "openvino",
        "--devices",
        device,
        "--precisions",
        precision,
        "--scenarios",
        scenario,
        "--onnx",
        str(onnx),
        "--no-progress",
        *(f"--shape={name}={'x'.join(map(str, dims))}" for name, dims in shapes.items()),
    ]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"cli.py run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    (run_dir,) = results.iterdir()
    (record,) = read_records(run_dir / "results.jsonl")
    if not record.ok or record.latency_ms is None or record.executed is None:
        sys.exit(f"the suite's cell is {record.status}: {record.reason}")
    executed = record.executed
    ran = [note.removeprefix("QDQ file ") for note in record.notes or [] if "QDQ file " in note]
    return Figures(
        median_ms=record.latency_ms.median,
        throughput=record.samples_per_s,
        in_flight=executed.in_flight,
        count=record.latency_ms.count,
        note=f"executed {executed.precision} on {executed.device}",
        model=Path(ran[0]) if ran else None,
    )


def model_and_shapes(args: argparse.Namespace) -> tuple[Path, dict[str, tuple[int, ...]]]:
    """The ONNX file and every input's concrete shape (batch 1 for the zoo export)."""
    if args.onnx is None:
        from exporters.onnx_export import prepare_zoo_model

        prepared = prepare_zoo_model("resnet18", [1], default_cache_dir())
        shapes = {spec.name: spec.concrete_shape({"batch": 1}) for spec in prepared.inputs}
        return prepared.onnx_path, shapes
    specs = inspect_onnx(args.onnx, parse_shape_args(args.shape)).inputs
    return args.onnx.resolve(), {spec.name: spec.concrete_shape({}) for spec in specs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnx", type=Path, help="ONNX file (default: the zoo resnet18 export)")
    parser.add_argument("--shape", action="append", default=[], metavar="NAME=1x3x224x224")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--scenarios", default="latency,throughput")
    parser.add_argument("--duration", type=int, default=10, help="seconds measured per run")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each tool per row")
    args = parser.parse_args()
    onnx, shapes = model_and_shapes(args)
    print(f"model {onnx}, inputs {shapes}, device {args.device}, {os.cpu_count()} CPUs")

    rows = []
    for precision in args.precisions.split(","):
        for scenario in args.scenarios.split(","):
            ours, theirs = [], []
            for round_ in range(args.rounds):
                print(f"  {precision} {scenario} round {round_ + 1}", flush=True)
                order = [True, False] if round_ % 2 == 0 else [False, True]
                if precision == "int8" and not ours:
                    order = [True, False]  # the suite makes the QDQ file benchmark_app runs
                for suite_first in order:  # alternate which runs first: machine drift
                    with tempfile.TemporaryDirectory() as tmp:
                        run = run_suite if suite_first else run_benchmark_app
                        model = onnx if suite_first or not ours else ours[0].model or onnx
                        figures = run(
                            model,
                            shapes,
                            args.device,
                            precision,
                            scenario,
                            args.duration,
                            Path(tmp),
                        )
                    (ours if suite_first else theirs).append(figures)
                    print(
                        f"    {'suite' if suite_first else 'benchmark_app':13} median "
                        f"{figures.median_ms:8.3f} ms {figures.throughput:8.1f} samples/s "
                        f"{figures.count:6} requests, {figures.in_flight} in flight, {figures.note}"
                    )
            rows.append((precision, scenario, ours, theirs))
    print_table(rows)


def print_table(rows: list[tuple[str, str, list[Figures], list[Figures]]]) -> None:
    """Medians over rounds of each tool's figures, the ratio suite / benchmark_app, and
    PASS when both ratios are within the tolerance."""
    print(
        f"\n{'':21} {'in flight':>11} | {'median latency (ms)':^26} | {'samples/s':^26} |\n"
        f"{'precision':9} {'hint':11} {'suite/app':>11} | {'suite':>8} {'bench_app':>10} "
        f"{'ratio':>6} | {'suite':>8} {'bench_app':>10} {'ratio':>6} | verdict"
    )
    for precision, scenario, ours, theirs in rows:
        med_s = statistics.median(f.median_ms for f in ours)
        med_b = statistics.median(f.median_ms for f in theirs)
        tput_s = statistics.median(f.throughput for f in ours)
        tput_b = statistics.median(f.throughput for f in theirs)
        ratios = (med_s / med_b, tput_s / tput_b)
        verdict = "PASS" if all(abs(r - 1) <= TOLERANCE for r in ratios) else "MISS"
        in_flight = f"{ours[0].in_flight}/{theirs[0].in_flight}"
        print(
            f"{precision:9} {scenario:11} {in_flight:>11} | {med_s:8.3f} {med_b:10.3f} "
            f"{ratios[0]:6.3f} | {tput_s:8.1f} {tput_b:10.1f} {ratios[1]:6.3f} | {verdict}"
        )


if __name__ == "__main__":
    main()
