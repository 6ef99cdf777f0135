"""The trtexec driver: version from the banner, flags per version, the --exportTimes trace
turned into the harness's LoopRecord, and a whole cell through a double of the binary."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.core.cell import Target
from bench.core.spec import PreparedModel
from bench.core.timing import StopRule
from exporters.onnx_export import prepare_zoo_model
from exporters.reference import load_reference
from runtimes.base import LoadOptions
from runtimes.tensorrt.build import BuildPlan, TrtVersion
from runtimes.tensorrt.runtime import TensorRTRuntime, choose_driver
from runtimes.tensorrt.trtexec_driver import (
    RunSettings,
    build_flags,
    parse_banner,
    read_outputs,
    read_trace,
    run_flags,
    trace_record,
    warmup_queries,
)
from runtimes.tensorrt.trtexec_session import TrtexecSession

FIXTURES = Path(__file__).parent / "fixtures" / "tensorrt"
SHAPES = {"input": ((1, 1, 32, 32), (2, 1, 32, 32), (8, 1, 32, 32))}
V86, V103 = TrtVersion(8, 6, 1), TrtVersion(10, 3, 0)


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ((FIXTURES / "trtexec_help_v8601.txt").read_text(), "8.6.1"),
        ((FIXTURES / "trtexec_help_v100300.txt").read_text(), "10.3.0"),
        ("&&&& RUNNING TensorRT.trtexec [TensorRT v8502] # trtexec", "8.5.2"),
        ("&&&& RUNNING TensorRT.trtexec [TensorRT v8510] # trtexec", "8.5.10"),
        ("&&&& RUNNING TensorRT.trtexec [TensorRT v110000] [b3] # trtexec", "11.0.0"),
    ],
)
def test_banner_gives_the_version(text: str, version: str) -> None:
    assert str(parse_banner(text)) == version


def test_output_without_a_banner_is_an_error() -> None:
    with pytest.raises(ValueError, match="banner"):
        parse_banner("bash: trtexec: command not found")


def plan(**changes: object) -> BuildPlan:
    fields = {"precision": "fp16", "typing": "weak", "workspace_mb": 1024, "shapes": SHAPES}
    return BuildPlan(**{**fields, **changes})  # type: ignore[arg-type]


def test_build_flags_for_8_6() -> None:
    flags = build_flags(V86, Path("m.onnx"), Path("m.engine"), plan(), Path("t.cache"))
    assert flags[:2] == ["--onnx=m.onnx", "--saveEngine=m.engine"]
    for flag in (
        "--skipInference",
        "--memPoolSize=workspace:1024",
        "--fp16",
        "--noTF32",
        "--minShapes=input:1x1x32x32",
        "--optShapes=input:2x1x32x32",
        "--maxShapes=input:8x1x32x32",
        "--timingCacheFile=t.cache",
        "--profilingVerbosity=detailed",
    ):
        assert flag in flags
    assert "--stronglyTyped" not in flags and "--buildOnly" not in flags


def test_build_flags_for_older_and_newer_versions() -> None:
    old = build_flags(TrtVersion(8, 2), Path("m.onnx"), Path("e"), plan(), None)
    assert "--workspace=1024" in old and "--buildOnly" in old
    assert not any(f.startswith(("--memPoolSize", "--timingCacheFile")) for f in old)
    strong = build_flags(V103, Path("m.onnx"), Path("e"), plan(typing="strong"), None)
    assert "--stronglyTyped" in strong and "--fp16" not in strong
    v11 = build_flags(TrtVersion(11, 0), Path("m.onnx"), Path("e"), plan(typing="strong"), None)
    assert not any(f in v11 for f in ("--stronglyTyped", "--fp16", "--bf16"))
    int8 = build_flags(V86, Path("q.onnx"), Path("e"), plan(precision="int8"), None)
    assert "--int8" in int8 and "--fp16" not in int8  # the QDQ copy's layers, explicitly
    int8_strong = build_flags(
        V103, Path("q.onnx"), Path("e"), plan(precision="int8", typing="strong"), None
    )
    assert "--stronglyTyped" in int8_strong and "--int8" not in int8_strong
    dla = build_flags(V86, Path("m.onnx"), Path("e"), plan(dla_core=1, tf32=True), None)
    assert "--useDLACore=1" in dla and "--allowGPUFallback" in dla and "--noTF32" not in dla
    named = build_flags(V103, Path("m"), Path("e"), plan(shapes={"in:0": SHAPES["input"]}), None)
    assert "--optShapes='in:0':2x1x32x32" in named
    static = build_flags(V103, Path("m"), Path("e"), plan(shapes={}), None)  # all inputs static
    assert not any("Shapes=" in flag for flag in static)


def test_run_flags_per_version() -> None:
    run = RunSettings({"input": (2, 1, 32, 32)}, streams=3, cuda_graph=True, data_transfers=False)
    flags = run_flags(V103, Path("e"), run, StopRule(0.5, 10), StopRule(2.2, 50))
    for flag in (
        "--loadEngine=e",
        "--shapes=input:2x1x32x32",
        "--warmUp=500",
        "--iterations=50",
        "--duration=3",
        "--infStreams=3",
        "--useCudaGraph",
        "--noDataTransfers",
    ):
        assert flag in flags
    assert "--infStreams=3" in run_flags(V86, Path("e"), run, StopRule(0.5, 10), StopRule(2, 50))
    older = run_flags(TrtVersion(8, 5, 2), Path("e"), run, StopRule(0.5, 10), StopRule(2, 50))
    assert "--streams=3" in older and "--infStreams=3" not in older


def test_trace_becomes_a_loop_record() -> None:
    entries = read_trace(FIXTURES / "export_times_resnet50_b1.json")
    record, splits = trace_record(entries, 200.0, StopRule(0.05, 50), 1)
    measured = [e for e in entries if e["startComputeMs"] >= 200.0]
    assert record.completed == len(measured) == len(record.times_ns) == len(splits)
    assert record.warmup_count == len(entries) - len(measured) > 0
    assert record.times_ns == [round(e["latencyMs"] * 1e6) for e in measured]
    window = measured[-1]["endD2hMs"] - measured[0]["startH2dMs"]
    assert record.window_ns == round(window * 1e6) and not record.capped
    assert splits[0] == (measured[0]["h2dMs"], measured[0]["computeMs"], measured[0]["d2hMs"])
    capped, _ = trace_record(entries, 200.0, StopRule(0.05, len(measured) + 1), 1)
    assert capped.capped


def test_trace_without_warmups_reads_them_from_the_log() -> None:
    """Newer trtexecs export only the measured requests (``trace.begin() + nbWarmups``)."""
    entries = read_trace(FIXTURES / "export_times_resnet50_b1.json")
    measured = [e for e in entries if e["startComputeMs"] >= 200.0]
    record, _ = trace_record(measured, 200.0, StopRule(0, 1), 1)
    assert record.warmup_count == 0 and record.completed == len(measured)
    log = "[I] Warmup completed 183 queries over 200 ms\n[I] Timing trace has 2766 queries"
    assert warmup_queries(log) == 183 and warmup_queries("no such line") is None


def test_trace_with_tensorrt_7_names() -> None:
    entries = read_trace(FIXTURES / "export_times_trt7_names.json")
    record, splits = trace_record(entries, 0.0, StopRule(0, 1), 2)
    assert record.completed == len(entries) and record.in_flight == 2
    assert splits[0] == (entries[0]["inMs"], entries[0]["computeMs"], entries[0]["outMs"])
    with pytest.raises(RuntimeError, match="no request after warm-up"):
        trace_record(entries, 1e9, StopRule(0, 1), 1)


def test_export_output_is_read_as_arrays() -> None:
    outputs = read_outputs(FIXTURES / "export_output_lenet5_b2.json")
    assert outputs["logits"].shape == (2, 10) and outputs["logits"].dtype == np.float32
    assert outputs["logits"][1, 0] == pytest.approx(0.5)


@pytest.fixture
def fake_trtexec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``trtexec`` executable that runs the double, reporting TensorRT 8.6.1."""
    script = tmp_path / "bin" / "trtexec"
    script.parent.mkdir()
    double = FIXTURES / "fake_trtexec.py"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{double}" "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    for name, value in {
        "FAKE_TRTEXEC_VERSION": "8601",
        "FAKE_TRTEXEC_LOG": str(tmp_path / "calls.jsonl"),
        "FAKE_TRTEXEC_TIMES": str(FIXTURES / "export_times_resnet50_b1.json"),
        "FAKE_TRTEXEC_LAYERS": str(FIXTURES / "inspector_lenet5_fp16_b2.json"),
        "FAKE_TRTEXEC_OUTPUT": str(FIXTURES / "export_output_lenet5_b2.json"),
    }.items():
        monkeypatch.setenv(name, value)
    return script


