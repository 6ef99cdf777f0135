"""A TensorRT engine run through the Python API: device-resident buffers, one CUDA stream
and execution context per request slot, ``execute_async_v3``, CUDA events around the
host→device copies, the compute and the device→host copies (trtexec's latency split),
and optionally the compute captured once as a CUDA graph."""

from __future__ import annotations

import json
import statistics
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np

from bench.core.cell import Target
from bench.core.record import Executed
from bench.core.spec import PreparedModel
from runtimes.base import Session
from runtimes.tensorrt import cuda
from runtimes.tensorrt.build import EngineFile
from runtimes.tensorrt.inspector import executed_precision, layer_precisions


class _Slot:
    """One request in flight: an execution context with the cell's input shapes, its own
    stream, device buffers for every I/O tensor, pinned host copies and four events."""

    def __init__(self, trt: Any, engine: Any, shapes: dict[str, tuple[int, ...]]) -> None:
        self.shapes = shapes
        self.context = engine.create_execution_context()
        self.stream = cuda.Stream()
        self.inputs: dict[str, tuple[cuda.PinnedArray, cuda.DeviceBuffer]] = {}
        self.outputs: dict[str, tuple[cuda.PinnedArray, cuda.DeviceBuffer]] = {}
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        for name in names:
            is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            if is_input and not self.context.set_input_shape(name, shapes[name]):
                raise RuntimeError(
                    f"TensorRT rejected shape {shapes[name]} for '{name}' (outside the "
                    "engine's optimisation profile?)"
                )
        for name in names:
            shape = tuple(self.context.get_tensor_shape(name))
            host = cuda.PinnedArray.allocate(
                shape, np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
            )
            device = cuda.DeviceBuffer.allocate(host.array.nbytes)
            if not self.context.set_tensor_address(name, device.pointer):
                raise RuntimeError(f"TensorRT refused the device address of '{name}'")
            is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            (self.inputs if is_input else self.outputs)[name] = (host, device)
        self.events = [cuda.new_event() for _ in range(4)]
        self.graph: Any = None

    def load(self, feeds: dict[str, np.ndarray]) -> None:
        """Copy ``feeds`` into the pinned input buffers (cast to the engine's types)."""
        for name, (host, _) in self.inputs.items():
            np.copyto(host.array, feeds[name], casting="unsafe")

    def enqueue_compute(self) -> None:
        if self.graph is not None:
            self.stream.launch_graph(self.graph)
        elif not self.context.execute_async_v3(int(self.stream.handle)):
            raise RuntimeError("TensorRT execute_async_v3 failed (see the worker log)")

    def capture_graph(self) -> None:
        """Run once (TensorRT updates its state on the first enqueue), then capture."""
        self.enqueue_compute()
        self.stream.synchronize()
        self.graph = self.stream.capture(self.enqueue_compute)

    def enqueue(self, transfers: bool) -> None:
        """One request: [H2D], compute, [D2H], with an event between each step."""
        start, uploaded, computed, downloaded = self.events
        self.stream.record(start)
        if transfers:
            for host, device in self.inputs.values():
                self.stream.copy_to_device(device, host, host.array.nbytes)
        self.stream.record(uploaded)
        self.enqueue_compute()
        self.stream.record(computed)
        if transfers:
            for host, device in self.outputs.values():
                self.stream.copy_to_host(host, device, host.array.nbytes)
        self.stream.record(downloaded)

    def split_ms(self) -> tuple[float, float, float]:
        """(H2D, compute, D2H) milliseconds of the last completed request."""
        e = self.events
        return cuda.elapsed_ms(e[0], e[1]), cuda.elapsed_ms(e[1], e[2]), cuda.elapsed_ms(e[2], e[3])

    def free(self) -> None:
        for host, device in [*self.inputs.values(), *self.outputs.values()]:
            host.free()
            device.free()
        for event in self.events:
            cuda.destroy_event(event)
        if self.graph is not None:
            cuda.destroy_graph(self.graph)
        self.stream.destroy()


