"""ONNX Runtime's GPU provider libraries as the dynamic loader sees them.

onnxruntime-gpu's ``libonnxruntime_providers_cuda.so`` and ``..._tensorrt.so`` link the
CUDA libraries (``libcublasLt.so.13`` …) and TensorRT's (``libnvinfer.so.10``) by name and
carry no RPATH: the pip ``nvidia-*`` and ``tensorrt`` wheels are found only once something
has loaded them. ``onnxruntime.preload_dlls`` (1.21 and newer) loads the CUDA and cuDNN
ones; importing ``tensorrt`` loads TensorRT's. A provider that still cannot load makes
ONNX Runtime fall back to the CPU with a warning; ``load_error`` says why, as the loader
does, and ``needed`` reads which libraries a provider links (its ELF dynamic section).
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import re
from pathlib import Path
from types import ModuleType

PROVIDER_FILES = {
    "CUDAExecutionProvider": "libonnxruntime_providers_cuda.so",
    "TensorrtExecutionProvider": "libonnxruntime_providers_tensorrt.so",
}
CUDA_FIX = (
    "install the CUDA 13 wheels it links: pip install 'onnxruntime-gpu[cuda,cudnn]' "
    "nvidia-cublas (or import a torch of the same CUDA first)"
)


def preload(onnxruntime: ModuleType, providers: list[str]) -> None:
    """Load what the GPU providers in ``providers`` link, the supported way, before a
    session is made: CUDA and cuDNN through ``onnxruntime.preload_dlls`` where this
    onnxruntime has it, TensorRT's libraries by importing ``tensorrt``."""
    if not set(providers) & set(PROVIDER_FILES):
        return
    if hasattr(onnxruntime, "preload_dlls"):
        onnxruntime.preload_dlls(cuda=True, cudnn=True, msvc=False)
    if "TensorrtExecutionProvider" in providers:
        with contextlib.suppress(Exception):  # a broken install shows in load_error below
            importlib.import_module("tensorrt")


def provider_file(onnxruntime: ModuleType, provider: str) -> Path:
    return Path(onnxruntime.__file__).parent / "capi" / PROVIDER_FILES[provider]


def load_error(path: Path) -> str | None:
    """Why the loader cannot load ``path`` (its message, e.g. ``libcublasLt.so.13: cannot
    open shared object file``), or None when it loads."""
    try:
        ctypes.CDLL(str(path))
    except OSError as exc:
        return str(exc)
    return None


def needed(path: Path) -> list[str]:
    """The libraries ``path`` links by name (DT_NEEDED), in order."""
    from elftools.elf.dynamic import DynamicSection
    from elftools.elf.elffile import ELFFile

    with open(path, "rb") as handle:
        for section in ELFFile(handle).iter_sections():
            if isinstance(section, DynamicSection):
                return [t.needed for t in section.iter_tags() if t.entry.d_tag == "DT_NEEDED"]
    return []


def tensorrt_major(libraries: list[str]) -> int | None:
    """The TensorRT major version a library list links (``libnvinfer.so.10`` → 10)."""
    return _linked_major(libraries, "libnvinfer")


def cuda_major(libraries: list[str]) -> int | None:
    """The CUDA major version a library list links (``libcudart.so.13`` → 13)."""
    return _linked_major(libraries, "libcudart")


def _linked_major(libraries: list[str], stem: str) -> int | None:
    for name in libraries:
        match = re.fullmatch(rf"{stem}\.so\.(\d+)", name)
        if match:
            return int(match.group(1))
    return None


def tensorrt_install(major: int | None, cuda: int | None = None) -> str:
    """The command that installs TensorRT ``major`` for CUDA ``cuda`` (13 unless known)
    from pip (NVIDIA's index holds the libraries: the PyPI ``tensorrt-cu13-libs`` is a
    stub that fetches them from there)."""
    package = f"tensorrt-cu{cuda or 13}"
    wanted = f"{package}>={major},<{major + 1}" if major else package
    return f"pip install --extra-index-url https://pypi.nvidia.com '{wanted}'"


def failure(onnxruntime: ModuleType, provider: str) -> str:
    """One line on a GPU provider that ONNX Runtime dropped at session creation."""
    path = provider_file(onnxruntime, provider)
    error = load_error(path) if path.is_file() else f"{path} is missing"
    if provider == "TensorrtExecutionProvider":
        links = needed(path) if path.is_file() else []
        major = tensorrt_major(links)
        fix = f"it links TensorRT {major or '?'}: {tensorrt_install(major, cuda_major(links))}"
    else:
        fix = CUDA_FIX
    why = error or "it loads now, so see the worker log for what failed"
    return f"ONNX Runtime's {provider} did not load ({why}), so the session fell back: {fix}"