def calls(tmp_path: Path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]


@pytest.fixture
def lenet(cache_dir: Path) -> PreparedModel:
    return prepare_zoo_model("lenet5", [1, 2], cache_dir)


def test_a_cell_through_trtexec(lenet: PreparedModel, fake_trtexec: Path, tmp_path: Path) -> None:
    extra = {"driver": "trtexec", "trtexec_path": str(fake_trtexec), "cuda_graph": True}
    options, target = LoadOptions(settings=extra, batch=2), Target("cuda:0", "fp16")
    runtime = TensorRTRuntime()
    built = runtime.build(lenet, target, options, tmp_path / "cache")
    assert not built.cache_hit and built.build_s > 0 and built.artifact.version == "8.6.1"
    assert runtime.build(lenet, target, options, tmp_path / "cache").cache_hit
    (build,) = [c["argv"] for c in calls(tmp_path) if any("--onnx=" in a for a in c["argv"])]
    assert "--fp16" in build and "--optShapes=input:2x1x32x32" in build

    session = runtime.load(built, lenet, target, options)
    assert isinstance(session, TrtexecSession)
    assert session.executed.precision == "fp16"  # read from --exportLayerInfo
    assert session.executed.details["layer_precisions"] == {"fp16": 7, "fp32": 3}
    assert session.executed.provider == "tensorrt 8.6.1 (trtexec)"

    feeds, _ = load_reference(lenet.reference, 2)
    outputs = session.infer(feeds)
    assert outputs["logits"].shape == (2, 10)
    assert calls(tmp_path)[-1]["input_bytes"] == {"input": feeds["input"].nbytes}

    record = session.run_latency(feeds, StopRule(0.2, 10), StopRule(0.05, 20))
    latency = calls(tmp_path)[-1]["argv"]
    assert "--useCudaGraph" in latency and "--warmUp=200" in latency
    assert "--noDataTransfers" in latency  # device-resident by default, as the other runtimes
    assert record.completed == 69 and record.in_flight == 1
    metrics = session.device_metrics()
    assert metrics["split_source"] == "trtexec --exportTimes" and metrics["split_count"] == 69
    assert 0.9 < metrics["compute_ms"] < 1.2 and metrics["h2d_ms"] < metrics["compute_ms"]
    throughput = session.run_throughput(feeds, 0, StopRule(0.2, 10), StopRule(0.05, 20))
    assert throughput.in_flight == 2 and "--infStreams=2" in calls(tmp_path)[-1]["argv"]
    session.close()


