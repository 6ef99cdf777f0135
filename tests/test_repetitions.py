"""Merging a cell's repetitions for the tables (bench.repetitions)."""

from __future__ import annotations

from typing import Any

import pytest

from bench.repetitions import by_key, merged, status_of


def rep(index: int, times: list[float], rate: float, watts: float, status: str = "ok") -> dict:
    record: dict[str, Any] = {
        "key": "m/ort/cpu/fp32/b1/latency",
        "repetition": index,
        "status": status,
        "reason": None if status == "ok" else "boom",
    }
    if status == "ok":
        record.update(
            raw_times_ms=times,
            latency_ms={"median": sorted(times)[len(times) // 2]},
            throughput={"samples_per_s": rate},
            power={"avg_w": watts},
        )
    return record


def test_times_pool_throughput_is_the_median_and_the_rest_is_the_middle_run() -> None:
    group = [
        rep(0, [3.0, 3.0, 3.0], 300.0, 30.0),
        rep(1, [1.0, 1.0, 1.0], 100.0, 10.0),
        rep(2, [2.0, 2.0, 2.0], 200.0, 20.0),
    ]
    (cell,) = merged(group)
    assert cell["latency_ms"]["count"] == 9 and cell["latency_ms"]["median"] == pytest.approx(2.0)
    assert cell["throughput"]["samples_per_s"] == pytest.approx(200.0)
    assert cell["power"]["avg_w"] == 20.0  # the middle repetition by median latency
    assert [r["repetition"] for r in cell["repetitions"]] == [0, 1, 2]


def test_a_single_record_is_left_as_it_is() -> None:
    record = rep(0, [1.0], 10.0, 5.0)
    assert merged([record]) == [record]


def test_a_cell_is_ok_only_when_every_repetition_is() -> None:
    group = [rep(0, [1.0], 10.0, 5.0), rep(1, [], 0, 0, status="crashed"), rep(2, [1.0], 10.0, 5.0)]
    assert status_of(group) == ("crashed", "1/3 repetitions crashed: boom")
    (cell,) = merged(group)
    assert cell["status"] == "crashed" and cell["latency_ms"]["count"] == 2
    assert status_of(group[:1]) == ("ok", None)
    assert status_of(group[1:2]) == ("crashed", "boom")


def test_records_group_by_key_in_repetition_order() -> None:
    later, earlier = rep(1, [1.0], 1.0, 1.0), rep(0, [2.0], 1.0, 1.0)
    assert [r["repetition"] for r in by_key([later, earlier])["m/ort/cpu/fp32/b1/latency"]] == [
        0,
        1,
    ]
