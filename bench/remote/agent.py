"""Agent mode: deploybench installed on the device runs the suite itself (exports, cells,
report there); its progress lines stream here as they come, and its run folder is copied
back into this machine's results folder, environment.json and all.

The suite file is copied as it is and the command-line choices are passed on as flags,
so the device runs what ``run`` would run here. User files (``--onnx``, ``--inputs``,
``--calibration-data``) are copied with it; a ``--model`` factory must be importable
on the device.
"""

from __future__ import annotations

import importlib.metadata
import re
import shlex
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from bench.core.errors import UserError
from bench.harness.overrides import flags_for
from bench.harness.results import ENVIRONMENT_FILE, RUN_FILE, RunDir
from bench.harness.start import RunRequest, Setup
from bench.remote.device import Device
from bench.remote.hosts import DeviceExecutor, Host, stored_remote
from bench.remote.ssh import ConnectionLost, RemoteError, Ssh

_HERE = ("suite.results_dir", "quantize.calibration_data", "dataset.path")
"""Keys whose value names a path on this machine: the device's run keeps its own results
folder, and the calibration file and the dataset are copied over."""
_RUN_DIR = re.compile(r"^run directory: (\S.*)$")


class AgentExecutor(DeviceExecutor):
    """A device over SSH where deploybench runs the one loop itself: the run is handed
    over, its progress streamed here and its folder copied back."""

    name = "ssh-agent"
    mode = "agent"
    hands_over = True

    def hand_over(self, setup: Setup, console: Console) -> tuple[Path | None, int]:
        return agent_run(self.ssh, self.device, self.host, setup, console)

    def hand_over_resume(self, path: Path, console: Console) -> int:
        return agent_resume(self.ssh, self.host, path, stored_remote(path), console)


def agent_run(
    ssh: Ssh, device: Device, host: Host, setup: Setup, console: Console
) -> tuple[Path | None, int]:
    """Run ``setup`` with deploybench on the device; the local copy of its run folder
    (None when it made none) and its exit code."""
    request = setup.request
    _check_version(device, host, console)
    work = device.path(host.config.workdir)
    stage = f"{work}/agent/{time.strftime('%Y%m%d-%H%M%S')}"
    with tempfile.TemporaryDirectory(prefix="deploybench-agent-") as scratch:
        files = Path(scratch)
        if not request.config_path.is_file():
            raise UserError(f"config file not found: {request.config_path} (pass --config PATH)")
        (files / "suite.toml").write_bytes(request.config_path.read_bytes())
        argv = [
            "run",
            "--config",
            f"{stage}/suite.toml",
            "--results-dir",
            f"{work}/results",
            *_flags(request, files, stage),
            *_dataset_flags(setup.config.dataset.path, files, stage),
        ]
        ssh.push(files, stage)
    command = " ".join([host.config.deploybench, *map(shlex.quote, argv)])
    results = Path(setup.config.suite.results_dir)
    remote = _remote(host, _named_again(argv))
    remote_dir, code = _stream(ssh, host, command, console, results, remote)
    if remote_dir is None:
        return None, code
    return _fetch(ssh, host, remote_dir, results, remote), code


def agent_resume(ssh: Ssh, host: Host, path: Path, stored: dict[str, Any], console: Console) -> int:
    """Finish, on the device, the agent run copied into ``path``, and copy it back."""
    remote_dir = stored.get("run_dir")
    if not isinstance(remote_dir, str):
        raise UserError(f"{path / RUN_FILE} names no run folder on {host.name}: start a new run")
    again = stored.get("resume") or []
    if not isinstance(again, list) or not all(isinstance(flag, str) for flag in again):
        raise UserError(f"{path / RUN_FILE} is unreadable (its resume flags): start a new run")
    argv = ["run", "--resume", remote_dir, *again]
    command = " ".join([host.config.deploybench, *map(shlex.quote, argv)])
    remote = _remote(host, again)
    _, code = _stream(ssh, host, command, console, path.parent, remote)
    _fetch(ssh, host, remote_dir, path.parent, remote)
    return code


NAMED_AGAIN = ("--onnx", "--inputs", "--model", "--weights", "--dataset")
"""The flags ``--resume`` asks for again (it reads no file a results folder names): the
device's run is resumed with the device's copies of them."""


def _named_again(argv: list[str]) -> list[str]:
    """The flags of ``argv`` that ``--resume`` needs given again, with their values."""
    again: list[str] = []
    for flag, value in zip(argv, argv[1:], strict=False):
        if flag in NAMED_AGAIN:
            again += [flag, value]
    return again


def _remote(host: Host, again: list[str]) -> dict[str, Any]:
    """run.json's ``remote``: the device, the mode and the flags its resume takes."""
    return {"host": host.name, "address": host.config.address, "mode": "agent", "resume": again}


def _check_version(device: Device, host: Host, console: Console) -> None:
    try:
        here = importlib.metadata.version("deploybench")
    except importlib.metadata.PackageNotFoundError:
        here = "not installed"
    if device.deploybench != here:
        console.print(
            f"note: {host.name} runs deploybench {device.deploybench}, this machine {here}"
        )


