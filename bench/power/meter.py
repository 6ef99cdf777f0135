"""A cell's power figures: open its source, take an optional idle baseline, sample beside
the timed loop, and cut the samples to exactly the measured window."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.core.settings import PowerSettings
from bench.power.integrate import Sample, WindowEnergy, window_energy
from bench.power.sampler import PowerSampler
from bench.power.source import PowerSource, PowerUnavailable
from bench.power.sources import choose_source

FINE_PERIODS = 10
"""A window shorter than this many refresh (or sampling) periods is flagged coarse."""
PEAK_SPAN_PERIODS = 5
"""A counter's peak is the highest average over spans of at least this many refresh
periods: a span holds one refresh more or less than its length says, so its power is
off by at most 1 / PEAK_SPAN_PERIODS."""


class CellPower:
    """``with CellPower(settings, device) as power: <timed loop>``, then ``power.result``.

    A source that cannot be opened is no error: the result records it as unavailable with
    the reason, and the cell runs as it would without power measurement.
    """

    def __init__(self, settings: PowerSettings, device: str, root: Path = Path("/")) -> None:
        self.settings = settings
        self.interval_s = 1.0 / settings.sample_hz
        self.source: PowerSource | None = None
        self.reason: str | None = None
        self.idle: WindowEnergy | None = None
        self._sampler: PowerSampler | None = None
        try:
            self.source = choose_source(settings.source, device, self.interval_s, root)
        except PowerUnavailable as exc:
            self.reason = str(exc)

    def __enter__(self) -> CellPower:
        if self.source is not None:
            if self.settings.idle_s > 0:
                self.idle = self._idle_baseline()
            self._sampler = PowerSampler(self.source, self.interval_s).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._sampler is not None:
            self._sampler.stop()
        if self.source is not None:
            self.source.close()

    def _idle_baseline(self) -> WindowEnergy | None:
        """Average power over ``idle_s`` seconds with nothing running (None if it fails or
        the source did not advance over it)."""
        assert self.source is not None
        sampler = PowerSampler(self.source, self.interval_s).start()
        start = time.perf_counter_ns()
        time.sleep(self.settings.idle_s)
        end = time.perf_counter_ns()
        samples = sampler.stop()
        if sampler.error is not None:
            return None
        try:
            idle = window_energy(samples, self.source.kind, start, end)
        except ValueError:
            return None
        return idle if idle.energy_j > 0 else None

    def result(self, start_ns: int, end_ns: int, requests: int, batch: int) -> dict[str, Any]:
        """The cell's ``power`` object for the window ``[start_ns, end_ns]`` in which
        ``requests`` requests of ``batch`` samples completed."""
        name = self.settings.source if self.settings.source != "auto" else "none"
        if self.source is None or self._sampler is None:
            return {"source": name, "unavailable": self.reason}
        source = self.source
        if end_ns <= start_ns:
            return {
                "source": source.name,
                "unavailable": "the timed loop gave no window edges on the host clock "
                "(a runtime timing its own loop, such as trtexec)",
            }
        if self._sampler.error is not None:
            return {"source": source.name, "unavailable": self._sampler.error}
        sample_hz = 1.0 / source.resolution_s if source.paced else self.settings.sample_hz
        figures = window_figures(
            source, self._sampler.samples, start_ns, end_ns, requests, batch, sample_hz
        )
        if "unavailable" in figures:
            return figures
        figures["notes"] = self._notes(figures["window_s"])
        inferences = requests * batch
        if self.idle is not None:
            dynamic_w = figures["avg_w"] - self.idle.avg_w
            figures["idle"] = {"avg_w": self.idle.avg_w, "seconds": self.idle.window_s}
            figures["dynamic_w"] = dynamic_w
            figures["dynamic_j_per_sample"] = (
                dynamic_w * figures["window_s"] / inferences if inferences else None
            )
        return figures

    def _notes(self, window_s: float) -> list[str]:
        assert self.source is not None
        # A counter's edges are interpolated between readings, so its sampling interval
        # bounds the window's accuracy as much as its refresh does; so for power readings.
        period = max(self.source.resolution_s, self.interval_s)
        coarse = coarse_note(window_s, period)
        notes = [coarse] if coarse else []
        if self.settings.idle_s > 0 and self.idle is None:
            notes.append("the idle baseline could not be measured")
        elif self.idle is not None and self.idle.window_s < FINE_PERIODS * period:
            notes.append(
                f"coarse idle baseline: {self.idle.window_s:.2f} s is under {FINE_PERIODS} "
                f"refresh or sampling periods ({period:g} s); raise suite.power_idle_s"
            )
        return notes


def coarse_note(window_s: float, period_s: float) -> str | None:
    """The note a window of ``window_s`` gets when it is shorter than ``FINE_PERIODS`` of
    its source's refresh or sampling period ``period_s``: its figure is not firm."""
    if window_s >= FINE_PERIODS * period_s:
        return None
    return (
        f"coarse: the window ({window_s:.2f} s) is under {FINE_PERIODS} refresh or "
        f"sampling periods of the source ({period_s:g} s); measure longer "
        "(measure.min_duration_s) for a firm figure"
    )


def window_figures(
    source: PowerSource,
    samples: list[Sample],
    start_ns: int,
    end_ns: int,
    requests: int,
    batch: int,
    sample_hz: float,
) -> dict[str, Any]:
    """The ``power`` figures of ``source``'s ``samples`` cut to ``[start_ns, end_ns]``, in
    which ``requests`` requests of ``batch`` samples completed; ``unavailable`` with the
    reason when the samples do not cover the window or show no energy."""
    try:
        window = window_energy(
            samples, source.kind, start_ns, end_ns, PEAK_SPAN_PERIODS * source.resolution_s
        )
    except ValueError as exc:
        return {"source": source.name, "unavailable": f"cannot cut the samples: {exc}"}
    if window.energy_j <= 0:  # a counter that did not move, or readings of 0 W
        return {
            "source": source.name,
            "unavailable": f"no energy seen over the {window.window_s:.3f} s window "
            f"({window.samples} readings inside it): the source did not advance; "
            "measure longer (measure.min_duration_s)",
        }
    inferences = requests * batch  # samples: a request carries ``batch`` of them
    figures: dict[str, Any] = {
        "source": source.name,
        **source.describe(),
        "method": "energy counter differenced"
        if source.kind == "energy"
        else "power readings integrated (trapezoid)",
        "sample_hz": sample_hz,
        "samples_in_window": window.samples,
        "window_s": window.window_s,
        "avg_w": window.avg_w,
        "peak_w": window.peak_w,
        "energy_j": window.energy_j,
        "requests": requests,
        "batch": batch,
        "j_per_request": window.energy_j / requests if requests else None,
        "j_per_sample": window.energy_j / inferences if inferences else None,
        "samples_per_j": inferences / window.energy_j if window.energy_j > 0 else None,
    }
    if source.kind == "energy":
        figures["peak_span_s"] = window.peak_span_s
    return figures
