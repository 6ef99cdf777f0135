"""What each Jetson module can run, by the model string in its device tree."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Board:
    """A Jetson module's GPU generation, DLA cores and fast INT8; ``parts``: its module
    part numbers as /proc/device-tree/compatible lists them (a regular expression), and
    ``pattern``: its device-tree model string, read where compatible says nothing."""

    pattern: str
    gpu: str
    dla_cores: int
    int8: bool
    parts: str = ""


BOARDS = (
    Board(r"orin nano", "Ampere (sm_87)", 0, True, r"p3767-000[345]"),
    Board(r"orin nx.*8gb", "Ampere (sm_87)", 1, True, r"p3767-0001"),
    Board(r"orin", "Ampere (sm_87)", 2, True, r"p3767-0000|p3701-"),  # Orin NX 16GB, AGX Orin
    Board(r"xavier|^jetson-agx$", "Volta (sm_72)", 2, True, r"p3668-|p2888-|p2972-|jetson-xavier"),
    Board(r"tx2|^quill$", "Pascal (sm_62)", 0, False, r"p3310-|p3636-|p3489-|p2771-|,quill\b"),
    Board(r"nano|tx1", "Maxwell (sm_53)", 0, False, r"p3448-|p3450-|p2180-"),
    Board(r"thor", "Blackwell", 0, True, r"p3834-"),
)
"""NVIDIA's module data sheets: DLA on Xavier and Orin except Orin Nano (Orin NX 8GB has
one core); fast INT8 from Volta on (TensorRT's platformHasFastInt8 is false on the
Nano's Maxwell and the TX2's Pascal). Part numbers: jetson_stats' MODULE_NAME_TABLE and
jetson-gpio's compatible lists (tests/fixtures/edge/FACTS.md). The model string is not
enough on real boards: AGX Xavier says ``Jetson-AGX`` from L4T 32.2, Orin NX 8GB does not
say 8GB, and a TX2 can say ``quill``."""


def board_of(model: str, compatible: str = "") -> Board | None:
    """The module a device names: by its part number in /proc/device-tree/compatible
    (``nvidia,p3767-0001``: Orin NX 8GB) first, else by its device-tree model string
    (``NVIDIA Jetson AGX Orin Developer Kit``); None when neither matches."""
    for board in BOARDS:
        if compatible and board.parts and re.search(board.parts, compatible):
            return board
    for board in BOARDS:
        if re.search(board.pattern, model.strip(), re.IGNORECASE):
            return board
    return None
