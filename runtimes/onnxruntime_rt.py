"""ONNX Runtime: CPU execution provider, and CUDA / TensorRT providers when installed."""

from __future__ import annotations

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
        """ONNX Runtime builds its graph when a session is made; there is no separate step."""
        return Built(artifact=model.onnx_path, build_s=0.0)

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
        self._session = onnxruntime.InferenceSession(
            str(path), session_options, providers=_providers(target)
        )
        self.inputs = model.inputs
        self.outputs = model.outputs
        used = self._session.get_providers()[0]
        self.executed = Executed(
            precision=_weights_precision(path),
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


def _weights_precision(path: Path) -> str:
    """The float type holding most of the graph's weights: ONNX Runtime executes each node
    in its tensors' own types, so the weights say what the graph computes in."""
    import onnx

    names = {
        onnx.TensorProto.FLOAT: "fp32",
        onnx.TensorProto.FLOAT16: "fp16",
        onnx.TensorProto.BFLOAT16: "bf16",
    }
    graph = onnx.load(str(path), load_external_data=False).graph
    sizes: dict[str, int] = {}
    for tensor in graph.initializer:
        if tensor.data_type in names:
            count = int(np.prod(tensor.dims)) if tensor.dims else 1
            sizes[names[tensor.data_type]] = sizes.get(names[tensor.data_type], 0) + count
    return max(sizes, key=sizes.__getitem__) if sizes else "fp32"
