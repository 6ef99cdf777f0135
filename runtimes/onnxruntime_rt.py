"""ONNX Runtime: CPU execution provider, and CUDA / TensorRT providers when installed."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from bench.core.cell import Target
from bench.core.devices import cuda_unavailable_reason
from bench.core.errors import Unavailable
from bench.core.record import Executed
from bench.core.settings import RuntimeSettings
from bench.core.spec import BATCH, PreparedModel
from runtimes import provider_libraries
from runtimes.base import Built, LoadOptions, Runtime, Session, Shipped
from runtimes.provider_libraries import PROVIDER_FILES
from runtimes.shipping import copy_onnx, literal, snippet
from runtimes.tensorrt.build import profile_shapes

GPU_INSTALL = (
    "pip uninstall -y onnxruntime && pip install onnxruntime-gpu "
    "(both packages install the one onnxruntime module: keep only the GPU one)"
)

_CACHE_PATHS = ("trt_engine_cache_path", "trt_timing_cache_path")
_SHIPPED_CACHE = "ort-tensorrt"
"""Where a shipped session's TensorRT provider caches go, relative to run.py."""
_GRAPH_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}


class OnnxRuntimeOptions(RuntimeSettings):
    """ONNX Runtime settings. On a CUDA device ``tensorrt = true`` puts the TensorRT
    execution provider before CUDA's (engines cached under the cache dir unless
    ``trt_engine_cache`` is off); ``io_binding`` keeps inputs and outputs on the device in
    the timed loop (device-resident timing; the copies are left out)."""

    graph_optimization: Literal["disable", "basic", "extended", "all"] = "all"
    """ONNX Runtime's graph optimization level."""
    tensorrt: bool = False
    """TensorRT's execution provider before CUDA's, on a CUDA device."""
    trt_engine_cache: bool = True
    trt_workspace_mb: int = Field(1024, ge=1)
    """The TensorRT provider's workspace, MiB."""
    io_binding: bool = True


@dataclass(frozen=True)
class OrtGraph:
    """What ``build`` hands to ``load``: the graph to run and where engine caches go."""

    path: Path
    cache_dir: Path


