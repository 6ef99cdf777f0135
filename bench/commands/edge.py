"""``run --host``: the suite on a device over SSH, written here as one ordinary results
folder whose environment.json is the device's.

Tools mode (no Python needed on the device): models are exported and their inputs and
reference outputs made here, copied once, and each cell runs under the device's own
trtexec or benchmark_app (bench.remote.tools). Agent mode: deploybench on the device runs
the suite itself; its progress streams here and its run folder is copied back.
Power-mode sweeps run the suite once per nvpmodel mode and jetson_clocks state, and put
the board back as it was at the end, after Ctrl-C and after a lost connection.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.commands.run import execute
from bench.core.errors import UserError
from bench.harness.config import HostConfig, load_config
from bench.harness.environment import fingerprint
from bench.harness.results import ENVIRONMENT_FILE, RUN_FILE, RunDir
from bench.harness.start import ResumeRequest, Run, RunRequest, new_run, resumed_run
from bench.power.state import state_changes
from bench.remote.boards import tools_plan
from bench.remote.hosts import Host
from bench.remote.probe import Device, probe
from bench.remote.ssh import Address, ConnectionLost, RemoteError, Ssh
from bench.remote.tools import ToolsMode
from bench.views.machines_report import machines_report
from runtimes.tensorrt.build import TrtVersion
from runtimes.tensorrt.trtexec_driver import max_onnx_opset


@contextmanager
def connected(host: Host) -> Iterator[tuple[Ssh, Device]]:
    """An SSH connection to ``host`` and what the device has; the connection is closed
    at the end."""
    config = host.config
    ssh = Ssh(
        Address.parse(config.address),
        Path(config.ssh_config).expanduser() if config.ssh_config else None,
        tuple(config.ssh_options),
        config.connect_timeout_s,
    )
    try:
        yield ssh, probe(ssh, config)
    finally:
        ssh.close()


def chosen_mode(host: Host, device: Device) -> str:
    """``tools`` or ``agent``: as configured, or (``auto``) agent where deploybench
    answers on the device."""
    mode = host.config.mode
    if mode == "agent" and device.deploybench is None:
        raise RemoteError(
            f"'{host.config.deploybench} --version' does not answer on {host.name}: install "
            "deploybench there (or set deploybench in [hosts]), or use --remote-mode tools"
        )
    if mode == "auto":
        return "agent" if device.deploybench else "tools"
    return mode


@dataclass
class EdgeRequest:
    """``run --host``: the run as asked, the device, and the sweep (empty: none)."""

    run: RunRequest
    host: Host
    power_modes: list[str]
    clocks: list[str]
    show_progress: bool = True
    hw_dirs: tuple[Path, ...] = ()


def edge_run(request: EdgeRequest, console: Console) -> int:
    """Run the suite on the device (once per power mode of a sweep); the exit code."""
    with connected(request.host) as (ssh, device):
        mode = chosen_mode(request.host, device)
        console.print(f"{request.host.name}: {describe(device)}; {mode} mode")
        if not request.power_modes and not request.clocks:
            return _run_once(request, ssh, device, mode, console)
        from bench.remote.sweep import sweep

        dirs: list[Path] = []
        try:
            code = sweep(
                ssh,
                device,
                request.host.config,
                request.power_modes,
                request.clocks,
                lambda label, now: _run_once(request, ssh, now, mode, console, label, dirs),
                console,
            )
        except ConnectionLost as exc:
            done = [path for path in dirs if path.exists()]
            if done:
                machines_report(done, [], None, console)
            kept = f"; the power modes done are in {', '.join(map(str, done))}" if done else ""
            raise ConnectionLost(f"{exc}{kept}") from None
        if dirs:
            machines_report(dirs, [], None, console)
        return code


def describe(device: Device) -> str:
    """One line: the board (or CPU), its L4T release and power mode, and its tools."""
    parts = [device.jetson["model"] if device.jetson else f"{device.cpu} ({device.architecture})"]
    if device.jetson and device.jetson.get("release"):
        parts.append(f"L4T {device.jetson['release']['l4t']}")
    if device.jetson and device.jetson.get("nvpmodel"):
        parts.append(f"power mode {device.jetson['nvpmodel']['name']}")
    tools = [f"TensorRT {device.tensorrt}"] if device.tensorrt else []
    tools += ["tegrastats"] if device.tegrastats else []
    tools += ["benchmark_app"] if device.benchmark_app else []
    tools += [f"deploybench {device.deploybench}"] if device.deploybench else []
    return ", ".join(parts) + (f"; {', '.join(tools)}" if tools else "; no tools found")


def _run_once(
    request: EdgeRequest,
    ssh: Ssh,
    device: Device,
    mode: str,
    console: Console,
    label: str | None = None,
    dirs: list[Path] | None = None,
) -> int:
    run_request = request.run
    if label:
        config = load_config(run_request.config_path, run_request.profile, run_request.overrides)
        overrides = {k: dict(v) for k, v in run_request.overrides.items()}
        overrides.setdefault("suite", {})["name"] = f"{config.suite.name}-{label}"
        run_request = replace(run_request, overrides=overrides)
    if mode == "agent":
        from bench.remote.agent import agent_run

        path, code = agent_run(ssh, device, request.host, run_request, console)
    else:
        run = _tools_run(run_request, request.host, device)
        path = run.run_dir.path
        code = _execute_tools(run, ssh, device, request, console)
    if dirs is not None and path is not None:
        dirs.append(path)
    return code


def _tools_run(request: RunRequest, host: Host, device: Device) -> Run:
    """A new local run folder for a tools-mode run on ``device``: exported at an opset
    its TensorRT parses, planned for what the device has, fingerprinted as the device."""
    overrides = {k: dict(v) for k, v in request.overrides.items()}
    config = load_config(request.config_path, request.profile, overrides)
    highest = max_onnx_opset(TrtVersion.parse(device.tensorrt)) if device.tensorrt else None
    if highest is not None:
        if request.onnx is not None:
            _check_onnx_opset(request.onnx, highest, device, host)
        elif config.suite.opset > highest:
            overrides.setdefault("suite", {})["opset"] = highest
    run = new_run(replace(request, overrides=overrides))
    _record_remote(run.run_dir, host, device, "tools")
    run.planned = tools_plan(device, run.planned)
    return run


def _execute_tools(
    run: Run, ssh: Ssh, device: Device, request: EdgeRequest, console: Console
) -> int:
    hint = request.host.resume_hint(run.run_dir.path)
    with tempfile.TemporaryDirectory(prefix="deploybench-edge-") as scratch:
        tools = ToolsMode(ssh, device, request.host.config, Path(scratch), run.config.suite.power)
        end = partial(_device_end_state, ssh, request.host.config)
        try:
            return execute(run, console, request.show_progress, request.hw_dirs, tools.measure, end)
        except ConnectionLost as exc:
            if not run.run_dir.path.exists():  # nothing measured: no folder left behind
                raise
            raise ConnectionLost(
                f"{exc}; the cells done are kept in {run.run_dir.path}: finish with: {hint}"
            ) from None
        except KeyboardInterrupt:  # said here, where the run is known; cli.py exits 130
            console.print(
                f"\ninterrupted: the cell on {request.host.name} was stopped; every finished "
                f"cell is kept in {run.run_dir.path}; finish with: {hint}"
            )
            raise


def _check_onnx_opset(path: Path, highest: int, device: Device, host: Host) -> None:
    from exporters.onnx_file import written_opset

    opset = written_opset(path) or 0
    if opset > highest:
        raise UserError(
            f"{path.name} is ONNX opset {opset}, and TensorRT {device.tensorrt} on {host.name} "
            f"parses up to opset {highest}: export it again at opset {highest} or lower"
        )


def _record_remote(run_dir: RunDir, host: Host, device: Device, mode: str, **extra: Any) -> None:
    """The device's fingerprint as the run's environment.json (with this machine, the
    controller, beside it), and the host in run.json for ``--resume``."""
    environment = device.environment()
    here = fingerprint()
    environment["remote"].update(
        mode=mode,
        address=host.config.address,
        controller={"cpu": here["cpu"]["model"], "libraries": here["libraries"]},
    )
    run_dir.write_json(ENVIRONMENT_FILE, environment)
    stored = run_dir.read_json(RUN_FILE)
    stored["remote"] = {"host": host.name, "address": host.config.address, "mode": mode, **extra}
    run_dir.write_json(RUN_FILE, stored)


def _device_end_state(ssh: Ssh, host: HostConfig, environment_file: Path) -> tuple[list, list]:
    """Read the device's power state again and record how it changed over the run."""
    environment = json.loads(environment_file.read_text())
    start = environment.get("power", {}).get("state") or {}
    end = probe(ssh, host).jetson
    changes = state_changes(start, {"jetson": end}) if start.get("jetson") else []
    environment["power"]["end"] = {"jetson": end}
    environment["power"]["changes"] = changes
    environment_file.write_text(json.dumps(environment, indent=2, default=str) + "\n")
    return changes, []


