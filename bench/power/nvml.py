"""NVIDIA GPUs through NVML (``nvidia-ml-py``, imported lazily as ``pynvml``).

The total-energy counter (``nvmlDeviceGetTotalEnergyConsumption``, mJ since the driver
loaded, Volta and newer) is differenced over the window; where it is not supported the
power reading (``nvmlDeviceGetPowerUsage``, mW) is integrated instead. The counter
refreshes about every 100 ms, so a window under about 1 s is flagged as coarse. The power
reading is itself an average over up to 1 s (1 s on Ampere except GA100 and newer, per the
NVML reference), so with it a window under about 10 s is flagged.
"""

from __future__ import annotations

import ctypes
import re
from typing import Any

from bench.power.source import PowerSource, PowerUnavailable

COUNTER_REFRESH_S = 0.1
POWER_AVERAGE_S = 1.0
"""nvmlDeviceGetPowerUsage's averaging period at most (1 s on Ampere and newer)."""
_CUDA_INDEX = re.compile(r"^cuda:(\d+)$")


def _pynvml() -> Any:
    try:
        import pynvml
    except ImportError:
        raise PowerUnavailable("nvidia-ml-py is not installed: pip install nvidia-ml-py") from None
    return pynvml


def nvml_init() -> Any:
    """The initialised ``pynvml`` module; PowerUnavailable with NVML's reason otherwise."""
    pynvml = _pynvml()
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        raise PowerUnavailable(f"NVML cannot start: {exc} (no NVIDIA driver here?)") from None
    return pynvml


def cuda_index(device: str) -> int:
    """The CUDA ordinal of a cell's device (``cuda:N``); GPU 0 for any other device."""
    match = _CUDA_INDEX.match(device)
    return int(match.group(1)) if match else 0


def cuda_pci_bus_id(index: int) -> str | None:
    """The PCI bus id of CUDA device ``index`` as the driver numbers it (honouring
    CUDA_VISIBLE_DEVICES and CUDA_DEVICE_ORDER, which NVML ignores), via libcuda alone;
    None when libcuda cannot say."""
    try:
        libcuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return None
    device = ctypes.c_int()
    bus_id = ctypes.create_string_buffer(64)
    if libcuda.cuInit(0) != 0 or libcuda.cuDeviceGet(ctypes.byref(device), index) != 0:
        return None
    if libcuda.cuDeviceGetPCIBusId(bus_id, 64, device) != 0:
        return None
    return bus_id.value.decode()


def device_handle(pynvml: Any, index: int) -> Any:
    """NVML's handle of CUDA device ``index``: matched by PCI bus id where libcuda gives
    one, else NVML's own index ``index``."""
    bus_id = cuda_pci_bus_id(index)
    try:
        if bus_id is not None:
            return pynvml.nvmlDeviceGetHandleByPciBusId(bus_id.encode())
        return pynvml.nvmlDeviceGetHandleByIndex(index)
    except pynvml.NVMLError as exc:
        raise PowerUnavailable(f"NVML has no GPU {index}: {exc}") from None


class NvmlSource(PowerSource):
    """One GPU's energy counter in joules, or (pre-Volta) its power reading in watts."""

    name = "nvml"

    def __init__(self, device: str) -> None:
        self._pynvml = nvml_init()
        self.index = cuda_index(device)
        try:
            self._handle = device_handle(self._pynvml, self.index)
            self.gpu_name = _text(self._pynvml.nvmlDeviceGetName(self._handle))
            self._use_counter()
        except BaseException:
            self._pynvml.nvmlShutdown()
            raise

    def _use_counter(self) -> None:
        pynvml = self._pynvml
        try:
            pynvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)
        except pynvml.NVMLError as counter_error:
            try:
                pynvml.nvmlDeviceGetPowerUsage(self._handle)
            except pynvml.NVMLError as power_error:
                raise PowerUnavailable(
                    f"GPU {self.index} reports neither energy ({counter_error}) nor power "
                    f"({power_error}) through NVML"
                ) from None
            self.kind = "power"
            self.resolution_s = POWER_AVERAGE_S
            self.note = (
                f"total-energy counter not supported ({counter_error}): power readings "
                "(averaged over up to 1 s)"
            )
            return
        self.kind = "energy"
        self.resolution_s = COUNTER_REFRESH_S
        self.note = "total-energy counter (refreshes about every 100 ms)"

    def read(self) -> float:
        if self.kind == "energy":
            return self._pynvml.nvmlDeviceGetTotalEnergyConsumption(self._handle) / 1e3
        return self._pynvml.nvmlDeviceGetPowerUsage(self._handle) / 1e3

    def describe(self) -> dict[str, Any]:
        return {"measures": f"GPU {self.index} ({self.gpu_name}): {self.note}"}

    def close(self) -> None:
        self._pynvml.nvmlShutdown()


