"""The timed loops: warm-up then measurement, each ending when both a minimum time and a
minimum count are met (or a time cap is hit), keeping every raw time."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.config import MeasureConfig

_clock = time.perf_counter_ns


@dataclass(frozen=True)
class StopRule:
    """A loop ends once ``min_s`` and ``min_count`` are both met, or at ``max_s``."""

    min_s: float
    min_count: int
    max_s: float = float("inf")

    def done(self, elapsed_ns: int, count: int) -> bool:
        return (elapsed_ns >= self.min_s * 1e9 and count >= self.min_count) or (
            elapsed_ns >= self.max_s * 1e9
        )

    @classmethod
    def warmup(cls, measure: MeasureConfig) -> StopRule:
        return cls(measure.warmup_s, measure.warmup_min_iters, measure.max_duration_s)

    @classmethod
    def measurement(cls, measure: MeasureConfig) -> StopRule:
        return cls(measure.min_duration_s, measure.min_iters, measure.max_duration_s)


@dataclass
class LoopRecord:
    """What a measured window produced: each request's latency and the window's wall time."""

    times_ns: list[int]
    window_ns: int
    completed: int
    warmup_count: int
    capped: bool = False
    in_flight: int = 1


def time_latency(
    launch: Callable[[], None],
    synchronize: Callable[[], None],
    warmup: StopRule,
    measure: StopRule,
) -> LoopRecord:
    """One request at a time: ``launch`` then ``synchronize``, timed per request."""
    warm = _loop(launch, synchronize, warmup)
    record = _loop(launch, synchronize, measure)
    record.warmup_count = warm.completed
    return record


def _loop(
    launch: Callable[[], None], synchronize: Callable[[], None], rule: StopRule
) -> LoopRecord:
    times: list[int] = []
    append = times.append
    start = _clock()
    while True:
        t0 = _clock()
        launch()
        synchronize()
        t1 = _clock()
        append(t1 - t0)
        if rule.done(t1 - start, len(times)):
            break
    window = _clock() - start
    capped = len(times) < rule.min_count or window < rule.min_s * 1e9
    return LoopRecord(times, window, len(times), 0, capped)


def time_throughput(
    slots: list[Callable[[], None]], warmup: StopRule, measure: StopRule
) -> LoopRecord:
    """``len(slots)`` requests kept in flight, one thread per slot.

    The window opens when the warm-up rule is met and closes when the measurement rule is
    met; throughput is requests completed inside the window ÷ the window's wall time.
    """
    lock = threading.Lock()
    stop = threading.Event()
    state = _ThroughputState()

    def drive(slot: Callable[[], None]) -> None:
        while not stop.is_set():
            t0 = _clock()
            try:
                slot()
            except BaseException as exc:  # re-raised in the calling thread below
                state.error = exc
                stop.set()
                return
            t1 = _clock()
            with lock:
                if state.window_start is None:
                    state.warmup_count += 1
                    if warmup.done(t1 - state.start, state.warmup_count):
                        state.window_start = t1
                elif state.window_end is None:
                    state.times.append(t1 - t0)
                    if measure.done(t1 - state.window_start, len(state.times)):
                        state.window_end = t1
                        stop.set()

    threads = [threading.Thread(target=drive, args=(slot,), daemon=True) for slot in slots]
    state.start = _clock()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if state.error is not None:
        raise state.error
    window = (state.window_end or _clock()) - (state.window_start or state.start)
    capped = len(state.times) < measure.min_count or window < measure.min_s * 1e9
    return LoopRecord(state.times, window, len(state.times), state.warmup_count, capped, len(slots))


@dataclass
class _ThroughputState:
    start: int = 0
    warmup_count: int = 0
    window_start: int | None = None
    window_end: int | None = None
    times: list[int] = field(default_factory=list)
    error: BaseException | None = None
