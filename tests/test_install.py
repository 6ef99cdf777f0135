"""Whether the installed PyTorch suits the machine (``cli.py env`` warns where not)."""

from __future__ import annotations

import importlib.metadata
from types import SimpleNamespace

import pytest

import cli
from bench.harness import install
from bench.harness.install import CPU_WHEELS, TorchBuild, install_warnings, torch_build

CUDA_BUILD = TorchBuild("2.14.1", built_for="13.0", libraries_mb=4300.0)
CPU_BUILD = TorchBuild("2.13.0+cpu", built_for=None, libraries_mb=0.0)


def test_cuda_libraries_on_a_machine_without_a_gpu_are_said_with_the_fix() -> None:
    (warning,) = install_warnings(0, CUDA_BUILD)
    assert "torch 2.14.1 is a CUDA build (CUDA 13.0), with 4.3 GB of CUDA libraries" in warning
    assert "no NVIDIA GPU" in warning and CPU_WHEELS in warning


def test_the_cpu_build_on_a_machine_with_a_gpu_is_said_with_the_fix() -> None:
    (warning,) = install_warnings(2, CPU_BUILD)
    assert "has 2 NVIDIA GPUs but torch 2.13.0+cpu is a CPU-only build" in warning
    assert "CUDA cells are skipped; pip uninstall torch torchvision" in warning


def test_cuda_libraries_left_beside_a_cpu_build_are_said() -> None:
    leftover = TorchBuild("2.13.0+cpu", built_for=None, libraries_mb=4300.0)
    (warning,) = install_warnings(0, leftover)
    assert "is a CPU build, but 4.3 GB of CUDA libraries and Triton are installed" in warning


ROCM_BUILD = TorchBuild("2.5.0+rocm6.2", built_for="ROCm (HIP 6.2)", libraries_mb=0.0)


@pytest.mark.parametrize(
    ("gpus", "build"), [(0, CPU_BUILD), (1, CUDA_BUILD), (0, None), (0, ROCM_BUILD)]
)
def test_a_build_that_suits_the_machine_says_nothing(gpus: int, build: TorchBuild | None) -> None:
    assert install_warnings(gpus, build) == []


@pytest.mark.parametrize(
    ("version", "version_py", "requires", "built_for"),
    [
        ("2.13.0+cpu", "cuda: Optional[str] = None\nhip = None", [], None),
        ("2.14.1+cu130", "cuda: Optional[str] = '13.0'", [], "13.0"),
        ("2.3.0a0+40ec155e58.nv24.05", "cuda = '12.4'\nhip = None", [], "12.4"),  # JetPack
        ("2.5.0+rocm6.2", "cuda = None\nhip = '6.2.41133'", [], "ROCm (HIP 6.2.41133)"),
        ("2.14.1", None, ['nvidia-cudnn-cu13==9.24; platform_system == "Linux"'], "CUDA"),
        ("2.14.1+cu130", None, [], "cu130"),
        ("2.14.1", None, ["filelock"], None),  # a macOS or aarch64 wheel: no CUDA
    ],
)
def test_the_build_is_read_from_its_version_file_else_its_metadata(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path,
    version: str,
    version_py: str | None,
    requires: list[str],
    built_for: str | None,
) -> None:
    if version_py is not None:
        (tmp_path / "torch").mkdir()
        (tmp_path / "torch" / "version.py").write_text(version_py)
    fake = SimpleNamespace(
        version=version, requires=requires, locate_file=lambda name: tmp_path / name
    )
    monkeypatch.setattr(importlib.metadata, "distribution", lambda name: fake)
    monkeypatch.setattr(install, "_cuda_libraries_mb", lambda: 0.0)
    build = torch_build()
    assert build is not None and build.version == version and build.built_for == built_for


def test_this_machines_torch_is_read_without_importing_it() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from bench.harness.install import torch_build; torch_build(); "
        "print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stderr
    build = torch_build()
    assert build is not None and build.version == importlib.metadata.version("torch")
    cuda_packages = [
        d
        for d in importlib.metadata.distributions()
        if install._CUDA_PACKAGE.match((d.metadata["Name"] or "").lower())
    ]
    assert (build.libraries_mb > 0) == bool(cuda_packages)


def test_env_warns_on_stderr_and_keeps_stdout_json(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench.commands import env

    monkeypatch.setattr(env, "cuda_device_count", lambda: 0)
    monkeypatch.setattr(env, "torch_build", lambda: CUDA_BUILD)
    assert cli.main(["env"]) == 0
    out, err = capsys.readouterr()
    assert out.lstrip().startswith("{") and err.startswith("warning: torch 2.14.1 is a CUDA build")
