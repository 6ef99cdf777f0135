"""``cli.py list``'s GPU stack table: every part found or missing with its fix."""

from __future__ import annotations

import pytest

from runtimes import tensorrt_stack
from runtimes.tensorrt_stack import ORT_GPU, gpu_stack


def by_name() -> dict[str, tensorrt_stack.StackItem]:
    return {item.component: item for item in gpu_stack()}


def test_every_part_is_found_or_has_a_fix() -> None:
    items = gpu_stack()
    assert [i.component for i in items][:7] == [
        "NVIDIA driver",
        "PyTorch CUDA",
        "ONNX Runtime GPU",
        "TensorRT Python",
        "cuda-python",
        "trtexec",
        "NVML (power)",
    ]
    for item in items:
        assert (item.found is None) == bool(item.fix), item
        assert "\n" not in (item.found or "") + item.fix


def test_both_onnxruntime_packages_is_a_conflict(monkeypatch: pytest.MonkeyPatch) -> None:
    versions = {"onnxruntime": "1.20.1", "onnxruntime-gpu": "1.20.1"}
    monkeypatch.setattr(tensorrt_stack, "_version", lambda *names: versions.get(names[0]))
    item = by_name()["ONNX Runtime GPU"]
    assert item.found is None and "share one module" in item.fix and item.fix.endswith(ORT_GPU)
    versions.pop("onnxruntime-gpu")
    item = by_name()["ONNX Runtime GPU"]
    assert item.found is None and item.fix == f"onnxruntime-gpu is not installed: {ORT_GPU}"


def test_missing_driver_and_tensorrt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tensorrt_stack, "cuda_devices", lambda: [])
    monkeypatch.setattr(tensorrt_stack, "_version", lambda *names: None)
    monkeypatch.setattr(tensorrt_stack.importlib.util, "find_spec", lambda name: None)
    items = by_name()
    assert items["NVIDIA driver"].fix.startswith("no CUDA device")
    assert items["TensorRT Python"].fix == "pip install 'deploybench[gpu]'"
    assert items["PyTorch CUDA"].fix == "pip install torch"
    assert items["NVML (power)"].fix == "pip install nvidia-ml-py"


def test_a_device_is_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    device = {
        "index": 0,
        "name": "NVIDIA H100 80GB HBM3",
        "memory_gib": 79.2,
        "cuda_driver": "13.0",
    }
    monkeypatch.setattr(tensorrt_stack, "cuda_devices", lambda: [device])
    assert by_name()["NVIDIA driver"].found == "CUDA 13.0: cuda:0 NVIDIA H100 80GB HBM3"
