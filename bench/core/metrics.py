"""The figures of a cell that are compared between runs: each one's name, unit, which
direction is worse, and the record field it is read from; and the MLPerf metric of a
LoadGen cell (``loadgen_latency_ms``, ``loadgen_rate``), which the views show too."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from bench.core.record import CellRecord, Serving

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


def percentile_name(fraction: float) -> str:
    """LoadGen's percentile as the key of its latencies: 0.9 → ``p90``, 0.999 → ``p99.9``."""
    return f"p{round(fraction * 100, 6):g}"


def loadgen_latency_ms(figures: Serving) -> float | None:
    """A stream scenario's MLPerf metric, VALID or not: SingleStream's per-sample latency
    and MultiStream's per-query latency at the run's target percentile (MLPerf's 90th and
    99th), in ms; None for the other scenarios or where LoadGen logged none."""
    latencies = {"SingleStream": figures.latency_ms, "MultiStream": figures.query_latency_ms}
    chosen = latencies.get(figures.scenario or "")
    if not chosen or figures.target_percentile is None:
        return None
    return chosen.get(percentile_name(figures.target_percentile))


def loadgen_rate(figures: Serving) -> float | None:
    """A rate scenario's MLPerf metric, VALID or not: the samples/s LoadGen saw completed
    in the Server run reported (at the target rate, or at the searched peak) and in
    Offline; None for the stream scenarios."""
    return figures.completed_qps if figures.scenario in ("Server", "Offline") else None


def _valid(record: CellRecord) -> Serving | None:
    """The LoadGen section of a record whose run LoadGen called VALID: an INVALID run's
    figures are no result, so its metrics have no value (compare leaves out a metric
    that a side has none of)."""
    figures = record.loadgen
    return figures if figures is not None and figures.valid is True else None


def _loadgen_qps(record: CellRecord) -> float | None:
    figures = _valid(record)
    return loadgen_rate(figures) if figures else None


def _loadgen_latency(record: CellRecord) -> float | None:
    figures = _valid(record)
    return loadgen_latency_ms(figures) if figures else None


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
        Metric(
            "loadgen_qps",
            "LoadGen rate",
            "samples/s",
            False,
            _loadgen_qps,
            ("server", "offline"),
        ),
        Metric(
            "loadgen_latency_ms",
            "LoadGen latency",
            "ms",
            True,
            _loadgen_latency,
            ("single_stream", "multi_stream"),
        ),
    )
}


def read_metrics(record: CellRecord) -> dict[str, float]:
    """Every metric this record has, by name."""
    scenario = record.cell.scenario
    values = {m.name: m.read(record) for m in METRICS.values() if m.applies_to(scenario)}
    return {name: value for name, value in values.items() if value is not None}