def _flags(request: RunRequest, files: Path, stage: str) -> list[str]:
    """The ``run`` flags that reproduce ``request`` on the device (user files copied into
    ``files``, which lands in ``stage``)."""
    flags = ["--profile", request.profile] if request.profile else []
    tables = ("suite", "quantize", "dataset")
    flags += flags_for({t: request.overrides.get(t, {}) for t in tables}, _HERE)
    calibration = request.overrides.get("quantize", {}).get("calibration_data")
    if calibration is not None:
        flags += ["--calibration-data", _copied(Path(calibration), files, stage)]
    if request.onnx:
        flags += ["--onnx", _copied(request.onnx, files, stage)]
    if request.inputs:
        flags += ["--inputs", _copied(request.inputs, files, stage)]
    if request.factory:
        flags += ["--model", request.factory]
    if request.weights:  # a weights file goes with the run; a name is the device's to fetch
        weights = Path(request.weights).expanduser()
        flags += [
            "--weights",
            _copied(weights, files, stage) if weights.is_file() else request.weights,
        ]
    for shape in request.shapes:
        flags += ["--shape", shape]
    for value_range in request.ranges:
        flags += ["--input-range", value_range]
    return flags


def _dataset_flags(dataset: str | None, files: Path, stage: str) -> list[str]:
    """``--dataset`` naming the run's dataset (given as a flag or in the suite file),
    copied to the device with the run: an ``.npz``, or an image folder whole."""
    if dataset is None:
        return []
    path = Path(dataset)
    if path.is_dir():
        shutil.copytree(path, files / "dataset" / path.name)
        return ["--dataset", f"{stage}/dataset/{path.name}"]
    return ["--dataset", _copied(path, files, stage)]


def _copied(path: Path, files: Path, stage: str) -> str:
    if not path.is_file():
        raise UserError(f"{path} does not exist: pass an existing file")
    (files / path.name).write_bytes(path.read_bytes())
    return f"{stage}/{path.name}"


def _stream(
    ssh: Ssh, host: Host, command: str, console: Console, results: Path, remote: dict[str, Any]
) -> tuple[str | None, int]:
    """Run ``command`` on the device, each line it prints shown here as it comes; the
    run folder it named and its exit code. An error line of its own (exit 2) is a
    UserError naming the device. Interrupted (Ctrl-C, a lost connection), what the
    device finished is copied into ``results`` where it can be, and the way to go on
    is said."""
    found: list[str] = []
    last: list[str] = []

    def show(line: str) -> None:
        match = _RUN_DIR.match(line.strip())
        if match:
            found.append(match[1].strip())
        if line.strip():
            last.append(line.strip())
        console.print(f"[dim]{escape(host.name)}>[/dim] {escape(line)}", highlight=False)

    try:
        code = ssh.stream(command, show, "the agent run")
    except KeyboardInterrupt:
        if found:
            local = _fetch_or_stub(ssh, host, found[0], results, remote)
            console.print(
                f"\ninterrupted: the run on {host.name} was stopped; its finished cells are "
                f"in {local}; finish with: {host.resume_hint(local)}"
            )
        raise
    except ConnectionLost as exc:
        if not found:
            raise
        local = _stub(found[0], results, remote)
        raise ConnectionLost(
            f"{exc}; the cells done stay in {found[0]} on the device: finish with: "
            f"{host.resume_hint(local)}"
        ) from None
    if code == 2 and not found:
        errors = [line for line in last if line.startswith("error:")]
        raise RemoteError(f"{host.name}: {(errors or last or ['exit status 2'])[-1]}")
    if code == 127:
        raise RemoteError(f"{host.name}: {host.config.deploybench} is not a command there")
    return (found[0] if found else None), code


def _fetch_or_stub(
    ssh: Ssh, host: Host, remote_dir: str, results: Path, remote: dict[str, Any]
) -> Path:
    """``_fetch``, or where the copy fails, ``_stub``."""
    try:
        return _fetch(ssh, host, remote_dir, results, remote)
    except RemoteError:
        return _stub(remote_dir, results, remote)


def _stub(remote_dir: str, results: Path, remote: dict[str, Any]) -> Path:
    """A local run folder that names the device's (its run.json only), for ``--resume``
    to finish it there and copy it back."""
    local = results / remote_dir.rstrip("/").rpartition("/")[2]
    local.mkdir(parents=True, exist_ok=True)
    if not (local / RUN_FILE).is_file():
        RunDir(local).write_json(RUN_FILE, {"remote": {**remote, "run_dir": remote_dir}})
    return local


def _fetch(ssh: Ssh, host: Host, remote_dir: str, results: Path, remote: dict[str, Any]) -> Path:
    """Copy the device's run folder into ``results`` and record where it came from in
    its run.json and environment.json."""
    parent, _, name = remote_dir.rstrip("/").rpartition("/")
    ssh.pull(parent, [name], results, 3600)
    local = results / name
    if not (local / RUN_FILE).is_file():
        raise RemoteError(f"{host.name}: the run folder {remote_dir} did not come back")
    run_dir = RunDir(local)
    stored = run_dir.read_json(RUN_FILE)
    stored["remote"] = {**remote, "run_dir": remote_dir}
    run_dir.write_json(RUN_FILE, stored)
    environment = run_dir.read_json(ENVIRONMENT_FILE)
    environment["remote"] = {"host": host.name, "address": host.config.address, "mode": "agent"}
    run_dir.write_json(ENVIRONMENT_FILE, environment)
    return local
