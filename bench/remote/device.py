"""A device as its probe found it (``Device``), and the device side of tools mode: its
folders, the models copied to it, and one guarded command with the cell's time left."""

from __future__ import annotations

import re
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.core.cell import Cell
from bench.core.spec import PreparedModel
from bench.harness.config import BenchConfig, HostConfig
from bench.remote.bundle import Bundle, write_bundle
from bench.remote.ssh import RemoteError, Ssh, telling_line
from runtimes.tensorrt.build import TrtVersion

COPY_TIMEOUT_S = 3600.0


@dataclass
class Device:
    """A probed device. ``programs`` and ``libraries``: what each device tool's probe
    section found (bench.remote.device_tools), by name, None where the device lacks it
    (``trtexec``'s path, ``tensorrt``'s version, …); ``tegrastats``, ``jetson_clocks``
    and ``deploybench`` likewise. ``jetson`` is the board's power state
    (bench.power.jetson_board's shape) on a Jetson, else None."""

    name: str
    architecture: str
    kernel: str
    os: str
    cpu: str
    cores: int | None
    memory_gib: float | None
    root: bool
    home: str
    python: str | None
    jetson: dict[str, Any] | None
    online_cpus: str | None = None
    """The kernel's list of online CPUs (``0-1``): an nvpmodel mode switches cores off."""
    compatible: str = ""
    """/proc/device-tree/compatible, its entries space-separated (the module's part number
    names the board where the model string does not: bench.remote.boards)."""
    programs: dict[str, str | None] = field(default_factory=dict)
    libraries: dict[str, str | None] = field(default_factory=dict)
    tegrastats: str | None = None
    jetson_clocks: str | None = None
    deploybench: str | None = None
    free_mib: float | None = None
    raw: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def tensorrt(self) -> str | None:
        """The TensorRT version trtexec's banner printed (None: no trtexec, or no banner)."""
        return self.libraries.get("tensorrt")

    def path(self, path: str) -> str:
        """``path`` on the device with a leading ``~`` made its home (absolute paths as
        they are)."""
        if path == "~" or path.startswith("~/"):
            return (self.home.rstrip("/") or "") + path[1:]
        return path

    @property
    def sudo(self) -> str:
        """The prefix that runs a command as root on the device (``sudo -n``: never a
        password prompt), empty when the session is root already."""
        return "" if self.root else "sudo -n "

    def environment(self) -> dict[str, Any]:
        """The device's fingerprint, in environment.json's shape (bench.harness.environment)."""
        gpus = []
        if self.jetson and self.tensorrt:
            gpus = [{"name": f"{self.jetson['model']} (integrated)", "integrated": True}]
        return {
            "cpu": {
                "model": self.cpu,
                "architecture": self.architecture,
                "physical_cores": self.cores,
                "logical_cores": self.cores,
                "usable_cores": self.cores,
                "online": self.online_cpus,
            },
            "memory_gib": self.memory_gib,
            "gpus": gpus,
            "os": f"{self.os} ({self.kernel})",
            "python": self.python,
            "libraries": {k: v for k, v in self.libraries.items() if v},
            "power": {"state": {"jetson": self.jetson} if self.jetson else {}},
            "remote": {
                "host": self.name,
                "tools": {
                    **self.programs,
                    "tegrastats": self.tegrastats,
                    "jetson_clocks": self.jetson_clocks,
                    "deploybench": self.deploybench,
                },
            },
        }


class CellFailed(Exception):
    """A tool on the device failed: the cell is ``failed`` in ``phase`` with this reason."""

    def __init__(self, reason: str, phase: str) -> None:
        super().__init__(reason)
        self.phase = phase


class CellTimedOut(CellFailed):
    """The cell's time ran out on the device in ``phase``; its processes were stopped."""


@dataclass
class Workspace:
    """The device's folders: copied models, the engine cache, and per-run cell folders."""

    root: str

    def model(self, bundle: Bundle) -> str:
        return f"{self.root}/models/{bundle.digest}"

    @property
    def engines(self) -> str:
        return f"{self.root}/engines"

    def cell(self, run_id: str, cell: Cell, repetition: int) -> str:
        slug = re.sub(r"[^A-Za-z0-9_.,+-]", "_", cell.key.replace(":", "-"))
        run = re.sub(r"[^A-Za-z0-9_.-]", "_", run_id)
        return f"{self.root}/runs/{run}/{slug}-r{repetition}"


class DeviceWork:
    """A device in tools mode: the connection, what it has, its folders, and the model
    bundles copied to it in this run."""

    def __init__(
        self, ssh: Ssh, device: Device, host: HostConfig, scratch: Path, power: str
    ) -> None:
        self.ssh = ssh
        self.device = device
        self.host = host
        self.scratch = scratch
        self.power = power
        self.folders = Workspace(device.path(host.workdir))
        self._bundles: dict[str, Bundle] = {}

    def bundle(
        self,
        model: PreparedModel,
        config: BenchConfig,
        graph: Path | None,
        kind: str,
        version: TrtVersion | None,
    ) -> Bundle:
        """The bundle of ``model`` (running ``graph``, a converted copy, where given) for
        the device's TensorRT ``version`` (None: for benchmark_app), written here and
        copied to the device once per run (once ever, while the device's copy stays)."""
        key = f"{graph or model.onnx_path}-{version}"
        if key not in self._bundles:
            local = self.scratch / "bundles" / f"{model.name}-{kind}"
            bundle = write_bundle(
                model,
                config.suite.batch_sizes,
                version,
                local,
                graph,
                kind,
                config.suite.opset,
            )
            remote = self.folders.model(bundle)
            done = self.ssh.run(
                f"test -f {shlex.quote(remote)}/manifest.json && echo present",
                60,
                "checking the copied models",
                check=False,
            )
            if "present" not in done.stdout:
                needed = self._check_space(bundle)
                self.ssh.push(bundle.path, remote, COPY_TIMEOUT_S)
                if self.device.free_mib is not None:
                    self.device.free_mib -= needed
            self._bundles[key] = bundle
        return self._bundles[key]

    def _check_space(self, bundle: Bundle) -> float:
        """The MiB the bundle takes; RemoteError when the device has too little free
        for it and its engine (about its size again) with a margin."""
        needed = sum(f.stat().st_size for f in bundle.path.rglob("*") if f.is_file()) / 2**20
        free = self.device.free_mib
        if free is not None and free < needed * 2 + 64:
            raise RemoteError(
                f"{self.ssh.name} has {free:,.0f} MiB free in {self.folders.root}; copying "
                f"{bundle.path.name} and building its engine needs about {needed * 2 + 64:,.0f}:"
                " free some space or set workdir in [hosts] to a larger disk"
            )
        return needed

    def run(self, script: str, deadline: float, what: str, phase: str) -> str:
        """``script`` on the device within the cell's time left; its standard output.
        A script that fails is CellFailed in ``phase`` with its most telling line; one
        still running at ``deadline`` is stopped (the guard ends its process group) and
        raises CellTimedOut in ``phase``."""
        left = deadline - time.monotonic()
        try:
            if left <= 0:
                raise TimeoutError(what)
            done = self.ssh.run(script, left, what, check=False)
        except TimeoutError:
            raise CellTimedOut(f"{what} did not finish", phase) from None
        if done.status != 0:
            raise CellFailed(f"{what} failed on {self.ssh.name}: {telling_line(done)}", phase)
        return done.stdout