class OnnxRuntime(Runtime):
    name = "onnxruntime"
    package = "onnxruntime"
    install_hint = "pip install onnxruntime (or onnxruntime-gpu for CUDA)"
    precisions = ("fp32", "fp16", "int8")
    options = OnnxRuntimeOptions
    libraries = ("onnxruntime", "onnxruntime-gpu")

    @classmethod
    def quantization_scheme(cls, target: Target, settings: RuntimeSettings) -> str:
        """The TensorRT provider takes symmetric int8 only; the CPU and CUDA providers run
        the u8s8 copy (fused into QLinearConv and QGemm on the CPU)."""
        return "s8s8" if settings.tensorrt and target.device_kind == "cuda" else "u8s8"

    @classmethod
    def device_unavailable_reason(cls, target: Target) -> str | None:
        if target.device_kind == "cpu":
            return None
        import onnxruntime

        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            return f"onnxruntime has no CUDAExecutionProvider: {GPU_INSTALL}"
        return cuda_unavailable_reason(target.device_index)

    @classmethod
    def devices(cls) -> list[str]:
        import onnxruntime

        providers = onnxruntime.get_available_providers()
        devices = ["cpu"]
        if "CUDAExecutionProvider" in providers and cuda_unavailable_reason(0) is None:
            devices.append("cuda")
        return devices

    def build(
        self, model: PreparedModel, target: Target, options: LoadOptions, cache_dir: Path
    ) -> Built:
        """The graph to load: the exported FP32 graph, or its FP16 conversion (cached).
        ONNX Runtime optimises a graph when a session is made, so that is timed by load;
        the TensorRT provider takes the FP32 graph and builds its FP16 engine itself."""
        settings = OnnxRuntime.settings_of(options)
        if target.precision == "int8":
            quantized = OnnxRuntime.quantized(model, target, settings)
            graph = OrtGraph(quantized.path, cache_dir)
            return Built(graph, 0.0, quantized.cache_hit, notes=quantized.notes)
        if target.precision == "fp32" or (settings.tensorrt and target.device_kind == "cuda"):
            return Built(artifact=OrtGraph(model.onnx_path, cache_dir), build_s=0.0)
        from runtimes.fp16_graph import fp16_graph

        converted = fp16_graph(model.onnx_path, cache_dir, model.precision == "fp16")
        return Built(
            OrtGraph(converted.path, cache_dir),
            converted.convert_s,
            converted.cache_hit,
            notes=converted.notes,
        )

    def load(
        self, built: Built, model: PreparedModel, target: Target, options: LoadOptions
    ) -> Session:
        return OnnxRuntimeSession(built.artifact, model, target, options)

    def ship(
        self,
        built: Built,
        model: PreparedModel,
        target: Target,
        options: LoadOptions,
        out_dir: Path,
    ) -> Shipped:
        """The graph the session loaded (the FP32 export, its FP16 conversion or the int8
        QDQ copy) as model.onnx, with the session's providers, graph optimisation level,
        intra-op threads and config entries. The TensorRT provider's engine and timing
        caches move to ort-tensorrt/ beside run.py."""
        import onnxruntime

        settings = OnnxRuntime.settings_of(options)
        graph: OrtGraph = built.artifact
        files = copy_onnx(graph.path, out_dir)
        providers = _shipped(_providers(target, settings, model, options, graph.cache_dir))
        level = _GRAPH_LEVELS[settings.graph_optimization]
        entries = config_entries(options, None)
        lines = [
            f"options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.{level}",
            f"options.intra_op_num_threads = {options.threads}",
            *(
                f"options.add_session_config_entry({literal(k)}, {literal(v)})"
                for k, v in entries.items()
            ),
        ]
        body = _SESSION_SOURCE.format(
            providers="".join(
                f"    {_provider_source(name, given)},\n" for name, given in providers
            ),
            options="".join(f"    {line}\n" for line in lines),
        )
        version = onnxruntime.__version__
        notes = []
        if any(name == "TensorrtExecutionProvider" for name, _ in providers):
            notes.append(
                "the TensorRT provider builds its engine into ort-tensorrt/ beside run.py on "
                "the first run (the measured run's engine cache stayed behind)"
            )
        if target.device_kind == "cuda" and settings.io_binding:
            notes.append(
                "the cell timed requests with IO binding (inputs and outputs kept on the "
                "device); run.py's session.run copies them in and out with each request"
            )
        title = f"{model.name} on ONNX Runtime {version}: {target.precision} on {target.device}."
        return Shipped(
            files=files,
            settings={
                "providers": [[name, given] for name, given in providers],
                "graph_optimization_level": level,
                "intra_op_num_threads": options.threads,
                "session_config": entries,
            },
            snippet=snippet(title, model, options.batch, ("import onnxruntime",), body),
            version=version,
            notes=tuple(notes),
        )


