"""One microbenchmark figure, how its work is counted, and reading ``hw.json`` back.

Nothing here imports torch: the machine table and the roofline read these records.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HW_FILE = "hw.json"
SCHEMA_VERSION = 1

STREAM_ARRAYS = {"copy": 2, "scale": 2, "add": 3, "triad": 3}
"""Arrays each STREAM kernel moves, as STREAM counts them: copy ``c = a`` and scale
``b = q*c`` read one and write one; add ``c = a + b`` and triad ``a = b + q*c`` read two
and write one. Write-allocate traffic is not counted, as in STREAM."""


def matmul_flops(m: int, n: int, k: int) -> int:
    """FLOPs of one [m, k] x [k, n] product: a multiply and an add per term, 2·M·N·K."""
    return 2 * m * n * k


def stream_bytes(kernel: str, elements: int, itemsize: int = 8) -> int:
    """Bytes one STREAM ``kernel`` moves over arrays of ``elements`` items (8-byte doubles)."""
    return STREAM_ARRAYS[kernel] * elements * itemsize


@dataclass
class HwRecord:
    """One figure: ``kind`` (matmul, stream, transfer, cache) on ``device``, for ``name`` (a
    dtype, a STREAM kernel or a copy direction) at ``size`` (matrix side, or bytes per
    array / buffer). Rates are in ``unit`` (TFLOP/s, TOP/s for int8, GB/s = 1e9 B/s):
    ``best`` from the fastest repeat, ``median``, ``min`` and ``max`` over ``repeats``.
    ``status`` is ok, unavailable, failed, or capped (not run: its projected time was over
    the cap), with ``reason``. A ``cache`` record is a size, not a rate: ``best`` in MiB."""

    kind: str
    device: str
    name: str
    size: int | None
    unit: str
    status: str = "ok"
    reason: str | None = None
    best: float | None = None
    median: float | None = None
    min: float | None = None
    max: float | None = None
    repeats: int = 0
    work: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HwRecord:
        return cls(**data)

    @classmethod
    def unavailable(cls, kind: str, device: str, name: str, unit: str, reason: str) -> HwRecord:
        return cls(kind, device, name, None, unit, status="unavailable", reason=reason)


def rates(work: float, seconds: list[float], scale: float) -> dict[str, float]:
    """Best, median, min and max rate over repeats of ``work`` units that took ``seconds``
    each, divided by ``scale`` (1e12 for TFLOP/s, 1e9 for GB/s)."""
    times = np.asarray(seconds, dtype=np.float64)
    return {
        "best": work / float(times.min()) / scale,
        "median": work / float(np.median(times)) / scale,
        "min": work / float(times.max()) / scale,
        "max": work / float(times.min()) / scale,
    }


def read_hw(path: Path) -> list[HwRecord]:
    """The records of a directory's ``hw.json`` (empty when it has none)."""
    file = path / HW_FILE
    if not file.is_file():
        return []
    return [HwRecord.from_dict(r) for r in json.loads(file.read_text())["records"]]


def best_of(
    records: list[HwRecord], kind: str, device: str, names: tuple[str, ...]
) -> HwRecord | None:
    """The ok record with the highest ``best`` among ``names`` on ``device`` (any size)."""
    found = [
        r
        for r in records
        if r.kind == kind and r.device == device and r.name in names and r.status == "ok"
    ]
    return max(found, key=lambda r: r.best or 0.0, default=None)
