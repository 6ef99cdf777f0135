"""Building TensorRT engines through the Python API, across the API's versions.

Everything here takes the ``tensorrt`` module as an argument, so that the mapping from a
cell's options to builder calls is tested against recorded doubles of TensorRT 8.6, 10.x
and 11 (tests/fixtures/tensorrt). What changed between them and is handled here:

- 8.x needs ``EXPLICIT_BATCH`` to parse ONNX; 10.x ignores (deprecates) it; 11 has none.
- Precision: 8.6 and 10.x take builder flags (``BuilderFlag.FP16``, ``BF16`` from 9.0):
  "weak typing", where TensorRT may still pick FP32 kernels per layer. Strongly typed
  networks (``NetworkDefinitionCreationFlag.STRONGLY_TYPED``, 9.x on; weak typing deprecated
  in 10.12) run each layer in the graph's own types, so the graph is converted first;
  TensorRT 11 keeps only those (the flag is then ignored, every network is strongly typed).
- TF32 is on by default for FP32 layers from Ampere on: an fp32 cell clears it.
- int8 is explicit quantization only: the s8s8 QDQ copy of the model, whose Q/DQ pairs say
  what runs in int8. A weakly typed network also needs ``BuilderFlag.INT8`` (8.6, 10.x); a
  strongly typed one takes the types from the Q/DQ layers (10.x, and 11, which dropped
  implicit quantization and its calibrators).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.core.digest import cache_key, file_digest
from bench.core.errors import Unavailable
from bench.core.locks import entry_lock
from bench.core.spec import BATCH, TensorSpec


@dataclass(frozen=True, order=True)
class TrtVersion:
    """A TensorRT version: ``TrtVersion.parse("10.3.0.26")``."""

    major: int
    minor: int
    patch: int = 0

    @classmethod
    def parse(cls, text: str) -> TrtVersion:
        match = re.match(r"^(\d+)\.(\d+)(?:\.(\d+))?", text.strip())
        if not match:
            raise ValueError(f"not a TensorRT version: {text!r}")
        return cls(int(match[1]), int(match[2]), int(match[3] or 0))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


@dataclass(frozen=True)
class BuildPlan:
    """Everything that decides an engine, and so names it in the engine cache.

    ``shapes`` maps each input to its (min, opt, max) shapes: the batch axis spans the
    suite's batch sizes and is optimised for the cell's own batch.
    """

    precision: str
    typing: str  # "weak" or "strong", resolved for the installed TensorRT
    workspace_mb: int
    shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]
    tf32: bool = False
    dla_core: int | None = None
    gpu_fallback: bool = True
    optimization_level: int | None = None


@dataclass(frozen=True)
class EngineFile:
    """What ``TensorRTRuntime.build`` hands to ``load``: the serialized engine and how it
    was made (the driver that builds it also runs it)."""

    path: Path
    plan: BuildPlan
    version: str
    driver: str  # "python" or "trtexec"
    gpu: str


def profile_shapes(
    inputs: tuple[TensorSpec, ...], batches: list[int], batch: int
) -> dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
    """(min, opt, max) shape of each dynamic input: the ``batch`` axis from the smallest
    to the largest of ``batches``, optimised for ``batch``; every other dimension as
    given. A static input has none: its shape is the model's, and trtexec refuses explicit
    shapes for a model whose inputs are all static ("Static model does not take explicit
    shapes", sampleEngines.cpp, TensorRT 8.2 to 11)."""
    low, high = min([*batches, batch]), max([*batches, batch])
    return {
        spec.name: tuple(spec.concrete_shape({BATCH: size}) for size in (low, batch, high))
        for spec in inputs
        if spec.dynamic
    }  # type: ignore[misc]


@dataclass(frozen=True)
class TypingSupport:
    """Which ways of setting precision a TensorRT has: builder flags (weak typing, gone in
    11), ``BuilderFlag.BF16`` (9.0 on) and strongly typed networks (10.0 on)."""

    weak: bool
    bf16: bool
    strong: bool

    @classmethod
    def of_module(cls, trt: Any) -> TypingSupport:
        weak = hasattr(trt.BuilderFlag, "FP16")
        strong = hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED") or not weak
        return cls(weak, hasattr(trt.BuilderFlag, "BF16"), strong)

    @classmethod
    def of_version(cls, version: TrtVersion) -> TypingSupport:
        """For trtexec, which has no module to ask: ``--fp16`` until 11, ``--bf16`` from
        9.0 until 11, ``--stronglyTyped`` taken from 10.0 (9.x, a limited LLM-only release,
        is not assumed to have it; 11 needs no flag)."""
        return cls(version.major < 11, 9 <= version.major < 11, version.major >= 10)


def resolve_typing(
    support: TypingSupport, version: TrtVersion, requested: str, precision: str
) -> str:
    """``weak`` or ``strong`` for ``requested`` (auto/weak/strong) on a TensorRT with
    ``support``; raises Unavailable, naming the option to change, where it cannot."""
    typing = requested if requested != "auto" else ("weak" if support.weak else "strong")
    if typing == "weak" and not support.weak:
        raise Unavailable(
            f"TensorRT {version} has no weak typing (BuilderFlag.FP16 was removed): "
            'set runtime.tensorrt.typing = "strong"'
        )
    if typing == "strong" and not support.strong:
        raise Unavailable(
            f"TensorRT {version} has no strongly typed networks (10.0 and newer): "
            'set runtime.tensorrt.typing = "weak"'
        )
    if typing == "weak" and precision == "bf16" and not support.bf16:
        raise Unavailable(f"TensorRT {version} has no bf16 (BuilderFlag.BF16 is 9.0 and newer)")
    if typing == "strong" and precision == "bf16":
        raise Unavailable(
            "a strongly typed bf16 engine needs a bf16 graph, which deploybench cannot make "
            'yet: set runtime.tensorrt.typing = "weak" (TensorRT 9.0 to 10.x)'
        )
    return typing


def network_flags(trt: Any, typing: str) -> int:
    """The ``create_network`` flags: EXPLICIT_BATCH before 10.0, STRONGLY_TYPED when asked."""
    flags = 0
    creation = trt.NetworkDefinitionCreationFlag
    if TrtVersion.parse(trt.__version__) < TrtVersion(10, 0) and hasattr(
        creation, "EXPLICIT_BATCH"
    ):
        flags |= 1 << int(creation.EXPLICIT_BATCH)
    if typing == "strong" and hasattr(creation, "STRONGLY_TYPED"):
        flags |= 1 << int(creation.STRONGLY_TYPED)
    return flags


def configure(trt: Any, builder: Any, network: Any, config: Any, plan: BuildPlan) -> None:
    """Set ``config`` for ``plan``: workspace, detailed profiling (per-layer precision can
    then be read back), precision flags (weak typing), TF32, DLA, optimisation level and
    an optimisation profile for every input with a dynamic dimension."""
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, plan.workspace_mb << 20)
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    if plan.typing == "weak" and plan.precision in ("fp16", "bf16", "int8"):
        config.set_flag(getattr(trt.BuilderFlag, plan.precision.upper()))
    if not plan.tf32 and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)
    if plan.optimization_level is not None:
        config.builder_optimization_level = plan.optimization_level
    if plan.dla_core is not None:
        if builder.num_DLA_cores <= plan.dla_core:
            raise Unavailable(f"no DLA core {plan.dla_core} here ({builder.num_DLA_cores} found)")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = plan.dla_core
        if plan.gpu_fallback:
            config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    profile = None
    for index in range(network.num_inputs):
        tensor = network.get_input(index)
        if all(dim >= 0 for dim in tensor.shape):
            continue
        if tensor.name not in plan.shapes:
            raise Unavailable(f"input '{tensor.name}' has dynamic dimensions and no size")
        profile = profile or builder.create_optimization_profile()
        profile.set_shape(tensor.name, *plan.shapes[tensor.name])
    if profile is not None:
        config.add_optimization_profile(profile)


