"""Merging a cell's repetitions for the tables (bench.harness.repetitions)."""

from __future__ import annotations

import pytest
from fixtures.records import cell, ended, timed

from bench.core.record import CellRecord
from bench.harness.repetitions import by_key, merged, status_of

CELL = cell("m", "onnxruntime")


def rep(index: int, times: list[float], window_s: float, watts: float) -> CellRecord:
    """Repetition ``index``: requests of ``times`` ms in a window of ``window_s``."""
    return timed(CELL, times, window_s=window_s, power={"avg_w": watts}, repetition=index)


def test_times_pool_throughput_is_the_median_and_the_rest_is_the_middle_run() -> None:
    group = [
        rep(0, [3.0, 3.0, 3.0], 3 / 300, 30.0),  # 300 samples/s
        rep(1, [1.0, 1.0, 1.0], 3 / 100, 10.0),
        rep(2, [2.0, 2.0, 2.0], 3 / 200, 20.0),
    ]
    (merged_cell,) = merged(group)
    assert merged_cell.latency_ms is not None
    assert merged_cell.latency_ms.count == 9
    assert merged_cell.median_ms == pytest.approx(2.0)
    assert merged_cell.samples_per_s == pytest.approx(200.0)
    assert merged_cell.power is not None
    assert merged_cell.power.avg_w == 20.0  # the middle repetition by median latency
    assert [r.repetition for r in merged_cell.repetitions or []] == [0, 1, 2]
    assert merged_cell.to_dict()["repetitions"][1] == {
        "repetition": 1,
        "status": "ok",
        "median_ms": pytest.approx(1.0),
    }


def test_a_single_record_is_left_as_it_is() -> None:
    record = rep(0, [1.0], 0.1, 5.0)
    assert merged([record]) == [record]


def test_a_cell_is_ok_only_when_every_repetition_is() -> None:
    group = [
        rep(0, [1.0], 0.1, 5.0),
        ended(CELL, "crashed", repetition=1),
        rep(2, [1.0], 0.1, 5.0),
    ]
    assert status_of(group) == ("crashed", "1/3 repetitions crashed: boom")
    (merged_cell,) = merged(group)
    assert merged_cell.status == "crashed"
    assert merged_cell.latency_ms is not None and merged_cell.latency_ms.count == 2
    assert status_of(group[:1]) == ("ok", None)
    assert status_of(group[1:2]) == ("crashed", "boom")


def test_records_group_by_key_in_repetition_order() -> None:
    later, earlier = rep(1, [1.0], 1.0, 1.0), rep(0, [2.0], 1.0, 1.0)
    assert [r.repetition for r in by_key([later, earlier])[CELL.key]] == [0, 1]
