"""A thread beside the timed loop that reads a power source at a steady rate."""

from __future__ import annotations

import threading
import time

from bench.power.integrate import Sample
from bench.power.source import PowerSource

_clock = time.perf_counter_ns


class PowerSampler:
    """Reads ``source`` every ``interval_s`` (a paced source: as fast as it delivers) from a
    daemon thread, keeping every reading with its ``perf_counter_ns`` time.

    ``start`` returns once the first reading is in, and ``stop`` once a reading taken after
    the stop was asked for is in, so a window that lies between the two calls is covered at
    both edges. A failed read ends the sampling and is kept in ``error``.
    """

    def __init__(self, source: PowerSource, interval_s: float) -> None:
        self.source = source
        self.interval_s = interval_s
        self.samples: list[Sample] = []
        self.error: str | None = None
        self._stop = threading.Event()
        self._first = threading.Event()
        self._thread = threading.Thread(target=self._run, name="power-sampler", daemon=True)

    def start(self) -> PowerSampler:
        """Start sampling; returns after the first reading (or a failed one)."""
        self._thread.start()
        self._first.wait()
        return self

    def stop(self) -> list[Sample]:
        """Take one more reading, stop, and return every reading."""
        self._stop.set()
        self._thread.join()
        return self.samples

    def _run(self) -> None:
        append = self.samples.append
        read = self.source.read
        paced = self.source.paced
        wait = 0.0 if paced else self.interval_s
        try:
            while True:
                stopping = self._stop.is_set()
                before = _clock()
                value = read()
                after = _clock()  # a polled value is timed at the middle of its read
                append(Sample(after if paced else (before + after) // 2, value))
                self._first.set()
                if stopping:
                    return
                if wait:
                    self._stop.wait(wait)
        except Exception as exc:  # any failed read ends sampling, with its reason
            self.error = f"reading {self.source.name} failed: {exc}"
        finally:
            self._first.set()