def edge_resume(request: ResumeRequest, host: Host, console: Console, progress: bool) -> int:
    """Finish a run made with ``--host`` on the same device."""
    stored = RunDir.existing(request.path).read_json(RUN_FILE).get("remote")
    if not isinstance(stored, dict) or stored.get("host") != host.name:
        was = stored.get("host") if isinstance(stored, dict) else None
        raise UserError(
            f"{request.path} was run on {was or 'this machine'}, not {host.name}: "
            + (f"resume it with --host {was}" if was else "resume it without --host")
        )
    with connected(host) as (ssh, device):
        if stored.get("mode") == "agent":
            from bench.remote.agent import agent_resume

            return agent_resume(ssh, host, request.path, stored, console)
        run = resumed_run(request)
        _check_same_power_mode(run, device, host)
        run.planned = tools_plan(device, run.planned)
        edge = EdgeRequest(RunRequest(Path("bench.toml")), host, [], [], progress)
        return _execute_tools(run, ssh, device, edge, console)


def _check_same_power_mode(run: Run, device: Device, host: Host) -> None:
    """UserError when the board is in another power mode (or jetson_clocks state) than
    the run began in: its remaining cells would measure another machine."""
    environment = run.run_dir.read_json(ENVIRONMENT_FILE)
    start = ((environment.get("power") or {}).get("state") or {}).get("jetson")
    if not start or not device.jetson:
        return
    changes = state_changes({"jetson": start}, {"jetson": device.jetson})
    if changes:
        mode = (start.get("nvpmodel") or {}).get("id")
        raise UserError(
            f"{run.run_dir.path} was measured in another power state than {host.name} is in "
            f"now ({'; '.join(changes)}): set it back first (sudo nvpmodel -m {mode}; "
            "jetson_clocks as it was), then resume"
        )
