"""TensorRT: an engine built from the exported ONNX file for the cell's precision, batch
and GPU (or Jetson DLA core), cached on disk, and run through the Python API
(``runtimes.tensorrt.session``) or, where the bindings are missing, the trtexec binary
(``runtimes.tensorrt.trtexec_session``).

Build time is a cold-start figure (``Built.build_s``; zero with ``cache_hit`` when the
engine cache served it); the engine is deserialised in ``load``; the precision a cell ran
in is read back per layer (engine inspector, or trtexec's ``--exportLayerInfo``).
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Literal

from pydantic import Field

from bench.core.cell import Target
from bench.core.devices import cuda_device_count, cuda_devices, cuda_unavailable_reason
from bench.core.errors import Unavailable
from bench.core.settings import RuntimeSettings
from bench.core.spec import PreparedModel
from runtimes.base import CUDA, Built, LoadOptions, Runtime, Session, Shipped
from runtimes.tensorrt.build import (
    BuildPlan,
    EngineFile,
    TrtVersion,
    TypingSupport,
    engine_path,
    profile_shapes,
    resolve_typing,
    timed_build,
    timing_cache_path,
)
from runtimes.tensorrt.cuda import cuda_python_installed, require_device
from runtimes.tensorrt.ship import ship_engine
from runtimes.tensorrt.trtexec_driver import find_trtexec

JETSON_RELEASE = Path("/etc/nv_tegra_release")
_GPU_EXTRA = "pip install 'deploybench[gpu]'"


class TensorRTOptions(RuntimeSettings):
    """TensorRT settings. ``driver``: the Python API when importable, else the trtexec
    binary (``auto``), or one of them. ``typing``: ``weak`` sets precision with builder flags
    (TensorRT 8.6 and 10.x), ``strong`` builds a strongly typed network from a graph already
    in the cell's precision (the only way from TensorRT 11 on); ``auto`` takes builder flags
    where the installed version has them. ``data_transfers`` puts the host↔device copies in
    each timed request (trtexec's "Latency", split into H2D, compute and D2H); off (as for
    PyTorch and ONNX Runtime's IO binding), inputs and outputs stay on the device."""

    driver: Literal["auto", "python", "trtexec"] = "auto"
    typing: Literal["auto", "weak", "strong"] = "auto"
    workspace_mb: int = Field(4096, ge=1)
    """The builder's workspace memory pool, MiB."""
    builder_optimization_level: int | None = Field(None, ge=0, le=5)
    """The builder's optimization level, 0-5 (None: TensorRT's default)."""
    tf32: bool = False
    """Allow TF32 in fp32 layers."""
    timing_cache: bool = True
    """Keep the builder's timing cache under the cache dir."""
    engine_cache: bool = True
    """Reuse built engines from the cache dir."""
    cuda_graph: bool = False
    """Capture the timed request in a CUDA graph."""
    data_transfers: bool = False
    gpu_fallback: bool = True
    """DLA layers it cannot run fall back to the GPU."""
    trtexec_path: str | None = None
    """The trtexec binary (default: PATH, then JetPack's /usr/src/tensorrt/bin)."""
    program_fields = ("trtexec_path",)


def _bindings_installed() -> bool:
    return importlib.util.find_spec("tensorrt") is not None


def choose_driver(settings: TensorRTOptions) -> tuple[str, Path | None]:
    """("python", None) or ("trtexec", its path) for ``settings.driver``; Unavailable with
    the fix when the chosen (or, for auto, either) driver is missing."""
    trtexec = find_trtexec(settings.trtexec_path)
    python_missing = None
    if not _bindings_installed():
        python_missing = f"TensorRT's Python bindings are not installed: {_GPU_EXTRA}"
    elif not cuda_python_installed():
        python_missing = f"TensorRT's Python driver needs cuda-python: {_GPU_EXTRA}"
    if settings.driver == "python" or (settings.driver == "auto" and python_missing is None):
        if python_missing:
            raise Unavailable(python_missing)
        return "python", None
    if trtexec is None:
        where = settings.trtexec_path or "on PATH or at /usr/src/tensorrt/bin/trtexec"
        missing = f"trtexec not found {where}"
        if settings.driver == "trtexec":
            raise Unavailable(f"{missing}: set runtime.tensorrt.trtexec_path")
        raise Unavailable(f"{python_missing}; {missing}")
    return "trtexec", trtexec


class TensorRTRuntime(Runtime):
    name = "tensorrt"
    package = "tensorrt"
    install_hint = f"{_GPU_EXTRA} (JetPack ships TensorRT and trtexec)"
    precisions = ("fp32", "fp16", "bf16", "int8")
    device_forms = {"cuda": CUDA, "dla": (r"dla(:\d+)?", "dla:N")}
    options = TensorRTOptions
    libraries = ("tensorrt",)

    @classmethod
    def installed(cls) -> bool:
        """The Python bindings (with cuda-python), or a trtexec binary."""
        python = _bindings_installed() and cuda_python_installed()
        return python or find_trtexec() is not None

    @classmethod
    def import_framework(cls) -> None:
        if _bindings_installed() and cuda_python_installed():
            importlib.import_module("tensorrt")

    @classmethod
    def quantization_scheme(cls, target: Target, settings: RuntimeSettings) -> str:
        """TensorRT's QuantizeLinear takes no zero point: symmetric int8 only."""
        return "s8s8"

    @classmethod
    def unavailable_reason(cls, target: Target, source: str) -> str | None:
        if not cls.installed():
            return f"neither TensorRT's Python bindings nor trtexec found: {cls.install_hint}"
        reason = super().unavailable_reason(target, source)
        if reason is None and target.device_kind == "dla" and target.precision != "fp16":
            return f"a DLA core runs fp16 and int8, not {target.precision}"
        return reason

    @classmethod
    def device_unavailable_reason(cls, target: Target) -> str | None:
        if target.device_kind == "dla":
            if not JETSON_RELEASE.is_file():
                return f"{target.device} needs a Jetson with DLA cores (AGX Xavier, AGX Orin)"
            return cuda_unavailable_reason(0)
        return cuda_unavailable_reason(target.device_index)

    @classmethod
    def devices(cls) -> list[str]:
        return [f"cuda:{i}" for i in range(cuda_device_count())]

    def build(
        self, model: PreparedModel, target: Target, options: LoadOptions, cache_dir: Path
    ) -> Built:
        """An engine for the cell: parsed from the ONNX file (its FP16 conversion for a
        strongly typed fp16 engine), with an optimisation profile over the suite's batch
        sizes at the cell's batch, cached by ONNX content, TensorRT version, GPU and plan."""
        settings = TensorRTRuntime.settings_of(options)
        driver, trtexec = choose_driver(settings)
        if driver == "python":
            require_device(0 if target.device_kind == "dla" else target.device_index)
            import tensorrt as trt

            version = TrtVersion.parse(trt.__version__)
            support = TypingSupport.of_module(trt)
        else:
            from runtimes.tensorrt.trtexec_driver import trtexec_version

            version = trtexec_version(trtexec)
            support = TypingSupport.of_version(version)
        typing = resolve_typing(support, version, settings.typing, target.precision)
        onnx, convert_s, notes = model.onnx_path, 0.0, ()
        if target.precision == "int8":  # explicit quantization: the Q/DQ layers say what
            quantized = TensorRTRuntime.quantized(model, target, settings)
            onnx, notes = quantized.path, quantized.notes
        elif typing == "strong" and target.precision == "fp16":
            from runtimes.fp16_graph import fp16_graph

            converted = fp16_graph(model.onnx_path, cache_dir, model.precision == "fp16")
            onnx, convert_s, notes = converted.path, converted.convert_s, converted.notes
        plan = BuildPlan(
            precision=target.precision,
            typing=typing,
            workspace_mb=settings.workspace_mb,
            shapes=profile_shapes(model.inputs, options.profile_batches, options.batch),
            tf32=settings.tf32,
            dla_core=target.device_index if target.device_kind == "dla" else None,
            gpu_fallback=settings.gpu_fallback,
            optimization_level=settings.builder_optimization_level,
        )
        gpu = _gpu_name(target)
        path = engine_path(cache_dir, onnx, f"{version}-{driver}", gpu, plan)
        if not settings.engine_cache:
            path.unlink(missing_ok=True)
        timing = timing_cache_path(cache_dir, str(version), gpu) if settings.timing_cache else None
        if driver == "python":
            from runtimes.tensorrt.build import build_serialized

            def build(partial: Path) -> None:
                partial.write_bytes(build_serialized(trt, onnx, plan, timing))
        else:
            from runtimes.tensorrt.trtexec_driver import build_flags, run_trtexec

            def build(partial: Path) -> None:
                flags = build_flags(version, onnx, partial, plan, timing)
                run_trtexec(trtexec, flags, 24 * 3600, path.parent)

        build_s, hit = timed_build(path, build)
        engine = EngineFile(path, plan, str(version), driver, gpu)
        made = f"tensorrt {version} via {driver}, {typing} typing"
        return Built(engine, build_s + convert_s, hit, notes=(*notes, made))

    def load(
        self, built: Built, model: PreparedModel, target: Target, options: LoadOptions
    ) -> Session:
        engine, settings = built.artifact, TensorRTRuntime.settings_of(options)
        run = _run_settings(settings)
        if engine.driver == "python":
            from runtimes.tensorrt.session import TensorRTSession

            return TensorRTSession(engine, model, target, **run)
        from runtimes.tensorrt.trtexec_session import TrtexecSession

        trtexec = find_trtexec(settings.trtexec_path)
        if trtexec is None:
            raise Unavailable("trtexec went missing between build and load")
        return TrtexecSession(engine, model, target, trtexec, **run)

    def ship(
        self,
        built: Built,
        model: PreparedModel,
        target: Target,
        options: LoadOptions,
        out_dir: Path,
    ) -> Shipped:
        """The serialized engine the build made, its build plan and the session's run
        settings, and a run.py on TensorRT's Python API (``runtimes.tensorrt.ship``)."""
        run = _run_settings(TensorRTRuntime.settings_of(options))
        return ship_engine(built.artifact, model, target, options.batch, run, out_dir)


def _run_settings(settings: TensorRTOptions) -> dict[str, bool]:
    """How a session runs its engine: a captured CUDA graph, copies in each request."""
    return {"cuda_graph": settings.cuda_graph, "data_transfers": settings.data_transfers}


def _gpu_name(target: Target) -> str:
    """The GPU an engine is built for (an engine runs only on the model it was built for)."""
    index = 0 if target.device_kind == "dla" else target.device_index
    devices = cuda_devices()
    return str(devices[index]["name"]) if index < len(devices) else "unknown GPU"
