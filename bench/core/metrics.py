"""The figures of a cell that are compared between runs: each one's name, unit, which
direction is worse, and the record field it is read from."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from bench.core.record import CellRecord

DEFAULT_ALPHA = 0.05
"""Significance level of a comparison between two sets of repetitions."""


@dataclass(frozen=True)
class Metric:
    """One compared figure. ``scenarios`` limits it to the scenarios where it means
    something of its own (in the latency scenario throughput is only 1 / mean latency)."""

    name: str
    label: str
    unit: str
    higher_is_worse: bool
    figure: Callable[[CellRecord], float | None]
    scenarios: tuple[str, ...] | None = None

    def applies_to(self, scenario: str) -> bool:
        return self.scenarios is None or scenario in self.scenarios

    def read(self, record: CellRecord) -> float | None:
        """The figure, or None where the record has none (or a NaN or infinity)."""
        value = self.figure(record)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        return float(value) if math.isfinite(value) else None


def _peak_rss(record: CellRecord) -> float | None:
    return record.memory.peak_rss_mb if record.memory else None


def _peak_device(record: CellRecord) -> float | None:
    return record.device_metrics.peak_allocated_mb if record.device_metrics else None


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("latency_median", "latency median", "ms", True, lambda r: r.median_ms),
        Metric(
            "latency_p99",
            "latency p99",
            "ms",
            True,
            lambda r: r.latency_ms.p99 if r.latency_ms else None,
        ),
        Metric(
            "throughput",
            "throughput",
            "samples/s",
            False,
            lambda r: r.samples_per_s,
            ("throughput", "train"),
        ),
        Metric("peak_memory", "peak memory", "MB", True, _peak_rss),
        Metric("device_memory", "peak device memory", "MB", True, _peak_device),
        Metric("energy", "energy per sample", "J", True, lambda r: r.j_per_sample),
    )
}


def read_metrics(record: CellRecord) -> dict[str, float]:
    """Every metric this record has, by name."""
    scenario = record.cell.scenario
    values = {m.name: m.read(record) for m in METRICS.values() if m.applies_to(scenario)}
    return {name: value for name, value in values.items() if value is not None}
