"""NVML through a test double of the ``pynvml`` calls (no GPU in this session)."""

from __future__ import annotations

import re
import sys
import time
import types
from pathlib import Path

import pynvml as real_pynvml
import pytest

from bench.core.settings import PowerSettings
from bench.power import nvml
from bench.power.meter import CellPower
from bench.power.nvml import NvmlSource, gpu_states
from bench.power.source import PowerUnavailable
from bench.power.sources import choose_source
from bench.power.state import state_changes

NOT_SUPPORTED = real_pynvml.NVML_ERROR_NOT_SUPPORTED


class FakeGpu:
    """One GPU as the double reports it: a steady ``watts`` draw since ``created``."""

    def __init__(
        self,
        name: str = "NVIDIA H100 80GB HBM3",
        watts: float = 250.0,
        counter: bool = True,
        refresh_s: float = 0.0,
    ) -> None:
        self.name, self.watts, self.counter, self.refresh_s = name, watts, counter, refresh_s
        self.created = time.perf_counter()
        self.sm_clock, self.reasons, self.limit_mw = 1980, 0, 700_000

    def energy_mj(self) -> int:
        elapsed = time.perf_counter() - self.created
        if self.refresh_s:
            elapsed = elapsed // self.refresh_s * self.refresh_s  # the counter's steps
        return int(self.watts * elapsed * 1e3)


def pci_fields(bus_id: str) -> tuple[int, ...]:
    """A PCI bus id read as NVML reads it (``%x:%x:%x.%x``): NVML's own
    ``00000000:41:00.0`` and CUDA's ``0000:41:00.0`` name the same GPU."""
    domain, bus, rest = bus_id.split(":")
    device, function = rest.split(".")
    return tuple(int(field, 16) for field in (domain, bus, device, function))


def fake_pynvml(gpus: list[FakeGpu], bus_ids: dict[str, int] | None = None) -> types.ModuleType:
    """A ``pynvml`` stand-in with the real module's constants and error classes."""
    module = types.ModuleType("pynvml")
    for name in dir(real_pynvml):
        if name.startswith(("NVML_", "nvmlClocksEventReason")) or name.startswith("NVMLError"):
            setattr(module, name, getattr(real_pynvml, name))
    module.calls = []

    def unsupported() -> None:
        raise real_pynvml.NVMLError(NOT_SUPPORTED)

    def energy(gpu: FakeGpu) -> int:
        return gpu.energy_mj() if gpu.counter else unsupported()

    functions = {
        "nvmlInit": lambda: module.calls.append("init"),
        "nvmlShutdown": lambda: module.calls.append("shutdown"),
        "nvmlDeviceGetCount": lambda: len(gpus),
        "nvmlDeviceGetHandleByIndex": lambda i: gpus[i],
        "nvmlDeviceGetHandleByPciBusId": lambda bus: gpus[
            {pci_fields(k): i for k, i in (bus_ids or {}).items()}[pci_fields(bus.decode())]
        ],
        "nvmlDeviceGetName": lambda gpu: gpu.name,
        "nvmlSystemGetDriverVersion": lambda: "580.159.04",
        "nvmlDeviceGetTotalEnergyConsumption": energy,
        "nvmlDeviceGetPowerUsage": lambda gpu: int(gpu.watts * 1e3),
        "nvmlDeviceGetEnforcedPowerLimit": lambda gpu: gpu.limit_mw,
        "nvmlDeviceGetClockInfo": lambda gpu, kind: gpu.sm_clock if kind == 1 else 2619,
        "nvmlDeviceGetMaxClockInfo": lambda gpu, kind: 1980,
        "nvmlDeviceGetTemperature": lambda gpu, sensor: 41,
        "nvmlDeviceGetCurrentClocksEventReasons": lambda gpu: gpu.reasons,
    }
    for name, function in functions.items():
        setattr(module, name, function)
    return module


@pytest.fixture
def gpus(monkeypatch: pytest.MonkeyPatch) -> list[FakeGpu]:
    """Two fake GPUs behind a fake ``pynvml``; no libcuda bus-id mapping."""
    devices = [FakeGpu(), FakeGpu("Tesla P100-PCIE-16GB", 40.0, counter=False)]
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(devices))
    monkeypatch.setattr(nvml, "cuda_pci_bus_id", lambda index: None)
    return devices


