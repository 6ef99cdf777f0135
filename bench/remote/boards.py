"""What each Jetson module can run, by the model string in its device tree."""

from __future__ import annotations

import re
from dataclasses import dataclass


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
