"""``run --host`` when something goes wrong: the device cannot be reached, lacks a tool or
disk space, drops the connection, hangs, or the user presses Ctrl-C; and a power-mode
sweep that puts the board back. Each is one clear line, exit 2 (130 for Ctrl-C), nothing
measured lost, and no process left on the device (tests/fixtures/edge for the device)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import cli
from bench.harness.results import ENVIRONMENT_FILE, RESULTS_FILE
from tests.fixtures.edge.devices import device_path, make_device
from tests.fixtures.edge.host import MEASURE, EdgeHost, start_edge_host
from tests.fixtures.processes import start_cli

pytestmark = pytest.mark.e2e

TINY = 'models = ["mlp"]\nruntimes = ["tensorrt"]\ndevices = ["cuda:0"]\n'
GPU_CELL = "mlp/tensorrt/cuda:0/{}/b1/latency"
LONG_MEASURE = MEASURE.replace("min_duration_s = 0.3", "min_duration_s = 1.5")
"""A timed loop long enough to act on while it runs on the device."""


def _suite(
    edge: EdgeHost,
    precisions: str = "fp32",
    host: str = "",
    suite: str = 'power = "none"\n',
    measure: str = MEASURE,
) -> Path:
    """A one-model suite of TensorRT cells on the GPU, in tools mode (no power readings
    unless ``suite`` asks: tegrastats adds a second a cell)."""
    quoted = ", ".join(f'"{p}"' for p in precisions.split(","))
    text = f"{TINY}precisions = [{quoted}]\n{suite}"
    return edge.write_suite(text, host=f'mode = "tools"\n{host}', measure=measure)


def _argv(edge: EdgeHost, cache_dir: Path, *extra: str) -> list[str]:
    return [
        "run",
        "--config",
        str(edge.suite),
        "--host",
        "jetson",
        "--no-progress",
        "--cache-dir",
        str(cache_dir),
        *extra,
    ]


def _run_dirs(results: Path) -> list[Path]:
    return sorted(results.iterdir()) if results.is_dir() else []


def _records(run: Path) -> dict[str, dict]:
    path = run / RESULTS_FILE
    lines = path.read_text().splitlines() if path.is_file() else []
    return {r["key"]: r for r in map(json.loads, lines)}


def _one_line(text: str) -> str:
    """The console's output with its line wrapping undone."""
    return " ".join(text.split())


def _device_processes(*marks: Path) -> list[str]:
    """The command lines of the processes that name one of ``marks`` (a device's root
    or home), this test's own process left out."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        if cmdline.parent.name == str(os.getpid()):
            continue
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # ended meanwhile
        if any(str(mark) in text for mark in marks):
            found.append(text.strip())
    return found


def _no_device_processes(edge: EdgeHost, within_s: float = 6.0) -> list[str]:
    """The device's processes still there after ``within_s`` (the guard sends TERM, and
    KILL 3 s later): an empty list when all are gone."""
    deadline = time.monotonic() + within_s
    while (left := _device_processes(edge.root, edge.home)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def _wait_for(
    condition: Callable[[], bool],
    what: str,
    proc: subprocess.Popen | None = None,
    timeout_s: float = 90.0,
) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the run ended (exit {proc.returncode}) before {what}:\n{out}\n{err}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {timeout_s:.0f} s")
        time.sleep(0.02)


@contextmanager
def _cli_process(edge: EdgeHost, cache_dir: Path, *extra: str) -> Iterator[subprocess.Popen]:
    """``cli.py run --host jetson`` in a process group of its own, as a terminal's
    foreground job (SIGINT at its default, so Python turns it into KeyboardInterrupt)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = start_cli(_argv(edge, cache_dir, *extra), env, start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _result_lines(edge: EdgeHost) -> int:
    return sum(len(p.read_text().splitlines()) for p in edge.results.glob(f"*/{RESULTS_FILE}"))


def _timing(edge: EdgeHost) -> bool:
    """Whether the device's trtexec is in its timed loop."""
    return (edge.root / "run/trtexec.busy").exists()


# 1. the device cannot be reached


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        (
            "unreachable_config",
            "the connection was refused: is sshd running on the device, and is the port right?",
        ),
        (
            "wrong_key_config",
            "the key was refused: add your public key to the device's ~/.ssh/authorized_keys "
            "(ssh-copy-id HOST); passwords are never asked for",
        ),
        (
            "changed_host_key_config",
            "its host key changed since it was recorded in known_hosts: if the device was "
            "reinstalled, remove the old key with ssh-keygen -R HOST, else stop: the "
            "connection may be intercepted",
        ),
    ],
    ids=["unreachable", "refused key", "changed host key"],
)
def test_a_device_that_cannot_be_reached_is_one_line(
    ssh_server, tmp_path: Path, cache_dir: Path, capsys, config: str, reason: str
) -> None:
    edge = start_edge_host(ssh_server, tmp_path)
    suite = _suite(edge)
    bad = getattr(edge.server, config)()
    suite.write_text(suite.read_text().replace(str(edge.server.ssh_config), str(bad)))
    assert cli.main(_argv(edge, cache_dir)) == 2
    captured = capsys.readouterr()
    assert captured.err == f"error: cannot connect to jetson: {reason}\n"
    assert "Traceback" not in captured.out
    assert _run_dirs(edge.results) == []


