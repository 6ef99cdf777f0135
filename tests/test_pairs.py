"""The paired design's statistics (bench.compare.pairs): the estimate, its interval's
coverage on simulated workers with known ratios, and the verdict rules."""

from __future__ import annotations

import numpy as np
import pytest

from bench.compare.pairs import Estimate, WorkerPairs, estimate, verdict
from bench.compare.significance import IMPROVED, INCONCLUSIVE, REGRESSED, UNCHANGED


def simulated(
    rng: np.random.Generator, workers: int, ratio: float, offset_sd: float, pairs: int = 120
) -> list[WorkerPairs]:
    """Workers of ``pairs`` pairs whose new side is ``ratio`` times the base: each worker
    with its own level (which pairing cancels) and its own offset of the ratio
    (``offset_sd``, log scale, which it does not), each request 3% noise."""
    made = []
    for _ in range(workers):
        level = np.log(20e6) + rng.normal(0, 0.05)
        drift = np.cumsum(rng.normal(0, 0.003, pairs))  # the machine slows and recovers
        base = np.exp(level + drift + rng.normal(0, 0.03, pairs))
        offset = np.log(ratio) + rng.normal(0, offset_sd)
        new = np.exp(level + drift + offset + rng.normal(0, 0.03, pairs))
        made.append(
            WorkerPairs(base.astype(np.int64), new.astype(np.int64), rng.random(pairs) < 0.5)
        )
    return made


@pytest.mark.parametrize("workers,offset_sd", [(4, 0.0), (4, 0.015), (8, 0.015)])
def test_the_interval_covers_the_true_ratio_at_least_as_often_as_it_says(
    workers: int, offset_sd: float
) -> None:
    rng = np.random.default_rng(workers * 1000 + int(offset_sd * 1e4))
    trials, ratio = 60, 1.05
    covered = 0
    for _ in range(trials):
        change = estimate(simulated(rng, workers, ratio, offset_sd))
        covered += change.low <= ratio <= change.high
    # 95% asked; with 60 trials, 51 or fewer covered would be rare (p < 0.01) at 95%.
    # An interval from the pairs' noise alone covers 38-43 of 60 where workers differ.
    assert covered >= 52, covered


def test_pairing_cancels_drift_that_the_medians_alone_would_carry() -> None:
    rng = np.random.default_rng(3)
    workers = simulated(rng, 6, 1.02, 0.002)
    change = estimate(workers)
    assert change.low < 1.02 < change.high
    assert change.half_width < 0.01
    assert change.workers == 6 and change.pairs == 6 * 120
    assert change.base_ms == pytest.approx(20, rel=0.15)


def test_a_worker_needs_pairs_on_both_sides() -> None:
    with pytest.raises(ValueError, match="same non-zero count"):
        WorkerPairs(np.ones(3, np.int64), np.ones(2, np.int64), np.ones(3, bool))
    with pytest.raises(ValueError, match="at least two workers"):
        estimate(simulated(np.random.default_rng(0), 1, 1.0, 0.0))


def _change(ratio: float, low: float, high: float) -> Estimate:
    return Estimate(ratio, low, high, workers=5, pairs=500, base_ms=1.0, new_ms=ratio)


@pytest.mark.parametrize(
    "ratio,low,high,expected",
    [
        (1.05, 1.04, 1.06, REGRESSED),  # above 1 and beyond the 1% threshold
        (0.95, 0.94, 0.96, IMPROVED),
        (1.005, 1.002, 1.008, UNCHANGED),  # real, but smaller than the threshold
        (1.0, 0.996, 1.004, UNCHANGED),  # the interval inside the band
        (1.02, 0.99, 1.05, INCONCLUSIVE),  # not significant, reaches past the threshold
    ],
)
def test_the_verdict_needs_both_the_interval_and_the_threshold(
    ratio: float, low: float, high: float, expected: str
) -> None:
    assert verdict(_change(ratio, low, high), 0.01)[0] == expected


def test_the_half_width_is_relative_to_the_ratio() -> None:
    assert _change(1.0, 0.99, 1.01).half_width == pytest.approx(0.01)
    assert _change(2.0, 1.9, 2.1).half_width == pytest.approx(0.05)
