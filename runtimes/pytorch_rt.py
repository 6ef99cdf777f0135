"""PyTorch eager: the reference module itself, on CPU or a CUDA device."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.devices import cuda_unavailable_reason
from bench.errors import Unavailable
from exporters.spec import PreparedModel
from runtimes.base import Built, Executed, LoadOptions, Runtime, Session, Target

_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


class PyTorchRuntime(Runtime):
    name = "pytorch"
    package = "torch"
    install_hint = "pip install torch"
    precisions = ("fp32", "fp16", "bf16")

    @classmethod
    def unavailable_reason(cls, target: Target, source: str) -> str | None:
        if not source:
            return "pytorch runs PyTorch modules and an ONNX file has none (use --model instead)"
        return super().unavailable_reason(target, source)

    @classmethod
    def device_unavailable_reason(cls, target: Target) -> str | None:
        if target.device_kind == "cpu":
            return None
        return cuda_unavailable_reason(target.device_index)

    @classmethod
    def devices(cls) -> list[str]:
        import torch

        return ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]

    def build(
        self, model: PreparedModel, target: Target, options: LoadOptions, cache_dir: Path
    ) -> Built:
        """Rebuild the same seeded module that was exported, on the target device."""
        import torch

        from exporters.source import build_module

        start = time.perf_counter()
        cuda = target.device_kind == "cuda"
        if cuda and target.precision == "bf16" and not torch.cuda.is_bf16_supported():
            raise Unavailable(f"{target.device} has no bf16 support")
        module, _ = build_module(model.source, model.seed)
        dtype = _DTYPES[target.precision]
        module = module.to(device=torch.device(target.device), dtype=getattr(torch, dtype)).eval()
        if target.device_kind == "cuda":
            torch.cuda.synchronize(target.device)
        return Built(artifact=module, build_s=time.perf_counter() - start)

    def load(
        self, built: Built, model: PreparedModel, target: Target, options: LoadOptions
    ) -> Session:
        return PyTorchSession(built.artifact, model, target, options)


class PyTorchSession(Session):
    def __init__(self, module: Any, model: PreparedModel, target: Target, options: LoadOptions):
        import torch

        if options.threads:
            torch.set_num_threads(options.threads)
        self._torch = torch
        self._module = module
        self._device = torch.device(target.device)
        self._cuda = target.device_kind == "cuda"
        if self._cuda and target.precision == "fp32":
            # PyTorch lets cuDNN convolutions use TF32 by default: an fp32 cell runs true fp32.
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
        self.inputs = model.inputs
        self.outputs = model.outputs
        self.executed = Executed(
            precision=_executed_precision(torch, module, self._device),
            device=str(next(module.parameters()).device),
            threads=torch.get_num_threads(),
            provider=f"torch {torch.__version__} eager",
        )
        self._dtype = next(module.parameters()).dtype
        self._staged: list[Any] = []

    def _to_device(self, feeds: dict[str, np.ndarray]) -> list[Any]:
        """Inputs on the device; floating ones in the module's own dtype."""
        tensors = []
        for spec in self.inputs:
            tensor = self._torch.from_numpy(np.ascontiguousarray(feeds[spec.name]))
            dtype = self._dtype if tensor.is_floating_point() else tensor.dtype
            tensors.append(tensor.to(device=self._device, dtype=dtype))
        return tensors

    def _forward(self, tensors: list[Any]) -> Any:
        with self._torch.inference_mode():
            return self._module(*tensors)

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        result = self._forward(self._to_device(feeds))
        tensors = result if isinstance(result, (tuple, list)) else (result,)
        names = [spec.name for spec in self.outputs]
        return {
            name: tensor.detach().float().cpu().numpy()
            for name, tensor in zip(names, tensors, strict=True)
        }

    def stage(self, feeds: dict[str, np.ndarray]) -> None:
        self._staged = self._to_device(feeds)

    def launch(self) -> None:
        self._forward(self._staged)

    def synchronize(self) -> None:
        if self._cuda:
            self._torch.cuda.synchronize(self._device)

    def request_slots(self, feeds: dict[str, np.ndarray], count: int) -> list[Callable[[], None]]:
        """One Python thread per request; torch operators release the GIL, and each thread
        has its own inputs. On CUDA each slot has its own stream."""
        slots = []
        for _ in range(count):
            tensors = self._to_device(feeds)
            if self._cuda:
                stream = self._torch.cuda.Stream(self._device)
                slots.append(self._stream_slot(tensors, stream))
            else:
                slots.append(lambda tensors=tensors: self._forward(tensors))
        return slots

    def _stream_slot(self, tensors: list[Any], stream: Any) -> Callable[[], None]:
        def run() -> None:
            with self._torch.cuda.stream(stream):
                self._forward(tensors)
            stream.synchronize()

        return run


def _executed_precision(torch: Any, module: Any, device: Any) -> str:
    """The weights' dtype, or ``tf32`` when fp32 weights meet TF32 tensor cores (compute
    capability 8.0 and newer) that PyTorch is allowed to use."""
    name = _dtype_name(next(module.parameters()).dtype)
    if name != "fp32" or device.type != "cuda":
        return name
    tf32_allowed = torch.backends.cudnn.allow_tf32 or torch.backends.cuda.matmul.allow_tf32
    if tf32_allowed and torch.cuda.get_device_capability(device)[0] >= 8:
        return "tf32"
    return name


def _dtype_name(dtype: Any) -> str:
    return {"torch.float32": "fp32", "torch.float16": "fp16", "torch.bfloat16": "bf16"}.get(
        str(dtype), str(dtype)
    )
