"""Inference runtimes behind one contract (see ``runtimes.base``).

Importing this package imports no framework: each runtime imports its own lazily.
"""

from __future__ import annotations

from bench.core.errors import UserError
from runtimes.base import Runtime
from runtimes.onnxruntime_rt import OnnxRuntime
from runtimes.openvino_rt import OpenVinoRuntime
from runtimes.pytorch_rt import PyTorchRuntime
from runtimes.tensorrt.runtime import TensorRTRuntime

RUNTIMES: dict[str, type[Runtime]] = {
    runtime.name: runtime
    for runtime in (PyTorchRuntime, OnnxRuntime, TensorRTRuntime, OpenVinoRuntime)
}


def get_runtime(name: str) -> type[Runtime]:
    """The runtime class registered as ``name``; a UserError lists the valid names."""
    try:
        return RUNTIMES[name]
    except KeyError:
        raise UserError(f"unknown runtime '{name}': choose one of {', '.join(RUNTIMES)}") from None
