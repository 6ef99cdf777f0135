"""The JetPack stand-ins (tests/fixtures/edge/bin) driven as the remote-device code drives
the real tools, on fake boards from tests/fixtures/edge/devices.py: our trtexec flag
builders in, our parsers out, per TensorRT version."""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
from fixtures.edge.devices import BOARDS, RECORDED, TOOLS, device_path, make_device
from onnx import TensorProto, helper, numpy_helper

from bench.core.spec import TensorSpec
from bench.core.timing import StopRule
from bench.harness.config import HostConfig
from bench.power.jetson import l4t_release
from bench.power.jetson_board import jetson_clocks_state, parse_nvpmodel_files, parse_nvpmodel_query
from bench.power.source import board_total
from bench.power.tegrastats import parse_rails
from bench.remote.ssh import Completed, RemoteError
from runtimes.tensorrt.build import BuildPlan, TrtVersion, profile_shapes
from runtimes.tensorrt.inspector import executed_precision, layer_precisions
from runtimes.tensorrt.trtexec_driver import (
    RunSettings,
    build_flags,
    input_files,
    layer_info_flags,
    one_request_flags,
    read_outputs,
    read_trace,
    run_flags,
    run_trtexec,
    trace_record,
    trtexec_version,
    warmup_queries,
)

VERSIONS = {
    "nano-jp46": TrtVersion(8, 2, 1),
    "xavier-nx-jp51": TrtVersion(8, 5, 2),
    "agx-orin-jp6": TrtVersion(10, 3, 0),
}
L4T = {"nano-jp46": "32.7.1", "xavier-nx-jp51": "35.4.1", "agx-orin-jp6": "36.4.0"}


def model(path: Path, opset: int, batch: str | int = "batch") -> Path:
    """MatMul + Relu with a dynamic batch axis: x (batch, 4) → y (batch, 3); a static
    model with ``batch`` a number."""
    weights = np.random.default_rng(1).standard_normal((4, 3)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["h"], name="/fc/MatMul"),
            helper.make_node("Relu", ["h"], ["y"], name="/act/Relu"),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 3])],
        [numpy_helper.from_array(weights, "W")],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    proto.ir_version = 8
    onnx.save(proto, path)
    return path


