"""Whether the installed PyTorch suits this machine: PyTorch's default wheel for Linux
x86-64 on PyPI is a CUDA build that brings several GB of NVIDIA libraries and Triton,
which a CPU-only machine never uses; and a machine with an NVIDIA GPU and a CPU-only
build skips every CUDA cell of the pytorch runtime. Read from the installed files and
metadata and the driver alone: nothing here imports torch."""

from __future__ import annotations

import importlib.metadata
import re
from dataclasses import dataclass

CPU_WHEELS = "pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu"
"""How to get PyTorch's CPU wheels (its own package index)."""
_CUDA_PACKAGE = re.compile(r"^(nvidia-(?!ml-py)[a-z0-9-]+|triton|cuda-(bindings|pathfinder))$")
"""What a CUDA build installs beside it (nvidia-ml-py, the NVML binding, is ours and tiny)."""
_BUILT_FOR = re.compile(r"^(cuda|hip)\s*(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]", re.MULTILINE)


@dataclass(frozen=True)
class TorchBuild:
    """The installed torch: its version, the CUDA (or ROCm) version it was built for
    (None: a CPU-only build), and the CUDA libraries and Triton installed beside it (MB on
    disk)."""

    version: str
    built_for: str | None
    libraries_mb: float

    @property
    def cuda(self) -> bool:
        return self.built_for is not None and not self.rocm

    @property
    def rocm(self) -> bool:
        """An AMD GPU build: neither CUDA's nor CPU-only, and not judged here."""
        return (self.built_for or "").startswith("ROCm")


def torch_build() -> TorchBuild | None:
    """The installed torch (None where there is none): what it was built for as its own
    ``torch/version.py`` says (JetPack's and NGC's builds too), else its metadata (a
    ``+cuXXX`` or ``+cpu`` version, the NVIDIA libraries it requires)."""
    try:
        torch = importlib.metadata.distribution("torch")
    except importlib.metadata.PackageNotFoundError:
        return None
    return TorchBuild(torch.version, _built_for(torch), _cuda_libraries_mb())


def _built_for(torch: importlib.metadata.Distribution) -> str | None:
    try:
        text = torch.locate_file("torch/version.py").read_text()  # type: ignore[union-attr]
    except (OSError, AttributeError):
        text = ""
    found = {kind: value for kind, value in _BUILT_FOR.findall(text)}
    if text:
        return found.get("cuda") or (f"ROCm (HIP {found['hip']})" if "hip" in found else None)
    local = torch.version.partition("+")[2]
    if local.startswith("cu"):
        return local
    requires = " ".join(torch.requires or [])
    return "CUDA" if not local and "nvidia-" in requires else None


def _cuda_libraries_mb() -> float:
    total = 0
    for dist in importlib.metadata.distributions():
        name = (dist.metadata["Name"] or "").lower()
        if _CUDA_PACKAGE.match(name):
            for file in dist.files or ():
                path = dist.locate_file(file)
                total += path.stat().st_size if path.is_file() else 0
    return total / 1e6


def install_warnings(gpus: int, build: TorchBuild | None) -> list[str]:
    """What does not suit the machine (``gpus`` NVIDIA GPUs): a CUDA build, or CUDA
    libraries left beside a CPU build, with no GPU; a CPU-only build with one."""
    if build is None or build.rocm:
        return []
    size = f"{build.libraries_mb / 1000:.1f} GB of" if build.libraries_mb >= 100 else "its"
    if gpus == 0 and build.cuda:
        return [
            f"torch {build.version} is a CUDA build (CUDA {build.built_for}), with {size} "
            "CUDA libraries and Triton, but this machine has no NVIDIA GPU: in a new "
            f"environment, install the CPU wheels first ({CPU_WHEELS}), then deploybench"
        ]
    if gpus == 0 and build.libraries_mb >= 100:
        return [
            f"torch {build.version} is a CPU build, but {size} CUDA libraries and Triton "
            "are installed beside it (left by a CUDA build?): pip uninstall the nvidia-* "
            "and triton packages to free the space"
        ]
    if gpus > 0 and not build.cuda:
        return [
            f"this machine has {gpus} NVIDIA GPU{'s' if gpus > 1 else ''} but torch "
            f"{build.version} is a CPU-only build: the pytorch runtime's CUDA cells are "
            "skipped; pip uninstall torch torchvision, then install the CUDA build "
            "(pip install torch torchvision; on a Jetson, NVIDIA's JetPack wheels)"
        ]
    return []
