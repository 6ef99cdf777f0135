"""Shipping a TensorRT cell: the serialized engine its build made, its build plan, and a
run.py that runs it through TensorRT's Python API and cuda-python (as NVIDIA's samples
do: no framework), whichever driver built it."""

from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.core.cell import Target
from bench.core.spec import PreparedModel
from runtimes.base import Shipped
from runtimes.shipping import literal, snippet
from runtimes.tensorrt.build import EngineFile

_SHIP_SOURCE = '''
DEVICE = {device}
DLA_CORE = {dla_core}


def check(result: tuple) -> Any:
    """The value of a cuda-python call, which returns (error, *values)."""
    error, *values = result
    if int(getattr(error, "value", error)) != 0:
        raise RuntimeError(f"CUDA error: {{getattr(error, 'name', error)}}")
    return values[0] if len(values) == 1 else values or None


def load() -> tuple[trt.Runtime, trt.ICudaEngine]:
    """model.engine deserialized on the device it was built for, with its runtime (which
    must outlive it)."""
    check(cudart.cudaSetDevice(DEVICE))
    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    if DLA_CORE is not None:
        runtime.DLA_core = DLA_CORE
    engine = runtime.deserialize_cuda_engine((HERE / "model.engine").read_bytes())
    if engine is None:
        raise RuntimeError({refused})
    return runtime, engine


def infer(
    loaded: tuple[trt.Runtime, trt.ICudaEngine], feeds: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """One request: inputs copied to the device, execute_async_v3 on a stream, every
    output copied back by name."""
    _, engine = loaded
    context = engine.create_execution_context()
    stream = check(cudart.cudaStreamCreate())
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
    for name in inputs:
        if not context.set_input_shape(name, feeds[name].shape):
            raise RuntimeError(f"{{name}}: shape {{feeds[name].shape}} is outside the profile")
    hosts, buffers = {{}}, {{}}
    for name in names:
        dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
        shape = tuple(context.get_tensor_shape(name))
        given = feeds.get(name)
        host = np.empty(shape, dtype) if given is None else np.ascontiguousarray(given, dtype)
        hosts[name] = host
        buffers[name] = check(cudart.cudaMalloc(max(host.nbytes, 1)))
        context.set_tensor_address(name, buffers[name])
    up = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
    down = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
    for name in inputs:
        host = hosts[name]
        check(cudart.cudaMemcpyAsync(buffers[name], host.ctypes.data, host.nbytes, up, stream))
    if not context.execute_async_v3(int(stream)):
        raise RuntimeError("TensorRT execute_async_v3 failed")
    outputs = {{name: hosts[name] for name in names if name not in inputs}}
    for name, host in outputs.items():
        check(cudart.cudaMemcpyAsync(host.ctypes.data, buffers[name], host.nbytes, down, stream))
    check(cudart.cudaStreamSynchronize(stream))
    for pointer in buffers.values():
        check(cudart.cudaFree(pointer))
    check(cudart.cudaStreamDestroy(stream))
    return outputs
'''
"""The ``load`` and ``infer`` of a shipped engine's run.py."""


def ship_engine(
    engine: EngineFile,
    model: PreparedModel,
    target: Target,
    batch: int,
    run: dict[str, Any],
    out_dir: Path,
) -> Shipped:
    """``engine`` copied to ``out_dir`` as model.engine, its build plan (precision, typing,
    workspace, profile shapes, TF32, DLA core, optimisation level) and the session's
    ``run`` settings (CUDA graph, data transfers) as the settings, and a run.py for
    ``batch`` (see ``runtimes.base.Shipped``)."""
    shutil.copyfile(engine.path, out_dir / "model.engine")
    plan = asdict(engine.plan)
    plan["shapes"] = {name: [list(s) for s in shapes] for name, shapes in plan["shapes"].items()}
    made = f"TensorRT {engine.version} on {engine.gpu}"
    settings = {
        "tensorrt": engine.version,
        "driver": engine.driver,
        "gpu": engine.gpu,
        "device": target.device,
        **plan,
        **run,
    }
    notes = [
        f"model.engine runs only on {made}, as built (TensorRT refuses another version or "
        "GPU model): rebuild it from the ONNX file elsewhere",
        "run.py needs TensorRT's Python bindings and cuda-python 12.6 or newer "
        "(pip install tensorrt-cu13 cuda-python, or JetPack's)",
    ]
    if engine.driver == "trtexec":
        notes.append("trtexec built it: trtexec --loadEngine=model.engine runs it as measured")
    if run.get("cuda_graph"):
        notes.append("the cell replayed its compute as a CUDA graph; run.py enqueues it")
    dla = engine.plan.dla_core
    body = _SHIP_SOURCE.format(
        device=0 if dla is not None else target.device_index,
        dla_core=dla,
        refused=literal(f"TensorRT cannot load model.engine: it runs only on {made}"),
    )
    title = f"{model.name} on {made}: {target.precision} on {target.device}."
    packages = ("import tensorrt as trt", "from cuda.bindings import runtime as cudart")
    return Shipped(
        files=("model.engine",),
        settings=settings,
        snippet=snippet(title, model, batch, packages, body, ("from typing import Any",)),
        version=engine.version,
        notes=tuple(notes),
    )
