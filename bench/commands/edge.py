"""``run --host``: the suite on a device over SSH, written here as one ordinary results
folder whose environment.json is the device's.

Tools mode (no Python needed on the device, bench.remote.tools): models are exported and
their inputs and reference outputs made here, copied once, and each cell runs under the
device's own trtexec or benchmark_app. Agent mode (bench.remote.agent): deploybench on the
device runs the suite itself; its progress streams here and its run folder is copied back.
Power-mode sweeps run the suite once per nvpmodel mode and jetson_clocks state, and put
the board back as it was at the end, after Ctrl-C and after a lost connection.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from rich.console import Console

from bench.commands.execution import Display, execute
from bench.commands.executors import get_executor
from bench.harness.executor import Executor, Target
from bench.harness.start import Setup
from bench.remote.device import Device
from bench.remote.device_tools import DEVICE_TOOLS
from bench.remote.hosts import Host, connected, resolve_host
from bench.remote.ssh import ConnectionLost, RemoteError
from bench.views.machines_report import machines_report

AGENT_PYTHON = (3, 10)
"""The oldest Python deploybench runs on (pyproject's requires-python): JetPack 4 ships
3.6 and JetPack 5 ships 3.8, so agent mode cannot run there."""


def chosen_mode(host: Host, device: Device, console: Console | None = None) -> str:
    """``tools`` or ``agent``: as configured, or (``auto``) agent where deploybench
    answers on the device. A device whose Python is older than deploybench needs is said
    in one line: ``auto`` goes on in tools mode, ``agent`` stops there."""
    mode = host.config.mode
    too_old = _python_too_old(device)
    if mode == "agent" and device.deploybench is None:
        raise RemoteError(
            (too_old + ": use --remote-mode tools")
            if too_old
            else f"'{host.config.deploybench} --version' does not answer on {host.name}: "
            "install deploybench there (or set deploybench in [hosts]), or use "
            "--remote-mode tools"
        )
    if mode == "auto":
        if device.deploybench is None and too_old and console is not None:
            console.print(f"{too_old}: tools mode")
        return "agent" if device.deploybench else "tools"
    return mode


def _python_too_old(device: Device) -> str | None:
    """Why deploybench cannot run on ``device`` (its Python), None when it can or the
    probe found no Python."""
    try:
        version = tuple(int(part) for part in (device.python or "").split(".")[:2])
    except ValueError:
        return None
    if len(version) < 2 or version >= AGENT_PYTHON:
        return None
    wanted = ".".join(map(str, AGENT_PYTHON))
    return (
        f"agent mode needs Python {wanted} or newer on the device, and {device.name} has "
        f"{device.python} (JetPack 4 ships 3.6, JetPack 5 3.8)"
    )


def edge_run(setup: Setup, target: Target, console: Console, display: Display) -> int:
    """Run the suite on the device (once per power mode of a sweep); the exit code."""
    host = resolve_host(
        str(target.host), setup.config.hosts, target.config_path, target.remote_mode
    )
    with connected(host) as (ssh, device):
        mode = chosen_mode(host, device, console)
        console.print(f"{host.name}: {describe(device)}; {mode} mode")
        executor_class = get_executor(f"ssh-{mode}")
        if not target.power_modes and not target.clocks:
            return execute(setup, executor_class(ssh, device, host), console, display)[1]
        from bench.remote.sweep import sweep

        dirs: list[Path] = []

        def run_one(label: str, now: Device) -> int:
            path, code = execute(
                labelled(setup, label), executor_class(ssh, now, host), console, display
            )
            if path is not None:
                dirs.append(path)
            return code

        try:
            code = sweep(
                ssh,
                device,
                host.config,
                list(target.power_modes),
                list(target.clocks),
                run_one,
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


@contextmanager
def device_executor(target: Target, setup: Setup, console: Console) -> Iterator[Executor]:
    """The executor of the device ``target.host`` names, connected for as long as the
    caller measures (``tune``: one run per configuration)."""
    host = resolve_host(
        str(target.host), setup.config.hosts, target.config_path, target.remote_mode
    )
    with connected(host) as (ssh, device):
        mode = chosen_mode(host, device, console)
        console.print(f"{host.name}: {describe(device)}; {mode} mode")
        yield get_executor(f"ssh-{mode}")(ssh, device, host)


def labelled(setup: Setup, label: str) -> Setup:
    """``setup`` named for one step of a sweep (``NAME-LABEL``), for this machine's run
    folder and for the flags agent mode passes on."""
    name = f"{setup.config.suite.name}-{label}"
    overrides = dict(setup.request.overrides)
    overrides["suite"] = {**overrides.get("suite", {}), "name": name}
    suite = setup.config.suite.model_copy(update={"name": name})
    return replace(
        setup,
        request=replace(setup.request, overrides=overrides),
        config=setup.config.model_copy(update={"suite": suite}),
    )


def describe(device: Device) -> str:
    """One line: the board (or CPU), its L4T release and power mode, and its tools."""
    parts = [device.jetson["model"] if device.jetson else f"{device.cpu} ({device.architecture})"]
    if device.jetson and device.jetson.get("release"):
        parts.append(f"L4T {device.jetson['release']['l4t']}")
    if device.jetson and device.jetson.get("nvpmodel"):
        parts.append(f"power mode {device.jetson['nvpmodel']['name']}")
    tools = [found for tool in DEVICE_TOOLS if (found := tool.found(device))]
    tools += ["tegrastats"] if device.tegrastats else []
    tools += [f"deploybench {device.deploybench}"] if device.deploybench else []
    return ", ".join(parts) + (f"; {', '.join(tools)}" if tools else "; no tools found")
