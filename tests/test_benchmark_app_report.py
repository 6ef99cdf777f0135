"""OpenVINO 2022.3 benchmark_app's reports: the stand-in on a fake NCS2 host, the parsers,
and reports recorded from the real openvino-dev 2022.3.2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from runtimes.benchmark_app_report import (
    benchmark_app_flags,
    parse_console,
    parse_report,
)
from tests.fixtures.edge.myriad import BENCHMARK_APP, SETUPVARS, make_myriad_host

RECORDED = Path(__file__).parent / "fixtures/edge/recorded/openvino_2022.3.2_pypi_cpu"


def tiny_onnx(path: Path) -> Path:
    weight = numpy_helper.from_array(np.ones((16, 8), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"]), helper.make_node("Relu", ["y"], ["z"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 8])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def run_app(
    root: Path, args: list[str], setupvars: bool = True
) -> subprocess.CompletedProcess[str]:
    """benchmark_app as a remote shell would run it: setupvars.sh sourced (unless not
    ``setupvars``), then the venv's script, with the project's python3 first on PATH."""
    env = dict(os.environ, DEPLOYBENCH_DEVICE_ROOT=str(root))
    env.pop("INTEL_OPENVINO_DIR", None)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    script = f'"{root / BENCHMARK_APP}" "$@"'
    if setupvars:
        script = f'source "{root / SETUPVARS}" >/dev/null && {script}'
    return subprocess.run(
        ["bash", "-c", script, "benchmark_app", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("hint, niter", [("latency", 40), ("throughput", 30)])
def test_report_and_console_agree(tmp_path: Path, hint: str, niter: int) -> None:
    root = make_myriad_host(tmp_path / "host")
    model = tiny_onnx(tmp_path / "tiny.onnx")
    flags = benchmark_app_flags(str(model), "MYRIAD", hint, 0, niter, "[1,16]", str(tmp_path))
    done = run_app(root, flags)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[Step 11/11] Dumping statistics report" in done.stdout

    report = parse_report((tmp_path / "benchmark_report.csv").read_text())
    console = parse_console(done.stdout)
    assert report.figures == console
    assert report.device == "MYRIAD" and report.api == "async"
    assert report.precision is None  # 2022.3 writes UNSPECIFIED
    # async: -niter rounds up to whole rounds of requests (4 with the throughput hint)
    assert console.count == -(-niter // report.requests) * report.requests
    assert console.latency is not None and console.latency.percentile == 50
    assert console.latency.min <= console.latency.at_percentile <= console.latency.max


def test_percentile_and_sync(tmp_path: Path) -> None:
    root = make_myriad_host(tmp_path / "host")
    model = tiny_onnx(tmp_path / "tiny.onnx")
    args = ["-m", str(model), "-d", "MYRIAD", "-api", "sync", "-niter", "20"]
    args += ["-latency_percentile", "90", "-report_type", "no_counters"]
    done = run_app(root, [*args, "-report_folder", str(tmp_path)])
    assert done.returncode == 0, done.stdout + done.stderr
    report = parse_report((tmp_path / "benchmark_report.csv").read_text())
    assert report.figures == parse_console(done.stdout)
    assert report.figures.latency is not None and report.figures.latency.percentile == 90
    assert report.figures.count == 20 and report.requests == 1


def test_no_stick_fails_as_2022_3_does(tmp_path: Path) -> None:
    root = make_myriad_host(tmp_path / "host", stick=False)
    model = tiny_onnx(tmp_path / "tiny.onnx")
    flags = benchmark_app_flags(str(model), "MYRIAD", "latency", 1, None, None, str(tmp_path))
    done = run_app(root, flags)
    assert done.returncode == 1
    assert "[ ERROR ] Failed to allocate graph: MYRIAD device is not opened." in done.stdout
    assert "Failed to find booted device after boot" in done.stderr
    with pytest.raises(ValueError, match="MYRIAD device is not opened"):
        parse_console(done.stdout)


def test_without_setupvars_there_is_no_myriad_as_with_the_pypi_wheel(tmp_path: Path) -> None:
    """The MYRIAD plugin is the 2022.3 archive's: benchmark_app run without sourcing its
    setupvars.sh loads a runtime that has none, and says what the recorded PyPI run says
    (recorded/openvino_2022.3.2_pypi_cpu/myriad_missing)."""
    root = make_myriad_host(tmp_path / "host")
    model = tiny_onnx(tmp_path / "tiny.onnx")
    flags = benchmark_app_flags(str(model), "MYRIAD", "latency", 1, None, None, str(tmp_path))
    done = run_app(root, flags, setupvars=False)
    assert done.returncode == 1
    assert 'Device with "MYRIAD" name is not registered in the OpenVINO Runtime' in done.stdout
    assert run_app(root, flags).returncode == 0


def test_no_stick_report_says_so(tmp_path: Path) -> None:
    root = make_myriad_host(tmp_path / "host", stick=False)
    model = tiny_onnx(tmp_path / "tiny.onnx")
    flags = benchmark_app_flags(str(model), "MYRIAD", "latency", 1, None, None, str(tmp_path))
    assert run_app(root, flags).returncode == 1
    with pytest.raises(ValueError, match="failed: Failed to allocate graph"):
        parse_report((tmp_path / "benchmark_report.csv").read_text())


def test_flags_2022_3_lacks_are_refused(tmp_path: Path) -> None:
    root = make_myriad_host(tmp_path / "host")
    done = run_app(root, ["-m", "x.onnx", "-json_stats"])
    assert done.returncode == 2
    assert "benchmark_app: error: unrecognized arguments: -json_stats" in done.stderr


@pytest.mark.parametrize(
    "folder, percentile, count, api",
    [("latency_niter", 50, 50, "async"), ("sync_p90", 90, 13810, "sync")],
)
def test_recorded_real_reports_parse(folder: str, percentile: int, count: int, api: str) -> None:
    report = parse_report((RECORDED / folder / "benchmark_report.csv").read_text())
    console = parse_console((RECORDED / folder / "console.txt").read_text())
    assert report.figures == console
    assert report.figures.count == count and report.api == api and report.device == "CPU"
    assert report.figures.latency is not None
    assert report.figures.latency.percentile == percentile


def test_recorded_failure_is_an_error() -> None:
    with pytest.raises(ValueError, match='"MYRIAD" name is not registered'):
        parse_report((RECORDED / "myriad_missing/benchmark_report.csv").read_text())


def test_not_a_report_names_the_missing_section() -> None:
    with pytest.raises(ValueError, match="'Execution results'"):
        parse_report("layerName;execStatus\nx;EXECUTED\n")
    only_results = "Execution results\nthroughput;1.00\n\n"
    with pytest.raises(ValueError, match="'Configuration setup'"):
        parse_report(only_results)


def test_flags_refuse_what_2022_3_would() -> None:
    with pytest.raises(ValueError, match="hint"):
        benchmark_app_flags("m.xml", "MYRIAD", "fast", 10, None, None, "r")
    with pytest.raises(ValueError, match="60 s"):
        benchmark_app_flags("m.xml", "MYRIAD", "latency", 0, None, None, "r")
    assert benchmark_app_flags("m.xml", "MYRIAD", "none", 5, None, None, "r") == [
        *("-m", "m.xml", "-d", "MYRIAD", "-hint", "none", "-t", "5"),
        *("-report_type", "no_counters", "-report_folder", "r"),
    ]
