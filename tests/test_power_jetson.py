"""Jetson boards from recorded sysfs trees and outputs: JetPack 4 (Nano), 5 (Xavier NX),
6 (AGX Orin)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from bench.power.jetson import JetsonSource, ina3221_rails, l4t_release
from bench.power.jetson_board import (
    jetson_clocks_state,
    jetson_state,
    parse_nvpmodel_files,
    parse_nvpmodel_query,
)
from bench.power.source import PowerUnavailable, board_total
from bench.power.tegrastats import TegrastatsSource, parse_rails

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES = REPO_ROOT / "tests" / "fixtures" / "power"
BOARDS = FIXTURES / "jetson"


def board(name: str) -> Path:
    return BOARDS / name


def test_nano_jetpack4_iio_rails_and_module_input() -> None:
    rails = ina3221_rails(board("nano-jp4"))
    assert [(r.chip, r.name) for r in rails] == [
        ("6-0040", "POM_5V_IN"),
        ("6-0040", "POM_5V_GPU"),
        ("6-0040", "POM_5V_CPU"),
    ]
    assert [r.watts() for r in rails] == pytest.approx([3.273, 0.123, 0.613])  # in_power mW
    source = JetsonSource(board("nano-jp4"))
    assert source.read() == pytest.approx(3.273)  # the input rail only, never the sum
    assert source.describe()["measures"] == "board power, POM_5V_IN (module input)"


def test_xavier_nx_jetpack5_hwmon_rails_skip_the_sum_channel() -> None:
    rails = ina3221_rails(board("xavier-nx-jp5"))
    assert [r.name for r in rails] == ["VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"]
    # P = V·I from in*_input (mV) and curr*_input (mA)
    assert [r.watts() for r in rails] == pytest.approx(
        [5.056 * 1.016, 5.048 * 0.096, 5.048 * 0.285]
    )
    source = JetsonSource(board("xavier-nx-jp5"))
    assert source.read() == pytest.approx(5.056 * 1.016)
    assert source.describe()["measures"] == "board power, VDD_IN (module input)"
    assert source.resolution_s == pytest.approx(0.026)  # hwmon update_interval, ms


def test_agx_orin_jetpack6_two_chips_no_input_rail_sums_the_connected_rails() -> None:
    rails = ina3221_rails(board("agx-orin-jp6"))
    assert [(r.chip, r.name) for r in rails] == [
        ("1-0040", "VDD_GPU_SOC"),
        ("1-0040", "VDD_CPU_CV"),
        ("1-0040", "VIN_SYS_5V0"),
        ("1-0041", "VDDQ_VDD2_1V8AO"),
    ]  # NC channels and "sum of shunt voltages" are skipped
    expected = 19.968 * 0.160 + 19.968 * 0.040 + 4.968 * 0.691 + 4.984 * 0.101
    source = JetsonSource(board("agx-orin-jp6"))
    assert source.read() == pytest.approx(expected)
    assert source.describe()["measures"] == (
        "board power, sum of rails: VDD_GPU_SOC + VDD_CPU_CV + VIN_SYS_5V0 + VDDQ_VDD2_1V8AO"
    )


def test_hwmon_numbers_are_globbed_not_fixed(tmp_path: Path) -> None:
    root = Path(shutil.copytree(board("xavier-nx-jp5"), tmp_path / "nx"))
    chip = root / "sys/bus/i2c/drivers/ina3221/7-0040/hwmon"
    (chip / "hwmon6").rename(chip / "hwmon3")
    assert JetsonSource(root).read() == pytest.approx(5.056 * 1.016)


def test_a_machine_without_ina3221_says_so(tmp_path: Path) -> None:
    with pytest.raises(PowerUnavailable, match="no INA3221"):
        JetsonSource(tmp_path)


@pytest.mark.parametrize(
    ("name", "model", "l4t", "jetpack", "mode", "clocks_on"),
    [
        ("nano-jp4", "NVIDIA Jetson Nano Developer Kit", "32.7.1", "4", ("MAXN", 0), True),
        (
            "xavier-nx-jp5",
            "NVIDIA Jetson Xavier NX Developer Kit",
            "35.4.1",
            "5",
            ("MODE_20W_6CORE", 8),
            False,
        ),
        ("agx-orin-jp6", "NVIDIA Jetson AGX Orin Developer Kit", "36.4.0", "6", ("MAXN", 0), False),
    ],
)
def test_board_state(
    name: str, model: str, l4t: str, jetpack: str, mode: tuple[str, int], clocks_on: bool
) -> None:
    state = jetson_state(board(name))
    assert state is not None
    assert state["model"] == model
    assert state["release"] == {"l4t": l4t, "jetpack_major": jetpack}
    assert (state["nvpmodel"]["name"], state["nvpmodel"]["id"]) == mode
    assert state["jetson_clocks"]["on"] is clocks_on


def test_orin_jetson_clocks_is_off_when_only_the_cpus_are_pinned() -> None:
    clocks = jetson_state(board("agx-orin-jp6"))["jetson_clocks"]
    assert clocks == {"on": False, "cpu_min_is_max": True, "gpu_min_is_max": False}


def test_thor_gpu_clocks_are_unknown_not_off(tmp_path: Path) -> None:
    """Thor has no nvgpu devfreq node, only gpu-gpc-0 and gpu-nvd-0 (jetson_stats'
    hw_detect), whose pinning by jetson_clocks is not known: the GPU's state is unknown,
    and so is jetson_clocks', where the CPUs are pinned."""
    for cpu in range(2):
        folder = tmp_path / f"sys/devices/system/cpu/cpu{cpu}/cpufreq"
        folder.mkdir(parents=True)
        (folder / "scaling_min_freq").write_text("2601000\n")
        (folder / "scaling_max_freq").write_text("2601000\n")
    for node, low in (("gpu-gpc-0", "1575000000"), ("gpu-nvd-0", "345000000")):
        folder = tmp_path / "sys/class/devfreq" / node
        folder.mkdir(parents=True)
        (folder / "min_freq").write_text(f"{low}\n")
        (folder / "max_freq").write_text("1575000000\n")
    assert jetson_clocks_state(tmp_path) == {
        "on": None,
        "cpu_min_is_max": True,
        "gpu_min_is_max": None,
    }


