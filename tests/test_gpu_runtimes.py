"""PyTorch's options on the CPU (channels_last, CUDA graphs, torch.compile), the prepared
GPU check script, and (marked ``gpu``, skipped without a CUDA device) the real CUDA runs of
PyTorch and TensorRT. ONNX Runtime's providers: tests/test_gpu_runtimes_ort.py."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.core.cell import Target
from bench.core.devices import cuda_device_count
from bench.core.errors import Unavailable
from bench.core.spec import PreparedModel
from bench.core.timing import StopRule
from exporters.onnx_export import prepare_zoo_model
from exporters.reference import load_reference
from exporters.source import module_loader
from runtimes.base import LoadOptions
from runtimes.pytorch_rt import PyTorchRuntime

CUDA = Target("cuda:0", "fp32")
SHORT = StopRule(0.02, 3), StopRule(0.05, 10)


@pytest.fixture(scope="module")
def lenet(cache_dir: Path) -> PreparedModel:
    return prepare_zoo_model("lenet5", [1, 2], cache_dir)


def pytorch_session(lenet: PreparedModel, target: Target, **extra: Any) -> Any:
    module = module_loader(lenet.source, lenet.seed)
    options = LoadOptions(threads=1, settings=extra, batch=2, module=module)
    runtime = PyTorchRuntime()
    return runtime.load(runtime.build(lenet, target, options, Path()), lenet, target, options)


def test_pytorch_channels_last_on_cpu(lenet: PreparedModel) -> None:
    import torch

    session = pytorch_session(lenet, Target("cpu", "fp32"), channels_last=True)
    assert session.executed.details["channels_last"] is True
    feeds, reference = load_reference(lenet.reference, 2)
    np.testing.assert_allclose(session.infer(feeds)["logits"], reference["logits"], atol=1e-4)
    session.stage(feeds)
    assert session._staged[0].is_contiguous(memory_format=torch.channels_last)
    plain = pytorch_session(lenet, Target("cpu", "fp32"))
    assert plain.executed.details["channels_last"] is False


def test_pytorch_cuda_graphs_apply_to_cuda_only(lenet: PreparedModel) -> None:
    session = pytorch_session(lenet, Target("cpu", "fp32"), cuda_graphs=True)
    assert session.executed.details["cuda_graphs"] is False
    feeds, _ = load_reference(lenet.reference, 1)
    record = session.run_latency(feeds, *SHORT)
    assert record.completed >= 10 and session.device_metrics() == {}
    with pytest.raises(Unavailable, match='use compile = "reduce-overhead"'):
        pytorch_session(lenet, CUDA, cuda_graphs=True, compile="default")


@pytest.mark.slow
def test_pytorch_compile_on_cpu(lenet: PreparedModel) -> None:
    session = pytorch_session(lenet, Target("cpu", "fp32"), compile="default")
    assert session.executed.provider.endswith("compile (default)")
    feeds, reference = load_reference(lenet.reference, 2)
    np.testing.assert_allclose(session.infer(feeds)["logits"], reference["logits"], atol=1e-4)


needs_cuda = pytest.mark.skipif(cuda_device_count() == 0, reason="no CUDA device")


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("extra", [{}, {"channels_last": True}, {"cuda_graphs": True}])
def test_pytorch_cuda_device_metrics(lenet: PreparedModel, extra: dict) -> None:
    session = pytorch_session(lenet, Target("cuda:0", "fp16"), **extra)
    feeds, reference = load_reference(lenet.reference, 2)
    record = session.run_latency(feeds, *SHORT)
    metrics = session.device_metrics()
    assert metrics["split_count"] == record.completed
    assert 0 < metrics["compute_ms"] * 1e6 <= np.median(record.times_ns)
    assert metrics["peak_allocated_mb"] > 0
    got = session.infer(feeds)["logits"]
    np.testing.assert_allclose(got, reference["logits"], atol=5e-2, rtol=5e-2)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_tensorrt_python_on_cuda(lenet: PreparedModel, tmp_path: Path, precision: str) -> None:
    from runtimes.tensorrt.runtime import TensorRTRuntime

    target = Target("cuda:0", precision)
    if reason := TensorRTRuntime.unavailable_reason(target, lenet.source):
        pytest.skip(reason)
    runtime, options = TensorRTRuntime(), LoadOptions(settings={"cuda_graph": True}, batch=2)
    built = runtime.build(lenet, target, options, tmp_path)
    session = runtime.load(built, lenet, target, options)
    assert session.executed.precision == precision
    feeds, reference = load_reference(lenet.reference, 2)
    np.testing.assert_allclose(session.infer(feeds)["logits"], reference["logits"], atol=5e-2)
    record = session.run_latency(feeds, *SHORT)
    metrics = session.device_metrics()
    assert metrics["split_count"] == record.completed and metrics["compute_ms"] > 0
    throughput = session.run_throughput(feeds, 2, *SHORT)
    assert throughput.in_flight == 2 and throughput.completed >= 10
    session.close()


def _gpu_check() -> types.ModuleType:
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "scripts" / "gpu_check.py"
    spec = importlib.util.spec_from_file_location("gpu_check", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_check_suites_are_valid(tmp_path: Path) -> None:
    from bench.harness.config import load_config

    def config(text: str) -> Any:
        path = tmp_path / "suite.toml"
        path.write_text(text)
        return load_config(path)

    stack = {"TensorRT Python": "tensorrt 10.3.0", "ONNX Runtime GPU": "TensorrtExecutionProvider"}
    plans = dict(_gpu_check().runs(stack))
    assert set(plans) == {
        "pytorch",
        "pytorch-nhwc",
        "pytorch-graphs",
        "tensorrt",
        "tensorrt-graphs",
        "tensorrt-copies",
        "ort-cuda",
        "ort-trt",
        "pytorch-train",
    }
    configs = {name: config(text) for name, text in plans.items()}
    assert configs["pytorch"].suite.batch_sizes == [1, 8, 32]
    assert configs["pytorch-nhwc"].runtime.pytorch.channels_last
    assert configs["tensorrt-graphs"].runtime.tensorrt.cuda_graph
    assert configs["tensorrt-copies"].runtime.tensorrt.data_transfers
    assert configs["ort-trt"].runtime.onnxruntime.tensorrt
    assert configs["pytorch-train"].suite.scenarios == ["train", "latency"]
    assert configs["pytorch-train"].suite.precisions == ["fp32", "fp16", "bf16"]
    without = set(dict(_gpu_check().runs({})))
    assert without == {"pytorch", "pytorch-nhwc", "pytorch-graphs", "pytorch-train"}


@pytest.mark.skipif(cuda_device_count() > 0, reason="a CUDA device is here")
def test_gpu_check_without_a_device_says_so(tmp_path: Path) -> None:
    import subprocess

    script = Path(__file__).resolve().parent.parent / "scripts" / "gpu_check.py"
    done = subprocess.run(
        [sys.executable, str(script), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stdout.startswith("error: no CUDA device") and done.stdout.count("\n") == 1
    assert not (tmp_path / "out").exists()
