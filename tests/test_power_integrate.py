"""Cutting samples to the measured window: known answers for counters and power readings."""

from __future__ import annotations

import pytest

from bench.power.integrate import Sample, window_energy

S = 1_000_000_000  # ns per second


def samples(points: list[tuple[float, float]]) -> list[Sample]:
    return [Sample(round(t * S), value) for t, value in points]


def test_constant_power_integrates_to_power_times_window() -> None:
    readings = samples([(t / 10, 50.0) for t in range(0, 31)])  # 50 W, 0..3 s at 10 Hz
    result = window_energy(readings, "power", round(0.5 * S), round(2.5 * S))
    assert result.window_s == pytest.approx(2.0)
    assert result.energy_j == pytest.approx(100.0)
    assert result.avg_w == pytest.approx(50.0)
    assert result.peak_w == pytest.approx(50.0)
    assert result.samples == 19  # readings at 0.6 … 2.4 s


def test_a_power_ramp_is_integrated_exactly_by_the_trapezoid_rule() -> None:
    readings = samples([(t, 10.0 + 2.0 * t) for t in range(0, 11)])  # 10 W rising 2 W/s
    result = window_energy(readings, "power", 1 * S, 5 * S)
    # ∫1..5 (10 + 2t) dt = 40 + (25 - 1) = 64 J
    assert result.energy_j == pytest.approx(64.0)
    assert result.avg_w == pytest.approx(16.0)
    assert result.peak_w == pytest.approx(20.0)  # the value at the end edge


def test_window_edges_between_samples_are_interpolated() -> None:
    readings = samples([(0, 0.0), (1, 100.0), (2, 100.0)])  # a step spread over 0..1 s
    result = window_energy(readings, "power", round(0.5 * S), round(1.5 * S))
    # P(0.5) = 50 W by interpolation; ∫0.5..1 = (50 + 100)/2 * 0.5 = 37.5; ∫1..1.5 = 50
    assert result.energy_j == pytest.approx(87.5)
    assert result.samples == 1


def test_an_energy_counter_is_differenced_at_the_interpolated_edges() -> None:
    readings = samples([(0, 1000.0), (1, 1030.0), (2, 1060.0), (3, 1090.0)])  # 30 W
    result = window_energy(readings, "energy", round(0.25 * S), round(2.75 * S))
    assert result.energy_j == pytest.approx(75.0)  # 30 W × 2.5 s
    assert result.avg_w == pytest.approx(30.0)


def test_a_counter_peak_is_taken_over_spans_of_its_refresh_period() -> None:
    # A counter that refreshes every 0.1 s, read every 0.05 s: alternate readings repeat,
    # so sample-to-sample power would read 0 W and 200 W for a steady 100 W.
    points, energy = [], 0.0
    for step in range(41):
        if step % 2 == 0:
            energy = 100.0 * step * 0.05
        points.append((step * 0.05, energy))
    result = window_energy(samples(points), "energy", 0, 2 * S, peak_span_s=0.1)
    assert result.energy_j == pytest.approx(200.0)
    assert result.peak_w == pytest.approx(100.0)
    assert result.peak_span_s == pytest.approx(0.1)
    unsmoothed = window_energy(samples(points), "energy", 0, 2 * S, peak_span_s=0.0)
    assert unsmoothed.peak_w == pytest.approx(200.0)


def test_a_counter_peak_finds_the_busy_span() -> None:
    readings = samples([(0, 0.0), (1, 10.0), (2, 60.0), (3, 70.0)])  # 10, 50, 10 W
    result = window_energy(readings, "energy", 0, 3 * S, peak_span_s=1.0)
    assert result.peak_w == pytest.approx(50.0)
    assert result.avg_w == pytest.approx(70.0 / 3)


@pytest.mark.parametrize(
    ("start", "end"),
    [(-1, 2), (0, 4), (2, 2)],
    ids=["starts-before-the-samples", "ends-after-them", "empty-window"],
)
def test_a_window_the_samples_do_not_cover_is_refused(start: int, end: int) -> None:
    readings = samples([(0, 1.0), (3, 1.0)])
    with pytest.raises(ValueError):
        window_energy(readings, "power", start * S, end * S)
