"""What a cell is: one model on one runtime, device, precision, batch and scenario."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

SERVING_SCENARIOS = ("single_stream", "multi_stream", "server", "offline")
"""MLPerf LoadGen's four scenarios, run by LoadGen itself (bench.harness.serving)."""
SCENARIOS = ("latency", "throughput", "train", *SERVING_SCENARIOS)


@dataclass(frozen=True)
class Target:
    """Where and how a cell asks to run: device (``cpu``, ``cuda:0``) and precision."""

    device: str
    precision: str

    @property
    def device_kind(self) -> str:
        """``cpu``, ``cuda``, ``gpu``, ``npu``, ``auto``, ``hetero``, ``multi``, ``myriad`` …"""
        return re.split(r"[:.]", self.device, maxsplit=1)[0]

    @property
    def device_index(self) -> int:
        _, _, index = self.device.partition(":")
        return int(index) if index else 0

    def ran_on(self, executed: str) -> bool:
        """Whether ``executed`` (the device read back from the runtime) is this target's:
        the same kind and index (``gpu`` is any ``gpu.N``; ``dla:0+gpu`` is a DLA cell with
        layers on the GPU); for ``auto:``, ``hetero:`` and ``multi:`` only devices listed."""
        executed = executed.lower()
        if self.device_kind in ("auto", "hetero", "multi"):
            _, _, listed = self.device.partition(":")
            allowed = {_kind(d) for d in listed.split(",") if d}
            ran = {_kind(d) for d in re.split(r"[,+]", executed) if d}
            return not allowed or ran <= allowed
        first = re.split(r"[,+]", executed, maxsplit=1)[0]
        kind, index = _kind(first), _index(first)
        return kind == self.device_kind and (
            _index(self.device) is None or index is None or index == _index(self.device)
        )


def _kind(device: str) -> str:
    """``gpu`` of ``gpu.0``, ``cpu`` of ``(cpu)`` (OpenVINO AUTO's CPU help at start-up)."""
    return re.split(r"[:.]", device.strip(" ()"), maxsplit=1)[0]


def _index(device: str) -> int | None:
    match = re.search(r"[:.](\d+)$", device.strip(" ()"))
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class Cell:
    """One measurement: the unit of results, comparison and resumption."""

    model: str
    runtime: str
    device: str
    precision: str
    batch: int
    scenario: str

    @property
    def key(self) -> str:
        return "/".join(
            (self.model, self.runtime, self.device, self.precision, f"b{self.batch}", self.scenario)
        )

    @property
    def target(self) -> Target:
        return Target(self.device, self.precision)

    def to_dict(self) -> dict[str, Any]:
        """The cell as results.jsonl stores it: its fields and its key."""
        return {**asdict(self), "key": self.key}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Cell:
        """The cell of a stored ``cell`` object (its ``key`` is derived, not read)."""
        return cls(
            str(data["model"]),
            str(data["runtime"]),
            str(data["device"]),
            str(data["precision"]),
            int(data["batch"]),
            str(data["scenario"]),
        )