# 2. a tool missing on the device


def test_a_device_without_trtexec_skips_its_tensorrt_cells(
    ssh_server, tmp_path: Path, cache_dir: Path, capsys
) -> None:
    edge = start_edge_host(ssh_server, tmp_path)
    (edge.root / "usr/src/tensorrt/bin/trtexec").unlink()
    _suite(edge)
    code = cli.main(_argv(edge, cache_dir))
    out = capsys.readouterr().out
    first = out.splitlines()[0]
    assert first.startswith("jetson: NVIDIA Jetson AGX Orin Developer Kit, L4T 36.4.0, power mode")
    assert "TensorRT" not in first and first.endswith("; tools mode")
    (run,) = _run_dirs(edge.results)
    cell = _records(run)[GPU_CELL.format("fp32")]
    assert cell["status"] == "skipped", cell
    assert cell["reason"] == "no trtexec on jetson (JetPack puts it in /usr/src/tensorrt/bin)"
    assert code == 0, out


def test_agent_mode_on_a_device_without_deploybench_is_one_line(
    ssh_server, tmp_path: Path, cache_dir: Path, capsys
) -> None:
    """The session's PATH leaves out the venv's bin, where the deploybench command is."""
    root = make_device("agx-orin-jp6", tmp_path / "device")
    home = tmp_path / "home"
    home.mkdir()
    venv_bin = str(Path(sys.executable).parent)
    path = ":".join(p for p in device_path(root).split(":") if p != venv_bin)
    environment = {"DEPLOYBENCH_DEVICE_ROOT": str(root), "PATH": path, "HOME": str(home)}
    server = ssh_server(environment=environment)
    edge = EdgeHost(root, home, server, tmp_path / "bench.toml", tmp_path / "results")
    _suite(edge)
    assert cli.main(_argv(edge, cache_dir, "--remote-mode", "agent")) == 2
    assert capsys.readouterr().err == (
        "error: 'deploybench --version' does not answer on jetson: install deploybench there "
        "(or set deploybench in [hosts]), or use --remote-mode tools\n"
    )
    assert _run_dirs(edge.results) == []


# 3. a full disk on the device


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs (skips where mounting is not allowed)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_device_out_of_disk_space_fails_the_cell_saying_so(
    ssh_server, tmp_path: Path, cache_dir: Path, capsys, small_disk: Path
) -> None:
    edge = start_edge_host(ssh_server, tmp_path)
    _suite(edge, host=f'workdir = "{small_disk}"')
    code = cli.main(_argv(edge, cache_dir))
    out = capsys.readouterr().out
    assert code == 1, out
    (run,) = _run_dirs(edge.results)
    cell = _records(run)[GPU_CELL.format("fp32")]
    assert cell["status"] == "failed", cell
    assert re.fullmatch(
        f"jetson has 0 MiB free in {small_disk}; copying mlp-fp32 and building its engine "
        r"needs about \d+: free some space or set workdir in \[hosts\] to a larger disk",
        cell["reason"],
    ), cell["reason"]
    assert not any(small_disk.iterdir())  # nothing half-copied left there


