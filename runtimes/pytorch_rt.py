"""PyTorch: the reference module itself, on CPU or a CUDA device; optionally in NHWC
(``channels_last``), compiled (``torch.compile``) or, on CUDA, replayed as a CUDA graph.

On CUDA the timed path synchronizes the device after each request (the harness's clock
then covers the whole request), and CUDA events around each forward give the device-side
time, reported beside peak device memory in ``device_metrics``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np

from bench.core.cell import Target
from bench.core.devices import cuda_unavailable_reason
from bench.core.errors import Unavailable
from bench.core.record import Executed
from bench.core.settings import RuntimeSettings
from bench.core.spec import BATCH, PreparedModel, TensorSpec, make_inputs
from runtimes.base import Built, LoadOptions, Runtime, Session, Shipped
from runtimes.shipping import literal, request_sizes, snippet

_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


class PyTorchOptions(RuntimeSettings):
    """PyTorch settings: NHWC memory format for 4-d inputs, ``torch.compile`` (a mode name,
    or none), CUDA graphs for the timed loop, and cuDNN's autotuner (``cudnn.benchmark``:
    each convolution shape tries cuDNN's algorithms once and keeps the fastest; CUDA
    devices only)."""

    channels_last: bool = False
    """NHWC memory format for 4-d inputs."""
    compile: Literal["none", "default", "reduce-overhead", "max-autotune"] = "none"
    """Torch.compile mode, or none."""
    cuda_graphs: bool = False
    """Capture the timed request in a CUDA graph."""
    cudnn_benchmark: bool = False
    """CuDNN's autotuner (CUDA devices)."""


def cuda_details(torch: Any, cuda: bool) -> dict[str, Any]:
    """On CUDA, the CUDA and cuDNN this torch runs and whether cuDNN's autotuner is on, as
    read back (for the record); nothing on the CPU."""
    if not cuda:
        return {}
    return {
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
    }