def test_trtexec_errors_are_one_line(
    lenet: PreparedModel, fake_trtexec: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_TRTEXEC_FAIL", "1")
    extra = {"driver": "trtexec", "trtexec_path": str(fake_trtexec)}
    with pytest.raises(
        RuntimeError, match=r"trtexec failed: .*\[E\] \[TRT\] ModelImporter"
    ) as info:
        TensorRTRuntime().build(
            lenet, Target("cuda:0", "fp32"), LoadOptions(settings=extra), tmp_path
        )
    assert "\n" not in str(info.value)


def test_driver_choice(fake_trtexec: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.core.errors import Unavailable
    from runtimes.tensorrt.runtime import TensorRTOptions

    monkeypatch.setattr("runtimes.tensorrt.runtime._bindings_installed", lambda: False)
    assert choose_driver(TensorRTOptions(trtexec_path=str(fake_trtexec))) == (
        "trtexec",
        fake_trtexec,
    )
    with pytest.raises(Unavailable, match="Python bindings are not installed"):
        choose_driver(TensorRTOptions(driver="python"))
    monkeypatch.setenv("PATH", os.defpath)
    missing = TensorRTOptions(driver="trtexec", trtexec_path="/nowhere/trtexec")
    with pytest.raises(Unavailable, match="trtexec not found /nowhere/trtexec: set runtime"):
        choose_driver(missing)
