"""ONNX Runtime: CPU execution provider, and CUDA / TensorRT providers when installed."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.devices import cuda_unavailable_reason
from exporters.spec import PreparedModel
from runtimes.base import Built, Executed, LoadOptions, Runtime, Session, Target

_GRAPH_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}


class OnnxRuntime(Runtime):
    name = "onnxruntime"
    package = "onnxruntime"
    install_hint = "pip install onnxruntime (or onnxruntime-gpu for CUDA)"
    precisions = ("fp32", "fp16")

    @classmethod
    def device_unavailable_reason(cls, target: Target) -> str | None:
        if target.device_kind == "cpu":
            return None
        import onnxruntime

        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            return "onnxruntime has no CUDAExecutionProvider: pip install onnxruntime-gpu"
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
        ONNX Runtime optimises a graph when a session is made, so that is timed by load."""
        if target.precision == "fp32":
            return Built(artifact=model.onnx_path, build_s=0.0)
        from exporters.precision import fp16_graph

        converted = fp16_graph(model.onnx_path, cache_dir)
        return Built(
            converted.path, converted.convert_s, converted.cache_hit, notes=converted.notes
        )

    def load(
        self, built: Built, model: PreparedModel, target: Target, options: LoadOptions
    ) -> Session:
        return OnnxRuntimeSession(built.artifact, model, target, options)


class OnnxRuntimeSession(Session):
    def __init__(
        self, path: Path, model: PreparedModel, target: Target, options: LoadOptions
    ) -> None:
        import onnxruntime

        session_options = onnxruntime.SessionOptions()
        level = _GRAPH_LEVELS[options.extra.get("graph_optimization", "all")]
        session_options.graph_optimization_level = getattr(
            onnxruntime.GraphOptimizationLevel, level
        )
        session_options.intra_op_num_threads = options.threads
        if options.in_flight > 1:
            # Requests in flight share the cores: spinning threads would steal them from each other.
            session_options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        with tempfile.TemporaryDirectory() as scratch:
            optimized = Path(scratch) / "optimized.onnx"
            if target.precision != "fp32":  # read back what the optimised graph computes in
                session_options.optimized_model_filepath = str(optimized)
                session_options.log_severity_level = 3  # not the warning about saving it
            self._session = onnxruntime.InferenceSession(
                str(path), session_options, providers=_providers(target)
            )
            precision = _compute_precision(optimized) if optimized.is_file() else "fp32"
        self.inputs = model.inputs
        self.outputs = model.outputs
        used = self._session.get_providers()[0]
        self.executed = Executed(
            precision=precision,
            device="cpu" if used == "CPUExecutionProvider" else target.device,
            threads=self._session.get_session_options().intra_op_num_threads or None,
            provider=used,
            details={"providers": self._session.get_providers()},
        )
        self._feeds: dict[str, np.ndarray] = {}

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [o.name for o in self._session.get_outputs()]
        return dict(zip(names, self._session.run(names, feeds), strict=True))

    def stage(self, feeds: dict[str, np.ndarray]) -> None:
        self._feeds = feeds

    def launch(self) -> None:
        self._session.run(None, self._feeds)

    def request_slots(self, feeds: dict[str, np.ndarray], count: int) -> list[Callable[[], None]]:
        """ONNX Runtime's ``run`` is thread-safe and releases the GIL: one session serves
        every slot, as onnxruntime_perf_test does for concurrent runs."""
        run = self._session.run
        return [lambda: run(None, feeds) for _ in range(count)]


def _providers(target: Target) -> list[Any]:
    if target.device_kind == "cuda":
        return [
            ("CUDAExecutionProvider", {"device_id": target.device_index}),
            "CPUExecutionProvider",
        ]
    return ["CPUExecutionProvider"]


_COMPUTE_OPS = {
    "Conv", "FusedConv", "NhwcFusedConv", "ConvTranspose", "Gemm", "FusedGemm", "MatMul",
    "FusedMatMul", "LSTM", "GRU", "RNN",
}  # fmt: skip


def _compute_precision(optimized_path: Path) -> str:
    """The precision most compute operators (convolutions, matrix products, RNNs) of the
    graph ONNX Runtime actually runs take their weights in. Where a provider has no kernel
    for a type, ONNX Runtime inserts casts and folds them, so an FP16 graph on the CPU
    provider reads back as fp32 here."""
    import onnx

    names = {
        onnx.TensorProto.FLOAT: "fp32",
        onnx.TensorProto.FLOAT16: "fp16",
        onnx.TensorProto.BFLOAT16: "bf16",
    }
    graph = onnx.load(str(optimized_path), load_external_data=False).graph
    weights = {tensor.name: tensor.data_type for tensor in graph.initializer}
    casts = {
        node.output[0]: next(a.i for a in node.attribute if a.name == "to")
        for node in graph.node
        if node.op_type == "Cast"
    }
    counts: dict[str, int] = {}
    for node in graph.node:
        if node.op_type in _COMPUTE_OPS and len(node.input) > 1:
            kind = names.get(weights.get(node.input[1], casts.get(node.input[1], -1)))
            if kind:
                counts[kind] = counts.get(kind, 0) + 1
    return max(counts, key=counts.__getitem__) if counts else "fp32"
