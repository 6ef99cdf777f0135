"""OpenVINO: compiles the ONNX file directly for CPU, GPU, NPU, AUTO, HETERO and MULTI devices.

Every cell sets the inference precision, execution mode and performance hints explicitly
(the CPU plugin would otherwise run an fp32 model in bf16 where the CPU has it), and the
precision that ran is read back from the compiled model's runtime graph.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any, Literal

import numpy as np

from bench.core.cell import Target
from bench.core.digest import cache_key
from bench.core.record import Executed
from bench.core.settings import RuntimeSettings
from bench.core.spec import PreparedModel, TensorSpec
from bench.core.timing import LoopRecord, StopRule, ThroughputWindow
from runtimes.base import CPU, Built, LoadOptions, Runtime, Session, Shipped
from runtimes.shipping import copy_onnx, literal, snippet

_HINT_PRECISION = {"fp32": "f32", "fp16": "f16", "bf16": "bf16", "int8": "f32"}
"""An int8 cell compiles the QDQ copy: its quantized operators run in int8, the rest f32."""
_CAPABILITY = {"fp32": "FP32", "fp16": "FP16", "bf16": "BF16", "int8": "INT8"}
_RUNTIME_PRECISION = {"f32": "fp32", "f16": "fp16", "bf16": "bf16", "i8": "int8", "u8": "int8"}
_COMPUTE_LAYERS = {
    "convolution",
    "groupconvolution",
    "deconvolution",
    "fullyconnected",
    "matmul",
    "gemm",
    "rnnseq",
    "rnncell",
    "scaleddotproductattention",
}
_BOOKKEEPING_LAYERS = {"input", "output", "const", "parameter", "result", "constant"}
_READ_BACK = (
    "INFERENCE_PRECISION_HINT",
    "EXECUTION_MODE_HINT",
    "PERFORMANCE_HINT",
    "NUM_STREAMS",
    "INFERENCE_NUM_THREADS",
    "OPTIMAL_NUMBER_OF_INFER_REQUESTS",
    "EXECUTION_DEVICES",
)
_VPU_REMOVED = (
    "OpenVINO dropped the Movidius VPU plugins (MYRIAD, HDDL) after its 2022.3 LTS release; "
    'to use them install that release: pip install "openvino==2022.3.2" (Python 3.7 to 3.10)'
)


class OpenVinoOptions(RuntimeSettings):
    """OpenVINO compile settings. ``performance_hint = "auto"`` takes the scenario's hint
    (LATENCY for latency, THROUGHPUT for throughput); None leaves a setting to the plugin."""

    performance_hint: Literal["auto", "latency", "throughput", "cumulative_throughput"] = "auto"
    """OpenVINO's performance hint; auto: the scenario's."""
    execution_mode: Literal["performance", "accuracy"] = "performance"
    """OpenVINO's execution mode hint."""
    num_streams: int | Literal["auto"] | None = None
    """Inference streams (None: the plugin's choice)."""
    enable_hyper_threading: bool | None = None
    """Use hyper-threads (None: the plugin's choice)."""
    enable_cpu_pinning: bool | None = None
    """Pin inference threads to cores (None: the plugin's choice)."""
    model_cache: bool = True
    """Cache compiled models under the cache dir."""


@cache
def _core() -> Any:
    """The process's one ``openvino.Core``, made on first use (never at import)."""
    import openvino

    return openvino.Core()


def _hardware_devices(target: Target) -> list[str]:
    """The hardware devices a target names, in OpenVINO's spelling (ours upper-cased:
    ``gpu.1`` → ``GPU.1``); a bare ``auto`` names none."""
    kind, _, listed = target.device.upper().partition(":")
    if kind in ("AUTO", "HETERO", "MULTI"):
        return [d for d in listed.split(",") if d]
    return [kind]


def _sees(device: str, available: list[str]) -> bool:
    """Whether ``device`` (``GPU``, ``GPU.1``) is among OpenVINO's available devices, which
    name a lone device without its index (``GPU``) and several with it (``GPU.0``)."""
    kind, _, index = device.partition(".")
    if not index:
        return any(seen == kind or seen.startswith(kind + ".") for seen in available)
    return device in available or (index == "0" and kind in available)


