"""Timing a device operation: CUDA events on a GPU, the host clock on the CPU."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


class DeviceClock:
    """Seconds per call of an operation on ``device`` (a torch.device)."""

    def __init__(self, torch: Any, device: Any) -> None:
        self._torch = torch
        self._cuda = device.type == "cuda"
        self._device = device

    def time(self, run: Callable[[], Any], calls: int = 1) -> float:
        """Seconds per call over ``calls`` back-to-back calls of ``run``. On CUDA the calls
        are queued between two events and the second event is waited for; on the CPU the
        host clock brackets them (CPU kernels return when done)."""
        if self._cuda:  # events on this device's current stream, where ``run`` queues
            with self._torch.cuda.device(self._device):
                start = self._torch.cuda.Event(enable_timing=True)
                end = self._torch.cuda.Event(enable_timing=True)
                start.record()
                for _ in range(calls):
                    run()
                end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3 / calls
        begin = time.perf_counter()
        for _ in range(calls):
            run()
        return (time.perf_counter() - begin) / calls

    def after_warm_up(self, run: Callable[[], Any], repeats: int) -> list[float]:
        """Seconds of each of ``repeats`` timed calls of ``run``, after one untimed call."""
        run()
        self.synchronize()
        return [self.time(run) for _ in range(repeats)]

    def synchronize(self) -> None:
        if self._cuda:
            self._torch.cuda.synchronize(self._device)

    def repeats(
        self, run: Callable[[], Any], repeats: int, min_repeat_s: float, max_s: float
    ) -> tuple[list[float], int, bool]:
        """``(seconds per call for each repeat, calls per repeat, capped)``.

        One warm-up call, then a timed call sets how many calls make a repeat of at least
        ``min_repeat_s``; repeats stop at ``repeats`` or once ``max_s`` has passed since the
        warm-up began (capped): the figure overruns ``max_s`` by one repeat at most.
        """
        began = time.perf_counter()
        (once,) = self.after_warm_up(run, 1)
        calls = max(1, int(min_repeat_s / once)) if once > 0 else 1
        seconds: list[float] = []
        while len(seconds) < repeats:
            seconds.append(self.time(run, calls))
            if time.perf_counter() - began > max_s:
                break
        return seconds, calls, len(seconds) < repeats
