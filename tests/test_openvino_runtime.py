"""The OpenVINO runtime on this machine's CPU: precisions read back from the executed graph,
outputs against the PyTorch FP32 reference, the model cache, the AsyncInferQueue throughput
loop, device messages, and one end-to-end ``cli.py run``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

openvino = pytest.importorskip("openvino")

from bench.core.cell import Target  # noqa: E402
from bench.core.spec import PreparedModel  # noqa: E402
from bench.core.timing import StopRule  # noqa: E402
from exporters.onnx_export import prepare_zoo_model  # noqa: E402
from exporters.reference import load_reference  # noqa: E402
from runtimes import RUNTIMES  # noqa: E402
from runtimes.base import LoadOptions  # noqa: E402
from runtimes.openvino_rt import OpenVinoRuntime, OpenVinoSession, executed_precision  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
CAPABILITIES = openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
SHORT = StopRule(0.05, 5), StopRule(0.2, 20)
OV_TO_OURS = {"f32": "fp32", "f16": "fp16", "bf16": "bf16", "i8": "int8", "u8": "int8"}


@pytest.fixture(scope="module")
def lenet(cache_dir: Path) -> PreparedModel:
    return prepare_zoo_model("lenet5", [1, 2], cache_dir)


def _session(
    model: PreparedModel, precision: str, cache_dir: Path, **options: Any
) -> tuple[OpenVinoSession, Any]:
    """A CPU session and the compiled model it runs on."""
    target = Target("cpu", precision)
    reason = OpenVinoRuntime.unavailable_reason(target, model.source)
    if reason is not None:
        assert precision.upper() not in CAPABILITIES and precision in reason
        pytest.skip(reason)
    load = LoadOptions(**{"threads": 0, "in_flight": 0, "scenario": "latency", **options})
    runtime = OpenVinoRuntime()
    built = runtime.build(model, target, load, cache_dir)
    session = runtime.load(built, model, target, load)
    assert isinstance(session, OpenVinoSession)
    return session, built.artifact


def _graph_precision(compiled: Any) -> str:
    """What the convolutions and fully connected layers of the executed graph ran in,
    read here straight from OpenVINO, independently of the runtime module."""
    seen = set()
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if info["layerType"].astype(str) in ("Convolution", "FullyConnected"):
            seen.add(info["runtimePrecision"].astype(str))
    assert len(seen) == 1, seen
    return OV_TO_OURS[seen.pop()]


def _max_error(session: OpenVinoSession, model: PreparedModel, batch: int) -> float:
    feeds, reference = load_reference(model.reference, batch)
    outputs = session.infer(feeds)
    assert set(outputs) == set(reference)
    for name, expected in reference.items():
        assert outputs[name].shape == expected.shape and outputs[name].dtype == np.float32
    return max(float(np.abs(outputs[n] - reference[n]).max()) for n in reference)


def test_fp32_runs_fp32_and_matches_the_reference(lenet: PreparedModel, tmp_path: Path) -> None:
    session, compiled = _session(lenet, "fp32", tmp_path)
    assert session.executed.precision == _graph_precision(compiled) == "fp32"
    assert session.executed.details["properties"]["INFERENCE_PRECISION_HINT"] == "f32"
    assert session.executed.device == "cpu"
    assert session.executed.provider == f"openvino {openvino.get_version()}"
    for batch in (1, 2):
        assert _max_error(session, lenet, batch) < 1e-5


def test_bf16_runs_bf16_close_to_the_reference(lenet: PreparedModel, tmp_path: Path) -> None:
    session, compiled = _session(lenet, "bf16", tmp_path)
    assert session.executed.precision == _graph_precision(compiled) == "bf16"
    assert session.executed.details["compute_layer_precisions"] == {"bf16": 5}
    error = _max_error(session, lenet, 2)
    assert 1e-6 < error < 2e-2  # rounded to bf16, so not bit-equal to fp32, but close


def test_fp16_reports_what_the_graph_ran(lenet: PreparedModel, tmp_path: Path) -> None:
    session, compiled = _session(lenet, "fp16", tmp_path)
    assert session.executed.precision == _graph_precision(compiled)
    assert session.executed.precision in ("fp16", "bf16")
    assert _max_error(session, lenet, 1) < 2e-2


def test_cache_serves_each_precision_its_own_build(lenet: PreparedModel, tmp_path: Path) -> None:
    """OpenVINO's CPU cache key ignores the precision hint: an f32 request must not be
    served the blob an f16 build left (each configuration has its own cache directory)."""
    runtime, load = OpenVinoRuntime(), LoadOptions(in_flight=0)
    first = runtime.build(lenet, Target("cpu", "fp16"), load, tmp_path)
    again = runtime.build(lenet, Target("cpu", "fp16"), load, tmp_path)
    other = runtime.build(lenet, Target("cpu", "fp32"), load, tmp_path)
    assert (first.cache_hit, again.cache_hit, other.cache_hit) == (False, True, False)
    assert _graph_precision(other.artifact) == "fp32"
    assert len(list((tmp_path / "openvino").iterdir())) == 2

    off = LoadOptions(in_flight=0, settings={"model_cache": False})
    uncached = runtime.build(lenet, Target("cpu", "fp32"), off, tmp_path / "off")
    assert not uncached.cache_hit and not (tmp_path / "off").exists()


def test_settings_are_passed_and_read_back(lenet: PreparedModel, tmp_path: Path) -> None:
    extra = {"execution_mode": "accuracy", "num_streams": 1}
    session, _ = _session(lenet, "fp32", tmp_path, threads=1, scenario="throughput", settings=extra)
    properties = session.executed.details["properties"]
    assert properties["PERFORMANCE_HINT"] == "THROUGHPUT"
    assert properties["EXECUTION_MODE_HINT"] == "ACCURACY"
    assert properties["NUM_STREAMS"] == 1
    assert properties["INFERENCE_NUM_THREADS"] == session.executed.threads == 1
    latency, _ = _session(lenet, "fp32", tmp_path, scenario="latency")
    assert latency.executed.details["properties"]["PERFORMANCE_HINT"] == "LATENCY"


@pytest.mark.parametrize("in_flight", [0, 3])
def test_throughput_keeps_the_queue_full(
    lenet: PreparedModel, tmp_path: Path, in_flight: int
) -> None:
    session, compiled = _session(lenet, "fp32", tmp_path, scenario="throughput")
    feeds, _ = load_reference(lenet.reference, 1)
    warmup, measure = SHORT
    record = session.run_throughput(feeds, in_flight, warmup, measure)
    optimal = compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")
    assert record.in_flight == (in_flight or optimal)
    assert record.completed == len(record.times_ns) >= measure.min_count
    assert record.window_ns >= measure.min_s * 1e9 and not record.capped
    assert record.warmup_count >= warmup.min_count
    assert min(record.times_ns) > 0


def test_sync_paths_run(lenet: PreparedModel, tmp_path: Path) -> None:
    session, _ = _session(lenet, "fp32", tmp_path)
    feeds, reference = load_reference(lenet.reference, 2)
    session.stage(feeds)
    session.launch()
    for slot in session.request_slots(feeds, 2):
        slot()
    assert np.allclose(session.infer(feeds)["logits"], reference["logits"], atol=1e-5)


def test_executed_precision_is_the_compute_layers_majority() -> None:
    reorders = [("Reorder", "f32")] * 10
    assert executed_precision([*reorders, ("Convolution", "bf16"), ("MatMul", "bf16")]) == "bf16"
    assert executed_precision([("FullyConnected", "u8"), ("Convolution", "i8")]) == "int8"
    assert executed_precision([("Eltwise", "f16"), ("Eltwise", "f16"), ("Pooling", "f32")]) == (
        "fp16"
    )
    assert executed_precision([("ShapeOf", "i32")]) == "unknown"


@pytest.mark.parametrize("device", ["myriad", "hddl"])
def test_movidius_devices_point_to_2022_3(device: str) -> None:
    reason = OpenVinoRuntime.unavailable_reason(Target(device, "fp16"), "zoo:mlp")
    assert reason is not None and "2022.3" in reason and "\n" not in reason


@pytest.mark.parametrize("device", ["gpu", "gpu.1", "npu", "hetero:gpu,cpu", "auto:npu,cpu"])
def test_absent_devices_list_what_openvino_sees(device: str) -> None:
    seen = openvino.Core().available_devices
    named = device.upper().split(":")[-1].split(",")
    missing = [d for d in named if not any(s == d or s.startswith(d + ".") for s in seen)]
    if not missing:
        pytest.skip(f"OpenVINO sees {device} here")
    reason = OpenVinoRuntime.unavailable_reason(Target(device, "fp32"), "zoo:mlp")
    assert reason is not None and "\n" not in reason
    assert f"sees no {missing[0]}" in reason and ", ".join(seen) in reason


def test_devices_and_foreign_devices() -> None:
    assert "cpu" in OpenVinoRuntime.devices()
    assert OpenVinoRuntime.unavailable_reason(Target("auto:cpu", "fp32"), "") is None
    reason = OpenVinoRuntime.unavailable_reason(Target("cuda:0", "fp32"), "zoo:mlp")
    assert reason is not None and "cuda" in reason and "openvino" in reason
    assert list(RUNTIMES)[-1] == "openvino"


def test_importing_runtimes_does_not_import_openvino() -> None:
    code = "import sys, runtimes; print('openvino' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True)
    assert out.stdout.decode().strip() == "False", out.stderr.decode()


@pytest.mark.e2e
def test_cli_runs_openvino_cells(tmp_path: Path, cache_dir: Path) -> None:
    config = tmp_path / "bench.toml"
    config.write_text(
        '[suite]\nname = "ov"\nin_flight = 0\ncell_timeout_s = 120\n'
        "[measure]\nwarmup_s = 0.05\nwarmup_min_iters = 2\nmin_duration_s = 0.1\n"
        "min_iters = 5\nmax_duration_s = 10.0\n"
    )
    results = tmp_path / "results"
    proc = subprocess.run(
        [
            sys.executable,
            "cli.py",
            "run",
            "--config",
            config,
            "--results-dir",
            results,
            "--cache-dir",
            cache_dir,
            "--no-progress",
            "--runtimes",
            "openvino",
            "--models",
            "mlp",
            "--precisions",
            "fp32,bf16",
            "--scenarios",
            "latency,throughput",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "DEPLOYBENCH_CACHE_DIR": str(cache_dir)},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (run_dir,) = results.iterdir()
    records = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert len(records) == 4
    for record in records:
        cell = record["cell"]
        if cell["precision"] == "bf16" and "BF16" not in CAPABILITIES:
            assert record["status"] == "skipped" and "bf16" in record["reason"]
            continue
        assert record["status"] == "ok", record.get("reason")
        executed = record["executed"]
        assert executed["precision"] == cell["precision"]
        optimal = executed["properties"]["OPTIMAL_NUMBER_OF_INFER_REQUESTS"]
        assert executed["in_flight"] == (1 if cell["scenario"] == "latency" else optimal)
