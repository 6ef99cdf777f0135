"""The timed loops: warm-up then measurement, each ending as its ``StopRule`` says (a
minimum time and count, sooner once its figure is known, or at a cap), keeping every raw
time."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench.core.stopping import Ending, Progress, Stop, StopRule

__all__ = ["LoopRecord", "StopRule", "ThroughputWindow", "time_latency", "time_throughput"]

_clock = time.perf_counter_ns


@dataclass
class LoopRecord:
    """What a measured window produced: each request's latency and the window's wall time.

    ``start_ns`` and ``end_ns`` are the window's edges on the ``perf_counter_ns`` clock, so
    that readings taken beside the loop (power samples) can be cut to exactly the window.
    ``stop`` says how the window ended (``early``, ``window`` or ``cap``: see
    bench.core.stopping), ``half_width`` how well its figure (``figure``) was known then,
    over ``batches`` parts, against the rule's ``target``; ``warmup_ns`` and ``warmup_stop``
    the same for the warm-up. A loop that another program timed (trtexec) leaves them at
    their defaults: its own fixed window, its half-width unknown.
    """

    times_ns: list[int]
    window_ns: int
    completed: int
    warmup_count: int
    capped: bool = False
    in_flight: int = 1
    start_ns: int = 0
    end_ns: int = 0
    stop: Stop = "window"
    half_width: float | None = None
    batches: int = 0
    target: float = 0.0
    figure: str = "median"
    warmup_ns: int | None = None
    warmup_stop: Stop | None = None

    def __post_init__(self) -> None:
        if self.capped:  # a loop another program timed says only whether it was capped
            self.stop = "cap"

    def ended(self, ending: Ending, target: float) -> None:
        """Take how the window ended (see ``Progress.ending``)."""
        self.stop, self.half_width, self.batches = ending.stop, ending.half_width, ending.batches
        self.capped = ending.stop == "cap"
        self.target = target

    def warmed(self, warmup: LoopRecord) -> None:
        """Take the warm-up's count, length and ending."""
        self.warmup_count = warmup.completed
        self.warmup_ns = warmup.window_ns
        self.warmup_stop = warmup.stop


def time_latency(
    launch: Callable[[], None],
    synchronize: Callable[[], None],
    warmup: StopRule,
    measure: StopRule,
) -> LoopRecord:
    """One request at a time: ``launch`` then ``synchronize``, timed per request."""
    warm = _loop(launch, synchronize, warmup)
    record = _loop(launch, synchronize, measure)
    record.warmed(warm)
    return record


def _loop(
    launch: Callable[[], None], synchronize: Callable[[], None], rule: StopRule
) -> LoopRecord:
    start = _clock()
    progress = Progress(rule, start, "median")
    add = progress.add
    while True:
        t0 = _clock()
        launch()
        synchronize()
        t1 = _clock()
        if add(t1 - t0, t1):
            break
    end = _clock()
    times = progress.times
    record = LoopRecord(times, end - start, len(times), 0, start_ns=start, end_ns=end)
    record.ended(progress.ending(end), rule.half_width)
    return record


class ThroughputWindow:
    """The throughput scenario's window, fed by request completions from any thread.

    Completions first count as warm-up; the window opens at the completion that ends the
    warm-up and closes at the one that ends the measurement (their rules' figure here is
    the rate of completions). Throughput is the completions inside the window ÷ the
    window's wall time. ``closed`` is set when the window closes or a request fails.
    """

    def __init__(self, warmup: StopRule, measure: StopRule) -> None:
        self.warmup = warmup
        self.measure = measure
        self.closed = threading.Event()
        self._lock = threading.Lock()
        self._start = _clock()
        self._warmup = Progress(warmup, self._start, "rate")
        self._window: Progress | None = None
        self._window_start: int | None = None
        self._window_end: int | None = None
        self._error: BaseException | None = None

    def completed(self, latency_ns: int, now: int | None = None) -> None:
        """A request finished at ``now`` (default: this instant) after ``latency_ns``."""
        now = _clock() if now is None else now
        with self._lock:
            if self._window is None:
                if self._warmup.add(latency_ns, now):
                    self._window_start = now
                    self._window = Progress(self.measure, now, "rate")
            elif self._window_end is None and self._window.add(latency_ns, now):
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
        window = self._window or Progress(self.measure, start, "rate")
        times = window.times
        record = LoopRecord(
            times, end - start, len(times), 0, in_flight=in_flight, start_ns=start, end_ns=end
        )
        record.figure = "rate"
        record.ended(window.ending(end), self.measure.half_width)
        warmup_end = self._window_start or end
        record.warmup_count = len(self._warmup.times)
        record.warmup_ns = warmup_end - self._start
        record.warmup_stop = self._warmup.stop or "cap"
        return record


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
