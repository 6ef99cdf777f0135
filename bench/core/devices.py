"""Cheap device probes that import no framework."""

from __future__ import annotations

import ctypes
import functools


@functools.cache
def cuda_device_count() -> int:
    """Number of CUDA devices the driver sees (0 without a driver), via libcuda alone."""
    try:
        libcuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return 0
    if libcuda.cuInit(0) != 0:
        return 0
    count = ctypes.c_int()
    if libcuda.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return 0
    return count.value


def cuda_unavailable_reason(index: int) -> str | None:
    """Why CUDA device ``index`` cannot be used here (None when it can)."""
    count = cuda_device_count()
    if count == 0:
        return "no CUDA device (no NVIDIA driver or GPU found)"
    if index >= count:
        return f"no CUDA device cuda:{index} (this machine has {count})"
    return None


def cuda_devices() -> list[dict[str, object]]:
    """Name, memory and driver version of each CUDA device, via libcuda alone."""
    if cuda_device_count() == 0:
        return []
    libcuda = ctypes.CDLL("libcuda.so.1")
    driver = ctypes.c_int()
    libcuda.cuDriverGetVersion(ctypes.byref(driver))
    devices = []
    for index in range(cuda_device_count()):
        handle = ctypes.c_int()
        libcuda.cuDeviceGet(ctypes.byref(handle), index)
        name = ctypes.create_string_buffer(256)
        libcuda.cuDeviceGetName(name, 256, handle)
        memory = ctypes.c_size_t()
        libcuda.cuDeviceTotalMem_v2(ctypes.byref(memory), handle)
        devices.append(
            {
                "index": index,
                "name": name.value.decode(),
                "memory_gib": round(memory.value / 2**30, 2),
                "cuda_driver": f"{driver.value // 1000}.{driver.value % 1000 // 10}",
            }
        )
    return devices