def test_not_a_jetson(tmp_path: Path) -> None:
    assert jetson_state(tmp_path) is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("nano-jp4", {"name": "MAXN", "id": 0}),
        ("xavier-nx-jp5", {"name": "MODE_20W_6CORE", "id": 8}),
        ("agx-orin-jp6", {"name": "MAXN", "id": 0}),
    ],
)
def test_nvpmodel_query_output(name: str, expected: dict) -> None:
    assert parse_nvpmodel_query((board(name) / "nvpmodel-q.txt").read_text()) == expected


def test_nvpmodel_files_and_garbage() -> None:
    conf = (board("xavier-nx-jp5") / "etc/nvpmodel.conf").read_text()
    assert parse_nvpmodel_files(conf, "pmode:0003 fmode:cool") == {
        "name": "MODE_10W_2CORE",
        "id": 3,
    }
    assert parse_nvpmodel_files(conf, "pmode:0042") == {"name": None, "id": 42}
    assert parse_nvpmodel_files(conf, "") is None
    assert parse_nvpmodel_query("nvpmodel: command failed") is None


def test_l4t_release_line() -> None:
    assert l4t_release("# R34 (release), REVISION: 1.1, GCID: 1, BOARD: t186ref") == {
        "l4t": "34.1.1",
        "jetpack_major": "5",
    }
    assert l4t_release("not a release file") is None
    # JetPack 7.2 moves to L4T R39 (and brings AGX Orin to JetPack 7)
    assert l4t_release("# R39 (release), REVISION: 0.0")["jetpack_major"] == "7"


@pytest.mark.parametrize(
    ("recorded", "rails"),
    [
        (
            BOARDS / "nano-jp4/tegrastats.txt",
            {"POM_5V_IN": 3.273, "POM_5V_GPU": 0.123, "POM_5V_CPU": 0.613},
        ),
        (
            BOARDS / "xavier-nx-jp5/tegrastats.txt",
            {"VDD_IN": 5.142, "VDD_CPU_GPU_CV": 0.480, "VDD_SOC": 1.440},
        ),
        (
            FIXTURES / "tegrastats/jp6-orin-nano.txt",
            {"VDD_IN": 4.731, "VDD_CPU_GPU_CV": 0.480, "VDD_SOC": 1.440},
        ),
        (
            BOARDS / "agx-orin-jp6/tegrastats.txt",
            {
                "VDD_GPU_SOC": 3.196,
                "VDD_CPU_CV": 0.799,
                "VIN_SYS_5V0": 3.435,
                "VDDQ_VDD2_1V8AO": 0.503,
            },
        ),
    ],
    ids=["jp4-nano", "jp5-xavier-nx", "jp6-orin-nano", "jp6-agx-orin"],
)
def test_tegrastats_lines(recorded: Path, rails: dict[str, float]) -> None:
    parsed = parse_rails(recorded.read_text())
    assert parsed == pytest.approx(rails)  # RAM, SWAP, CPU, GR3D_FREQ, temperatures left out


TEGRASTATS = Path(__file__).parent / "fixtures" / "power" / "tegrastats"