class TensorRTSession(Session):
    def __init__(
        self,
        engine_file: EngineFile,
        model: PreparedModel,
        target: Target,
        cuda_graph: bool = False,
        data_transfers: bool = False,
    ) -> None:
        import tensorrt as trt

        from runtimes.tensorrt.build import recording_logger

        self._trt = trt
        self._device = 0 if target.device_kind == "dla" else target.device_index
        cuda.require_device(self._device)
        cuda.set_device(self._device)
        self._runtime = trt.Runtime(recording_logger(trt))
        if target.device_kind == "dla":
            self._runtime.DLA_core = target.device_index
        self._engine = self._runtime.deserialize_cuda_engine(engine_file.path.read_bytes())
        if self._engine is None:
            raise RuntimeError(f"TensorRT cannot load {engine_file.path.name}: rebuild it")
        shapes = {name: shapes[1] for name, shapes in engine_file.plan.shapes.items()}
        self._transfers = data_transfers
        self._cuda_graph = cuda_graph
        self._slot = _Slot(trt, self._engine, shapes)
        self._slots: list[_Slot] = [self._slot]
        self._splits: list[tuple[float, float, float]] = []
        self.inputs = model.inputs
        self.outputs = model.outputs
        self.executed = engine_executed(
            target, self._layers(), engine_file, self._cuda_graph, self._transfers
        )

    def _layers(self) -> list[tuple[str, str]]:
        """(type, precision) of the engine's layers from the engine inspector, at the
        cell's shapes (with dynamic shapes the formats are known only in a context)."""
        inspector = self._engine.create_engine_inspector()
        inspector.execution_context = self._slot.context
        info = inspector.get_engine_information(self._trt.LayerInformationFormat.JSON)
        return layer_precisions(json.loads(info))

    def _shapes_of(self, feeds: dict[str, np.ndarray]) -> dict[str, tuple[int, ...]]:
        return {name: tuple(np.shape(feeds[name])) for name in self._slot.inputs}

    def _main_slot(self, feeds: dict[str, np.ndarray]) -> _Slot:
        """The main slot, remade for ``feeds`` at another batch within the profile."""
        shapes = self._shapes_of(feeds)
        if shapes != self._slot.shapes:
            old, self._slot = self._slot, _Slot(self._trt, self._engine, shapes)
            self._slots = [self._slot if slot is old else slot for slot in self._slots]
            old.free()
        return self._slot

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        slot = self._main_slot(feeds)
        slot.load(feeds)
        slot.enqueue(transfers=True)
        slot.stream.synchronize()
        return {name: _host_copy(host.array) for name, (host, _) in slot.outputs.items()}

    def stage(self, feeds: dict[str, np.ndarray]) -> None:
        """Inputs into pinned memory and onto the device once; with CUDA graphs on, the
        compute is captured here."""
        slot = self._main_slot(feeds)
        slot.load(feeds)
        slot.enqueue(transfers=True)
        slot.stream.synchronize()
        if self._cuda_graph and slot.graph is None:
            slot.capture_graph()

    def launch(self) -> None:
        self._slot.enqueue(self._transfers)

    def synchronize(self) -> None:
        self._slot.stream.synchronize()
        self._splits.append(self._slot.split_ms())

    def keep_measured(self, count: int) -> None:
        """The split keeps the measured requests' events only."""
        self._splits = self._splits[max(0, len(self._splits) - count) :]

    def request_slots(self, feeds: dict[str, np.ndarray], count: int) -> list[Callable[[], None]]:
        """One execution context, stream and set of buffers per slot: requests in flight
        share the engine's weights, nothing else."""
        callables = []
        for _ in range(count):
            slot = _Slot(self._trt, self._engine, self._shapes_of(feeds))
            self._slots.append(slot)
            slot.load(feeds)
            slot.enqueue(transfers=True)
            slot.stream.synchronize()
            if self._cuda_graph:
                slot.capture_graph()
            callables.append(self._runner(slot))
        return callables

    def _runner(self, slot: _Slot) -> Callable[[], None]:
        """The slot's request; its first call on a thread makes the cell's device current
        there (each slot runs in a thread of its own, and the device is per thread)."""
        device, ready = self._device, threading.local()

        def run() -> None:
            if not getattr(ready, "device", False):
                cuda.set_device(device)
                ready.device = True
            slot.enqueue(self._transfers)
            slot.stream.synchronize()

        return run

    def device_metrics(self) -> dict[str, Any]:
        """Medians of the measured requests' CUDA-event split, and device memory sizes."""
        metrics: dict[str, Any] = {
            "engine_device_memory_mb": _device_memory(self._engine) / 2**20,
            "contexts": len(self._slots),
        }
        if self._splits:
            metrics.update(split_summary(self._splits, "cuda events"))
        return metrics

    def close(self) -> None:
        for slot in self._slots:
            slot.free()
        self._slots = []


def split_summary(splits: list[tuple[float, float, float]], source: str) -> dict[str, Any]:
    """Median H2D, compute, D2H and their sum (trtexec's "Latency") over ``splits``."""
    h2d, compute, d2h = zip(*splits, strict=True)
    return {
        "split_source": source,
        "split_count": len(splits),
        "h2d_ms": statistics.median(h2d),
        "compute_ms": statistics.median(compute),
        "d2h_ms": statistics.median(d2h),
        "latency_ms": statistics.median(a + b + c for a, b, c in splits),
    }


def _device_memory(engine: Any) -> int:
    """Activation memory one execution context takes (``device_memory_size_v2`` from
    TensorRT 10.1 on, which deprecated the older property)."""
    size = getattr(engine, "device_memory_size_v2", None)
    return int(size if size is not None else engine.device_memory_size)


def engine_executed(
    target: Target,
    layers: list[tuple[str, str]],
    engine_file: EngineFile,
    cuda_graph: bool,
    data_transfers: bool,
    **details: Any,
) -> Executed:
    """What an engine runs, read from its layers (precision, GPU or DLA), with how it was
    built and is run; ``details`` adds what a driver knows besides."""
    plan = engine_file.plan
    return Executed(
        precision=executed_precision(layers),
        device=executed_device(target, layers),
        threads=None,
        provider=f"tensorrt {engine_file.version} ({engine_file.driver})",
        details={
            "tensorrt": engine_file.version,
            "driver": engine_file.driver,
            **details,
            "typing": plan.typing,
            "tf32_allowed": plan.tf32,
            "optimization_profile": {k: list(v) for k, v in plan.shapes.items()},
            "layer_precisions": dict(Counter(p for _, p in layers)),
            "cuda_graph": cuda_graph,
            "data_transfers": data_transfers,
            "gpu": engine_file.gpu,
        },
    )


def executed_device(target: Target, layers: list[tuple[str, str]]) -> str:
    """``cuda:N``; for a DLA cell ``dla:N``, ``dla:N+gpu`` when layers fell back to the
    GPU, or ``cuda:0`` when none runs on the DLA."""
    if target.device_kind != "dla":
        return target.device
    on_dla = sum(1 for kind, _ in layers if "dla" in kind.lower())
    if on_dla == 0:
        return "cuda:0"
    return target.device if on_dla == len(layers) else f"{target.device}+gpu"


def _host_copy(array: np.ndarray) -> np.ndarray:
    """An output as a host array of its own; half precision widened to float32."""
    return array.astype(np.float32) if array.dtype == np.float16 else array.copy()
