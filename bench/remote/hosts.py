"""A device as the user names it on the command line: a ``[hosts.NAME]`` table of the
suite file, or an SSH address with the defaults."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from bench.harness.config import HostConfig, load_config
from bench.remote.ssh import Address


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


def resolve_host(target: str, config_path: Path, mode: str | None = None) -> Host:
    """``target`` as ``[hosts.TARGET]`` of the suite file, else as ``[user@]host[:port]``
    (or an ssh config alias) with the defaults; ``mode`` overrides the table's."""
    hosts = load_config(config_path).hosts if config_path.is_file() else {}
    suite = None
    if target in hosts:
        host, suite = hosts[target], config_path
    else:
        Address.parse(target)  # a bad address is one line here
        host = HostConfig(address=target)
    if mode is not None:
        host = host.model_copy(update={"mode": mode})
    return Host(target, host, suite)
