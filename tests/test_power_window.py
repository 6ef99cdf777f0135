"""The timed loops give the measured window's edges on the clock the sampler uses."""

from __future__ import annotations

import time

from bench.core.timing import StopRule, ThroughputWindow, time_latency, time_throughput


def test_the_latency_window_edges_bracket_every_measured_request() -> None:
    calls: list[int] = []
    record = time_latency(
        lambda: calls.append(time.perf_counter_ns()), lambda: None, StopRule(0, 3), StopRule(0, 7)
    )
    measured = calls[-7:]
    assert record.end_ns - record.start_ns == record.window_ns
    assert record.start_ns <= measured[0] and measured[-1] <= record.end_ns
    assert record.start_ns > calls[2]  # the warm-up lies before the window


def test_the_throughput_window_runs_from_the_opening_to_the_closing_completion() -> None:
    window = ThroughputWindow(StopRule(0, 2), StopRule(0, 3))
    base = time.perf_counter_ns()  # completions are times on the window's own clock
    for now in (100, 200, 300, 400, 500):
        window.completed(10, base + now)
    record = window.record(in_flight=2)
    assert (record.start_ns - base, record.end_ns - base, record.window_ns) == (200, 500, 300)
    assert record.completed == 3


def test_threads_in_flight_give_consistent_edges() -> None:
    record = time_throughput([lambda: time.sleep(0.001)] * 2, StopRule(0, 4), StopRule(0.02, 10))
    assert record.end_ns - record.start_ns == record.window_ns >= 0.02e9