@pytest.mark.parametrize(
    ("recorded", "total", "label"),
    [
        # L4T R39 (JetPack 7.2) on AGX Orin: three values a rail; no input rail, so a sum
        (
            "r39-agx-orin.txt",
            5.139 + 3.268 + 5.500,
            "sum of rails: VDD_GPU_SOC + VDD_CPU_CV + VIN_SYS_5V0",
        ),
        # AGX Orin on JetPack 5: unconnected INA3221 channels print as NC and are left out
        (
            "jp5-agx-orin-nc.txt",
            2.390 + 0.796 + 3.522 + 0.301,
            "sum of rails: VDD_GPU_SOC + VDD_CPU_CV + VIN_SYS_5V0 + VDDQ_VDD2_1V8AO",
        ),
        # AGX Xavier: GPU CPU SOC CV VDDRQ SYS5V with no units, upper-case CPU@ temperatures
        (
            "jp5-agx-xavier.txt",
            1.155 + 0.385 + 2.504 + 0.0 + 0.192 + 2.692,
            "sum of rails: GPU + CPU + SOC + CV + VDDRQ + SYS5V",
        ),
        # Thor (JetPack 7): VIN is the board's input; the other rails are parts of it
        ("jp7-thor-constructed.txt", 38.120, "VIN (board input)"),
    ],
)
def test_the_board_total_is_its_input_rail_or_a_labelled_sum(
    recorded: str, total: float, label: str
) -> None:
    got = board_total(parse_rails((TEGRASTATS / recorded).read_text()))
    assert got.watts == pytest.approx(total) and got.label == label


def fake_tegrastats(tmp_path: Path, line: str) -> Path:
    """An executable that prints ``line`` every ``--interval`` ms, as tegrastats does."""
    script = tmp_path / "tegrastats"
    script.write_text(
        "#!/bin/sh\n"
        "interval=$(( $2 ))\n"
        f"while true; do echo '{line}'; sleep $(awk \"BEGIN {{print $interval/1000}}\"); done\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def test_tegrastats_source_runs_it_and_reads_its_lines(tmp_path: Path) -> None:
    line = (BOARDS / "xavier-nx-jp5/tegrastats.txt").read_text().strip()
    source = TegrastatsSource(0.02, executable=str(fake_tegrastats(tmp_path, line)))
    try:
        assert source.paced and source.kind == "power"
        assert [source.read() for _ in range(3)] == pytest.approx([5.142] * 3)
        assert "VDD_IN (module input)" in source.describe()["measures"]
    finally:
        source.close()
    assert source._process.poll() is not None  # the subprocess is gone


def test_tegrastats_does_not_outlive_a_killed_worker(tmp_path: Path) -> None:
    """A cell timeout kills the worker with SIGKILL; its tegrastats ends with it (its next
    line goes to a pipe nobody reads any more: SIGPIPE)."""
    script = fake_tegrastats(tmp_path, "VDD_IN 5142mW/5142mW")
    code = (
        f"import sys, time; sys.path.insert(0, {str(REPO_ROOT)!r})\n"
        "from bench.power.tegrastats import TegrastatsSource\n"
        f"source = TegrastatsSource(0.02, executable={str(script)!r})\n"
        "print(source._process.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    worker = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert worker.stdout is not None
    child = psutil.Process(int(worker.stdout.readline()))
    worker.kill()
    worker.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    else:
        child.kill()
        pytest.fail("tegrastats outlived the worker that started it")


def test_a_tegrastats_line_without_rails_is_no_reading(tmp_path: Path) -> None:
    line = (BOARDS / "xavier-nx-jp5/tegrastats.txt").read_text().strip()
    source = TegrastatsSource(0.02, executable=str(fake_tegrastats(tmp_path, line)))
    try:
        source._next_rails = dict  # type: ignore[method-assign]  # a line without rails
        with pytest.raises(ValueError, match="no power rails"):
            source.read()
    finally:
        source.close()


def test_tegrastats_without_rails_or_on_path(tmp_path: Path) -> None:
    script = fake_tegrastats(tmp_path, "RAM 2011/3964MB (lfb 126x4MB) CPU [2%@1479]")
    with pytest.raises(PowerUnavailable, match="no power rails"):
        TegrastatsSource(0.02, executable=str(script))
    with pytest.raises(PowerUnavailable, match="not on PATH"):
        TegrastatsSource(0.02, executable=str(tmp_path / "missing" / "tegrastats"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_rails_say_so(tmp_path: Path) -> None:
    root = Path(shutil.copytree(board("nano-jp4"), tmp_path / "nano"))
    (root / "sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0/in_power0_input").chmod(0)
    with pytest.raises(PowerUnavailable, match="not readable"):
        JetsonSource(root)