class OpenVinoRuntime(Runtime):
    name = "openvino"
    package = "openvino"
    install_hint = "pip install 'deploybench[openvino]'"
    precisions = ("fp32", "fp16", "bf16", "int8")
    device_forms = {
        "cpu": CPU,
        "gpu": (r"gpu(\.\d+)?", "gpu, gpu.N"),
        "npu": ("npu", "npu"),
        "auto": (r"auto(:[a-z0-9.,]+)?", "auto, auto:D1,D2"),
        "hetero": (r"hetero:[a-z0-9.,]+", "hetero:D1,D2"),
        "multi": (r"multi:[a-z0-9.,]+", "multi:D1,D2"),
        "myriad": ("myriad", "myriad"),
        "hddl": ("hddl", "hddl"),
    }
    chooses_in_flight = True
    options = OpenVinoOptions
    libraries = ("openvino",)

    @classmethod
    def unavailable_reason(cls, target: Target, source: str) -> str | None:
        """Beyond the package and device checks: a precision that a named device does not
        list in its OPTIMIZATION_CAPABILITIES is a skip reason."""
        reason = super().unavailable_reason(target, source)
        if reason is not None:
            return reason
        for device in _hardware_devices(target):
            capabilities = _core().get_property(device, "OPTIMIZATION_CAPABILITIES")
            if _CAPABILITY[target.precision] not in capabilities:
                runs = ", ".join(capabilities)
                return f"OpenVINO {device} cannot run {target.precision} (it offers: {runs})"
        return None

    @classmethod
    def device_unavailable_reason(cls, target: Target) -> str | None:
        if target.device_kind in ("myriad", "hddl"):
            return _VPU_REMOVED
        available = _core().available_devices
        seen = ", ".join(available) or "nothing"
        if not available:
            return f"OpenVINO sees no device here (it sees: {seen})"
        for device in _hardware_devices(target):
            if not _sees(device, available):
                return f"OpenVINO sees no {device} here (it sees: {seen})"
        return None

    @classmethod
    def devices(cls) -> list[str]:
        return [device.lower() for device in _core().available_devices]

    def build(
        self, model: PreparedModel, target: Target, options: LoadOptions, cache_dir: Path
    ) -> Built:
        """Compile the ONNX file for the target device with the cell's hints. With the model
        cache on, each distinct configuration gets its own cache directory: OpenVINO 2026.4's
        CPU cache key ignores the precision hint, and a blob compiled for f16 served an f32
        request in f16. ``cache_hit`` is the compiled model's LOADED_FROM_CACHE."""
        settings = OpenVinoRuntime.settings_of(options)
        device = target.device.upper()  # hetero:gpu,cpu → HETERO:GPU,CPU
        config = compile_config(target, options, settings)
        if settings.model_cache:
            key = cache_key(device=device, config=config, precision=target.precision)
            config["CACHE_DIR"] = str(cache_dir / "openvino" / key)
        onnx, notes = _source(model, target, settings)
        start = time.perf_counter()
        compiled = _core().compile_model(str(onnx), device, config)
        build_s = time.perf_counter() - start
        cached = read_properties(compiled, ("LOADED_FROM_CACHE",)).get("LOADED_FROM_CACHE")
        hit = settings.model_cache and cached is True
        return Built(artifact=compiled, build_s=build_s, cache_hit=hit, notes=notes)

    def load(
        self, built: Built, model: PreparedModel, target: Target, options: LoadOptions
    ) -> Session:
        return OpenVinoSession(built.artifact, model)

    def ship(
        self,
        built: Built,
        model: PreparedModel,
        target: Target,
        options: LoadOptions,
        out_dir: Path,
    ) -> Shipped:
        """The compiled model as OpenVINO exports it (model.blob, which
        ``core.import_model`` reads on the same OpenVINO and device) and the ONNX file it
        was compiled from (model.onnx: the FP32 export or the int8 QDQ copy), with the
        device and compile config; run.py compiles model.onnx with that config where the
        blob does not import. Where the measured compiled model's export does not import
        (OpenVINO 2026.4.1 exports so a model it loaded from its model cache: "Unable to
        read the model"), the blob is the same ONNX compiled again with the same config."""
        import openvino

        settings = OpenVinoRuntime.settings_of(options)
        device = target.device.upper()
        config = compile_config(target, options, settings)
        onnx, _ = _source(model, target, settings)
        blob, notes = _exported(built.artifact), []
        try:
            _core().import_model(blob, device, config)
        except RuntimeError:
            blob = _exported(_core().compile_model(str(onnx), device, config))
            notes.append(
                "model.blob is the ONNX compiled again with the same config: the measured "
                "compiled model's export did not import (it came from the model cache)"
            )
        (out_dir / "model.blob").write_bytes(blob)
        files = ("model.blob", *copy_onnx(onnx, out_dir))
        version = openvino.get_version()
        notes.append(
            f"model.blob runs only on OpenVINO {version} and {device}: elsewhere run.py "
            "compiles model.onnx with the same config (its compile time is then a cold "
            "start cost)"
        )
        body = _SHIP_SOURCE.format(device=literal(device), config=_config_source(config))
        title = f"{model.name} on OpenVINO {version}: {target.precision} on {target.device}."
        return Shipped(
            files=files,
            settings={"device": device, "config": config},
            snippet=snippet(
                title, model, options.batch, ("import openvino",), body, ("import sys",)
            ),
            version=version,
            notes=tuple(notes),
        )


