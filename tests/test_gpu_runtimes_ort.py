"""ONNX Runtime's GPU providers against a double of onnxruntime: the provider list per
cell, fallback to the CPU read back (whole session and per node), the TensorRT provider's
options, and IO binding on the timed path."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from bench.core.cell import Target
from bench.core.errors import Unavailable
from bench.core.spec import PreparedModel
from exporters.onnx_export import prepare_zoo_model
from exporters.reference import load_reference
from runtimes.base import LoadOptions
from runtimes.onnxruntime_rt import OnnxRuntime, OnnxRuntimeSession, OrtGraph
from runtimes.provider_libraries import needed, tensorrt_major

CUDA = Target("cuda:0", "fp32")
PROVIDERS = Path(__file__).parent / "fixtures" / "onnxruntime_gpu"
REPO = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def lenet(cache_dir: Path) -> PreparedModel:
    return prepare_zoo_model("lenet5", [1, 2], cache_dir)


class FakeBinding:
    def __init__(self, log: list) -> None:
        self.log = log

    def bind_ortvalue_input(self, name: str, value: Any) -> None:
        self.log.append(("bind_input", name, value))

    def bind_output(self, name: str, device: str, index: int) -> None:
        self.log.append(("bind_output", name, device, index))

    def synchronize_inputs(self) -> None:
        self.log.append(("synchronize_inputs",))

    def synchronize_outputs(self) -> None:
        self.log.append(("synchronize_outputs",))


def fake_onnxruntime(
    kept: list[str], nodes: dict[str, int], version: str = "1.20.1", available: tuple = ()
) -> types.ModuleType:
    """An ``onnxruntime`` whose sessions keep the ``kept`` providers (what ONNX Runtime
    reports after falling back) and were assigned ``nodes`` per provider."""
    ort = types.ModuleType("onnxruntime")
    ort.__version__ = version
    ort.__file__ = str(PROVIDERS / "__init__.py")  # capi/: stand-ins of the provider libraries
    ort.log = []
    ort.preload_dlls = lambda **flags: ort.log.append(("preload_dlls", flags))
    providers = available or ("TensorrtExecutionProvider", "CUDAExecutionProvider")
    ort.get_available_providers = lambda: [*providers, "CPUExecutionProvider"]
    ort.GraphOptimizationLevel = types.SimpleNamespace(ORT_ENABLE_ALL=99)

    class SessionOptions:
        intra_op_num_threads = 0

        def add_session_config_entry(self, key: str, value: str) -> None:
            ort.log.append(("config", key, value))

    class Subgraph:
        def __init__(self, ep: str, count: int) -> None:
            self.ep_name, self._count = ep, count

        def get_nodes(self) -> list[int]:
            return list(range(self._count))

    class InferenceSession:
        def __init__(self, path: str, options: SessionOptions, providers: list) -> None:
            ort.log.append(("session", path, providers, vars(options)))
            self._options = options

        def get_providers(self) -> list[str]:
            return kept

        def get_provider_options(self) -> dict:
            return {"CUDAExecutionProvider": {"use_tf32": "0"}} if "CUDA" in kept[0] else {}

        def get_provider_graph_assignment_info(self) -> list[Subgraph]:
            return [Subgraph(ep, count) for ep, count in nodes.items()]

        def get_session_options(self) -> SessionOptions:
            return self._options

        def get_outputs(self) -> list:
            return [types.SimpleNamespace(name="logits")]

        def io_binding(self) -> FakeBinding:
            return FakeBinding(ort.log)

        def run_with_iobinding(self, binding: FakeBinding) -> None:
            ort.log.append(("run_with_iobinding", binding))

    ort.SessionOptions = SessionOptions
    ort.InferenceSession = InferenceSession
    ort.OrtValue = types.SimpleNamespace(
        ortvalue_from_numpy=lambda array, device, index: ("OrtValue", array.shape, device, index)
    )
    return ort


def ort_session(
    monkeypatch: pytest.MonkeyPatch,
    lenet: PreparedModel,
    ort: types.ModuleType,
    target: Target = CUDA,
    **extra: Any,
) -> OnnxRuntimeSession:
    monkeypatch.setitem(sys.modules, "onnxruntime", ort)
    graph = OrtGraph(lenet.onnx_path, Path("/cache"))
    options = LoadOptions(settings=extra, batch=2, batch_sizes=(1, 2, 4))  # the suite's sizes
    return OnnxRuntimeSession(graph, lenet, target, options)


def test_a_cuda_provider_that_did_not_load_fails_the_cell_with_the_loader_s_reason(
    monkeypatch: pytest.MonkeyPatch, lenet: PreparedModel
) -> None:
    ort = fake_onnxruntime(["CPUExecutionProvider"], {"CPUExecutionProvider": 12})
    with pytest.raises(RuntimeError) as failure:
        ort_session(monkeypatch, lenet, ort)
    message = str(failure.value)  # the loader's reason: see the next test (torch is loaded here)
    assert "ONNX Runtime's CUDAExecutionProvider did not load (" in message
    assert "pip install 'onnxruntime-gpu[cuda,cudnn]' nvidia-cublas" in message
    assert ("preload_dlls", {"cuda": True, "cudnn": True, "msvc": False}) in ort.log
    (requested,) = [entry[2] for entry in ort.log if entry[0] == "session"]
    assert [p[0] if isinstance(p, tuple) else p for p in requested] == [
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]
    assert requested[0][1] == {"device_id": 0, "use_tf32": 0}  # an fp32 cell runs fp32
    assert ort.log.index(("preload_dlls", {"cuda": True, "cudnn": True, "msvc": False})) < [
        entry[0] for entry in ort.log
    ].index("session")


def test_the_loader_s_reason_names_the_first_library_not_found() -> None:
    """In a process that loaded no CUDA library (as an ONNX Runtime worker, which never
    imports torch): the stand-in of the real provider fails on libcublasLt.so.13."""
    code = (
        "import sys; from pathlib import Path; from runtimes import provider_libraries as p; "
        "print(p.load_error(Path(sys.argv[1])))"
    )
    cuda = PROVIDERS / "capi" / "libonnxruntime_providers_cuda.so"
    proc = subprocess.run(
        [sys.executable, "-c", code, str(cuda)], capture_output=True, text=True, cwd=REPO
    )
    assert proc.stdout.startswith("libcublasLt.so.13: cannot open shared object file"), proc
    assert "torch" not in proc.stderr


def test_needed_reads_the_libraries_a_provider_links() -> None:
    tensorrt = PROVIDERS / "capi" / "libonnxruntime_providers_tensorrt.so"
    libraries = needed(tensorrt)
    recorded = (PROVIDERS / "needed-1.31.1.txt").read_text()
    assert libraries[:5] == [
        "libcublas.so.13",
        "libnvinfer.so.10",
        "libnvonnxparser.so.10",
        "libcudart.so.13",
        "libcudnn.so.9",
    ]
    assert all(f"[{name}]" in recorded for name in libraries)  # as the real 1.31.1 one
    assert tensorrt_major(libraries) == 10 and tensorrt_major(["libcudart.so.13"]) is None


def test_a_tensorrt_provider_that_did_not_load_names_the_tensorrt_it_links(
    monkeypatch: pytest.MonkeyPatch, lenet: PreparedModel
) -> None:
    kept = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    ort = fake_onnxruntime(kept, {"CUDAExecutionProvider": 12})
    with pytest.raises(RuntimeError) as failure:
        ort_session(monkeypatch, lenet, ort, tensorrt=True)
    message = str(failure.value)
    assert "TensorrtExecutionProvider did not load (libnvinfer.so.10: cannot open" in message
    assert "links TensorRT 10: pip install --extra-index-url https://pypi.nvidia.com" in message
    assert "'tensorrt-cu13>=10,<11'" in message


def test_a_session_whose_nodes_all_run_on_the_cpu_reads_cpu(
    monkeypatch: pytest.MonkeyPatch, lenet: PreparedModel
) -> None:
    kept = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    ort = fake_onnxruntime(kept, {"CPUExecutionProvider": 12})
    executed = ort_session(monkeypatch, lenet, ort).executed
    assert (executed.device, executed.provider) == ("cpu", "CUDAExecutionProvider")
    assert executed.details["cpu_fallback_nodes"] == 12 and not executed.details["io_binding"]


def test_nodes_left_on_the_cpu_are_counted(
    monkeypatch: pytest.MonkeyPatch, lenet: PreparedModel
) -> None:
    kept = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    ort = fake_onnxruntime(kept, {"CUDAExecutionProvider": 9, "CPUExecutionProvider": 3})
    executed = ort_session(monkeypatch, lenet, ort).executed
    assert executed.device == "cuda:0" and executed.provider == "CUDAExecutionProvider"
    assert executed.details["node_providers"] == {
        "CUDAExecutionProvider": 9,
        "CPUExecutionProvider": 3,
    }
    assert executed.details["cpu_fallback_nodes"] == 3 and executed.details["use_tf32"] == "0"
    assert ("config", "session.record_ep_graph_assignment_info", "1") in ort.log


def test_tensorrt_provider_options(monkeypatch: pytest.MonkeyPatch, lenet: PreparedModel) -> None:
    kept = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    ort = fake_onnxruntime(kept, {"TensorrtExecutionProvider": 1})
    session = ort_session(monkeypatch, lenet, ort, Target("cuda:0", "fp16"), tensorrt=True)
    (entry,) = [e for e in ort.log if e[0] == "session"]
    name, trt = entry[2][0]
    assert name == "TensorrtExecutionProvider" and trt["trt_fp16_enable"] is True
    # the profile spans the suite's batch sizes, whatever other batches the export cache holds
    assert trt["trt_profile_min_shapes"] == "input:1x1x32x32"
    assert trt["trt_profile_opt_shapes"] == "input:2x1x32x32"
    assert trt["trt_profile_max_shapes"] == "input:4x1x32x32"
    assert trt["trt_engine_cache_path"] == str(Path("/cache") / "ort-tensorrt")
    assert "optimized_model_filepath" not in entry[3]  # compiled nodes cannot be saved
    assert session.executed.precision == "unknown"  # TensorRT's choice, not reported
    assert session.executed.provider == "TensorrtExecutionProvider"


def test_missing_tensorrt_provider_is_unavailable_with_the_fix(
    monkeypatch: pytest.MonkeyPatch, lenet: PreparedModel
) -> None:
    ort = fake_onnxruntime(["CUDAExecutionProvider"], {}, available=("CUDAExecutionProvider",))
    with pytest.raises(Unavailable, match="no TensorrtExecutionProvider here: pip uninstall"):
        ort_session(monkeypatch, lenet, ort, tensorrt=True)


def test_old_onnxruntime_gets_no_tf32_option(
    monkeypatch: pytest.MonkeyPatch, lenet: PreparedModel
) -> None:
    ort = fake_onnxruntime(["CUDAExecutionProvider"], {}, version="1.17.3")
    ort_session(monkeypatch, lenet, ort)
    (entry,) = [e for e in ort.log if e[0] == "session"]
    assert entry[2][0] == ("CUDAExecutionProvider", {"device_id": 0})


def test_io_binding_keeps_the_timed_path_on_the_device(
    monkeypatch: pytest.MonkeyPatch, lenet: PreparedModel
) -> None:
    ort = fake_onnxruntime(["CUDAExecutionProvider"], {"CUDAExecutionProvider": 12})
    session = ort_session(monkeypatch, lenet, ort)
    assert session.executed.details["io_binding"]
    feeds, _ = load_reference(lenet.reference, 2)
    session.stage(feeds)
    assert ("bind_input", "input", ("OrtValue", (2, 1, 32, 32), "cuda", 0)) in ort.log
    assert ("bind_output", "logits", "cuda", 0) in ort.log
    del ort.log[:]
    session.launch()
    session.synchronize()
    assert [e[0] for e in ort.log] == ["run_with_iobinding", "synchronize_outputs"]
    slots = session.request_slots(feeds, 2)
    for slot in slots:
        slot()
    bindings = {id(e[1]) for e in ort.log if e[0] == "run_with_iobinding"}
    assert len(bindings) == 3  # the staged binding, then one per slot


def test_tensorrt_provider_builds_from_the_fp32_graph(lenet: PreparedModel, tmp_path: Path) -> None:
    options = LoadOptions(settings={"tensorrt": True})
    built = OnnxRuntime().build(lenet, Target("cuda:0", "fp16"), options, tmp_path)
    assert built.artifact.path == lenet.onnx_path and not (tmp_path / "precision").exists()
    converted = OnnxRuntime().build(lenet, Target("cuda:0", "fp16"), LoadOptions(), tmp_path)
    assert converted.artifact.path != lenet.onnx_path


def test_an_int8_cell_on_the_tensorrt_provider_enables_int8_and_no_tf32(
    monkeypatch: pytest.MonkeyPatch, lenet: PreparedModel
) -> None:
    kept = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    ort = fake_onnxruntime(kept, {"TensorrtExecutionProvider": 1})
    ort_session(monkeypatch, lenet, ort, Target("cuda:0", "int8"), tensorrt=True)
    (entry,) = [e for e in ort.log if e[0] == "session"]
    (_, trt), (_, cuda) = entry[2][0], entry[2][1]
    assert trt["trt_int8_enable"] is True and trt["trt_fp16_enable"] is False
    assert cuda["use_tf32"] == 0  # the float layers of an int8 cell run fp32