def test_volta_and_newer_use_the_energy_counter(gpus: list[FakeGpu]) -> None:
    source = NvmlSource("cuda:0")
    assert source.kind == "energy"
    assert source.resolution_s == pytest.approx(0.1)
    first = source.read()
    time.sleep(0.2)
    assert source.read() - first == pytest.approx(250 * 0.2, rel=0.25)
    assert "GPU 0 (NVIDIA H100 80GB HBM3): total-energy counter" in source.describe()["measures"]
    source.close()
    assert sys.modules["pynvml"].calls == ["init", "shutdown"]


def test_without_the_counter_power_readings_are_used(gpus: list[FakeGpu]) -> None:
    source = NvmlSource("cuda:1")
    assert source.kind == "power"
    assert source.read() == pytest.approx(40.0)  # mW → W
    assert "not supported" in source.describe()["measures"]


def test_a_gpu_with_neither_is_unavailable_and_nvml_is_shut(gpus: list[FakeGpu]) -> None:
    module = sys.modules["pynvml"]
    module.nvmlDeviceGetPowerUsage = module.nvmlDeviceGetTotalEnergyConsumption  # unsupported
    with pytest.raises(PowerUnavailable, match="neither energy .* nor power"):
        NvmlSource("cuda:1")
    assert module.calls[-1] == "shutdown"


def test_the_cuda_ordinal_is_matched_by_pci_bus_id(
    monkeypatch: pytest.MonkeyPatch, gpus: list[FakeGpu]
) -> None:
    """CUDA_VISIBLE_DEVICES=1 makes cuda:0 NVML's GPU 1: the bus id says so. libcuda
    writes it with a 4-digit domain (``0000:41:00.0``), NVML's busId has 8; NVML takes
    either."""
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(gpus, {"00000000:41:00.0": 1}))
    monkeypatch.setattr(nvml, "cuda_pci_bus_id", lambda index: "0000:41:00.0")
    assert NvmlSource("cuda:0").gpu_name == "Tesla P100-PCIE-16GB"


def test_no_driver_and_no_package(monkeypatch: pytest.MonkeyPatch) -> None:
    module = fake_pynvml([])

    def no_library() -> None:
        raise real_pynvml.NVMLError(real_pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)

    module.nvmlInit = no_library
    monkeypatch.setitem(sys.modules, "pynvml", module)
    with pytest.raises(PowerUnavailable, match="NVML cannot start: NVML Shared Library Not Found"):
        NvmlSource("cuda:0")
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml raises ImportError
    with pytest.raises(PowerUnavailable, match="pip install nvidia-ml-py"):
        NvmlSource("cuda:0")


def test_auto_picks_nvml_for_a_cuda_cell(gpus: list[FakeGpu], tmp_path: Path) -> None:
    assert choose_source("auto", "cuda:0", 0.05, tmp_path).name == "nvml"
    with pytest.raises(PowerUnavailable, match="rapl: no RAPL counters"):
        choose_source("auto", "cpu", 0.05, tmp_path)  # a CPU cell is not measured at the GPU
    with pytest.raises(PowerUnavailable) as caught:
        choose_source("auto", "dla:0", 0.05, tmp_path)  # nor a DLA cell: the DLA is no GPU
    assert "nvml" not in str(caught.value) and "jetson: no INA3221" in str(caught.value)


def test_a_cell_measured_with_the_counter(gpus: list[FakeGpu]) -> None:
    gpus[0].refresh_s = 0.1  # steps every 100 ms, as the real counter
    with CellPower(PowerSettings("nvml", sample_hz=50), "cuda:0") as power:
        start = time.perf_counter_ns()
        time.sleep(1.5)
        end = time.perf_counter_ns()
    figures = power.result(start, end, requests=300, batch=8)
    assert figures["source"] == "nvml"
    assert figures["method"] == "energy counter differenced"
    assert figures["avg_w"] == pytest.approx(250, rel=0.15)  # ± one 100 ms step per edge
    assert figures["j_per_sample"] == pytest.approx(figures["energy_j"] / 2400)
    assert figures["samples_per_j"] == pytest.approx(2400 / figures["energy_j"])
    assert figures["peak_span_s"] >= 0.5  # five refresh periods
    assert figures["notes"] == []


def test_a_short_window_on_the_counter_is_flagged(gpus: list[FakeGpu]) -> None:
    with CellPower(PowerSettings("nvml"), "cuda:0") as power:
        start = time.perf_counter_ns()
        time.sleep(0.3)
        end = time.perf_counter_ns()
    [note] = power.result(start, end, 10, 1)["notes"]
    assert re.match(
        r"coarse: the window \(0\.\d\d s\) is under 10 refresh or sampling periods", note
    )
    assert "(0.1 s)" in note


