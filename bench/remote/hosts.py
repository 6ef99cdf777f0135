"""A device as the user names it on the command line (a ``[hosts.NAME]`` table of the
suite file, or an SSH address with the defaults), the connection to it, and what the
executors that measure on it share (bench.remote.tools, bench.remote.agent)."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from rich.console import Console

from bench.core.errors import UserError
from bench.harness.config import BenchConfig, HostConfig, load_config
from bench.harness.executor import Executor, Target
from bench.harness.results import RUN_FILE, RunDir
from bench.remote.device import Device
from bench.remote.probe import probe
from bench.remote.ssh import Address, Ssh


@dataclass(frozen=True)
class Host:
    """A device: the name the user gave and its settings; ``suite``: the suite file
    whose ``[hosts]`` table named it (None: an address)."""

    name: str
    config: HostConfig
    suite: Path | None = None

    def resume_hint(self, path: Path) -> str:
        """The command that finishes an interrupted run in ``path`` on this device (with
        the suite file that names it, where that is not ./bench.toml)."""
        command = (
            f"python cli.py run --resume {shlex.quote(str(path))} --host {shlex.quote(self.name)}"
        )
        if self.suite is not None and self.suite != Path("bench.toml"):
            command += f" --config {shlex.quote(str(self.suite))}"
        return command


def resolve_host(
    target: str, hosts: dict[str, HostConfig], suite: Path, mode: str | None = None
) -> Host:
    """``target`` as ``[hosts.TARGET]`` of the suite file ``suite`` (its tables:
    ``hosts``), else as ``[user@]host[:port]`` (or an ssh config alias) with the
    defaults; ``mode`` overrides the table's."""
    if target in hosts:
        host, named_in = hosts[target], suite
    else:
        Address.parse(target)  # a bad address is one line here
        host, named_in = HostConfig(address=target), None
    if mode is not None:
        host = host.model_copy(update={"mode": mode})
    return Host(target, host, named_in)


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


def stored_remote(path: Path) -> dict[str, Any]:
    """run.json's ``remote``: the device a run was measured on ({} when none)."""
    stored = RunDir.existing(path).read_json(RUN_FILE).get("remote")
    return stored if isinstance(stored, dict) else {}


class DeviceExecutor(Executor):
    """A device over SSH, in one ``mode`` (tools or agent)."""

    mode: ClassVar[str]

    def __init__(self, ssh: Ssh, device: Device, host: Host) -> None:
        self.ssh = ssh
        self.device = device
        self.host = host

    @classmethod
    def check_target(cls, target: Target, resumed: Path | None) -> None:
        if not target.host:
            raise UserError(
                f"the {cls.name} executor measures on a device: give --host NAME "
                f"(--remote-mode {cls.mode})"
            )
        if resumed is None:
            return
        was = stored_remote(resumed).get("host")
        if was != target.host:
            raise UserError(
                f"{resumed} was run on {was or 'this machine'}, not "
                f"{target.host or 'this machine'}: "
                + (f"resume it with --host {was}" if was else "resume it without --host")
            )

    @classmethod
    @contextmanager
    def opened(
        cls, target: Target, config: BenchConfig | None, console: Console
    ) -> Iterator[Executor]:
        """Connected to ``target.host`` as the suite file ``target.config_path`` names it
        (``--resume``: a results folder names no device to connect to)."""
        path = target.config_path
        hosts = load_config(path).hosts if path.is_file() else {}
        host = resolve_host(str(target.host), hosts, path, cls.mode)
        with connected(host) as (ssh, device):
            yield cls(ssh, device, host)

    def resume_hint(self, path: Path) -> str:
        return self.host.resume_hint(path)
