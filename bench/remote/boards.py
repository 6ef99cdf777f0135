"""What each Jetson module can run, by the model string in its device tree, and which of
a suite's cells a device in tools mode can serve."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bench.core.cell import Cell
from bench.harness.plan import PlannedCell
from bench.remote.probe import Device
from runtimes.tensorrt.build import TrtVersion


@dataclass(frozen=True)
class Board:
    """A Jetson module's GPU generation, DLA cores and fast INT8."""

    pattern: str
    gpu: str
    dla_cores: int
    int8: bool


BOARDS = (
    Board(r"orin nano", "Ampere (sm_87)", 0, True),
    Board(r"orin nx.*8gb", "Ampere (sm_87)", 1, True),
    Board(r"orin", "Ampere (sm_87)", 2, True),  # AGX Orin, Orin NX 16GB
    Board(r"xavier", "Volta (sm_72)", 2, True),  # AGX Xavier, Xavier NX
    Board(r"tx2", "Pascal (sm_62)", 0, False),
    Board(r"nano|tx1", "Maxwell (sm_53)", 0, False),
    Board(r"thor", "Blackwell", 0, True),
)
"""NVIDIA's module data sheets: DLA on Xavier and Orin except Orin Nano (Orin NX 8GB has
one core); fast INT8 from Volta on (TensorRT's platformHasFastInt8 is false on the
Nano's Maxwell and the TX2's Pascal)."""


def board_of(model: str) -> Board | None:
    """The module a device-tree model string names (``NVIDIA Jetson AGX Orin Developer
    Kit``), None when none matches."""
    for board in BOARDS:
        if re.search(board.pattern, model, re.IGNORECASE):
            return board
    return None


def tools_plan(device: Device, planned: list[PlannedCell]) -> list[PlannedCell]:
    """``planned``'s cells with the skip reasons of ``device`` in tools mode (the host's
    own are not the device's)."""
    return [PlannedCell(p.cell, tools_skip_reason(p.cell, device)) for p in planned]


def tools_skip_reason(cell: Cell, device: Device) -> str | None:
    """Why ``device`` cannot run ``cell`` with its own tools; None when it can."""
    reason = TOOLS_REASONS.get(cell.runtime)
    if reason is None:
        return (
            f"{cell.runtime} needs deploybench on {device.name}: tools mode runs tensorrt "
            "(trtexec) and openvino on a Myriad X (benchmark_app); use the agent mode"
        )
    if cell.scenario == "train":
        return "tools mode runs inference only: training needs the agent mode"
    return reason(cell, device)


def _tensorrt_reason(cell: Cell, device: Device) -> str | None:
    target = cell.target
    if device.trtexec is None:
        return f"no trtexec on {device.name} (JetPack puts it in /usr/src/tensorrt/bin)"
    if device.tensorrt is None:
        return f"trtexec on {device.name} printed no version banner"
    if target.device_kind not in ("cuda", "dla"):
        return f"tensorrt runs on cuda:0 or dla:N, not {cell.device}"
    board = board_of(device.jetson["model"]) if device.jetson else None
    if target.device_kind == "cuda" and target.device_index != 0:
        return f"{device.name} has one GPU (cuda:0)"
    if target.device_kind == "dla":
        cores = board.dla_cores if board else 0
        if target.device_index >= cores:
            return f"{device.name} has {cores} DLA cores" + (
                "" if cores else " (DLA: AGX Xavier, Xavier NX, AGX Orin, Orin NX)"
            )
        if target.precision not in ("fp16", "int8"):
            return f"a DLA core runs fp16 and int8, not {target.precision}"
    if target.precision == "int8" and board is not None and not board.int8:
        return f"{device.jetson['model'] if device.jetson else device.name} has no fast INT8"
    if target.precision == "bf16" and TrtVersion.parse(device.tensorrt) < TrtVersion(9, 0):
        return f"TensorRT {device.tensorrt} has no bf16 (9.0 and newer)"
    return None


def _myriad_reason(cell: Cell, device: Device) -> str | None:
    if cell.target.device_kind != "myriad":
        return f"tools mode runs openvino on a Myriad X (myriad), not {cell.device}"
    if device.benchmark_app is None:
        return f"no benchmark_app on {device.name} (OpenVINO 2022.3's tools)"
    if cell.precision != "fp16":
        return f"a Myriad X runs fp16 only, not {cell.precision}"
    return None


TOOLS_REASONS = {"tensorrt": _tensorrt_reason, "openvino": _myriad_reason}
"""The runtimes a device's own tools run (trtexec, benchmark_app), and why a cell of
one cannot run there."""
