"""The timed loops: warm-up then measurement, each ending when both a minimum time and a
minimum count are met (or a time cap is hit), keeping every raw time."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

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


@dataclass
class LoopRecord:
    """What a measured window produced: each request's latency and the window's wall time.

    ``start_ns`` and ``end_ns`` are the window's edges on the ``perf_counter_ns`` clock, so
    that readings taken beside the loop (power samples) can be cut to exactly the window.
    """

    times_ns: list[int]
    window_ns: int
    completed: int
    warmup_count: int
    capped: bool = False
    in_flight: int = 1
    start_ns: int = 0
    end_ns: int = 0


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
    end = _clock()
    window = end - start
    capped = len(times) < rule.min_count or window < rule.min_s * 1e9
    return LoopRecord(times, window, len(times), 0, capped, start_ns=start, end_ns=end)


class ThroughputWindow:
    """The throughput scenario's window, fed by request completions from any thread.

    Completions first count as warm-up; the window opens at the completion that meets the
    warm-up rule and closes at the one that meets the measurement rule. Throughput is the
    completions inside the window ÷ the window's wall time. ``closed`` is set when the
    window closes or a request fails.
    """

    def __init__(self, warmup: StopRule, measure: StopRule) -> None:
        self.warmup = warmup
        self.measure = measure
        self.closed = threading.Event()
        self._lock = threading.Lock()
        self._start = _clock()
        self._warmup_count = 0
        self._window_start: int | None = None
        self._window_end: int | None = None
        self._times: list[int] = []
        self._error: BaseException | None = None

    def completed(self, latency_ns: int, now: int | None = None) -> None:
        """A request finished at ``now`` (default: this instant) after ``latency_ns``."""
        now = _clock() if now is None else now
        with self._lock:
            if self._window_start is None:
                self._warmup_count += 1
                if self.warmup.done(now - self._start, self._warmup_count):
                    self._window_start = now
            elif self._window_end is None:
                self._times.append(latency_ns)
                if self.measure.done(now - self._window_start, len(self._times)):
                    self._window_end = now
                    self.closed.set()

    def failed(self, error: BaseException) -> None:
        """A request raised: the window closes and ``record`` re-raises ``error``."""
        self._error = error
        self.closed.set()

    def record(self, in_flight: int) -> LoopRecord:
        """The measured window, once every request has drained."""
        if self._error is not None:
            raise self._error
        start = self._window_start or self._start
        end = self._window_end or _clock()
        window = end - start
        capped = len(self._times) < self.measure.min_count or window < self.measure.min_s * 1e9
        return LoopRecord(
            self._times,
            window,
            len(self._times),
            self._warmup_count,
            capped,
            in_flight,
            start_ns=start,
            end_ns=end,
        )


def time_throughput(
    slots: list[Callable[[], None]], warmup: StopRule, measure: StopRule
) -> LoopRecord:
    """``len(slots)`` requests kept in flight, one thread per slot (see ThroughputWindow)."""
    window = ThroughputWindow(warmup, measure)

    def drive(slot: Callable[[], None]) -> None:
        while not window.closed.is_set():
            t0 = _clock()
            try:
                slot()
            except BaseException as exc:  # re-raised by window.record below
                window.failed(exc)
                return
            t1 = _clock()
            window.completed(t1 - t0, t1)

    threads = [threading.Thread(target=drive, args=(slot,), daemon=True) for slot in slots]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return window.record(len(slots))
