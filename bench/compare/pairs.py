"""The statistics of the paired design: two sides of one cell measured in the same worker,
their requests alternated in random order, in several workers.

Each worker gives one estimate, the median of its pairs' ratios (new ÷ base): the two
sides shared the worker's memory layout, clocks and neighbours, and the two requests of a
pair the same moment, so what moves a whole worker, or a second of it, cancels in the
ratio. (On 13 A/A workers of ResNet-18 on the 2-core development VM, the workers' medians
of pair ratios spread 0.42% (standard deviation), their ratios of medians 0.76%.)

Workers still differ a little (where each session's memory landed, which core was busy),
and the requests inside one worker are not independent either, so the interval has two
levels, workers and requests:

- the estimate is the geometric mean of the workers' ratios;
- its standard error is the spread of the workers' log ratios over √workers (each worker's
  ratio already carries the noise of its own requests), floored by the requests' share
  alone: each worker's variance from a bootstrap of its pairs (a pair's two times drawn
  together), averaged. A full hierarchical bootstrap (Saravanan et al., 2020: workers,
  then pairs, both with replacement) counts the requests' noise twice; measured on
  simulated workers it covered the true ratio in 100% of trials where 95% was asked,
  an interval wider than it needs and a gate slower to decide;
- the interval is the estimate ± Student's t with (workers − 1) degrees of freedom times
  that error, on the log scale: with a handful of workers a normal quantile (or a
  bootstrap percentile) under-covers. ``tests/test_pairs.py`` checks the coverage by
  simulation, with and without a worker-to-worker offset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import stats

from bench.compare.significance import (
    CONFIDENCE,
    IMPROVED,
    INCONCLUSIVE,
    REGRESSED,
    UNCHANGED,
)

RESAMPLES = 1000


@dataclass(frozen=True)
class WorkerPairs:
    """One worker's timed pairs: request times (ns) of each side, pair by pair, and for
    each pair whether the base side ran first."""

    base_ns: np.ndarray
    new_ns: np.ndarray
    base_first: np.ndarray

    def __post_init__(self) -> None:
        if not (self.base_ns.size == self.new_ns.size == self.base_first.size) or not self.size:
            raise ValueError("a worker's pairs need the same non-zero count on both sides")

    @property
    def size(self) -> int:
        return int(self.base_ns.size)

    @cached_property
    def ratio(self) -> float:
        """This worker's estimate: the median of its pairs' ratios new ÷ base."""
        return math.exp(float(np.median(self.log_ratios)))

    @cached_property
    def log_ratios(self) -> np.ndarray:
        return np.log(self.new_ns / self.base_ns)

    @cached_property
    def variance(self) -> float:
        """The variance of this worker's log ratio from its pairs alone: its pairs redrawn
        with replacement, RESAMPLES times (a fixed seed: the same pairs, the same figure)."""
        draws = np.random.default_rng(0).integers(0, self.size, size=(RESAMPLES, self.size))
        return float(np.median(self.log_ratios[draws], axis=1).var(ddof=1))


@dataclass(frozen=True)
class Estimate:
    """The ratio new ÷ base over workers, with its interval (``confidence`` level) and the
    relative half-width reached: (high − low) / 2 / ratio."""

    ratio: float
    low: float
    high: float
    workers: int
    pairs: int
    base_ms: float
    new_ms: float

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2 / self.ratio

    def to_dict(self) -> dict:
        return {
            "ratio": self.ratio,
            "ci_low": self.low,
            "ci_high": self.high,
            "half_width": self.half_width,
            "workers": self.workers,
            "pairs": self.pairs,
            "base_ms": self.base_ms,
            "new_ms": self.new_ms,
        }


def estimate(workers: list[WorkerPairs]) -> Estimate:
    """The ratio and its interval from ``workers`` (at least two), as the module says."""
    if len(workers) < 2:
        raise ValueError("an interval needs at least two workers")
    logs = np.log([w.ratio for w in workers])
    centre = float(logs.mean())
    spread = standard_error(workers)
    quantile = float(stats.t.ppf(0.5 + CONFIDENCE / 2, len(workers) - 1))
    return Estimate(
        ratio=math.exp(centre),
        low=math.exp(centre - quantile * spread),
        high=math.exp(centre + quantile * spread),
        workers=len(workers),
        pairs=sum(w.size for w in workers),
        base_ms=float(np.median([np.median(w.base_ns) for w in workers])) / 1e6,
        new_ms=float(np.median([np.median(w.new_ns) for w in workers])) / 1e6,
    )


def standard_error(workers: list[WorkerPairs]) -> float:
    """The standard error of the mean log ratio over ``workers``: from the spread of the
    workers' own log ratios, and never below what their pairs alone leave (each worker's
    variance from a bootstrap of its pairs, averaged), which keeps a few workers that
    happen to agree from claiming more than their requests can tell."""
    logs = np.log([w.ratio for w in workers])
    between = float(logs.var(ddof=1))
    within = float(np.mean([w.variance for w in workers]))
    return math.sqrt(max(between, within) / len(workers))


def verdict(change: Estimate, threshold: float) -> tuple[str, str | None]:
    """A latency ratio's verdict: ``regressed`` when the interval lies above 1 and the
    estimate is more than ``threshold`` above it, ``improved`` the mirror image,
    ``unchanged`` when the interval lies inside the threshold band or the change is real
    but smaller, else ``inconclusive``; with a note where the reason is not plain."""
    band = (1 / (1 + threshold), 1 + threshold)
    above, below = change.low > 1, change.high < 1
    if above and change.ratio > band[1]:
        return REGRESSED, None
    if below and change.ratio < band[0]:
        return IMPROVED, None
    if above or below:
        return UNCHANGED, "a real change, smaller than the threshold"
    if band[0] <= change.low and change.high <= band[1]:
        return UNCHANGED, None
    return INCONCLUSIVE, "the interval reaches past the threshold"