class OnnxRuntimeSession(Session):
    def __init__(
        self, graph: OrtGraph, model: PreparedModel, target: Target, options: LoadOptions
    ) -> None:
        import onnxruntime

        settings = OnnxRuntime.settings_of(options)
        providers = _providers(target, settings, model, options, graph.cache_dir)
        names = [p[0] if isinstance(p, tuple) else p for p in providers]
        missing = sorted(set(names) - set(onnxruntime.get_available_providers()))
        if missing:
            raise Unavailable(f"onnxruntime has no {', '.join(missing)} here: {GPU_INSTALL}")
        provider_libraries.preload(onnxruntime, names)
        session_options = onnxruntime.SessionOptions()
        level = _GRAPH_LEVELS[settings.graph_optimization]
        session_options.graph_optimization_level = getattr(
            onnxruntime.GraphOptimizationLevel, level
        )
        session_options.add_session_config_entry("session.record_ep_graph_assignment_info", "1")
        pool = _PROCESS.shared_pool(options.threads) if options.shared else None
        if pool is not None:
            session_options.use_per_session_threads = False
        else:
            session_options.intra_op_num_threads = options.threads
        for key, value in config_entries(options, pool).items():
            session_options.add_session_config_entry(key, value)
        compiled = "TensorrtExecutionProvider" in names  # compiled nodes cannot be saved
        with tempfile.TemporaryDirectory() as scratch:
            optimized = Path(scratch) / "optimized.onnx"
            if target.precision != "fp32" and not compiled:  # read back what the graph runs in
                session_options.optimized_model_filepath = str(optimized)
                session_options.log_severity_level = 3  # not the warning about saving it
            self._session = onnxruntime.InferenceSession(
                str(graph.path), session_options, providers=providers
            )
            _PROCESS.sessions_made = True
            layers = compute_layers(optimized) if optimized.is_file() else {}
        kept = self._session.get_providers()
        dropped = [name for name in names if name in PROVIDER_FILES and name not in kept]
        if dropped:  # ONNX Runtime warned and went on without it: this cell did not run
            raise RuntimeError(provider_libraries.failure(onnxruntime, dropped[0]))
        self._ort = onnxruntime
        self._device_id = target.device_index
        self.inputs = model.inputs
        self.outputs = model.outputs
        self.executed = read_back(self._session, target, majority(layers))
        if layers:
            self.executed.details["compute_layers"] = layers
        if options.shared:
            self.executed.details["thread_pool"] = pool or "per session, spinning off"
        if pool is not None:  # the session's own options no longer hold the count
            self.executed.threads = options.threads or None
        self._io_binding = settings.io_binding and self.executed.device != "cpu"
        self.executed.details["io_binding"] = self._io_binding
        self._feeds: dict[str, np.ndarray] = {}
        self._binding: Any = None

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [o.name for o in self._session.get_outputs()]
        return dict(zip(names, self._session.run(names, feeds), strict=True))

    def _bind(self, feeds: dict[str, np.ndarray]) -> Any:
        """An IO binding with ``feeds`` copied to the device once and the outputs left on
        the device, so that a timed request moves no data between host and device."""
        binding = self._session.io_binding()
        for spec in self.inputs:
            value = self._ort.OrtValue.ortvalue_from_numpy(
                np.ascontiguousarray(feeds[spec.name]), "cuda", self._device_id
            )
            binding.bind_ortvalue_input(spec.name, value)
        for output in self._session.get_outputs():
            binding.bind_output(output.name, "cuda", self._device_id)
        binding.synchronize_inputs()
        return binding

    def stage(self, feeds: dict[str, np.ndarray]) -> None:
        self._feeds = feeds
        self._binding = self._bind(feeds) if self._io_binding else None

    def launch(self) -> None:
        if self._binding is not None:
            self._session.run_with_iobinding(self._binding)
        else:
            self._session.run(None, self._feeds)

    def synchronize(self) -> None:
        if self._binding is not None:
            self._binding.synchronize_outputs()

    def request_slots(self, feeds: dict[str, np.ndarray], count: int) -> list[Callable[[], None]]:
        """ONNX Runtime's ``run`` is thread-safe and releases the GIL: one session serves
        every slot, as onnxruntime_perf_test does for concurrent runs; with IO binding each
        slot has its own binding (its own device inputs and outputs)."""
        if self._io_binding:
            return [self._bound_slot(self._bind(feeds)) for _ in range(count)]
        run = self._session.run
        return [lambda: run(None, feeds) for _ in range(count)]

    def _bound_slot(self, binding: Any) -> Callable[[], None]:
        def run() -> None:
            self._session.run_with_iobinding(binding)
            binding.synchronize_outputs()

        return run


def _providers(
    target: Target,
    settings: OnnxRuntimeOptions,
    model: PreparedModel,
    options: LoadOptions,
    cache_dir: Path,
) -> list[Any]:
    """The provider list for a cell: CPU; CUDA (TF32 off for fp32) then CPU; or TensorRT
    (fp16 per the cell, engine and timing caches, a shape profile over the suite's batch
    sizes) then CUDA then CPU."""
    if target.device_kind != "cuda":
        return ["CPUExecutionProvider"]
    import onnxruntime

    cuda: dict[str, Any] = {"device_id": target.device_index}
    if tuple(int(p) for p in onnxruntime.__version__.split(".")[:2]) >= (1, 18):
        # the option is 1.18 and newer; an fp32 or int8 cell's float layers run fp32
        cuda["use_tf32"] = int(target.precision in ("fp16", "bf16"))
    chain: list[Any] = [("CUDAExecutionProvider", cuda), "CPUExecutionProvider"]
    if not settings.tensorrt:
        return chain
    trt: dict[str, Any] = {
        "device_id": target.device_index,
        "trt_fp16_enable": target.precision == "fp16",
        "trt_int8_enable": target.precision == "int8",  # the QDQ copy's explicit int8 layers
        "trt_max_workspace_size": settings.trt_workspace_mb << 20,
    }
    if any(BATCH in spec.shape for spec in model.inputs):  # a batch axis: one profile for all
        shapes = profile_shapes(model.inputs, options.profile_batches, options.batch)
        for index, kind in enumerate(("min", "opt", "max")):
            trt[f"trt_profile_{kind}_shapes"] = _shape_option(shapes, index)
    if settings.trt_engine_cache:
        cache = str(cache_dir / "ort-tensorrt")
        trt.update(trt_engine_cache_enable=True, trt_engine_cache_path=cache)
        trt.update(trt_timing_cache_enable=True, trt_timing_cache_path=cache)
    return [("TensorrtExecutionProvider", trt), *chain]


