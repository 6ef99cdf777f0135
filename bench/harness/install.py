"""Whether the installed PyTorch suits this machine: PyTorch's default Linux wheel is a
CUDA build that brings several GB of NVIDIA libraries and Triton, which a CPU-only machine
never uses; and a machine with a GPU and the CPU-only build skips every CUDA cell of the
pytorch runtime. Read from the installed packages' metadata and the driver alone: nothing
here imports torch."""

from __future__ import annotations

import importlib.metadata
import re
from dataclasses import dataclass

CPU_WHEELS = "pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu"
"""How to get PyTorch's CPU wheels (its own package index)."""
_CUDA_PACKAGE = re.compile(r"^(nvidia-(?!ml-py$)[a-z0-9-]+|triton)$")
"""The CUDA builds' own dependencies (nvidia-ml-py, the NVML binding, is ours and tiny)."""


@dataclass(frozen=True)
class TorchBuild:
    """The installed torch: its version, whether it is a CUDA build, and the CUDA
    libraries and Triton installed beside it (MB on disk)."""

    version: str
    cuda: bool
    libraries_mb: float


def torch_build() -> TorchBuild | None:
    """The installed torch (None where there is none)."""
    try:
        torch = importlib.metadata.distribution("torch")
    except importlib.metadata.PackageNotFoundError:
        return None
    local = torch.version.partition("+")[2]
    requires = " ".join(torch.requires or [])
    cuda = local.startswith("cu") or (not local and "nvidia-" in requires)
    return TorchBuild(torch.version, cuda, _cuda_libraries_mb())


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
    """What does not suit the machine: CUDA libraries on a machine with no GPU (``gpus``
    0), or the CPU-only build on one with a GPU."""
    if build is None:
        return []
    if gpus == 0 and (build.cuda or build.libraries_mb > 1):
        size = f"{build.libraries_mb / 1000:.1f} GB" if build.libraries_mb >= 100 else "some"
        return [
            f"torch {build.version} is PyTorch's CUDA build, with {size} of CUDA libraries "
            "and Triton, but this machine has no NVIDIA GPU: in a new environment, install "
            f"the CPU wheels first ({CPU_WHEELS}), then deploybench"
        ]
    if gpus > 0 and not build.cuda:
        return [
            f"this machine has {gpus} NVIDIA GPU{'s' if gpus > 1 else ''} but torch "
            f"{build.version} is PyTorch's CPU-only build: the pytorch runtime's CUDA cells "
            "are skipped; install the CUDA build: pip install torch torchvision"
        ]
    return []
