"""Summary statistics from raw nanosecond times."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from bench.core.stats import Summary


def test_one_to_a_hundred_milliseconds() -> None:
    ms = list(range(1, 101))
    summary = Summary.from_ns([m * 1_000_000 for m in ms])
    assert summary.count == 100
    assert summary.min == 1.0 and summary.max == 100.0
    assert summary.mean == pytest.approx(50.5)
    assert summary.median == pytest.approx(50.5)
    # linear interpolation between order statistics: rank q * (n - 1) from 0
    assert summary.p90 == pytest.approx(1 + 0.90 * 99)
    assert summary.p95 == pytest.approx(1 + 0.95 * 99)
    assert summary.p99 == pytest.approx(1 + 0.99 * 99)
    assert summary.iqr == pytest.approx((1 + 0.75 * 99) - (1 + 0.25 * 99))
    stdev = statistics.stdev(ms)  # sample standard deviation, ddof=1
    assert summary.stdev == pytest.approx(stdev)
    assert summary.cv == pytest.approx(stdev / 50.5)


def test_order_does_not_matter_and_numpy_arrays_work() -> None:
    ns = np.array([5, 1, 4, 2, 3], dtype=np.int64) * 1_000_000
    shuffled = Summary.from_ns(ns)
    ordered = Summary.from_ns(sorted(ns.tolist()))
    assert shuffled == ordered
    assert shuffled.median == 3.0


def test_sub_millisecond_units() -> None:
    summary = Summary.from_ns([250_000, 750_000])  # 0.25 ms and 0.75 ms
    assert summary.mean == pytest.approx(0.5)
    assert summary.stdev == pytest.approx(math.sqrt(((0.25) ** 2 * 2) / 1))


def test_a_single_sample() -> None:
    summary = Summary.from_ns([2_500_000])
    assert summary.count == 1
    for value in (summary.min, summary.mean, summary.median, summary.p99, summary.max):
        assert value == pytest.approx(2.5)
    assert summary.stdev == 0.0 and summary.cv == 0.0 and summary.iqr == 0.0


def test_no_samples_raises() -> None:
    with pytest.raises(ValueError):
        Summary.from_ns([])


def test_to_dict_has_every_field() -> None:
    data = Summary.from_ns([1_000_000, 3_000_000]).to_dict()
    assert set(data) == {
        "count",
        "min",
        "mean",
        "median",
        "p90",
        "p95",
        "p99",
        "max",
        "stdev",
        "cv",
        "iqr",
    }
    assert data["mean"] == 2.0