def recording_logger(trt: Any) -> Any:
    """A TensorRT logger that keeps error messages (for one-line failures) and prints
    warnings and errors as TensorRT's own logger would."""

    class Recorder(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity: Any, message: str) -> None:
            if severity in (trt.ILogger.INTERNAL_ERROR, trt.ILogger.ERROR):
                self.errors.append(message.strip().splitlines()[0] if message.strip() else "")
            if severity in (trt.ILogger.INTERNAL_ERROR, trt.ILogger.ERROR, trt.ILogger.WARNING):
                print(f"[TensorRT] {message}", flush=True)

    return Recorder()


def build_serialized(
    trt: Any, onnx_path: Path, plan: BuildPlan, timing_cache: Path | None
) -> bytes:
    """Parse ``onnx_path`` and build a serialized engine for ``plan``, reading and updating
    the timing cache file when one is given. RuntimeError with TensorRT's first error."""
    logger = recording_logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt, plan.typing))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise RuntimeError(f"TensorRT cannot parse {onnx_path.name}: {_first(errors)}")
    config = builder.create_builder_config()
    configure(trt, builder, network, config, plan)
    if timing_cache is not None:
        known = timing_cache.read_bytes() if timing_cache.is_file() else b""
        config.set_timing_cache(config.create_timing_cache(known), False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT could not build the engine: {_first(logger.errors)}")
    if timing_cache is not None:
        write_atomically(timing_cache, bytes(config.get_timing_cache().serialize()))
    return bytes(serialized)


def _first(messages: list[str]) -> str:
    return next((m for m in messages if m), "no reason given (see the worker log)")


def engine_path(cache_dir: Path, onnx_path: Path, version: str, gpu: str, plan: BuildPlan) -> Path:
    """The engine cache entry for building ``onnx_path`` (by content) with ``plan`` by
    TensorRT ``version`` for ``gpu`` (an engine is valid only for both)."""
    key = cache_key(onnx=file_digest(onnx_path), tensorrt=version, gpu=gpu, plan=asdict(plan))
    return cache_dir / "tensorrt" / f"{onnx_path.stem}-{plan.precision}-{key}.engine"


def timing_cache_path(cache_dir: Path, version: str, gpu: str) -> Path:
    """One timing cache per TensorRT version and GPU, shared by every build on them."""
    return cache_dir / "tensorrt" / f"timing-{cache_key(tensorrt=version, gpu=gpu)}.cache"


def timed_build(path: Path, build: Callable[[Path], None]) -> tuple[float, bool]:
    """``build(partial)`` (which writes the engine to ``partial``) timed and moved into
    ``path``, unless ``path`` is already there; returns (build seconds, cache hit)."""
    with entry_lock(path, scratch=f".{path.name}.*.partial"):  # one build; none half-left
        if path.is_file():
            return 0.0, True
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        start = time.perf_counter()
        build(partial)
        elapsed = time.perf_counter() - start
        os.replace(partial, path)
    return elapsed, False


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_bytes(data)
    os.replace(partial, path)
