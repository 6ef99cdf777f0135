"""Summary statistics computed from raw per-iteration times."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Summary:
    """Latency statistics in milliseconds over ``count`` measured requests. A tool that
    reports a summary only, no per-request times (benchmark_app), leaves out what it does
    not report (None), never an estimate."""

    count: int
    min: float
    mean: float
    median: float
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None
    max: float | None = None
    stdev: float | None = None
    cv: float | None = None
    iqr: float | None = None

    @classmethod
    def from_ns(cls, times_ns: list[int] | np.ndarray) -> Summary:
        """Summarise raw times given in nanoseconds (at least one)."""
        return cls.from_ms(np.asarray(times_ns, dtype=np.float64) / 1e6)

    @classmethod
    def from_ms(cls, times_ms: list[float] | np.ndarray) -> Summary:
        """Summarise raw times given in milliseconds (at least one)."""
        ms = np.asarray(times_ms, dtype=np.float64)
        if ms.size == 0:
            raise ValueError("no times to summarise")
        p25, p50, p75, p90, p95, p99 = np.percentile(ms, [25, 50, 75, 90, 95, 99])
        mean = float(ms.mean())
        stdev = float(ms.std(ddof=1)) if ms.size > 1 else 0.0
        return cls(
            count=int(ms.size),
            min=float(ms.min()),
            mean=mean,
            median=float(p50),
            p90=float(p90),
            p95=float(p95),
            p99=float(p99),
            max=float(ms.max()),
            stdev=stdev,
            cv=stdev / mean if mean > 0 else 0.0,
            iqr=float(p75 - p25),
        )

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)
