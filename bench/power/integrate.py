"""Cutting samples to exactly the measured window: energy, average and peak power.

Samples are ``(t_ns, value)`` on the ``time.perf_counter_ns`` clock the timed loops use.
Between samples a value is linear in time, so the window's edges are interpolated: energy
counters are read off at both edges and differenced; power readings are integrated with the
trapezoid rule from the start edge to the end edge.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np


@dataclass(frozen=True)
class Sample:
    """One reading: joules so far (energy counter) or watts (power) at ``t_ns``."""

    t_ns: int
    value: float


@dataclass(frozen=True)
class WindowEnergy:
    """What the samples say about one window."""

    energy_j: float
    avg_w: float
    peak_w: float
    peak_span_s: float
    window_s: float
    samples: int  # readings strictly inside the window


def window_energy(
    samples: list[Sample],
    kind: Literal["energy", "power"],
    start_ns: int,
    end_ns: int,
    peak_span_s: float = 0.0,
) -> WindowEnergy:
    """Energy over ``[start_ns, end_ns]`` from samples that cover it (one at or before the
    start, one at or after the end; ValueError otherwise). For a counter the peak is the
    highest average power over consecutive spans of at least ``peak_span_s`` (the counter's
    refresh period: shorter spans see its steps, not the power)."""
    if end_ns <= start_ns:
        raise ValueError("the window is empty")
    if not samples or samples[0].t_ns > start_ns or samples[-1].t_ns < end_ns:
        raise ValueError("the samples do not cover the window")
    window_ns = end_ns - start_ns  # times from the window's start: exact in float64
    t = np.array([s.t_ns - start_ns for s in samples], dtype=np.float64)
    v = np.array([s.value for s in samples], dtype=np.float64)
    inside = (t > 0) & (t < window_ns)
    edges_t = np.concatenate(([0.0], t[inside], [float(window_ns)]))
    edges_v = np.interp(edges_t, t, v)
    window_s = window_ns / 1e9
    if kind == "energy":
        energy = float(edges_v[-1] - edges_v[0])
        peak, span = _peak_of_counter(edges_t, edges_v, peak_span_s)
    else:
        energy = float(np.sum((edges_v[1:] + edges_v[:-1]) / 2 * np.diff(edges_t) / 1e9))
        peak, span = float(edges_v.max()), 0.0
    return WindowEnergy(energy, energy / window_s, peak, span, window_s, int(inside.sum()))


def _peak_of_counter(
    times_ns: np.ndarray, joules: np.ndarray, min_span_s: float
) -> tuple[float, float]:
    """Highest average power over consecutive spans of at least ``min_span_s`` (a short
    last span joins the one before it). Spans are cut on the integer-nanosecond times, so
    a span of exactly ``min_span_s`` counts as long enough."""
    min_span_ns = min_span_s * 1e9
    bounds = [0]
    for index in range(1, len(times_ns)):
        if times_ns[index] - times_ns[bounds[-1]] >= min_span_ns:
            bounds.append(index)
    if bounds[-1] != len(times_ns) - 1:
        if len(bounds) > 1:
            bounds[-1] = len(times_ns) - 1
        else:
            bounds.append(len(times_ns) - 1)
    spans = np.diff(times_ns[bounds]) / 1e9
    powers = np.diff(joules[bounds]) / spans
    best = int(np.argmax(powers))
    return float(powers[best]), float(spans[best])
