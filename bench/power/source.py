"""What every power source is: a counter or a power reading, polled by the sampler."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Literal

TOTAL_RAILS = {
    "VDD_IN": "module input",  # TX2, Xavier NX, Orin NX and Nano (JetPack 5/6)
    "POM_5V_IN": "module input",  # Nano, TX1 (JetPack 4)
    "VIN": "board input",  # Thor (JetPack 7), beside VIN_SYS_5V0, VDD_GPU, VDD_CPU_SOC_MSS
}
"""Jetson rails that carry the whole input: where one exists it is the total. AGX Orin
(VDD_GPU_SOC, VDD_CPU_CV, VIN_SYS_5V0, VDDQ_VDD2_1V8AO) and AGX Xavier (GPU, CPU, SOC, CV,
VDDRQ, SYS5V) have none: their total is the sum of rails, labelled as such."""


class PowerUnavailable(Exception):
    """A source cannot measure here; the message is the one-line reason."""


class PowerSource(ABC):
    """One power or energy counter, opened and ready to read.

    ``kind`` says what ``read`` returns: ``energy`` a cumulative count in joules (differenced
    over the window), ``power`` an instantaneous reading in watts (integrated over it).
    ``resolution_s`` is how often the hardware refreshes its value. A ``paced`` source
    blocks in ``read`` until its next value arrives (a subprocess printing lines), so the
    sampler does not sleep between its reads.
    """

    name: str
    kind: Literal["energy", "power"]
    resolution_s: float = 0.0
    paced: bool = False

    @abstractmethod
    def read(self) -> float:
        """The current value: joules so far (energy) or watts now (power)."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """What this source measures (device, domains or rails), for the result."""

    def close(self) -> None:
        """Release what the source holds (a library handle, a subprocess); most hold
        nothing."""
        return None


@dataclass(frozen=True)
class BoardTotal:
    """A board's power from its rails: the input rail where there is one, else the sum."""

    watts: float
    label: str


def board_total(rails: dict[str, float]) -> BoardTotal:
    """The total of a Jetson's rails (watts by name): the input rail (VDD_IN, POM_5V_IN, VIN)
    when present, otherwise the sum of every rail, labelled as such."""
    for name in TOTAL_RAILS:
        if name in rails:
            return BoardTotal(rails[name], f"{name} ({TOTAL_RAILS[name]})")
    return BoardTotal(sum(rails.values()), "sum of rails: " + " + ".join(rails))