# 4. the connection drops in the middle of a cell


@pytest.mark.slow
def test_a_dropped_connection_keeps_the_cells_done_and_resume_finishes(
    ssh_server, tmp_path: Path, cache_dir: Path
) -> None:
    edge = start_edge_host(ssh_server, tmp_path)
    _suite(edge, "fp32,fp16", measure=LONG_MEASURE)
    with _cli_process(edge, cache_dir) as proc:
        _wait_for(lambda: _result_lines(edge) == 1, "the first cell's result", proc)
        _wait_for(lambda: _timing(edge), "the second cell's timed run", proc)
        edge.server.drop_connections()
        out, err = proc.communicate(timeout=60)
    (run,) = _run_dirs(edge.results)
    assert proc.returncode == 2, f"{out}\n{err}"
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("error: lost the connection to jetson during timing with trtexec (")
    assert err.endswith(
        f"; the cells done are kept in {run}: finish with: "
        f"python cli.py run --resume {run} --host jetson --config {edge.suite}\n"
    )
    kept = _records(run)
    assert (
        list(kept) == [GPU_CELL.format("fp32")] and kept[GPU_CELL.format("fp32")]["status"] == "ok"
    )
    assert _no_device_processes(edge) == []

    argv = ["run", "--resume", str(run), "--host", "jetson", "--config", str(edge.suite)]
    assert cli.main([*argv, "--no-progress", "--cache-dir", str(cache_dir)]) == 0
    records = _records(run)
    assert set(records) == {GPU_CELL.format("fp32"), GPU_CELL.format("fp16")}
    assert {r["status"] for r in records.values()} == {"ok"}
    assert records[GPU_CELL.format("fp32")] == kept[GPU_CELL.format("fp32")]


# 5. a process that hangs on the device


def _hanging_trtexec(root: Path) -> Path:
    """The device's trtexec replaced by a script that runs the stand-in, except for the
    timed run (``--exportTimes``), where it logs the start line and hangs; its mark file
    says it got there."""
    tool = root / "usr/src/tensorrt/bin/trtexec"
    real = tool.resolve()
    mark = root / "run/hung"
    tool.unlink()
    tool.write_text(
        "#!/bin/sh\n"
        'case "$*" in *--exportTimes=*)\n'
        f"  touch {mark}\n"
        '  echo "[I] Starting inference"\n'
        "  exec python3 -c 'import time; time.sleep(3600)' \"$0\" ;;\n"
        "esac\n"
        f'exec {real} "$@"\n'
    )
    tool.chmod(0o755)
    return mark


def test_a_hung_cell_is_stopped_at_the_cell_timeout_with_its_processes(
    ssh_server, tmp_path: Path, cache_dir: Path, capsys
) -> None:
    edge = start_edge_host(ssh_server, tmp_path)
    hung = _hanging_trtexec(edge.root)
    _suite(edge, suite="cell_timeout_s = 5\n")
    seen: list[str] = []

    def look_while_it_hangs() -> None:
        deadline = time.monotonic() + 60
        while not hung.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        while hung.exists() and time.monotonic() < deadline:  # until both are seen
            seen[:] = _device_processes(edge.root)
            if any("tegrastats" in p for p in seen) and any("time.sleep(3600)" in p for p in seen):
                break
            time.sleep(0.05)

    watcher = threading.Thread(target=look_while_it_hangs, daemon=True)
    watcher.start()
    assert cli.main(_argv(edge, cache_dir)) == 1
    watcher.join()
    capsys.readouterr()
    # it hung in the timed run, with tegrastats beside it
    assert any("time.sleep(3600)" in p for p in seen) and any("tegrastats" in p for p in seen)
    (run,) = _run_dirs(edge.results)
    cell = _records(run)[GPU_CELL.format("fp32")]
    assert cell["status"] == "timeout", cell
    assert cell["reason"] == (
        "timing with trtexec did not finish within the cell timeout (5 s); its processes on "
        "the device were stopped"
    )
    assert cell["phase"] == "timed loop"
    assert _no_device_processes(edge) == []


