"""The timed loops: stop rules, warm-up, capping and throughput with requests in flight."""

from __future__ import annotations

import threading
import time

import pytest

from bench.core.settings import MeasureConfig
from bench.core.timing import StopRule, time_latency, time_throughput

S = 1_000_000_000  # nanoseconds per second


class Counter:
    """A fake request: counts launches and synchronizes, optionally sleeping."""

    def __init__(self, sleep_s: float = 0.0) -> None:
        self.launches = 0
        self.syncs = 0
        self.sleep_s = sleep_s

    def launch(self) -> None:
        self.launches += 1
        if self.sleep_s:
            time.sleep(self.sleep_s)

    def synchronize(self) -> None:
        self.syncs += 1


def test_stop_rule_needs_both_time_and_count() -> None:
    rule = StopRule(min_s=1.0, min_count=10, max_s=5.0)
    assert not rule.done(0, 0)
    assert not rule.done(2 * S, 9)  # time met, count not
    assert not rule.done(S // 2, 100)  # count met, time not
    assert rule.done(S, 10)
    assert rule.done(3 * S, 50)


def test_stop_rule_cap_ends_the_loop_whatever_the_count() -> None:
    rule = StopRule(min_s=1.0, min_count=1_000_000, max_s=5.0)
    assert not rule.done(5 * S - 1, 3)
    assert rule.done(5 * S, 3)
    assert not StopRule(1.0, 10).done(10**6 * S, 9)  # no cap by default


def test_stop_rules_from_the_measure_config() -> None:
    measure = MeasureConfig(
        warmup_s=0.5, warmup_min_iters=3, min_duration_s=2.0, min_iters=20, max_duration_s=9.0
    )
    assert measure.warmup_rule() == StopRule(0.5, 3, 9.0, settle=0.05)
    assert measure.measurement_rule() == StopRule(2.0, 20, 9.0, half_width=0.01)
    fixed = measure.model_copy(update={"half_width": 0.0})  # no target: the fixed windows
    assert fixed.warmup_rule() == StopRule(0.5, 3, 9.0)
    assert fixed.measurement_rule() == StopRule(2.0, 20, 9.0)


def test_latency_meets_both_rules_and_reports_warmup() -> None:
    fake = Counter()
    warmup = StopRule(min_s=0.02, min_count=7)
    measure = StopRule(min_s=0.05, min_count=25)
    record = time_latency(fake.launch, fake.synchronize, warmup, measure)
    assert record.completed == len(record.times_ns) >= 25
    assert record.window_ns >= 0.05 * S
    assert record.warmup_count >= 7
    assert fake.launches == fake.syncs == record.warmup_count + record.completed
    assert not record.capped
    assert all(t >= 0 for t in record.times_ns)
    assert sum(record.times_ns) <= record.window_ns


def test_latency_count_rule_dominates_for_slow_requests() -> None:
    fake = Counter(sleep_s=0.002)
    record = time_latency(fake.launch, fake.synchronize, StopRule(0, 1), StopRule(0, 12))
    assert record.completed == 12  # time is met at once; the loop stops at the count
    assert record.warmup_count == 1
    assert min(record.times_ns) >= 0.002 * S  # each time covers the request


def test_latency_is_capped_when_the_cap_comes_first() -> None:
    fake = Counter(sleep_s=0.01)
    measure = StopRule(min_s=0.0, min_count=10**9, max_s=0.1)
    record = time_latency(fake.launch, fake.synchronize, StopRule(0, 1), measure)
    assert record.capped
    assert 1 <= record.completed <= 11  # about 0.1 s of 10 ms requests, never more
    assert record.window_ns >= 0.1 * S


def test_latency_exception_propagates() -> None:
    def boom() -> None:
        raise RuntimeError("device lost")

    with pytest.raises(RuntimeError, match="device lost"):
        time_latency(boom, lambda: None, StopRule(0, 1), StopRule(0, 1))


def _sleep_slots(count: int, sleep_s: float) -> tuple[list, list[int]]:
    calls = [0] * count

    def make(index: int):
        def slot() -> None:
            calls[index] += 1
            time.sleep(sleep_s)

        return slot

    return [make(i) for i in range(count)], calls


def test_throughput_keeps_every_slot_busy() -> None:
    slots, calls = _sleep_slots(3, 0.005)
    warmup = StopRule(min_s=0.02, min_count=3)
    measure = StopRule(min_s=0.3, min_count=30)
    record = time_throughput(slots, warmup, measure)
    assert record.completed == len(record.times_ns) >= 30
    assert record.window_ns >= 0.3 * S
    assert record.warmup_count >= 3
    assert not record.capped
    assert all(c > 0 for c in calls)  # every slot ran requests
    assert sum(calls) >= record.warmup_count + record.completed
    throughput = record.completed / (record.window_ns / S)
    ideal = 3 / 0.005  # 600 requests per second with three requests always in flight
    assert 0.4 * ideal <= throughput <= 1.2 * ideal
    assert min(record.times_ns) >= 0.005 * S


def test_throughput_counts_requests_that_overlap() -> None:
    """Two requests in flight: throughput is about twice 1 / mean latency, not equal to it."""
    slots, _ = _sleep_slots(2, 0.01)
    record = time_throughput(slots, StopRule(0, 2), StopRule(0.2, 10))
    throughput = record.completed / (record.window_ns / S)
    mean_latency_s = sum(record.times_ns) / len(record.times_ns) / S
    assert throughput > 1.4 / mean_latency_s


def test_throughput_capped() -> None:
    slots, _ = _sleep_slots(2, 0.01)
    record = time_throughput(slots, StopRule(0, 1), StopRule(0, 10**9, max_s=0.1))
    assert record.capped
    assert record.completed < 10**9


def test_throughput_exception_in_a_slot_propagates() -> None:
    lock = threading.Lock()
    calls = [0]

    def good() -> None:
        time.sleep(0.001)

    def bad() -> None:
        with lock:
            calls[0] += 1
            failing = calls[0] > 5
        time.sleep(0.001)
        if failing:
            raise ValueError("slot broke")

    with pytest.raises(ValueError, match="slot broke"):
        time_throughput([good, bad, good], StopRule(0, 1), StopRule(60, 10**9))
