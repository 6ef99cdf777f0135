"""A device's own tool that measures cells in tools mode (trtexec on a Jetson,
benchmark_app for a Myriad X stick): what each one owns. The registry is
``DEVICE_TOOLS`` in bench.remote.device_tools (docs/contributing.md, "Adding a device tool")."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from bench.core.cell import Cell
from bench.core.record import Measured
from bench.core.spec import PreparedModel
from bench.harness.config import BenchConfig, HostConfig

if TYPE_CHECKING:
    from bench.remote.device import Device, DeviceWork


class DeviceTool:
    """Measures the cells of ``runtime`` on the device kinds ``device_kinds`` with the
    tool ``name``: so ``openvino`` on a Myriad X is one tool, and OpenVINO on another
    device would be another, keyed by its own device kind."""

    name: ClassVar[str]
    runtime: ClassVar[str]
    device_kinds: ClassVar[tuple[str, ...]]

    @classmethod
    def serves(cls, cell: Cell) -> bool:
        return cell.runtime == cls.runtime and cell.target.device_kind in cls.device_kinds

    @classmethod
    def probe_section(cls, host: HostConfig) -> str:
        """Its part of the device's probe script: shell lines under ``section NAME``
        headers (``$R`` is the device root the tests point at a fake tree)."""
        raise NotImplementedError

    @classmethod
    def read_probe(
        cls, parts: dict[str, str]
    ) -> tuple[dict[str, str | None], dict[str, str | None]]:
        """From the probe's sections: its programs' paths and its libraries' versions,
        by name, None where absent (``Device.programs``, ``Device.libraries``)."""
        raise NotImplementedError

    @classmethod
    def max_opset(cls, device: Device) -> int | None:
        """The highest ONNX opset the tool's reader takes on ``device`` (None: any): the
        suite exports at most at that."""
        return None

    @classmethod
    def found(cls, device: Device) -> str | None:
        """How the device's probe shows the tool (``TensorRT 8.6.2``); None when absent."""
        raise NotImplementedError

    @classmethod
    def skip_reason(cls, cell: Cell, device: Device) -> str | None:
        """Why the tool cannot run ``cell`` (one it serves) on ``device``; None when it can."""
        raise NotImplementedError

    @classmethod
    def measure(
        cls,
        work: DeviceWork,
        cell: Cell,
        model: PreparedModel,
        config: BenchConfig,
        cache_dir: Path,
        run_id: str,
        repetition: int,
        deadline: float,
    ) -> Measured:
        """The cell measured on the device by the tool, before ``deadline`` (monotonic);
        CellFailed, CellTimedOut or Unavailable say why not."""
        raise NotImplementedError