_SESSION_SOURCE = '''
PROVIDERS = [
{providers}]


def load() -> onnxruntime.InferenceSession:
    """model.onnx in a session made as the cell's was."""
    options = onnxruntime.SessionOptions()
{options}    path = str(HERE / "model.onnx")
    return onnxruntime.InferenceSession(path, options, providers=PROVIDERS)


def infer(
    session: onnxruntime.InferenceSession, feeds: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """One request: every output by name."""
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))
'''
"""The ``load`` and ``infer`` of a shipped session's run.py."""


def _shipped(providers: list[Any]) -> list[tuple[str, dict[str, Any]]]:
    """A cell's provider list as (name, options) pairs, the TensorRT provider's cache
    folders moved beside run.py (``_SHIPPED_CACHE``)."""
    pairs = [(p, {}) if isinstance(p, str) else p for p in providers]
    return [
        (name, {k: _SHIPPED_CACHE if k in _CACHE_PATHS else v for k, v in given.items()})
        for name, given in pairs
    ]


def _provider_source(name: str, given: dict[str, Any]) -> str:
    """One (name, options) pair of a shipped provider list as Python source, the cache
    folders written relative to the script (``HERE``)."""
    items = (
        f"{literal(k)}: " + (f"str(HERE / {literal(v)})" if k in _CACHE_PATHS else literal(v))
        for k, v in given.items()
    )
    return f"({literal(name)}, {{{', '.join(items)}}})"


def config_entries(options: LoadOptions, pool: str | None) -> dict[str, str]:
    """The session config entries a cell's session is made with (``pool``: the thread pool
    shared by the process's sessions, if any): spinning off where requests in flight, or
    another session, share the cores, since spinning threads would steal them from each
    other."""
    if options.in_flight > 1 or (options.shared and pool is None):
        return {"session.intra_op.allow_spinning": "0"}
    return {}


def _shape_option(shapes: dict[str, tuple[tuple[int, ...], ...]], which: int) -> str:
    return ",".join(f"{n}:{'x'.join(map(str, s[which]))}" for n, s in shapes.items())


def read_back(session: Any, target: Target, precision: str) -> Executed:
    """What a session runs with: the first provider ONNX Runtime kept (after any fallback
    at session creation), how many nodes each provider was assigned (ONNX Runtime 1.24 and
    newer say), the CUDA provider's TF32 setting. The TensorRT provider picks each layer's
    precision itself and does not report it: its cells read ``unknown``."""
    used = session.get_providers()
    nodes = node_providers(session)
    all_on_cpu = bool(nodes) and set(nodes) == {"CPUExecutionProvider"}
    on_cpu = used[0] == "CPUExecutionProvider" or all_on_cpu
    details: dict[str, Any] = {"providers": used, "node_providers": nodes}
    if target.device_kind == "cuda":
        details["cpu_fallback_nodes"] = nodes.get("CPUExecutionProvider", 0) if nodes else None
        cuda = session.get_provider_options().get("CUDAExecutionProvider", {})
        details["use_tf32"] = cuda.get("use_tf32")
    if used[0] == "TensorrtExecutionProvider":
        precision = "unknown"
    return Executed(
        precision=precision,
        device="cpu" if on_cpu else target.device,
        threads=session.get_session_options().intra_op_num_threads or None,
        provider=used[0],
        details=details,
    )


