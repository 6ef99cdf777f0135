"""The parts of ``run --host`` that need no device: addresses, ssh's failures in one
line, what a probe's output says, which cells a device's own tools can run, the
tegrastats log cut to a window on the device's clock, the agent's flags, and the
``cli.py export`` bundle run by the stand-in trtexec of TensorRT 8.2."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

import cli
from bench.core.cell import Cell
from bench.core.errors import UserError
from bench.harness.config import HostConfig, config_from_dict
from bench.harness.environment import machine_id
from bench.harness.environment import machine_label as _label
from bench.harness.plan import PlannedCell
from bench.harness.start import RunRequest
from bench.power import TegrastatsLog, window_figures
from bench.remote.agent import _flags
from bench.remote.boards import board_of
from bench.remote.bundle import Bundle
from bench.remote.probe import clocks_text_state, parse_probe
from bench.remote.ssh import Address, ConnectionLost, RemoteError, Ssh
from bench.remote.tools import tools_plan
from runtimes.tensorrt.build import TrtVersion
from runtimes.tensorrt.trtexec_driver import max_onnx_opset, read_outputs
from tests.fixtures.edge.devices import device_path, make_device

ORIN = """@@uname
aarch64
Linux 5.15.148-tegra
@@whoami
1000
@@os
Ubuntu 22.04.5 LTS
@@cpu
model name	: ARMv8 Processor rev 1 (v8l)
@@cores
12
@@memory
MemTotal:       64335836 kB
@@model
NVIDIA Jetson AGX Orin Developer Kit
@@l4t
# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic, EABI: aarch64
@@nvpmodel
NV Power Mode: MODE_30W
2
@@clocks
cpu 729600 2201600
cpu 729600 2201600
gpu 306000000 1300500000
@@trtexec
/usr/src/tensorrt/bin/trtexec
&&&& RUNNING TensorRT.trtexec [TensorRT v100300] # trtexec --help
@@tegrastats
/usr/bin/tegrastats
@@jetson_clocks
/usr/bin/jetson_clocks
@@benchmark_app
@@openvino
@@python
3.10.12
@@deploybench
@@disk
/dev/mmcblk0p1  57444264 31337000 23140000      58% /
@@home
/home/nvidia
"""


def test_a_probe_of_an_orin() -> None:
    device = parse_probe("orin", ORIN)
    assert (device.architecture, device.cores, device.memory_gib) == ("aarch64", 12, 61.36)
    assert device.cpu == "ARMv8 Processor rev 1 (v8l)" and device.python == "3.10.12"
    assert device.jetson == {
        "model": "NVIDIA Jetson AGX Orin Developer Kit",
        "release": {"l4t": "36.4.0", "jetpack_major": "6"},
        "nvpmodel": {"name": "MODE_30W", "id": 2, "from": "nvpmodel -q"},
        "jetson_clocks": {"on": False, "cpu_min_is_max": False, "gpu_min_is_max": False},
    }
    assert (device.programs["trtexec"], device.tensorrt) == (
        "/usr/src/tensorrt/bin/trtexec",
        "10.3.0",
    )
    assert device.programs["benchmark_app"] is None and device.deploybench is None
    assert device.free_mib == pytest.approx(23140000 / 1024)
    assert device.sudo == "sudo -n " and device.home == "/home/nvidia"
    environment = device.environment()
    assert environment["gpus"][0]["name"] == "NVIDIA Jetson AGX Orin Developer Kit (integrated)"
    assert environment["libraries"] == {"tensorrt": "10.3.0"}


def test_a_probe_of_a_plain_linux_box() -> None:
    text = "@@uname\nx86_64\nLinux 6.1\n@@whoami\n0\n@@deploybench\ndeploybench 0.1.0\n@@trtexec\n"
    device = parse_probe("box", text)
    assert device.jetson is None and device.programs["trtexec"] is None and device.tensorrt is None
    assert device.deploybench == "0.1.0" and device.root and device.sudo == ""


def test_jetson_clocks_is_on_when_every_minimum_is_its_maximum() -> None:
    assert clocks_text_state("cpu 5 5\ncpu 7 7\ngpu 9 9")["on"] is True
    assert clocks_text_state("cpu 5 5\ngpu 1 9")["on"] is False
    assert clocks_text_state("cpu 5 5")["on"] is None  # no GPU clocks read: unknown


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("orin", Address("orin")),
        ("nvidia@10.0.0.5", Address("10.0.0.5", "nvidia")),
        ("pi@raspberrypi.local:2222", Address("raspberrypi.local", "pi", 2222)),
        ("me@[fe80::1]:22", Address("fe80::1", "me", 22)),
    ],
)
def test_addresses(text: str, address: Address) -> None:
    assert Address.parse(text) == address


@pytest.mark.parametrize(
    "text", ["", "a b", "x@y@z", "host:0", "host:70000", "-oProxyCommand=sh", "me@-x"]
)
def test_bad_addresses_are_one_line(text: str) -> None:
    with pytest.raises(UserError, match="SSH address|out of range"):
        Address.parse(text)


@pytest.mark.parametrize(
    ("stderr", "kind", "says"),
    [
        ("ssh: connect to host 10.0.0.9 port 22: Connection refused", RemoteError, "refused"),
        ("nvidia@orin: Permission denied (publickey,password).", RemoteError, "ssh-copy-id"),
        ("@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@", RemoteError, "ssh-keygen -R"),
        ("Host key verification failed.", RemoteError, "accept it"),
        ("ssh: Could not resolve hostname orin: Name or service not known", RemoteError, "Host"),
        (
            "ssh: connect to host orin port 22: Connection timed out",
            RemoteError,
            "is the device on",
        ),
        ("Connection to 10.0.0.9 closed by remote host.", ConnectionLost, "lost the connection"),
        ("client_loop: send disconnect: Broken pipe", ConnectionLost, "lost the connection"),
    ],
)
def test_ssh_failures_are_one_line_with_the_fix(stderr: str, kind: type, says: str) -> None:
    failure = Ssh(Address("orin")).failure(stderr, "the timed loop")
    assert type(failure) is kind and says in str(failure) and "\n" not in str(failure)


def _device(model: str, tensorrt: str | None = "8.5.2", benchmark_app: bool = False):
    text = f"@@model\n{model}\n@@l4t\n# R35 (release), REVISION: 4.1\n@@whoami\n0\n"
    if tensorrt:
        major, minor, patch = (int(p) for p in tensorrt.split("."))
        number = (
            major * 10000 + minor * 100 + patch
            if major >= 10
            else major * 1000 + minor * 100 + patch
        )
        text += f"@@trtexec\n/t\n&&&& RUNNING TensorRT.trtexec [TensorRT v{number}]\n"
    if benchmark_app:
        text += "@@benchmark_app\n/opt/benchmark_app\n"
        text += "@@setupvars\n/opt/intel/openvino_2022/setupvars.sh\n"
    return parse_probe("dev", text)


def test_load_inputs_quote_names_trtexec_would_split() -> None:
    bundle = Bundle(Path("b"), "d", {1: [("input:0", "b1/input0.bin"), ("mask", "b1/input1.bin")]})
    assert bundle.load_inputs(1, "/r/m") == "'input:0':/r/m/b1/input0.bin,mask:/r/m/b1/input1.bin"
    assert bundle.load_inputs(8, "/r/m") is None


@pytest.mark.parametrize(
    ("model", "cell", "reason"),
    [
        ("Jetson Xavier NX", ("tensorrt", "dla:1", "fp16"), None),
        ("Jetson Xavier NX", ("tensorrt", "dla:2", "fp16"), "has 2 DLA cores"),
        ("Jetson Xavier NX", ("tensorrt", "dla:0", "fp32"), "runs fp16 and int8"),
        ("Jetson Orin Nano", ("tensorrt", "dla:0", "fp16"), "has 0 DLA cores"),
        ("Jetson Nano", ("tensorrt", "cuda:0", "int8"), "has no fast INT8"),
        ("Jetson Xavier NX", ("tensorrt", "cuda:0", "bf16"), "no bf16"),
        ("Jetson Xavier NX", ("tensorrt", "cuda:1", "fp16"), "one GPU"),
        ("Jetson Xavier NX", ("tensorrt", "cpu", "fp16"), "not cpu"),
        ("Jetson Xavier NX", ("pytorch", "cuda:0", "fp16"), "agent mode"),
        ("Jetson Xavier NX", ("openvino", "myriad", "fp16"), "no benchmark_app"),
    ],
)
def test_which_cells_a_device_runs_with_its_own_tools(
    model: str, cell: tuple[str, str, str], reason: str | None
) -> None:
    planned = [PlannedCell(Cell("mlp", *cell, 1, "latency"), "the host's own reason")]
    (result,) = tools_plan(_device(model), planned)
    assert result.skip_reason == reason or reason in (result.skip_reason or "")


def test_a_myriad_host_runs_fp16_on_its_stick_only() -> None:
    device = _device("", tensorrt=None, benchmark_app=True)
    cells = [
        PlannedCell(Cell("mlp", "openvino", "myriad", p, 1, "latency")) for p in ("fp16", "fp32")
    ]
    fp16, fp32 = tools_plan(device, cells)
    assert fp16.skip_reason is None and "fp16 only" in str(fp32.skip_reason)
    (trt,) = tools_plan(
        device, [PlannedCell(Cell("mlp", "tensorrt", "cuda:0", "fp16", 1, "latency"))]
    )
    assert "no trtexec" in str(trt.skip_reason)


def test_boards_by_device_tree_model() -> None:
    assert board_of("NVIDIA Jetson AGX Orin Developer Kit").dla_cores == 2
    assert board_of("NVIDIA Orin Nano Developer Kit").dla_cores == 0
    assert not board_of("NVIDIA Jetson Nano Developer Kit").int8
    assert board_of("Raspberry Pi 4 Model B Rev 1.4") is None


@pytest.mark.parametrize(
    ("model", "compatible", "cores", "int8"),
    [
        # AGX Xavier from L4T 32.2: the model string says only "Jetson-AGX"
        # (Adafruit_Python_PlatformDetect#37); its module is p2888 on the p2972 carrier
        ("Jetson-AGX", "nvidia,p2972-0000 nvidia,p2888-0001 nvidia,tegra194", 2, True),
        ("Jetson-AGX", "", 2, True),
        # Orin NX 8GB: no "8GB" in the model string; one DLA core (p3767-0001)
        (
            "NVIDIA Orin NX Developer Kit",
            "nvidia,p3768-0000+p3767-0001 nvidia,p3767-0001 nvidia,tegra234",
            1,
            True,
        ),
        ("NVIDIA Orin NX Developer Kit", "nvidia,p3768-0000+p3767-0000 nvidia,tegra234", 2, True),
        ("NVIDIA Orin Nano Developer Kit", "nvidia,p3768-0000+p3767-0005 nvidia,tegra234", 0, True),
        # AGX Orin 64GB, as NVIDIA/jetson-gpio#125 prints its compatible file
        (
            "NVIDIA Jetson AGX Orin Developer Kit",
            "nvidia,p3737-0000+p3701-0005 nvidia,p3701-0005 nvidia,tegra234 nvidia,tegra23x",
            2,
            True,
        ),
        # a TX2 whose model string is its board's code name
        ("quill", "nvidia,quill nvidia,tegra186", 0, False),
        ("quill", "", 0, False),
        # Thor devkit on L4T 38.4 (NVIDIA/jetson-gpio#135)
        (
            "NVIDIA Jetson AGX Thor Developer Kit",
            "nvidia,p4071-0000+p3834-0008 nvidia,p3834-0008 nvidia,tegra264",
            0,
            True,
        ),
    ],
)
def test_the_module_is_read_from_its_part_number_first(
    model: str, compatible: str, cores: int, int8: bool
) -> None:
    board = board_of(model, compatible)
    assert board is not None and (board.dla_cores, board.int8) == (cores, int8)


def test_the_probe_reads_the_compatible_list_and_plans_by_it() -> None:
    text = (
        "@@model\nNVIDIA Orin NX Developer Kit\n@@compatible\nnvidia,p3768-0000+p3767-0001 "
        "nvidia,p3767-0001 nvidia,tegra234 \n@@l4t\n# R36 (release), REVISION: 4.3\n"
        "@@whoami\n0\n@@trtexec\n/t\n&&&& RUNNING TensorRT.trtexec [TensorRT v100300]\n"
    )
    device = parse_probe("orin-nx", text)
    assert device.compatible.split()[-1] == "nvidia,tegra234"
    cells = [PlannedCell(Cell("mlp", "tensorrt", f"dla:{i}", "fp16", 1, "latency")) for i in (0, 1)]
    first, second = tools_plan(device, cells)
    assert first.skip_reason is None
    assert second.skip_reason == "orin-nx has 1 DLA cores"


def test_the_opset_each_tensorrt_parses() -> None:
    assert max_onnx_opset(TrtVersion(8, 2, 1)) == 13
    assert max_onnx_opset(TrtVersion(8, 6, 2)) == 17
    assert max_onnx_opset(TrtVersion(10, 3, 0)) == 20
    assert max_onnx_opset(TrtVersion(7, 1, 3)) is None


def test_a_stamped_tegrastats_log_is_cut_to_the_window() -> None:
    """JetPack 4's unitless rails, stamped with the device's clock: 4 W, then 8 W."""
    lines = [f"{100 + t / 10:.1f} RAM 1/2MB POM_5V_IN {w}/{w} POM_5V_GPU 1/1" for t, w in
             [(0, 4000), (1, 4000), (2, 8000), (3, 8000), (4, 8000)]]  # fmt: skip
    log = TegrastatsLog("\n".join(["garbage", *lines]), 100, "nano")
    assert [s.value for s in log.samples] == [4.0, 4.0, 8.0, 8.0, 8.0]
    start, end = round(100.2e9), round(100.4e9)
    figures = window_figures(log, log.samples, start, end, 20, 2, 10.0)
    assert figures["avg_w"] == pytest.approx(8.0) and figures["energy_j"] == pytest.approx(1.6)
    assert figures["samples_per_j"] == pytest.approx(40 / 1.6)
    assert "POM_5V_IN" in figures["measures"] and "on nano" in figures["measures"]
    late = window_figures(log, log.samples, round(100.3e9), round(101e9), 1, 1, 10.0)
    assert "do not cover the window" in late["unavailable"]


def test_the_agent_gets_the_same_run_as_flags(tmp_path: Path) -> None:
    onnx_file = tmp_path / "m.onnx"
    onnx_file.write_bytes(b"onnx")
    request = RunRequest(
        Path("bench.toml"),
        profile="smoke",
        overrides={
            "suite": {"devices": ["hetero:gpu,cpu", "cpu"], "batch_sizes": [1, 8], "name": "x"},
            "quantize": {"method": "entropy"},
        },
        onnx=onnx_file,
        shapes=["input=1x3"],
    )
    files = tmp_path / "files"
    files.mkdir()
    flags = _flags(request, files, "/stage")
    assert flags == [
        "--profile", "smoke", "--devices", "hetero:gpu,cpu;cpu", "--batch-sizes", "1,8",
        "--name", "x", "--quantize-method", "entropy", "--onnx", "/stage/m.onnx",
        "--shape", "input=1x3",
    ]  # fmt: skip
    assert (files / "m.onnx").read_bytes() == b"onnx"


def test_a_hosts_table_is_checked() -> None:
    with pytest.raises(UserError, match=r"\[hosts.orin\] unknown key 'workdri'"):
        config_from_dict({"hosts": {"orin": {"address": "x", "workdri": "/data"}}})
    with pytest.raises(UserError, match=r"\[hosts.orin\] address: Field required"):
        config_from_dict({"hosts": {"orin": {"mode": "tools"}}})
    with pytest.raises(UserError, match="workdir: must be a plain path"):
        config_from_dict({"hosts": {"orin": {"address": "x", "workdir": "$(rm -rf ~)"}}})
    config = config_from_dict({"hosts": {"orin": {"address": "nvidia@orin", "mode": "tools"}}})
    assert config.hosts["orin"].workdir == "~/.cache/deploybench-remote"


def test_a_power_mode_is_another_machine() -> None:
    def environment(mode: str) -> dict:
        jetson = {"model": "Orin", "nvpmodel": {"name": mode}, "jetson_clocks": {"on": True}}
        return {"cpu": {"model": "ARMv8"}, "power": {"state": {"jetson": jetson}}}

    assert machine_id(environment("MAXN")) != machine_id(environment("MODE_15W"))
    assert _label(environment("MODE_15W")) == "ARMv8 (MODE_15W, jetson_clocks on)"
    assert machine_id({"cpu": {"model": "x"}}) == machine_id({"cpu": {"model": "x"}, "power": {}})


@pytest.mark.e2e
def test_the_export_bundle_runs_on_tensorrt_8_2(tmp_path: Path, cache_dir: Path, capsys) -> None:
    """``cli.py export`` for TensorRT 8.2: opset 13, and its commands.sh runs as written
    under the stand-in trtexec of JetPack 4.6 (which refuses what 8.2 lacks), its
    outputs on the seeded inputs those of the reference."""
    out = tmp_path / "bundle"
    argv = ["export", "--tensorrt", "8.2.1", "--models", "mlp", "--precisions", "fp32,int8"]
    argv += ["--batch-sizes", "2", "--out", str(out), "--cache-dir", str(cache_dir)]
    assert cli.main(argv) == 0
    assert "mlp: " in capsys.readouterr().out
    folder = out / "mlp"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["opset"] == 13
    assert manifest["batches"]["2"]["inputs"]["input"]["file"] == "b2/input0.bin"
    root = make_device("nano-jp46", tmp_path / "device")
    trtexec = root / "usr/src/tensorrt/bin/trtexec"
    script = (folder / "commands.sh").read_text()
    assert "# int8: not written" in script and "--loadInputs=input:./b2/input0.bin" in script
    done = subprocess.run(
        ["sh", "-c", script.replace("/usr/src/tensorrt/bin/trtexec", str(trtexec))],
        cwd=folder,
        env={**os.environ, "DEPLOYBENCH_DEVICE_ROOT": str(root), "PATH": device_path(root)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    outputs = read_outputs(folder / "outputs-fp32-b2.json")
    reference = np.load(folder / "b2" / "reference.npz")
    (name,) = reference.files
    np.testing.assert_allclose(
        outputs[name].reshape(reference[name].shape), reference[name], rtol=1e-4, atol=1e-5
    )
    assert (folder / "times-fp32-b2.json").is_file()


def test_export_refuses_an_opset_the_parser_does_not_take(tmp_path: Path, capsys) -> None:
    argv = ["export", "--tensorrt", "8.2", "--opset", "17", "--out", str(tmp_path)]
    assert cli.main(argv) == 2
    assert capsys.readouterr().err.strip() == (
        "error: TensorRT 8.2.0's ONNX parser takes opsets up to 13, not 17: give --opset 13 "
        "or lower"
    )


def _host(mode: str):  # noqa: ANN202
    from bench.harness.config import HostConfig
    from bench.remote.hosts import Host

    return Host("jetson", HostConfig(address="jetson", mode=mode))


@pytest.mark.parametrize(
    ("python", "too_old"), [("3.6.9", True), ("3.8.10", True), ("3.10.12", False)]
)
def test_agent_mode_on_a_jetpack_python_too_old_says_so_in_one_line(
    python: str, too_old: bool
) -> None:
    """JetPack 4 ships Python 3.6 and JetPack 5 3.8; deploybench needs 3.10 (pyproject)."""
    from rich.console import Console

    from bench.commands.edge import chosen_mode

    text = f"@@model\nNVIDIA Jetson Xavier NX\n@@whoami\n0\n@@python\n{python}\n"
    device = parse_probe("jetson", text)
    console = Console(record=True, width=200)
    assert chosen_mode(_host("auto"), device, console) == "tools"
    said = console.export_text()
    if too_old:
        assert said == (
            f"agent mode needs Python 3.10 or newer on the device, and jetson has {python} "
            "(JetPack 4 ships 3.6, JetPack 5 3.8): tools mode\n"
        )
        with pytest.raises(RemoteError, match=r"has .*: use --remote-mode tools$"):
            chosen_mode(_host("agent"), device, console)
    else:
        assert said == ""
        with pytest.raises(RemoteError, match="does not answer on jetson: install deploybench"):
            chosen_mode(_host("agent"), device, console)


@pytest.mark.parametrize(
    ("probe_text", "runtimes", "opset", "said"),
    [
        # a Myriad X host: OpenVINO 2022.3 reads up to opset 16
        ("@@benchmark_app\n/opt/ba\n", ["openvino"], 16, "the highest benchmark_app on dev reads"),
        # a Jetson on JetPack 4.6: TensorRT 8.2 parses up to 13, the lower cap wins
        (
            "@@trtexec\n/t\n&&&& RUNNING TensorRT.trtexec [TensorRT v8201]\n"
            "@@benchmark_app\n/opt/ba\n",
            ["tensorrt", "openvino"],
            13,
            "the highest trtexec on dev reads",
        ),
        # TensorRT 10.3 parses 20: the default 18 stands, and nothing is said
        ("@@trtexec\n/t\n&&&& RUNNING TensorRT.trtexec [TensorRT v100300]\n", ["tensorrt"], 18, ""),
    ],
)
def test_tools_mode_exports_at_an_opset_every_tool_reads(
    probe_text: str, runtimes: list[str], opset: int, said: str
) -> None:

    from bench.remote.hosts import Host
    from bench.remote.tools import ToolsExecutor

    device = parse_probe("dev", "@@model\n\n@@whoami\n0\n" + probe_text)
    executor = ToolsExecutor(None, device, Host("dev", HostConfig(address="dev")))
    config = config_from_dict({"suite": {"models": ["mlp"], "runtimes": runtimes}})
    assert config.suite.opset == 18
    assert executor.adjust(config, []).suite.opset == opset
    assert (said in " ".join(executor.said)) and bool(executor.said) == bool(said)


def test_a_myriad_host_without_the_archive_setupvars_skips_its_cells() -> None:
    """benchmark_app from the PyPI wheel alone has no MYRIAD plugin: the cells are skipped
    with the fix, not failed one by one."""
    cells = [PlannedCell(Cell("mlp", "openvino", "myriad", "fp16", 1, "latency"))]
    text = "@@model\n\n@@whoami\n0\n@@benchmark_app\n/home/pi/openvino_env/bin/benchmark_app\n"
    (bare,) = tools_plan(parse_probe("pi", text), cells)
    assert bare.skip_reason is not None
    assert bare.skip_reason.startswith("no OpenVINO 2022.3 setupvars.sh on pi: the MYRIAD plugin")
    assert bare.skip_reason.endswith("set openvino_setupvars in [hosts]")
    found = text + "@@setupvars\n/opt/intel/openvino_2022/setupvars.sh\n"
    (ready,) = tools_plan(parse_probe("pi", found), cells)
    assert ready.skip_reason is None
