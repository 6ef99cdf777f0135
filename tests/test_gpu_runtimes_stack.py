"""``cli.py list``'s GPU stack table: every part found or missing with its fix."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from runtimes.tensorrt import stack as tensorrt_stack
from runtimes.tensorrt.stack import ORT_GPU, gpu_stack


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
    assert items["TensorRT Python"].fix == (
        "pip install --extra-index-url https://pypi.nvidia.com 'deploybench[gpu]'"
    )
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


PROVIDERS = Path(__file__).parent / "fixtures" / "onnxruntime_gpu"


def test_bindings_without_libraries_are_broken_not_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """What TensorRT 10's bindings raise when the libraries wheel is a stub that installed
    nothing (tensorrt-cu13-libs from PyPI alone)."""
    package = tmp_path / "tensorrt"
    package.mkdir()
    (package / "__init__.py").write_text(
        "raise ValueError('Could not find: libnvinfer.so.10. Is it on your LD_LIBRARY_PATH?')"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "tensorrt", raising=False)
    monkeypatch.setattr(tensorrt_stack, "_version", lambda *names: "10.13.3.9")
    item = by_name()["TensorRT Python"]
    assert item.found is None and item.fix.startswith("tensorrt 10.13.3.9 is broken")
    assert "(Could not find: libnvinfer.so.10. Is it on your LD_LIBRARY_PATH?)" in item.fix
    assert item.fix.endswith("--extra-index-url https://pypi.nvidia.com 'deploybench[gpu]'")


def fake_onnxruntime_gpu() -> types.ModuleType:
    ort = types.ModuleType("onnxruntime")
    ort.__file__ = str(PROVIDERS / "__init__.py")  # capi/: the provider's stand-in
    ort.get_available_providers = lambda: [
        "TensorrtExecutionProvider",
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]
    return ort


@pytest.mark.parametrize(
    ("installed", "found", "fix"),
    [
        (
            "11.4.0.106",
            None,
            "needs TensorRT 10 (libnvinfer.so.10); tensorrt 11.4.0.106 is "
            "installed: pip install --extra-index-url https://pypi.nvidia.com "
            "'tensorrt-cu13>=10,<11'",
        ),
        ("10.13.3.9", "links TensorRT 10, as installed", ""),
    ],
)
def test_the_tensorrt_that_onnxruntime_s_provider_links(
    monkeypatch: pytest.MonkeyPatch, installed: str, found: str | None, fix: str
) -> None:
    versions = {"onnxruntime-gpu": "1.31.1", "tensorrt": installed}
    monkeypatch.setattr(tensorrt_stack, "_version", lambda *names: versions.get(names[0]))
    monkeypatch.setitem(sys.modules, "onnxruntime", fake_onnxruntime_gpu())
    monkeypatch.setitem(sys.modules, "tensorrt", types.ModuleType("tensorrt"))
    items = gpu_stack()
    assert items[3].component == "ONNX Runtime TensorRT provider"
    assert (items[3].found, items[3].fix) == (found, fix)


def test_the_install_command_follows_the_provider_s_cuda() -> None:
    from runtimes.provider_libraries import cuda_major, tensorrt_install

    assert cuda_major(["libcublas.so.12", "libcudart.so.12"]) == 12
    assert tensorrt_install(10, 12).endswith("'tensorrt-cu12>=10,<11'")
    assert tensorrt_install(None).endswith("'tensorrt-cu13'")
