"""The device tools tools mode measures with (docs/contributing.md, "Adding a device
tool"): each one module (bench.remote.device_tool), registered here."""

from __future__ import annotations

from bench.core.cell import Cell
from bench.remote.device_tool import DeviceTool
from bench.remote.myriad import MyriadBenchmarkApp
from bench.remote.trtexec import Trtexec

DEVICE_TOOLS: tuple[type[DeviceTool], ...] = (Trtexec, MyriadBenchmarkApp)
"""Each serving one runtime on some device kinds; the probe runs each one's section."""


def tool_for(cell: Cell) -> type[DeviceTool] | None:
    """The tool that measures ``cell`` on a device; None when none does."""
    return next((tool for tool in DEVICE_TOOLS if tool.serves(cell)), None)