class PyTorchRuntime(Runtime):
    name = "pytorch"
    package = "torch"
    install_hint = "pip install torch"
    precisions = ("fp32", "fp16", "bf16")
    options = PyTorchOptions
    libraries = ("torch", "torchvision")

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
        """Rebuild the same seeded module that was exported, on the target device, in the
        cell's dtype and memory format. ``torch.compile`` is lazy: its compilation happens
        in the first inference (the cold-start figure of that name)."""
        import torch

        settings = PyTorchRuntime.settings_of(options)
        start = time.perf_counter()
        cuda = target.device_kind == "cuda"
        if cuda and target.precision == "bf16" and not torch.cuda.is_bf16_supported():
            raise Unavailable(f"{target.device} has no bf16 support")
        if cuda and settings.cuda_graphs and settings.compile != "none":
            raise Unavailable(
                'cuda_graphs with torch.compile: use compile = "reduce-overhead", which '
                "captures CUDA graphs itself"
            )
        module = module_of(options)
        dtype = getattr(torch, _DTYPES[target.precision])
        module = module.to(device=torch.device(target.device), dtype=dtype).eval()
        if settings.channels_last:
            module = module.to(memory_format=torch.channels_last)
        if settings.compile != "none":
            module = torch.compile(
                module, mode=None if settings.compile == "default" else settings.compile
            )
        if cuda:
            torch.cuda.synchronize(target.device)
        return Built(artifact=module, build_s=time.perf_counter() - start)

    def load(
        self, built: Built, model: PreparedModel, target: Target, options: LoadOptions
    ) -> Session:
        return PyTorchSession(built.artifact, model, target, options)

    def ship(
        self,
        built: Built,
        model: PreparedModel,
        target: Target,
        options: LoadOptions,
        out_dir: Path,
    ) -> Shipped:
        """The module as it ran (its dtype, device and memory format) as a ``torch.export``
        program (model.pt2, its batch axis dynamic), or, where torch.export refuses it, a
        TorchScript trace at the cell's batch (model.pt); run.py loads it with the thread
        count, ``torch.compile`` mode and CUDA switches the session set. torch.export
        (torch 2.14) takes the zoo's mlp, lenet5, resnet18 and lstm_classifier in fp32,
        fp16 and channels_last, and matches the module on another batch; loading a .pt2
        imports torch.export's deserializer, about 1.3 s beyond torch's own 1.5 s on the
        2-core development VM (a TorchScript file needs none of it)."""
        import torch

        settings = PyTorchRuntime.settings_of(options)
        module = getattr(built.artifact, "_orig_mod", built.artifact)  # torch.compile's
        parameter = next(module.parameters())

        def example(batch: int) -> tuple[Any, ...]:
            feeds = make_inputs(model.inputs, request_sizes(model, batch), model.seed)
            return tuple(
                to_tensors(
                    torch,
                    feeds,
                    model.inputs,
                    parameter.dtype,
                    parameter.device,
                    settings.channels_last,
                )
            )

        form, file, loader, notes = _save(torch, module, example, model, target, options, out_dir)
        cuda = target.device_kind == "cuda"
        setup = [f"torch.set_num_threads({options.threads})"] if options.threads else []
        shipped: dict[str, Any] = {
            "format": form,
            "file": file,
            "device": target.device,
            "dtype": str(parameter.dtype).removeprefix("torch."),
            "channels_last": settings.channels_last,
            "threads": options.threads,
            "compile": settings.compile,
        }
        if cuda:
            setup.append(f"torch.backends.cudnn.benchmark = {settings.cudnn_benchmark}")
            shipped["cudnn_benchmark"] = settings.cudnn_benchmark
        if cuda and target.precision == "fp32":  # as the session: true fp32, no TF32
            setup += ["torch.backends.cudnn.allow_tf32 = False"]
            setup += ["torch.backends.cuda.matmul.allow_tf32 = False"]
            shipped["allow_tf32"] = False
        setup.append(f"module = {loader}")
        if settings.compile != "none":
            mode = "" if settings.compile == "default" else f", mode={literal(settings.compile)}"
            setup.append(f"module = torch.compile(module{mode})")
            notes.append("torch.compile compiles on the first request: run.py's includes it")
        if cuda and settings.cuda_graphs:
            notes.append("the cell replayed its forward as a CUDA graph; run.py runs it eagerly")
        channels = _NHWC_SOURCE if settings.channels_last else ""
        body = _SHIP_SOURCE.format(
            outputs=literal([spec.name for spec in model.outputs]),
            device=literal(target.device),
            dtype=shipped["dtype"],
            setup="".join(f"    {line}\n" for line in setup),
            channels=channels,
            host=".float()" if parameter.dtype == torch.bfloat16 else "",  # numpy has no bf16
        )
        title = (
            f"{model.name} on PyTorch {torch.__version__}: {target.precision} on {target.device}."
        )
        return Shipped(
            files=(file,),
            settings=shipped,
            snippet=snippet(title, model, options.batch, ("import torch",), body),
            version=torch.__version__,
            notes=tuple(notes),
        )


def _save(
    torch: Any,
    module: Any,
    example: Callable[[int], tuple[Any, ...]],
    model: PreparedModel,
    target: Target,
    options: LoadOptions,
    out_dir: Path,
) -> tuple[str, str, str, list[str]]:
    """``module`` saved into ``out_dir`` as a ``torch.export`` program whose batch axis is
    dynamic, or, where torch.export refuses it, as a TorchScript trace on the ``example``
    of the cell's batch: the format, the file, the source that loads it onto the target's
    device and why torch.export failed (if it did)."""
    dimension = torch.export.Dim("batch", min=1)
    dynamic = tuple({0: dimension} if s.shape[:1] == (BATCH,) else None for s in model.inputs)
    try:  # a batch of 2 at least: torch.export takes a size of 1 for a constant
        example_inputs = example(max(2, options.batch))
        program = torch.export.export(module, example_inputs, dynamic_shapes=dynamic)
        torch.export.save(program, str(out_dir / "model.pt2"))
        loader = 'torch.export.load(str(HERE / "model.pt2")).module()'
        return "torch.export", "model.pt2", loader, []
    except Exception as exc:  # torch.export refuses Python it cannot trace in many ways
        traced = torch.jit.trace(module, example(options.batch))
        torch.jit.save(traced, str(out_dir / "model.pt"))
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        note = (
            f"torch.export failed ({reason}): traced to TorchScript (deprecated by recent "
            f"torch) at batch {options.batch}, which replays the operations of that one trace"
        )
        device = literal(target.device)
        loader = f'torch.jit.load(str(HERE / "model.pt"), map_location={device})'
        return "torchscript", "model.pt", loader, [note]