def _text(value: str | bytes) -> str:
    """NVML strings are bytes in older nvidia-ml-py releases and str in newer ones."""
    return value.decode() if isinstance(value, bytes) else value


THROTTLE_REASONS = {  # NVML clock-event bits that mean the GPU ran slower than it could
    "SwPowerCap": "power cap",
    "HwSlowdown": "hardware slowdown",
    "SwThermalSlowdown": "software thermal slowdown",
    "HwThermalSlowdown": "hardware thermal slowdown",
    "HwPowerBrakeSlowdown": "power brake",
}


def gpu_states() -> list[dict[str, Any]]:
    """Every GPU's power-relevant state now: name, driver, enforced power limit, SM and
    memory clocks, temperature, and the clock-limiting reasons NVML reports. A value the
    GPU does not report is None. PowerUnavailable when NVML cannot start."""
    pynvml = nvml_init()
    try:
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
        return [
            _gpu_state(pynvml, index, pynvml.nvmlDeviceGetHandleByIndex(index), driver)
            for index in range(pynvml.nvmlDeviceGetCount())
        ]
    except pynvml.NVMLError as exc:
        raise PowerUnavailable(f"NVML cannot list the GPUs: {exc}") from None
    finally:
        pynvml.nvmlShutdown()


def _gpu_state(pynvml: Any, index: int, handle: Any, driver: str) -> dict[str, Any]:
    def ask(function: str, *args: Any) -> Any:
        try:
            return getattr(pynvml, function)(handle, *args)
        except pynvml.NVMLError:
            return None

    limit_mw = ask("nvmlDeviceGetEnforcedPowerLimit")
    reasons = _clock_event_reasons(pynvml, handle)
    return {
        "index": index,
        "name": _text(ask("nvmlDeviceGetName") or ""),
        "driver": driver,
        "power_limit_w": limit_mw / 1e3 if limit_mw is not None else None,
        "sm_clock_mhz": ask("nvmlDeviceGetClockInfo", pynvml.NVML_CLOCK_SM),
        "memory_clock_mhz": ask("nvmlDeviceGetClockInfo", pynvml.NVML_CLOCK_MEM),
        "max_sm_clock_mhz": ask("nvmlDeviceGetMaxClockInfo", pynvml.NVML_CLOCK_SM),
        "temperature_c": ask("nvmlDeviceGetTemperature", pynvml.NVML_TEMPERATURE_GPU),
        "throttle_reasons": None if reasons is None else _throttling(pynvml, reasons),
    }


def _clock_event_reasons(pynvml: Any, handle: Any) -> int | None:
    """The clock-event reason bits: ``nvmlDeviceGetCurrentClocksEventReasons`` (driver and
    nvidia-ml-py 535 on), else the older ``nvmlDeviceGetCurrentClocksThrottleReasons`` with
    the same bits; None when neither answers."""
    for function in (
        "nvmlDeviceGetCurrentClocksEventReasons",
        "nvmlDeviceGetCurrentClocksThrottleReasons",
    ):
        call = getattr(pynvml, function, None)  # absent from nvidia-ml-py before 12.535
        if call is None:
            continue
        try:
            return call(handle)
        except pynvml.NVMLError:  # Function Not Found on a driver before 535, Not Supported
            continue
    return None


def _throttling(pynvml: Any, bits: int) -> list[str]:
    """The names of the limiting reasons set in ``bits`` (idle and clock settings are not
    limits and are left out). The bit constants are ``nvmlClocksEventReason*``, named
    ``nvmlClocksThrottleReason*`` in nvidia-ml-py before 12.535."""
    return [
        label
        for reason, label in THROTTLE_REASONS.items()
        if bits
        & getattr(
            pynvml,
            f"nvmlClocksEventReason{reason}",
            getattr(pynvml, f"nvmlClocksThrottleReason{reason}", 0),
        )
    ]