def _exported(compiled: Any) -> bytes:
    """``compiled.export_model()`` as bytes (which it returns as a BytesIO in 2026.4)."""
    blob = compiled.export_model()
    return blob.getvalue() if hasattr(blob, "getvalue") else bytes(blob)


def _source(
    model: PreparedModel, target: Target, settings: OpenVinoOptions
) -> tuple[Path, tuple[str, ...]]:
    """The ONNX file a cell compiles and its notes: the export, or for int8 the QDQ copy
    (OpenVINO reads QDQ and runs those operators in int8)."""
    if target.precision == "int8":
        quantized = OpenVinoRuntime.quantized(model, target, settings)
        return quantized.path, quantized.notes
    return model.onnx_path, ()


_SHIP_SOURCE = '''
DEVICE = {device}
CONFIG = {config}


def load() -> openvino.CompiledModel:
    """model.blob imported as it was exported; where this OpenVINO or device refuses it
    (a blob is tied to the OpenVINO version and device that exported it), model.onnx
    compiled with the same config."""
    core = openvino.Core()
    try:
        return core.import_model((HERE / "model.blob").read_bytes(), DEVICE, CONFIG)
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[-1]
        print(f"model.blob does not import ({{reason}}): compiling model.onnx", file=sys.stderr)
        return core.compile_model(str(HERE / "model.onnx"), DEVICE, CONFIG)


def infer(
    compiled: openvino.CompiledModel, feeds: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """One request: every output by name."""
    results = compiled.create_infer_request().infer(feeds)
    return {{port.get_any_name(): np.array(value) for port, value in results.items()}}
'''
"""The ``load`` and ``infer`` of a shipped compiled model's run.py."""


def _config_source(config: dict[str, Any]) -> str:
    """A compile config as a Python dict literal, one property a line."""
    return "{\n" + "".join(f"    {literal(k)}: {literal(v)},\n" for k, v in config.items()) + "}"


def compile_config(target: Target, options: LoadOptions, settings: OpenVinoOptions) -> dict:
    """The compile properties of a cell: precision, execution mode and performance hints
    always; threads (CPU only), streams, hyper-threading and pinning when set."""
    hint = settings.performance_hint
    if hint == "auto":
        hint = options.scenario
    config: dict[str, Any] = {
        "INFERENCE_PRECISION_HINT": _HINT_PRECISION[target.precision],
        "EXECUTION_MODE_HINT": settings.execution_mode.upper(),
        "PERFORMANCE_HINT": hint.upper(),
    }
    if options.threads > 0 and target.device_kind == "cpu":
        config["INFERENCE_NUM_THREADS"] = options.threads
    if settings.num_streams is not None:
        config["NUM_STREAMS"] = str(settings.num_streams).upper()
    if settings.enable_hyper_threading is not None:
        config["ENABLE_HYPER_THREADING"] = settings.enable_hyper_threading
    if settings.enable_cpu_pinning is not None:
        config["ENABLE_CPU_PINNING"] = settings.enable_cpu_pinning
    return config