def module_of(options: LoadOptions) -> Any:
    """The module ``options.module`` builds; Unavailable for a model without one."""
    if options.module is None:
        raise Unavailable("pytorch runs PyTorch modules and this model has none")
    return options.module()


class PyTorchSession(Session):
    def __init__(self, module: Any, model: PreparedModel, target: Target, options: LoadOptions):
        import torch

        settings = PyTorchRuntime.settings_of(options)
        if options.threads:
            torch.set_num_threads(options.threads)
        self._torch = torch
        self._module = module
        self._device = torch.device(target.device)
        self._cuda = target.device_kind == "cuda"
        if self._cuda:
            torch.backends.cudnn.benchmark = settings.cudnn_benchmark
        if self._cuda and target.precision == "fp32":
            # PyTorch lets cuDNN convolutions use TF32 by default: an fp32 cell runs true fp32.
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
        self._channels_last = settings.channels_last
        self._cuda_graphs = self._cuda and settings.cuda_graphs
        parameter = next(module.parameters())
        self.inputs = model.inputs
        self.outputs = model.outputs
        self.executed = Executed(
            precision=_executed_precision(torch, module, self._device),
            device=str(parameter.device),
            threads=torch.get_num_threads(),
            provider=f"torch {torch.__version__} "
            + ("eager" if settings.compile == "none" else f"compile ({settings.compile})"),
            details={
                "channels_last": _is_channels_last(torch, module),
                "compile": settings.compile,
                "cuda_graphs": self._cuda_graphs,
                **cuda_details(torch, self._cuda),
            },
        )
        self._dtype = parameter.dtype
        self._staged: list[Any] = []
        self._graph: Any = None
        self._events: tuple[Any, Any] | None = None
        self._device_ms: list[float] = []
        if self._cuda:
            torch.cuda.reset_peak_memory_stats(self._device)
            self._events = tuple(torch.cuda.Event(enable_timing=True) for _ in range(2))

    def _to_device(self, feeds: dict[str, np.ndarray]) -> list[Any]:
        return to_tensors(
            self._torch, feeds, self.inputs, self._dtype, self._device, self._channels_last
        )

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
        """Inputs on the device once; with CUDA graphs, the forward captured on them
        (after three warm-up runs on a side stream, as PyTorch's CUDA graph notes ask)."""
        self._staged = self._to_device(feeds)
        if not self._cuda_graphs:
            return
        torch = self._torch
        side = torch.cuda.Stream(self._device)
        side.wait_stream(torch.cuda.current_stream(self._device))
        with torch.cuda.stream(side):
            for _ in range(3):
                self._forward(self._staged)
        torch.cuda.current_stream(self._device).wait_stream(side)
        self._graph = torch.cuda.CUDAGraph()
        with torch.inference_mode(), torch.cuda.graph(self._graph):
            self._module(*self._staged)

    def launch(self) -> None:
        if self._events is not None:
            self._events[0].record()
        if self._graph is not None:
            self._graph.replay()
        else:
            self._forward(self._staged)
        if self._events is not None:
            self._events[1].record()

    def synchronize(self) -> None:
        if self._cuda:
            self._torch.cuda.synchronize(self._device)
            start, end = self._events
            self._device_ms.append(start.elapsed_time(end))

    def keep_measured(self, count: int) -> None:
        """The CUDA-event times keep the measured requests'."""
        self._device_ms = self._device_ms[max(0, len(self._device_ms) - count) :]

    def device_metrics(self) -> dict[str, Any]:
        """On CUDA: median CUDA-event time of the measured requests (the forward alone)
        and peak device memory allocated and reserved by PyTorch since load."""
        if not self._cuda:
            return {}
        metrics: dict[str, Any] = {
            "peak_allocated_mb": self._torch.cuda.max_memory_allocated(self._device) / 2**20,
            "peak_reserved_mb": self._torch.cuda.max_memory_reserved(self._device) / 2**20,
        }
        if self._device_ms:
            metrics["compute_ms"] = statistics.median(self._device_ms)
            metrics["split_source"] = "cuda events"
            metrics["split_count"] = len(self._device_ms)
        return metrics

    def request_slots(self, feeds: dict[str, np.ndarray], count: int) -> list[Callable[[], None]]:
        """One Python thread per request; torch operators release the GIL, and each thread
        has its own inputs. On CUDA each slot has its own stream."""
        slots = []
        for _ in range(count):
            tensors = self._to_device(feeds)
            if self._cuda:
                stream = self._torch.cuda.Stream(self._device)
                # the inputs were made (NHWC copy included) on the current stream
                stream.wait_stream(self._torch.cuda.current_stream(self._device))
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


