"""What the NVIDIA GPU stack offers on this machine, and the command that fixes each gap:
driver and devices, PyTorch's CUDA build, ONNX Runtime's GPU providers, TensorRT's Python
bindings, cuda-python, trtexec and NVML. Package versions come from installed metadata;
only trtexec is run (``--help``, for its banner) and PyTorch imported when it is installed.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bench.core.devices import cuda_devices
from runtimes.provider_libraries import (
    cuda_major,
    needed,
    provider_file,
    tensorrt_install,
    tensorrt_major,
)
from runtimes.tensorrt.cuda import cuda_python_installed
from runtimes.tensorrt.trtexec_driver import find_trtexec, trtexec_version

GPU_EXTRA = "pip install --extra-index-url https://pypi.nvidia.com 'deploybench[gpu]'"
"""TensorRT's wheels on PyPI (``tensorrt-cu13-libs`` …) are stubs that fetch the real ones
from NVIDIA's index at install time: without that index the install fails or stalls."""
ORT_GPU = "pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu"


@dataclass(frozen=True)
class StackItem:
    """One part of the stack: what was found, or why it is missing and how to fix that."""

    component: str
    found: str | None
    fix: str = ""


def _version(*distributions: str) -> str | None:
    for name in distributions:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _driver() -> StackItem:
    devices = cuda_devices()
    if not devices:
        return StackItem("NVIDIA driver", None, "no CUDA device: install the NVIDIA driver")
    names = ", ".join(f"cuda:{d['index']} {d['name']}" for d in devices)
    return StackItem("NVIDIA driver", f"CUDA {devices[0]['cuda_driver']}: {names}")


def _torch() -> StackItem:
    if importlib.util.find_spec("torch") is None:
        return StackItem("PyTorch CUDA", None, "pip install torch")
    import torch

    if torch.version.cuda is None:
        return StackItem(
            "PyTorch CUDA", None, f"torch {torch.__version__} is a CPU build: install a CUDA build"
        )
    usable = "" if torch.cuda.is_available() else " (no usable device)"
    return StackItem(
        "PyTorch CUDA", f"torch {torch.__version__}, CUDA {torch.version.cuda}{usable}"
    )


def _onnxruntime() -> StackItem:
    cpu, gpu = _version("onnxruntime"), _version("onnxruntime-gpu")
    if cpu and gpu:
        return StackItem(
            "ONNX Runtime GPU",
            None,
            f"onnxruntime {cpu} and onnxruntime-gpu {gpu} share one module: {ORT_GPU}",
        )
    if gpu is None:
        return StackItem("ONNX Runtime GPU", None, f"onnxruntime-gpu is not installed: {ORT_GPU}")
    import onnxruntime

    gpu_providers = [
        p for p in onnxruntime.get_available_providers() if p != "CPUExecutionProvider"
    ]
    return StackItem("ONNX Runtime GPU", f"onnxruntime-gpu {gpu}: {', '.join(gpu_providers)}")


def _ort_tensorrt() -> StackItem | None:
    """Whether the TensorRT that ONNX Runtime's TensorRT provider links is the one
    installed (None where there is no such provider to check)."""
    if _version("onnxruntime-gpu") is None:
        return None
    import onnxruntime

    if "TensorrtExecutionProvider" not in onnxruntime.get_available_providers():
        return None
    path = provider_file(onnxruntime, "TensorrtExecutionProvider")
    links = needed(path) if path.is_file() else []
    wanted = tensorrt_major(links)
    installed = _tensorrt_version() or _jetpack_tensorrt()
    component = "ONNX Runtime TensorRT provider"
    if wanted is None:
        return StackItem(component, f"links no libnvinfer.so.N that this could read ({path})")
    if installed is None or installed.split(".")[0] != str(wanted):
        have = f"tensorrt {installed} is installed" if installed else "no TensorRT is installed"
        fix = tensorrt_install(wanted, cuda_major(links))
        return StackItem(
            component, None, f"needs TensorRT {wanted} (libnvinfer.so.{wanted}); {have}: {fix}"
        )
    return StackItem(component, f"links TensorRT {wanted}, as installed")


def _jetpack_tensorrt() -> str | None:
    """The version of a ``tensorrt`` with no package metadata (JetPack's), if it imports."""
    if importlib.util.find_spec("tensorrt") is None:
        return None
    try:
        return str(importlib.import_module("tensorrt").__version__)
    except Exception:  # a broken install: the TensorRT Python row says why
        return None


def _tensorrt_version() -> str | None:
    return _version("tensorrt", "tensorrt-cu13", "tensorrt-cu12", "tensorrt-cu11")


def _tensorrt() -> StackItem:
    """Found, missing, or broken: the bindings installed without TensorRT's libraries (a
    stub ``tensorrt-cu13-libs`` installed without NVIDIA's index), which import fails."""
    found = _tensorrt_version()
    if found is None and importlib.util.find_spec("tensorrt") is not None:
        found = "installed (JetPack)"
    if found is None:
        return StackItem("TensorRT Python", None, GPU_EXTRA)
    try:
        importlib.import_module("tensorrt")
    except Exception as exc:  # the bindings raise ValueError, OSError or ImportError
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return StackItem(
            "TensorRT Python",
            None,
            f"tensorrt {found} is broken: its bindings are installed but do not load ({why}): "
            f"pip uninstall -y tensorrt tensorrt-cu13 tensorrt-cu13-libs "
            f"tensorrt-cu13-bindings && {GPU_EXTRA}",
        )
    return StackItem("TensorRT Python", f"tensorrt {found}")


def _cuda_python() -> StackItem:
    if not cuda_python_installed():
        return StackItem("cuda-python", None, f"{GPU_EXTRA} (TensorRT's Python driver needs it)")
    for name in ("cuda-python", "cuda-bindings"):
        if found := _version(name):
            return StackItem("cuda-python", f"{name} {found}")
    return StackItem("cuda-python", "installed")


def _trtexec() -> StackItem:
    path = find_trtexec()
    if path is None:
        return StackItem(
            "trtexec",
            None,
            "not on PATH nor in /usr/src/tensorrt/bin (JetPack ships it; elsewhere it comes "
            "with TensorRT's tar or deb packages)",
        )
    try:
        version = str(trtexec_version(path))
    except (OSError, ValueError, subprocess.SubprocessError) as exc:  # TimeoutExpired too
        return StackItem("trtexec", None, f"{path} does not run: {exc}")
    return StackItem("trtexec", f"{path} (TensorRT {version})")


def _nvml() -> StackItem:
    if importlib.util.find_spec("pynvml") is None:
        return StackItem("NVML (power)", None, "pip install nvidia-ml-py")
    return StackItem("NVML (power)", f"nvidia-ml-py {_version('nvidia-ml-py')}")


def gpu_stack() -> list[StackItem]:
    """Every part of the stack, found or not (a Jetson's DLA note included on a Jetson)."""
    items = [_driver(), _torch(), _onnxruntime(), _tensorrt(), _cuda_python(), _trtexec(), _nvml()]
    provider = _ort_tensorrt()
    if provider is not None:
        items.insert(3, provider)
    if Path("/etc/nv_tegra_release").is_file():
        items.append(StackItem("Jetson DLA", "devices dla:0, dla:1 (runtime tensorrt, fp16)"))
    return items