class _ThreadPools:
    """This process's ONNX Runtime thread pools: one per session, until a paired A/B
    worker asks for one pool shared by its sessions (``shared_pool``)."""

    def __init__(self) -> None:
        self.shared: str | None = None
        self.sessions_made = False

    def shared_pool(self, threads: int) -> str | None:
        """One thread pool for every session of this process, made before the first
        session (ONNX Runtime reads its size when its environment starts, with the first
        session); what it is, or None after a session with a pool of its own.

        With a pool each, a busy core slows whichever side's pool thread the scheduler
        left there, for the whole worker: with one core taken by another process, paired
        workers of two identical ResNet-18 sessions gave ratios from 0.67 to 1.44 (a 28%
        spread); with one shared pool, a 2.7% spread. Idle, 0.27% and 0.37%, at 18.05
        and 18.6 ms a request (scripts/thread_pools.py on the 2-core development VM)."""
        if self.shared is None and not self.sessions_made:
            from onnxruntime.capi import _pybind_state

            _pybind_state.set_global_thread_pool_sizes(threads, 1)
            self.shared = f"one pool of {threads or 'default'} threads, shared by the sessions"
        return self.shared


_PROCESS = _ThreadPools()


def node_providers(session: Any) -> dict[str, int] | None:
    """How many graph nodes each provider was assigned, or None where this onnxruntime
    cannot say (``get_provider_graph_assignment_info``, with the session config entry
    ``session.record_ep_graph_assignment_info``, came with microsoft/onnxruntime#26781,
    merged December 2025: 1.24 and newer)."""
    if not hasattr(session, "get_provider_graph_assignment_info"):
        return None
    counts: dict[str, int] = {}
    for subgraph in session.get_provider_graph_assignment_info():
        counts[subgraph.ep_name] = counts.get(subgraph.ep_name, 0) + len(subgraph.get_nodes())
    return counts


_COMPUTE_OPS = {
    "Conv",
    "FusedConv",
    "NhwcFusedConv",
    "ConvTranspose",
    "Gemm",
    "FusedGemm",
    "MatMul",
    "FusedMatMul",
    "LSTM",
    "GRU",
    "RNN",
}
_INT8_OPS = {
    "QLinearConv",
    "QLinearMatMul",
    "QGemm",
    "ConvInteger",
    "MatMulInteger",
    "MatMulIntegerToFloat",
    "DynamicQuantizeMatMul",
    "QAttention",
    "DynamicQuantizeLSTM",
}
"""Compute operators of ONNX Runtime's optimised graph that run in int8 (QDQ pairs around
a convolution or matrix product fused into one)."""


def compute_layers(optimized_path: Path) -> dict[str, int]:
    """How many compute operators (convolutions, matrix products, RNNs) of the graph ONNX
    Runtime actually runs take their weights in each precision: int8 for the fused
    quantized operators, else the weight's type. Where a provider has no kernel for a type,
    ONNX Runtime inserts casts and folds them, so an FP16 graph on the CPU provider reads
    back as fp32 here; a QDQ pair it did not fuse leaves a float operator, fp32 here."""
    import onnx

    names = {
        onnx.TensorProto.FLOAT: "fp32",
        onnx.TensorProto.FLOAT16: "fp16",
        onnx.TensorProto.BFLOAT16: "bf16",
    }
    graph = onnx.load(str(optimized_path), load_external_data=False).graph
    weights = {tensor.name: tensor.data_type for tensor in graph.initializer}
    produced = {
        output: (node.op_type, node.attribute) for node in graph.node for output in node.output
    }
    counts: dict[str, int] = {}
    for node in graph.node:
        kind = None
        if node.op_type in _INT8_OPS:
            kind = "int8"
        elif node.op_type in _COMPUTE_OPS and len(node.input) > 1:
            producer = produced.get(node.input[1])
            kind = names.get(weights.get(node.input[1], _cast_to(producer)))
            if producer is not None and producer[0] == "DequantizeLinear":
                kind = "fp32"  # a QDQ pair left unfused: the operator runs in float
        if kind:
            counts[kind] = counts.get(kind, 0) + 1
    return counts


def _cast_to(producer: tuple | None) -> int:
    if producer is None or producer[0] != "Cast":
        return -1
    return next(a.i for a in producer[1] if a.name == "to")


def majority(layers: dict[str, int]) -> str:
    """The precision most compute operators run in (fp32 when there is none)."""
    return max(layers, key=layers.__getitem__) if layers else "fp32"
