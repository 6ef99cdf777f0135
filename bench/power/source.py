"""What every power source is: a counter or a power reading, polled by the sampler."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Literal

TOTAL_RAILS = ("VDD_IN", "POM_5V_IN")
"""Jetson rails that carry the whole module's input: where one exists it is the total."""


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
    """The total of a Jetson's rails (watts by name): the input rail (VDD_IN or POM_5V_IN)
    when present, otherwise the sum of every rail, labelled as such."""
    for name in TOTAL_RAILS:
        if name in rails:
            return BoardTotal(rails[name], f"{name} (module input)")
    return BoardTotal(sum(rails.values()), "sum of rails: " + " + ".join(rails))