class OpenVinoSession(Session):
    def __init__(self, compiled: Any, model: PreparedModel) -> None:
        import openvino

        self._openvino = openvino
        self._compiled = compiled
        self.inputs = model.inputs
        self.outputs = model.outputs
        self._output_ports = _ports(compiled.outputs, model.outputs)
        self._request = compiled.create_infer_request()
        properties = read_properties(compiled)
        layers = runtime_layers(compiled)
        threads = properties.get("INFERENCE_NUM_THREADS")
        self.executed = Executed(
            precision=executed_precision(layers),
            device=",".join(properties.get("EXECUTION_DEVICES", [])).lower(),
            threads=threads if isinstance(threads, int) and threads > 0 else None,
            provider=f"openvino {openvino.get_version()}",
            details={
                "properties": properties,
                "layer_precisions": dict(Counter(p for _, p in layers)),
                "compute_layer_precisions": dict(Counter(p for t, p in layers if _computes(t))),
            },
        )

    def _tensors(self, feeds: dict[str, np.ndarray]) -> dict[str, Any]:
        return {
            spec.name: self._openvino.Tensor(np.ascontiguousarray(feeds[spec.name]))
            for spec in self.inputs
        }

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        request = self._compiled.create_infer_request()
        _bind(request, self._tensors(feeds))
        request.infer()
        return {
            name: np.array(request.get_output_tensor(port).data)
            for name, port in self._output_ports.items()
        }

    def stage(self, feeds: dict[str, np.ndarray]) -> None:
        _bind(self._request, self._tensors(feeds))

    def launch(self) -> None:
        """One synchronous request, as benchmark_app runs its latency mode."""
        self._request.infer()

    def request_slots(self, feeds: dict[str, np.ndarray], count: int) -> list[Callable[[], None]]:
        """One InferRequest per slot, the input tensors shared between them; ``count`` 0:
        the compiled model's OPTIMAL_NUMBER_OF_INFER_REQUESTS."""
        tensors = self._tensors(feeds)
        requests = [self._compiled.create_infer_request() for _ in range(count or self._optimal())]
        return [_bind(request, tensors).infer for request in requests]

    def _optimal(self) -> int:
        """The requests in flight OpenVINO itself would keep (its own choice)."""
        return int(self._compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))

    def run_throughput(
        self, feeds: dict[str, np.ndarray], in_flight: int, warmup: StopRule, measure: StopRule
    ) -> LoopRecord:
        """Requests kept in flight by an AsyncInferQueue of ``in_flight`` requests (0: the
        compiled model's OPTIMAL_NUMBER_OF_INFER_REQUESTS), with bench.core.timing's window
        rules; each latency is the request's own (start_async to its completion)."""
        jobs = in_flight or self._optimal()
        queue = self._openvino.AsyncInferQueue(self._compiled, jobs)
        tensors = self._tensors(feeds)
        for request in queue:
            _bind(request, tensors)
        window = ThroughputWindow(warmup, measure)

        def on_completion(request: Any, _userdata: Any) -> None:
            try:
                window.completed(round(request.latency * 1e6))
            except BaseException as exc:  # re-raised by window.record, after the queue drained
                window.failed(exc)

        queue.set_callback(on_completion)
        try:
            while not window.closed.is_set():
                queue.start_async()
        finally:
            queue.wait_all()
        return window.record(jobs)


def _bind(request: Any, tensors: dict[str, Any]) -> Any:
    """Set ``tensors`` as ``request``'s inputs (once: every later run reads them)."""
    for name, tensor in tensors.items():
        request.set_tensor(name, tensor)
    return request


def _ports(ports: list[Any], specs: tuple[TensorSpec, ...]) -> dict[str, int]:
    """Each spec's port index: the port whose tensor names hold the spec's name, else the
    port in the same position."""
    found = {}
    for position, spec in enumerate(specs):
        named = [i for i, port in enumerate(ports) if spec.name in port.get_names()]
        found[spec.name] = named[0] if named else position
    return found


def read_properties(compiled: Any, names: tuple[str, ...] = _READ_BACK) -> dict[str, Any]:
    """The compiled model's ``names`` properties as it reports them, JSON-ready; one the
    device does not report (virtual devices report few) is left out."""
    properties = {}
    for name in names:
        try:
            properties[name] = _plain(compiled.get_property(name))
        except RuntimeError:
            continue
    return properties


def _plain(value: Any) -> Any:
    if isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "get_type_name"):  # openvino.Type
        return value.get_type_name()
    return getattr(value, "name", str(value))  # enums such as PerformanceMode


def runtime_layers(compiled: Any) -> list[tuple[str, str]]:
    """(layer type, runtime precision) of each layer of the executed graph, constants,
    inputs and outputs left out."""
    layers = []
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if "layerType" not in info or "runtimePrecision" not in info:
            continue
        layer = info["layerType"].astype(str)
        if layer.lower() not in _BOOKKEEPING_LAYERS:
            layers.append((layer, info["runtimePrecision"].astype(str)))
    return layers


def _computes(layer: str) -> bool:
    return re.sub(r"[^a-z]", "", layer.lower()) in _COMPUTE_LAYERS


def executed_precision(layers: list[tuple[str, str]]) -> str:
    """The precision most compute layers (convolutions, matrix products, RNNs, attention)
    ran in, as fp32 / fp16 / bf16 / int8; all layers count when there is no compute layer."""
    compute = [p for t, p in layers if _computes(t)] or [p for _, p in layers]
    known = [_RUNTIME_PRECISION[p] for p in compute if p in _RUNTIME_PRECISION]
    if not known:
        return "unknown"
    return Counter(known).most_common(1)[0][0]