@pytest.fixture(scope="module")
def onnx13(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return model(tmp_path_factory.mktemp("models") / "tiny13.onnx", 13)


def environment(root: Path, home: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DEPLOYBENCH_DEVICE_ROOT": str(root),
        "PATH": device_path(root),
        "HOME": str(home),
        **extra,
    }


def tool(root: Path, home: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    """A stand-in found on the device's PATH, run in a session on the device."""
    env = environment(root, home, **extra)
    found = shutil.which(args[0], path=env["PATH"])
    assert found, f"{args[0]} not on the device's PATH"
    return subprocess.run(
        [found, *args[1:]], capture_output=True, text=True, env=env, timeout=30, check=False
    )


@pytest.fixture
def device(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Path]:
    """``device(name)``: a fresh device root, with this process a session on it (so that
    run_trtexec, which runs trtexec by path, reaches the stand-in's board)."""

    def make(name: str) -> Path:
        root = make_device(name, tmp_path / "devices")
        for variable, value in environment(root, tmp_path).items():
            monkeypatch.setenv(variable, value)
        return root

    return make


@pytest.fixture
def board(request: pytest.FixtureRequest, device: Callable[[str], Path]) -> Path:
    return device(request.param)


@pytest.mark.parametrize("board", list(BOARDS), indirect=True)
def test_device_tree_is_laid_out_as_jetpack_installs_it(board: Path) -> None:
    path = device_path(board)
    assert shutil.which("trtexec", path=path) is None  # JetPack keeps it off PATH
    for name, place in TOOLS.items():
        assert os.access(board / place, os.X_OK)
        if name != "trtexec":
            assert shutil.which(name, path=path) == str(board / place)
    facts = json.loads((board / "standin.json").read_text())
    assert {"tensorrt", "tegrastats", "dla_cores", "int8"} <= facts.keys()
    assert l4t_release((board / "etc/nv_tegra_release").read_text())["l4t"] == L4T[board.name]
    cpus = list(board.glob("sys/devices/system/cpu/cpu[0-9]*/cpufreq"))
    gpus = [d for d in board.glob("sys/class/devfreq/*")]
    assert cpus and gpus
    for folder in cpus:
        assert (folder / "scaling_min_freq").is_file() and (folder / "scaling_max_freq").is_file()
    for folder in gpus:
        assert (folder / "min_freq").is_file() and (folder / "max_freq").is_file()
    assert (board / "run").is_dir() and not list((board / "run").iterdir())


@pytest.mark.parametrize("board", list(BOARDS), indirect=True)
def test_trtexec_builds_and_runs_with_our_flags(board: Path, onnx13: Path, tmp_path: Path) -> None:
    trtexec = board / TOOLS["trtexec"]
    version = trtexec_version(trtexec)
    assert version == VERSIONS[board.name]
    # on a board with DLA cores: fp32 on DLA core 1, which TensorRT builds in FP16
    dla = 1 if BOARDS[board.name].dla_cores else None
    precision = "fp32" if dla is not None else "fp16"
    plan = BuildPlan(precision, "weak", 64, {"x": ((1, 4), (2, 4), (8, 4))}, dla_core=dla)
    engine, cache = tmp_path / "tiny.engine", tmp_path / "timing.cache"
    built = run_trtexec(trtexec, build_flags(version, onnx13, engine, plan, cache), 60, tmp_path)
    assert "Starting inference" not in built
    assert engine.is_file() and cache.is_file()

    feeds = {"x": np.random.default_rng(2).standard_normal((3, 4)).astype(np.float32)}
    settings = RunSettings(shapes={"x": (3, 4)}, dla_core=dla)
    outputs, layers = tmp_path / "outputs.json", tmp_path / "layers.json"
    one = one_request_flags(settings, engine, input_files(feeds, tmp_path, version), outputs)
    run_trtexec(trtexec, [*one, *layer_info_flags(layers)], 60, tmp_path)
    expected = onnxruntime.InferenceSession(str(onnx13)).run(None, feeds)[0]
    np.testing.assert_allclose(read_outputs(outputs)["y"], expected, rtol=1e-5, atol=1e-6)
    precisions = layer_precisions(json.loads(layers.read_text()))
    assert precisions and {p for _, p in precisions} == {"fp16"}
    assert executed_precision(precisions) == "fp16"

    times = tmp_path / "times.json"
    warmup, measure = StopRule(0.05, 1), StopRule(0.0, 30)
    flags = [*run_flags(version, engine, settings, warmup, measure), f"--exportTimes={times}"]
    output = run_trtexec(trtexec, flags, 60, tmp_path)
    lines = output.splitlines()
    started = next(i for i, line in enumerate(lines) if line.endswith("] [I] Starting inference"))
    assert lines[started].startswith("[") and "Warmup completed" in lines[started + 1]
    assert not (board / "run/trtexec.busy").exists()
    entries = read_trace(times)
    record, splits = trace_record(entries, 50.0, measure, 1)
    warmups = warmup_queries(output)
    assert warmups and warmups > 0
    assert record.completed >= 30 and len(splits) == record.completed
    assert all(e["startComputeMs"] >= 50.0 for e in entries[record.warmup_count :])
    if version < TrtVersion(8, 5):  # 8.2's trace holds the warm-up requests too
        assert record.warmup_count == warmups and "endToEndMs" in entries[0]
    else:
        assert record.warmup_count == 0 and "endToEndMs" not in entries[0]
    assert record.window_ns > 0 and all(t > 0 for t in record.times_ns)


def test_trtexec_82_refuses_opset_18(device: Callable[[str], Path], tmp_path: Path) -> None:
    root = device("nano-jp46")
    onnx18 = model(tmp_path / "tiny18.onnx", 18)
    plan = BuildPlan("fp32", "weak", 64, {"x": ((1, 4), (2, 4), (8, 4))})
    flags = build_flags(TrtVersion(8, 2, 1), onnx18, tmp_path / "e", plan, None)
    with pytest.raises(RuntimeError, match=r"\[E\] \[TRT\] ModelImporter.cpp"):
        run_trtexec(root / TOOLS["trtexec"], flags, 60, tmp_path)
    assert not (tmp_path / "e").exists()


@pytest.mark.parametrize("board", ["nano-jp46", "agx-orin-jp6"])
def test_a_static_model_builds_without_shapes_and_refuses_them(
    device: Callable[[str], Path], tmp_path: Path, board: str
) -> None:
    """trtexec 8.2 to 11 stops a build that gives shapes for a model whose inputs are all
    static (sampleEngines.cpp, setupNetworkAndConfig: "Static model does not take explicit
    shapes…", then "Network And Config setup failed"). The suite passes shapes for
    dynamic inputs only, so a static model builds."""
    root = device(board)
    version = TrtVersion(8, 2, 1) if board == "nano-jp46" else TrtVersion(10, 3, 0)
    static = model(tmp_path / "static.onnx", 13, batch=2)
    inputs = (TensorSpec("x", (2, 4)),)
    shapes = profile_shapes(inputs, [2], 2)
    assert shapes == {}
    built = build_flags(
        version, static, tmp_path / "e", BuildPlan("fp32", "weak", 64, shapes), None
    )
    assert not any("Shapes=" in flag for flag in built)
    run_trtexec(root / TOOLS["trtexec"], built, 60, tmp_path)
    assert (tmp_path / "e").is_file()
    given = BuildPlan("fp32", "weak", 64, {"x": ((2, 4), (2, 4), (2, 4))})
    refused = build_flags(version, static, tmp_path / "e2", given, None)
    with pytest.raises(RuntimeError, match="Static model does not take explicit shapes"):
        run_trtexec(root / TOOLS["trtexec"], refused, 60, tmp_path)
    assert not (tmp_path / "e2").exists()


def test_trtexec_82_refuses_flags_it_does_not_have(
    device: Callable[[str], Path], tmp_path: Path, onnx13: Path
) -> None:
    root = device("nano-jp46")
    trtexec = str(root / TOOLS["trtexec"])
    done = tool(root, tmp_path, trtexec, f"--onnx={onnx13}", "--skipInference", "--infStreams=2")
    assert done.returncode == 1
    assert "[E] Unknown option: --skipInference" in done.stderr
    assert "[E] Unknown option: --infStreams 2" in done.stderr
    assert done.stdout.splitlines()[-1].startswith("&&&& FAILED TensorRT.trtexec [TensorRT v8201]")
    dla = tool(root, tmp_path, trtexec, f"--onnx={onnx13}", "--buildOnly", "--useDLACore=0")
    assert dla.returncode == 1 and "Cannot create DLA engine, 0 not available" in dla.stderr


class TegrastatsLines:
    """The lines a running tegrastats prints, read from its pipe as they come."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        self.fd = process.stdout.fileno()
        self.buffer = b""

    def _read(self, timeout_s: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], timeout_s)
        if ready:
            self.buffer += os.read(self.fd, 1 << 16)
        return bool(ready)

    def watts(self) -> float:
        """board_total watts of the next line."""
        while b"\n" not in self.buffer:
            assert self._read(5), "tegrastats printed nothing"
        line, self.buffer = self.buffer.split(b"\n", 1)
        rails = parse_rails(line.decode())
        assert rails
        return board_total(rails).watts

    def fresh_watts(self) -> float:
        """board_total watts of a line tegrastats began after this call: every line it has
        printed is dropped, and so is the one it may have been making, whatever the load
        on the machine held them back for."""
        while self._read(0):
            pass
        self.buffer = self.buffer[self.buffer.rfind(b"\n") + 1 :]  # keep a line half-read
        self.watts()  # the line on its way
        return self.watts()


@pytest.mark.parametrize(
    ("name", "low_mode"), [("nano-jp46", 1), ("xavier-nx-jp51", 3), ("agx-orin-jp6", 1)]
)
def test_tegrastats_power_follows_trtexec_and_power_mode(
    name: str, low_mode: int, tmp_path: Path
) -> None:
    root = make_device(name, tmp_path / "devices")
    env = environment(root, tmp_path)
    process = subprocess.Popen(
        [str(root / TOOLS["tegrastats"]), "--interval", "40"], stdout=subprocess.PIPE, env=env
    )
    try:
        lines = TegrastatsLines(process)
        idle = lines.fresh_watts()
        (root / "run/trtexec.busy").touch()
        busy_default = lines.fresh_watts()
        assert tool(root, tmp_path, "nvpmodel", "-m", str(low_mode)).returncode == 0
        busy_low = lines.fresh_watts()
    finally:
        process.terminate()
        process.wait(5)
        assert process.stdout is not None
        process.stdout.close()
    assert busy_default > idle * 1.5
    assert idle < busy_low < busy_default * 0.9  # a lower budget draws less


def test_tegrastats_line_formats(tmp_path: Path) -> None:
    for name, pattern in (("nano-jp46", r"POM_5V_IN \d+/\d+ "), ("agx-orin-jp6", r"mW/\d+mW")):
        root = make_device(name, tmp_path / "devices")
        log = tmp_path / f"{name}.log"
        started = tool(
            root, tmp_path, "tegrastats", "--interval", "30", "--start", "--logfile", str(log)
        )
        try:
            assert started.returncode == 0 and (root / "run/tegrastats.pid").is_file()
            deadline = time.monotonic() + 60  # the first line, however loaded the machine
            while not (log.is_file() and log.read_text().count("\n") >= 1):
                assert time.monotonic() < deadline, "tegrastats wrote no line"
                time.sleep(0.03)
        finally:
            assert tool(root, tmp_path, "tegrastats", "--stop").returncode == 0
        assert not (root / "run/tegrastats.pid").exists()
        line = log.read_text().splitlines()[0]
        assert parse_rails(line) and re.search(pattern, line)
        assert line[:2].isdigit() == (name != "nano-jp46")  # the date prefix from JetPack 5


@pytest.mark.parametrize("board", list(BOARDS), indirect=True)
def test_nvpmodel_query_and_switch(board: Path, tmp_path: Path) -> None:
    query = tool(board, tmp_path, "nvpmodel", "-q").stdout
    assert query == (RECORDED / BOARDS[board.name].tree / "nvpmodel-q.txt").read_text()
    before = parse_nvpmodel_query(query)
    conf = (board / "etc/nvpmodel.conf").read_text()
    assert before == parse_nvpmodel_files(conf, (board / "var/lib/nvpmodel/status").read_text())
    target = next(i for i in (1, 2, 3, 0) if f"ID={i} " in conf and i != before["id"])
    assert tool(board, tmp_path, "nvpmodel", "-m", str(target)).returncode == 0
    after = parse_nvpmodel_query(tool(board, tmp_path, "nvpmodel", "-q").stdout)
    assert after["id"] == target and after["name"] != before["name"]
    assert parse_nvpmodel_files(conf, (board / "var/lib/nvpmodel/status").read_text()) == after
    assert tool(board, tmp_path, "nvpmodel", "-m", "77").returncode == 255
    user = tool(
        board, tmp_path, "nvpmodel", "-m", str(before["id"]), DEPLOYBENCH_STANDIN_EUID="1000"
    )
    assert user.returncode == 255 and "NVPM ERROR" in user.stderr
    assert parse_nvpmodel_query(tool(board, tmp_path, "nvpmodel", "-q").stdout) == after


def test_jetson_clocks_pins_stores_and_restores(tmp_path: Path) -> None:
    root = make_device("xavier-nx-jp51", tmp_path / "devices")
    assert jetson_clocks_state(root)["on"] is False
    assert tool(root, tmp_path, "jetson_clocks", "--store").returncode == 0
    assert (tmp_path / ".jetsonclocks_conf.txt").is_file()  # JetPack 5's default, in $HOME
    assert tool(root, tmp_path, "jetson_clocks").returncode == 0
    assert jetson_clocks_state(root) == {"on": True, "cpu_min_is_max": True, "gpu_min_is_max": True}
    shown = tool(root, tmp_path, "jetson_clocks", "--show").stdout.splitlines()
    assert shown[0] == "SOC family:tegra194  Machine:NVIDIA Jetson Xavier NX Developer Kit"
    assert (
        shown[2].startswith("cpu0: Online=1 Governor=")
        and "MinFreq=1420800 MaxFreq=1420800" in shown[2]
    )
    assert any(line.startswith("GPU MinFreq=") for line in shown)
    assert shown[-1].startswith("NV Power Mode: ")
    assert tool(root, tmp_path, "jetson_clocks", "--restore").returncode == 0
    assert jetson_clocks_state(root)["on"] is False
    user = tool(root, tmp_path, "jetson_clocks", DEPLOYBENCH_STANDIN_EUID="1000")
    assert user.returncode == 1 and "as a root user" in user.stdout
    assert jetson_clocks_state(root)["on"] is False


class LocalSsh:
    """A session on a fake device root run here: what bench.remote.sweep needs of Ssh."""

    name = "nano"

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def run(self, script: str, timeout_s: float, what: str, check: bool = True) -> Completed:
        done = subprocess.run(
            ["bash", "-c", script], env=self.env, capture_output=True, text=True, timeout=60
        )
        if check and done.returncode != 0:
            raise RemoteError(f"{what}: {done.stderr.strip()}")
        return Completed(done.returncode, done.stdout, done.stderr)

    def reset(self) -> None:
        pass


def test_a_clocks_off_step_runs_in_its_own_power_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """jetson_clocks --store saves every cpuN/online, and --restore writes them back: a
    file stored under MAXN (4 cores) brings MAXN's cores back in the Nano's 5W mode (2
    cores), so its "off" step would measure another machine. The sweep stores the clocks
    per mode, reads the online CPUs back before each step, and records them."""
    from rich.console import Console

    from bench.remote import sweep as sweeping
    from bench.remote.probe import probe

    monkeypatch.setattr(sweeping, "SETTLE_S", 0.0)
    root = make_device("nano-jp46", tmp_path / "devices")
    for low in root.glob("sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_min_freq"):
        low.write_text("102000\n")  # the recorded Nano had jetson_clocks on: unpin it
    for low in root.glob("sys/class/devfreq/*/min_freq"):
        low.write_text("76800000\n")
    home = tmp_path / "home"
    home.mkdir()
    ssh = LocalSsh(environment(root, home))
    host = HostConfig(address="nano", workdir=str(home / "work"))
    device = probe(ssh, host)  # type: ignore[arg-type]
    assert device.online_cpus == "0-3" and device.jetson["nvpmodel"]["name"] == "MAXN"
    # the trap, with the stand-ins alone: a MAXN store restored in 5W
    assert tool(root, home, "jetson_clocks", "--store", str(home / "maxn.conf")).returncode == 0
    assert tool(root, home, "nvpmodel", "-m", "1").returncode == 0
    assert (root / "sys/devices/system/cpu/online").read_text() == "0-1\n"
    assert tool(root, home, "jetson_clocks", "--restore", str(home / "maxn.conf")).returncode == 0
    assert (root / "sys/devices/system/cpu/online").read_text() == "0-3\n"
    assert tool(root, home, "nvpmodel", "-m", "0").returncode == 0

    seen = {}

    def run_one(label: str, now) -> int:  # noqa: ANN001
        seen[label] = (now.online_cpus, now.jetson["jetson_clocks"]["on"], now.environment())
        return 0

    console = Console(record=True, width=200)
    modes, clocks = ["1"], ["on", "off"]
    assert sweeping.sweep(ssh, device, host, modes, clocks, run_one, console) == 0  # type: ignore[arg-type]
    assert {label: got[:2] for label, got in seen.items()} == {
        "mode1-clocks-on": ("0-1", True),
        "mode1-clocks-off": ("0-1", False),
    }
    assert seen["mode1-clocks-off"][2]["cpu"]["online"] == "0-1"  # kept in environment.json
    assert "power mode mode1-clocks-off: nvpmodel 5W, jetson_clocks off, CPUs 0-1 online" in (
        console.export_text()
    )
    back = probe(ssh, host)  # type: ignore[arg-type]
    assert back.online_cpus == "0-3" and back.jetson["nvpmodel"]["name"] == "MAXN"
    assert back.jetson["jetson_clocks"]["on"] is False