_SHIP_SOURCE = '''
OUTPUTS = {outputs}
DEVICE = {device}
DTYPE = torch.{dtype}


def load() -> torch.nn.Module:
    """The module as the cell ran it."""
{setup}    return module


def infer(module: torch.nn.Module, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One request: floating inputs in the module's dtype on its device, every output by
    name."""
    tensors = []
    for name in INPUTS:
        tensor = torch.from_numpy(feeds[name]).to(DEVICE)
        if tensor.is_floating_point():
            tensor = tensor.to(DTYPE)
{channels}        tensors.append(tensor)
    with torch.inference_mode():
        result = module(*tensors)
    results = result if isinstance(result, (tuple, list)) else (result,)
    pairs = zip(OUTPUTS, results, strict=True)
    return {{name: value{host}.cpu().numpy() for name, value in pairs}}
'''
"""The ``load`` and ``infer`` of a shipped module's run.py."""
_NHWC_SOURCE = """\
        if tensor.dim() == 4:
            tensor = tensor.contiguous(memory_format=torch.channels_last)
"""


def to_tensors(
    torch: Any,
    feeds: dict[str, np.ndarray],
    specs: tuple[TensorSpec, ...],
    dtype: Any,
    device: Any,
    channels_last: bool,
) -> list[Any]:
    """``feeds`` as the module takes them, in the order of ``specs``: on ``device``,
    floating ones in ``dtype`` (the module's own), 4-d ones NHWC when ``channels_last``."""
    tensors = []
    for spec in specs:
        tensor = torch.from_numpy(np.ascontiguousarray(feeds[spec.name]))
        tensor = tensor.to(device=device, dtype=dtype if tensor.is_floating_point() else None)
        if channels_last and tensor.dim() == 4:
            tensor = tensor.contiguous(memory_format=torch.channels_last)
        tensors.append(tensor)
    return tensors


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


def _is_channels_last(torch: Any, module: Any) -> bool:
    """Whether the module's 4-d weights (convolutions) are NHWC; False without any."""
    weights = [p for p in module.parameters() if p.dim() == 4]
    return bool(weights) and all(
        p.is_contiguous(memory_format=torch.channels_last) for p in weights
    )


def _dtype_name(dtype: Any) -> str:
    return {"torch.float32": "fp32", "torch.float16": "fp16", "torch.bfloat16": "bf16"}.get(
        str(dtype), str(dtype)
    )
