"""The sampler beside a loop and a cell's power figures, with sources of known power."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bench.core.settings import PowerSettings
from bench.power import meter as meter_module
from bench.power.meter import CellPower
from bench.power.sampler import PowerSampler
from bench.power.source import PowerSource, PowerUnavailable
from bench.power.sources import choose_source


class SteadySource(PowerSource):
    """A steady ``watts`` draw, as a counter (joules since creation) or a power reading."""

    name = "steady"

    def __init__(self, watts: float, kind: str = "energy", fail_after: int | None = None) -> None:
        self.watts, self.kind, self.fail_after = watts, kind, fail_after
        self.created = time.perf_counter_ns()
        self.reads = 0
        self.closed = False

    def read(self) -> float:
        self.reads += 1
        if self.fail_after is not None and self.reads > self.fail_after:
            raise OSError("i2c read timed out")
        if self.kind == "power":
            return self.watts
        return self.watts * (time.perf_counter_ns() - self.created) / 1e9

    def describe(self) -> dict[str, Any]:
        return {"measures": f"a steady {self.watts} W"}

    def close(self) -> None:
        self.closed = True


def measured_cell(
    monkeypatch: pytest.MonkeyPatch, source: PowerSource, settings: PowerSettings, seconds: float
) -> tuple[CellPower, int, int]:
    monkeypatch.setattr(meter_module, "choose_source", lambda *args: source)
    with CellPower(settings, "cpu") as power:
        start = time.perf_counter_ns()
        time.sleep(seconds)
        end = time.perf_counter_ns()
    return power, start, end


def test_the_sampler_covers_a_window_between_start_and_stop() -> None:
    source = SteadySource(5.0)
    sampler = PowerSampler(source, 0.01).start()
    assert len(sampler.samples) >= 1  # start returns with the first reading in
    start = time.perf_counter_ns()
    time.sleep(0.2)
    end = time.perf_counter_ns()
    samples = sampler.stop()
    assert samples[0].t_ns <= start and samples[-1].t_ns >= end
    assert 3 <= len(samples) <= 30  # at most 100 Hz for 0.2 s (fewer on a loaded machine)
    assert all(a.t_ns < b.t_ns for a, b in zip(samples, samples[1:], strict=False))


@pytest.mark.parametrize("kind", ["energy", "power"])
def test_a_steady_draw_gives_its_power_and_energy(
    monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    source = SteadySource(12.0, kind)
    power, start, end = measured_cell(monkeypatch, source, PowerSettings("steady", 50), 0.5)
    figures = power.result(start, end, requests=100, batch=4)
    window_s = (end - start) / 1e9
    assert figures["window_s"] == pytest.approx(window_s)
    assert figures["avg_w"] == pytest.approx(12.0, rel=1e-3)
    assert figures["energy_j"] == pytest.approx(12.0 * window_s, rel=1e-3)
    assert figures["j_per_request"] == pytest.approx(figures["energy_j"] / 100)
    assert figures["j_per_sample"] == pytest.approx(figures["energy_j"] / 400)
    assert figures["samples_per_j"] == pytest.approx(400 / figures["energy_j"])
    assert figures["sample_hz"] == 50
    assert 5 <= figures["samples_in_window"] <= 26  # at most 50 Hz × 0.5 s
    assert figures["measures"] == "a steady 12.0 W"
    assert source.closed


def test_an_idle_baseline_gives_dynamic_energy(monkeypatch: pytest.MonkeyPatch) -> None:
    source = SteadySource(20.0, "power")
    power, start, end = measured_cell(monkeypatch, source, PowerSettings("steady", 50, 0.1), 0.3)
    figures = power.result(start, end, requests=30, batch=1)
    assert figures["idle"]["avg_w"] == pytest.approx(20.0)
    assert figures["idle"]["seconds"] == pytest.approx(0.1, abs=0.05)
    assert figures["dynamic_w"] == pytest.approx(0.0, abs=1e-9)  # a steady draw: no load part
    assert figures["dynamic_j_per_sample"] == pytest.approx(0.0, abs=1e-9)
    assert figures["notes"] == [  # 0.3 s at 50 Hz is fine; 0.1 s of idle is 5 readings
        "coarse idle baseline: 0.10 s is under 10 refresh or sampling periods (0.02 s); "
        "raise suite.power_idle_s"
    ]


def test_a_failed_read_makes_the_cell_unavailable_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = SteadySource(3.0, "power", fail_after=3)
    power, start, end = measured_cell(monkeypatch, source, PowerSettings("steady", 100), 0.2)
    assert power.result(start, end, 10, 1) == {
        "source": "steady",
        "unavailable": "reading steady failed: i2c read timed out",
    }


def test_a_loop_without_host_clock_edges_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    power, _, _ = measured_cell(monkeypatch, SteadySource(1.0), PowerSettings("steady"), 0.05)
    result = power.result(0, 0, 10, 1)  # LoopRecord's defaults: a runtime's own loop
    assert result["source"] == "steady"
    assert "no window edges on the host clock" in result["unavailable"]


def test_no_source_here_records_none_with_the_reasons(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no tegrastats either
    with CellPower(PowerSettings("auto"), "cpu", root=tmp_path) as power:
        pass
    result = power.result(1, 2, 10, 1)
    assert result["source"] == "none"
    for reason in ("rapl: no RAPL counters", "jetson: no INA3221", "tegrastats: "):
        assert reason in result["unavailable"]


def test_an_unavailable_explicit_source_keeps_its_name(tmp_path: Path) -> None:
    with CellPower(PowerSettings("rapl"), "cpu", root=tmp_path) as power:
        pass
    assert power.result(1, 2, 10, 1) == {
        "source": "rapl",
        "unavailable": "no RAPL counters: /sys/class/powercap/intel-rapl:* not found (not "
        "Linux on x86, a virtual machine, or the intel_rapl_common driver is not loaded)",
    }
    with CellPower(PowerSettings("none"), "cpu") as power:
        pass
    assert power.result(1, 2, 10, 1)["unavailable"].startswith("power measurement is off")


def test_auto_order_on_a_jetson(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # NVML does not serve a Jetson's GPU
    board = Path(__file__).resolve().parent / "fixtures/power/jetson/xavier-nx-jp5"
    assert choose_source("auto", "cuda:0", 0.05, board).name == "jetson"  # no NVML on Tegra
    assert choose_source("auto", "dla:0", 0.05, board).name == "jetson"
    assert choose_source("auto", "cpu", 0.05, board).name == "jetson"  # no RAPL on Arm
    with pytest.raises(PowerUnavailable, match="unknown power source 'watts'"):
        choose_source("watts", "cpu", 0.05, tmp_path)


def test_a_window_shorter_than_the_sampling_interval_is_flagged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A counter refreshed every millisecond but read at 10 Hz: a 50 ms window lies between
    two readings, its edges interpolated, so it is coarse whatever the refresh."""
    source = SteadySource(8.0)
    source.resolution_s = 0.001
    power, start, end = measured_cell(monkeypatch, source, PowerSettings("steady", 10), 0.05)
    figures = power.result(start, end, 5, 1)
    assert figures["avg_w"] == pytest.approx(8.0, rel=1e-3)
    assert figures["samples_in_window"] <= 1
    [note] = figures["notes"]
    assert "(0.1 s)" in note
