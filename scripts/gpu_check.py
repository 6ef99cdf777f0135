"""The prepared check of the GPU runtimes, for a machine with an NVIDIA GPU.

Writes under ``results/device/<name>/`` (or ``--out``):

- ``stack.json``: what the GPU stack offers here (``cli.py list``'s GPU table);
- ``events_vs_harness.json``: ResNet-50 fp16 on PyTorch CUDA, rounds that alternate a bare
  ``torch.cuda.Event`` loop with the harness's own latency loop on the same module and
  input (median ratio; target within 3%);
- ``runs/``: ``cli.py run`` cells: PyTorch CUDA fp32/fp16/bf16 on ResNet-50 at batch
  1/8/32 (accuracy against FP32 in each record), fp16 with ``channels_last`` and with CUDA
  graphs, and where installed TensorRT (Python or trtexec; fp32/fp16 at batch 8, with a
  CUDA graph, and with host copies timed for the H2D/compute/D2H split) and ONNX
  Runtime's CUDA and TensorRT providers (batch 8: every TensorRT cell builds an engine,
  about a minute for ResNet-50); ``summary.md`` tabulates them;
- ``nvml.json``: the NVML power probe against NVML itself: the cell meter's average W
  over a 5 s bf16 matrix-multiply loop on cuda:0 beside the mean of
  ``nvmlDeviceGetPowerUsage`` polled every 50 ms over the same window, and the GPU's power
  state before and after (the cells in ``runs/`` carry ``power`` too, from ``auto``);
- ``runs/pytorch-train``: ResNet-50 training steps and inference at batch 32 in fp32, fp16
  (autocast + grad scaler) and bf16, one speedup table for both;
- ``hw/`` and ``hw_targets.log``: ``cli.py hw`` on every GPU and the CPU, and
  ``scripts/hw_targets.py`` (bf16 at 8192 against a bare event-timed ``torch.matmul``:
  target ≥ 90%); ``cli.py report runs/pytorch-train/* hw/*`` then gives the roofline;
- ``trtexec/``: trtexec's own exports for ResNet-50 fp16, where trtexec is found;
- ``pytest-gpu.log``: the tests marked ``gpu``.

Without a CUDA device it says so and exits 2:
    python scripts/gpu_check.py --name issue6-gpu-runtimes
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.core.devices import cuda_device_count, cuda_unavailable_reason  # noqa: E402
from bench.core.record import DeviceMetrics, ExecutedFigures, Power  # noqa: E402
from bench.harness.results import read_records  # noqa: E402

MEASURE = (
    "[measure]\nwarmup_s = 0.5\nwarmup_min_iters = 10\nmin_duration_s = 1.5\n"
    "min_iters = 50\nmax_duration_s = 20.0\n"
)


def suite(
    name: str,
    runtime: str,
    precisions: str,
    batches: str,
    extra: str = "",
    scenarios: str = '"latency"',
) -> str:
    """A suite file for one ``cli.py run`` on ResNet-50 on cuda:0 (dla:0 on a Jetson
    is left to a manual run)."""
    return (
        f'[suite]\nname = "{name}"\nmodels = ["resnet50"]\nruntimes = ["{runtime}"]\n'
        f'devices = ["cuda:0"]\nprecisions = [{precisions}]\nbatch_sizes = [{batches}]\n'
        f"scenarios = [{scenarios}]\ncell_timeout_s = 900\n{MEASURE}{extra}"
    )


def runs(stack: dict[str, str | None]) -> list[tuple[str, str]]:
    """(name, suite text) of every ``cli.py run`` this machine can do."""
    every = '"fp32", "fp16", "bf16"'
    both = '"fp32", "fp16"'
    plans = [
        ("pytorch", "pytorch", every, "1, 8, 32", ""),
        ("pytorch-nhwc", "pytorch", '"fp16"', "1, 32", "[runtime.pytorch]\nchannels_last = true"),
        ("pytorch-graphs", "pytorch", '"fp16"', "1, 32", "[runtime.pytorch]\ncuda_graphs = true"),
    ]
    if stack.get("TensorRT Python") or stack.get("trtexec"):
        plans.append(("tensorrt", "tensorrt", both, "8", ""))  # each cell builds an engine
        plans.append(
            ("tensorrt-graphs", "tensorrt", '"fp16"', "8", "[runtime.tensorrt]\ncuda_graph = true")
        )
        copies = "[runtime.tensorrt]\ndata_transfers = true"  # the H2D / compute / D2H split
        plans.append(("tensorrt-copies", "tensorrt", '"fp16"', "8", copies))
    if stack.get("ONNX Runtime GPU"):
        plans.append(("ort-cuda", "onnxruntime", both, "8", ""))
        if "Tensorrt" in (stack["ONNX Runtime GPU"] or ""):
            plans.append(
                ("ort-trt", "onnxruntime", both, "8", "[runtime.onnxruntime]\ntensorrt = true")
            )
    training = suite("pytorch-train", "pytorch", every, "32", "", '"train", "latency"')
    return [
        (name, suite(name, rt, precisions, batches, extra + "\n"))
        for name, rt, precisions, batches, extra in plans
    ] + [("pytorch-train", training)]


def events_vs_harness(out: Path, cache: Path, rounds: int) -> dict:
    """Median of a bare CUDA-event loop against the harness's latency loop and its own
    CUDA-event figure, same module and input, alternating rounds."""
    import torch

    from bench.core.cell import Target
    from bench.core.timing import StopRule
    from exporters.onnx_export import prepare_zoo_model
    from exporters.reference import load_reference
    from exporters.source import module_loader
    from runtimes.base import LoadOptions
    from runtimes.pytorch_rt import PyTorchRuntime

    model = prepare_zoo_model("resnet50", [8], cache)
    feeds, _ = load_reference(model.reference, 8)
    module = module_loader(model.source, model.seed)
    target, options = Target("cuda:0", "fp16"), LoadOptions(batch=8, module=module)
    runtime = PyTorchRuntime()
    session = runtime.load(runtime.build(model, target, options, cache), model, target, options)
    session.stage(feeds)
    module, inputs = session._module, session._staged
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    rows = []
    for _ in range(rounds):
        bare = []
        with torch.inference_mode():
            for _ in range(20):
                module(*inputs)
            deadline = time.perf_counter() + 3.0
            while time.perf_counter() < deadline or len(bare) < 100:
                start.record()
                module(*inputs)
                end.record()
                end.synchronize()
                bare.append(start.elapsed_time(end))
        record = session.run_latency(feeds, StopRule(1.0, 20), StopRule(3.0, 100))
        host = statistics.median(record.times_ns) / 1e6
        device = session.device_metrics()["compute_ms"]
        rows.append(
            {
                "bare_events_ms": statistics.median(bare),
                "harness_host_ms": host,
                "harness_events_ms": device,
            }
        )
    bare = [r["bare_events_ms"] for r in rows]
    result = {
        "model": "resnet50 fp16 batch 8",
        "device": torch.cuda.get_device_name(0),
        "rounds": rows,
        "harness_host_over_bare": statistics.median(
            r["harness_host_ms"] / b for r, b in zip(rows, bare, strict=True)
        ),
        "harness_events_over_bare": statistics.median(
            r["harness_events_ms"] / b for r, b in zip(rows, bare, strict=True)
        ),
    }
    (out / "events_vs_harness.json").write_text(json.dumps(result, indent=2))
    return result


def nvml_check(out: Path, seconds: float = 5.0) -> dict:
    """The meter's NVML figure for a busy window against NVML's own power readings."""
    import threading

    import torch

    from bench.core.settings import PowerSettings
    from bench.power import CellPower
    from bench.power.nvml import device_handle, gpu_states, nvml_init

    pynvml = nvml_init()
    handle = device_handle(pynvml, 0)  # the NVML handle of CUDA device 0
    readings: list[float] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(0.05):
            readings.append(pynvml.nvmlDeviceGetPowerUsage(handle) / 1e3)

    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    before = gpu_states()
    with CellPower(PowerSettings(source="nvml"), "cuda:0") as power:
        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        start, products = time.perf_counter_ns(), 0
        while time.perf_counter_ns() - start < seconds * 1e9:
            a @ a
            products += 1
            if products % 20 == 0:
                torch.cuda.synchronize()
        torch.cuda.synchronize()
        end = time.perf_counter_ns()
        stop.set()
        poller.join()
    meter = power.result(start, end, products, 1)
    polled = statistics.fmean(readings) if readings else None
    check = {
        "meter": meter,
        "polled_power_usage_w": polled,
        "polled_readings": len(readings),
        "meter_over_polled": meter.get("avg_w") / polled if polled and meter.get("avg_w") else None,
        "state_before": before,
        "state_after": gpu_states(),
    }
    (out / "nvml.json").write_text(json.dumps(check, indent=2, default=str))
    return check


def trtexec_exports(out: Path, cache: Path) -> None:
    """trtexec's own run of ResNet-50 fp16 at batch 8, its exports kept (real captures of
    the files tests/fixtures/tensorrt imitates)."""
    from exporters.onnx_export import prepare_zoo_model
    from runtimes.tensorrt.trtexec_driver import find_trtexec

    trtexec = find_trtexec()
    if trtexec is None:
        return
    onnx = prepare_zoo_model("resnet50", [8], cache).onnx_path
    target = out / "trtexec"
    target.mkdir(exist_ok=True)
    args = [
        str(trtexec),
        f"--onnx={onnx}",
        "--fp16",
        "--shapes=input:8x3x224x224",
        f"--exportTimes={target / 'times.json'}",
        f"--exportLayerInfo={target / 'layers.json'}",
        f"--exportOutput={target / 'output.json'}",
        "--profilingVerbosity=detailed",
    ]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    (target / "trtexec.log").write_text(done.stdout + done.stderr)


def summary(run_dirs: list[Path]) -> str:
    """A Markdown table of every cell of ``run_dirs``."""
    lines = [
        "| cell | status | precision ran | provider | median ms | samples/s | accuracy | "
        "device compute ms | h2d / d2h ms | peak MiB | avg W | J/sample |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run_dir in run_dirs:
        for path in run_dir.glob("*/results.jsonl"):
            for r in read_records(path):
                executed = r.executed or ExecutedFigures()
                device = (r.device_metrics or DeviceMetrics()).to_dict()
                power = r.power or Power()
                lines.append(
                    f"| {r.key} | {r.status} {r.reason or ''} | "
                    f"{executed.precision or ''} | {executed.provider or ''} | "
                    f"{_num(r.median_ms)} | {_num(r.samples_per_s)} | {r.verdict or ''} | "
                    f"{_num(device.get('compute_ms'))} | "
                    f"{_num(device.get('h2d_ms'))} / {_num(device.get('d2h_ms'))} | "
                    f"{_num(device.get('peak_allocated_mb'))} | "
                    f"{_num(power.avg_w)} | {_num(power.j_per_sample)} |"
                )
    return "\n".join(lines) + "\n"


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="gpu-check", help="results/device/<name>")
    parser.add_argument("--out", type=Path, help="output folder (default results/device/<name>)")
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/deploybench-cache"))
    parser.add_argument("--rounds", type=int, default=3, help="bare/harness rounds")
    args = parser.parse_args()
    if cuda_device_count() == 0:
        print(f"error: {cuda_unavailable_reason(0)}: run this on a machine with an NVIDIA GPU")
        return 2
    out = args.out or ROOT / "results" / "device" / args.name
    out.mkdir(parents=True, exist_ok=True)
    from runtimes.tensorrt.stack import gpu_stack

    items = gpu_stack()
    (out / "stack.json").write_text(json.dumps([asdict(i) for i in items], indent=2))
    stack = {item.component: item.found for item in items}
    print(json.dumps(events_vs_harness(out, args.cache_dir, args.rounds), indent=2))
    for command, log in (
        (["cli.py", "hw", "--devices", "cuda,cpu", "--results-dir", str(out / "hw")], "hw.log"),
        (["scripts/hw_targets.py"], "hw_targets.log"),
    ):
        done = subprocess.run([sys.executable, *command], cwd=ROOT, capture_output=True, text=True)
        (out / log).write_text(done.stdout + done.stderr)
        print(f"{log}: exit {done.returncode}")
    nvml = nvml_check(out)
    print(f"nvml: meter {nvml['meter'].get('avg_w')} W, polled {nvml['polled_power_usage_w']} W")
    failed = False
    run_dirs = []
    for name, text in runs(stack):
        config = out / f"{name}.toml"
        config.write_text(text)
        run_dirs.append(out / "runs" / name)
        done = subprocess.run(
            [
                sys.executable,
                "cli.py",
                "run",
                "--config",
                str(config),
                "--no-progress",
                "--results-dir",
                str(run_dirs[-1]),
                "--cache-dir",
                str(args.cache_dir),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        (out / f"{name}.log").write_text(done.stdout + done.stderr)
        print(f"{name}: exit {done.returncode}")
        failed |= done.returncode != 0
    (out / "summary.md").write_text(summary(run_dirs))
    trtexec_exports(out, args.cache_dir)
    tests = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-m",
            "gpu",
            "tests/test_gpu_runtimes.py",
            "tests/test_runtimes_conformance.py",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    (out / "pytest-gpu.log").write_text(tests.stdout + tests.stderr)
    print((out / "summary.md").read_text())
    return 1 if failed or tests.returncode != 0 else 0


if __name__ == "__main__":
    sys.exit(main())
