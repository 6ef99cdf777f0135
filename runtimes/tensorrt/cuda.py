"""The CUDA runtime calls the TensorRT session needs, through cuda-python.

Why cuda-python rather than torch's CUDA allocator: a TensorRT cell must not import torch
(about 1.7 s and 600 MB that would be reported as TensorRT's own cost), and cuda-python is
what NVIDIA's TensorRT samples use: a thin binding of the CUDA runtime, no framework.
The module imports it lazily (``cuda.bindings.runtime`` from cuda-python 12.6 on, else the
older ``cuda.cudart``).
"""

from __future__ import annotations

import ctypes
import importlib.util
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np

from bench.core.devices import cuda_unavailable_reason
from bench.core.errors import Unavailable


def cuda_python_installed() -> bool:
    """Whether cuda-python's runtime bindings can be imported (without importing them)."""
    try:
        return importlib.util.find_spec("cuda.bindings") is not None or (
            importlib.util.find_spec("cuda.cudart") is not None
        )
    except (ImportError, ValueError):
        return False


@cache
def cudart() -> Any:
    """cuda-python's CUDA runtime module."""
    try:
        from cuda.bindings import runtime
    except ImportError:
        from cuda import cudart as runtime
    return runtime


def call(result: tuple) -> Any:
    """The value(s) of a cuda-python call, which returns ``(error, *values)``; raises
    RuntimeError naming the CUDA error when it is not cudaSuccess."""
    error, values = result[0], result[1:]
    if int(getattr(error, "value", error)) != 0:
        raise RuntimeError(f"CUDA error: {getattr(error, 'name', error)}")
    if not values:
        return None
    return values[0] if len(values) == 1 else values


@dataclass
class PinnedArray:
    """A numpy array in page-locked host memory (what asynchronous copies need)."""

    array: np.ndarray
    pointer: int

    @classmethod
    def allocate(cls, shape: tuple[int, ...], dtype: np.dtype) -> PinnedArray:
        count = int(np.prod(shape))
        nbytes = max(count, 1) * np.dtype(dtype).itemsize
        pointer = int(call(cudart().cudaMallocHost(nbytes)))
        raw = (ctypes.c_byte * nbytes).from_address(pointer)
        array = np.frombuffer(raw, dtype=dtype, count=max(count, 1))[:count]
        return cls(array.reshape(shape), pointer)

    def free(self) -> None:
        call(cudart().cudaFreeHost(self.pointer))


@dataclass
class DeviceBuffer:
    """``nbytes`` of device memory."""

    pointer: int
    nbytes: int

    @classmethod
    def allocate(cls, nbytes: int) -> DeviceBuffer:
        return cls(int(call(cudart().cudaMalloc(max(nbytes, 1)))), nbytes)

    def free(self) -> None:
        call(cudart().cudaFree(self.pointer))


@dataclass
class Stream:
    """A CUDA stream with the copies, events and graph calls done on it."""

    handle: Any = field(default_factory=lambda: call(cudart().cudaStreamCreate()))

    def copy_to_device(self, device: DeviceBuffer, host: PinnedArray, nbytes: int) -> None:
        kind = cudart().cudaMemcpyKind.cudaMemcpyHostToDevice
        call(cudart().cudaMemcpyAsync(device.pointer, host.pointer, nbytes, kind, self.handle))

    def copy_to_host(self, host: PinnedArray, device: DeviceBuffer, nbytes: int) -> None:
        kind = cudart().cudaMemcpyKind.cudaMemcpyDeviceToHost
        call(cudart().cudaMemcpyAsync(host.pointer, device.pointer, nbytes, kind, self.handle))

    def record(self, event: Any) -> None:
        call(cudart().cudaEventRecord(event, self.handle))

    def synchronize(self) -> None:
        call(cudart().cudaStreamSynchronize(self.handle))

    def capture(self, enqueue: Any) -> Any:
        """A CUDA graph of what ``enqueue()`` puts on this stream, instantiated (the
        captured graph itself is destroyed: the executable one does not need it). Destroy
        the result with ``destroy_graph``."""
        runtime = cudart()
        mode = runtime.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        call(runtime.cudaStreamBeginCapture(self.handle, mode))
        try:
            enqueue()
        finally:
            graph = call(runtime.cudaStreamEndCapture(self.handle))
        try:
            return call(runtime.cudaGraphInstantiate(graph, 0))
        finally:
            call(runtime.cudaGraphDestroy(graph))

    def launch_graph(self, graph: Any) -> None:
        call(cudart().cudaGraphLaunch(graph, self.handle))

    def destroy(self) -> None:
        call(cudart().cudaStreamDestroy(self.handle))


def new_event() -> Any:
    """A CUDA event that records time (``destroy_event`` frees it)."""
    return call(cudart().cudaEventCreate())


def destroy_event(event: Any) -> None:
    call(cudart().cudaEventDestroy(event))


def destroy_graph(graph: Any) -> None:
    """Free an instantiated CUDA graph (``Stream.capture``'s result)."""
    call(cudart().cudaGraphExecDestroy(graph))


def elapsed_ms(start: Any, end: Any) -> float:
    """Milliseconds between two recorded, completed events."""
    return float(call(cudart().cudaEventElapsedTime(start, end)))


def set_device(index: int) -> None:
    """Make CUDA device ``index`` current for the calling host thread (the setting is per
    thread: a thread that never calls it works on device 0)."""
    call(cudart().cudaSetDevice(index))


def require_device(index: int) -> None:
    """Unavailable unless the driver offers CUDA device ``index``. Checked before any
    TensorRT object is made: without a usable driver ``trt.Runtime`` only logs "CUDA
    initialization failure" and hands back an object whose next call crashes the process."""
    reason = cuda_unavailable_reason(index)
    if reason is not None:
        raise Unavailable(f"{reason}: TensorRT cannot start without it")