# 6. Ctrl-C


def test_ctrl_c_stops_the_cell_on_the_device_and_says_how_to_resume(
    ssh_server, tmp_path: Path, cache_dir: Path
) -> None:
    edge = start_edge_host(ssh_server, tmp_path)
    _suite(edge, measure=LONG_MEASURE)
    with _cli_process(edge, cache_dir) as proc:
        _wait_for(lambda: _timing(edge), "the timed run", proc)
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal does: to the whole job
        out, err = proc.communicate(timeout=60)
    (run,) = _run_dirs(edge.results)
    assert proc.returncode == 130, f"{out}\n{err}"
    assert "Traceback" not in err
    assert (
        f"interrupted: the cell on jetson was stopped; every finished cell is kept in {run}; "
        f"finish with: python cli.py run --resume {run} --host jetson --config {edge.suite}"
    ) in _one_line(out)
    assert _records(run) == {}
    assert _no_device_processes(edge) == []


# 7. power-mode sweeps put the board back


def _mode(root: Path) -> str:
    return (root / "var/lib/nvpmodel/status").read_text().split()[0]


@pytest.mark.slow
def test_a_power_mode_sweep_runs_once_per_mode_and_restores_the_board(
    ssh_server, tmp_path: Path, cache_dir: Path, capsys, monkeypatch
) -> None:
    monkeypatch.setattr("bench.remote.sweep.SETTLE_S", 0.0)
    edge = start_edge_host(ssh_server, tmp_path)
    assert _mode(edge.root) == "pmode:0000"  # MAXN; mode 2 is MODE_30W (etc/nvpmodel.conf)
    _suite(edge, suite="")
    assert cli.main(_argv(edge, cache_dir, "--power-modes", "0,2")) == 0
    out = _one_line(capsys.readouterr().out)
    assert _mode(edge.root) == "pmode:0000"
    assert "restored jetson: nvpmodel mode MAXN" in out
    modes = {}
    for run in _run_dirs(edge.results):
        environment = json.loads((run / ENVIRONMENT_FILE).read_text())
        mode = environment["power"]["state"]["jetson"]["nvpmodel"]
        modes[run.name.rsplit("-", 1)[1]] = (mode["id"], mode["name"])
        assert _records(run)[GPU_CELL.format("fp32")]["status"] == "ok"
        # the machines table at the end names each run by its board and mode
        assert f"({mode['name']}, jetson_clocks off): {run.name}" in out
    assert modes == {"mode0": (0, "MAXN"), "mode2": (2, "MODE_30W")}


@pytest.mark.slow
def test_a_sweep_that_loses_the_connection_still_restores_the_board(
    ssh_server, tmp_path: Path, cache_dir: Path, capsys, monkeypatch
) -> None:
    monkeypatch.setattr("bench.remote.sweep.SETTLE_S", 0.0)
    edge = start_edge_host(ssh_server, tmp_path)
    _suite(edge, suite="", measure=LONG_MEASURE)

    def drop_in_the_second_run() -> None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if _mode(edge.root) == "pmode:0002" and _timing(edge):
                edge.server.drop_connections()
                return
            time.sleep(0.02)

    dropper = threading.Thread(target=drop_in_the_second_run, daemon=True)
    dropper.start()
    code = cli.main(_argv(edge, cache_dir, "--power-modes", "0,2"))
    dropper.join()
    captured = capsys.readouterr()
    assert code == 2, captured.out
    assert _mode(edge.root) == "pmode:0000"
    assert "restored jetson: nvpmodel mode MAXN" in _one_line(captured.out)
    assert captured.err.startswith("error: lost the connection to jetson during ")
    assert captured.err.count("\n") == 1
    (run,) = _run_dirs(edge.results)  # mode 2's run measured nothing: no folder left
    assert run.name.endswith("-mode0")
    assert _records(run)[GPU_CELL.format("fp32")]["status"] == "ok"