def test_gpu_state_and_what_changed(gpus: list[FakeGpu]) -> None:
    start = {"gpus": gpu_states(), "jetson": None}
    assert start["gpus"][0] == {
        "index": 0,
        "name": "NVIDIA H100 80GB HBM3",
        "driver": "580.159.04",
        "power_limit_w": 700.0,
        "sm_clock_mhz": 1980,
        "memory_clock_mhz": 2619,
        "max_sm_clock_mhz": 1980,
        "temperature_c": 41,
        "throttle_reasons": [],
    }
    assert state_changes(start, {"gpus": gpu_states(), "jetson": None}) == []
    gpus[0].sm_clock = 1410
    gpus[0].reasons = (
        real_pynvml.nvmlClocksEventReasonSwPowerCap | real_pynvml.nvmlClocksEventReasonGpuIdle
    )
    gpus[1].limit_mw = 150_000
    changes = state_changes(start, {"gpus": gpu_states(), "jetson": None})
    assert changes == [
        "GPU 0 limited at the end by: power cap",
        "GPU 0 SM clock dropped from 1980 to 1410 MHz",
        "GPU 1 power limit changed from 700.0 to 150.0 W",
    ]


def test_a_gpu_lost_while_listing_is_unavailable_not_a_crash(gpus: list[FakeGpu]) -> None:
    def lost(index: int) -> FakeGpu:
        raise real_pynvml.NVMLError(real_pynvml.NVML_ERROR_GPU_IS_LOST)

    sys.modules["pynvml"].nvmlDeviceGetHandleByIndex = lost
    with pytest.raises(PowerUnavailable, match="NVML cannot list the GPUs: GPU is lost"):
        gpu_states()


def test_a_gpu_absent_at_the_start_is_not_compared(gpus: list[FakeGpu]) -> None:
    end = {"gpus": gpu_states(), "jetson": None}
    assert state_changes({"gpus": {"unavailable": "NVML cannot start"}}, end) == []
    assert state_changes({"gpus": end["gpus"][:1]}, end) == []


def test_drivers_and_bindings_before_535_give_the_throttle_reasons(gpus: list[FakeGpu]) -> None:
    """Before 535 the call is nvmlDeviceGetCurrentClocksThrottleReasons, and the bits are
    nvmlClocksThrottleReason*: a binding without the new name, or a driver without the
    new symbol (Function Not Found), still reports them."""
    module = sys.modules["pynvml"]
    del module.nvmlDeviceGetCurrentClocksEventReasons  # nvidia-ml-py 12 before 12.535
    module.nvmlDeviceGetCurrentClocksThrottleReasons = lambda gpu: gpu.reasons
    for name in dir(module):
        if name.startswith("nvmlClocksEventReason"):
            delattr(module, name)
            suffix = name.removeprefix("nvmlClocksEventReason")
            setattr(module, f"nvmlClocksThrottleReason{suffix}", getattr(real_pynvml, name))
    gpus[0].reasons = real_pynvml.nvmlClocksThrottleReasonHwThermalSlowdown
    assert gpu_states()[0]["throttle_reasons"] == ["hardware thermal slowdown"]

    def not_found(gpu: FakeGpu) -> int:
        raise real_pynvml.NVMLError(real_pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)

    module.nvmlDeviceGetCurrentClocksEventReasons = not_found  # new binding, old driver
    assert gpu_states()[0]["throttle_reasons"] == ["hardware thermal slowdown"]


def test_power_readings_are_one_second_averages(gpus: list[FakeGpu]) -> None:
    """nvmlDeviceGetPowerUsage averages over up to 1 s: a 3 s window on it is coarse."""
    assert NvmlSource("cuda:1").resolution_s == pytest.approx(1.0)
    with CellPower(PowerSettings("nvml"), "cuda:1") as power:
        start = time.perf_counter_ns()
        time.sleep(0.2)
        end = time.perf_counter_ns()
    figures = power.result(start, end, 10, 1)
    assert figures["avg_w"] == pytest.approx(40.0)
    [note] = figures["notes"]
    assert "(1 s)" in note


def test_a_counter_that_does_not_move_in_the_window_is_unavailable(gpus: list[FakeGpu]) -> None:
    """A window inside one 100 ms step of the counter sees no energy: that is no 0 J."""
    gpus[0].refresh_s = 10.0  # no step within this test
    with CellPower(PowerSettings("nvml"), "cuda:0") as power:
        start = time.perf_counter_ns()
        time.sleep(0.05)
        end = time.perf_counter_ns()
    figures = power.result(start, end, 10, 1)
    assert figures["source"] == "nvml"
    assert "no energy seen" in figures["unavailable"]
    assert "avg_w" not in figures
