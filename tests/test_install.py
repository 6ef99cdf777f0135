"""Whether the installed PyTorch suits the machine (``cli.py env`` warns where not)."""

from __future__ import annotations

import importlib.metadata
from types import SimpleNamespace

import pytest

import cli
from bench.harness import install
from bench.harness.install import CPU_WHEELS, TorchBuild, install_warnings, torch_build

CUDA_BUILD = TorchBuild("2.14.1", cuda=True, libraries_mb=4300.0)
CPU_BUILD = TorchBuild("2.13.0+cpu", cuda=False, libraries_mb=0.0)


def test_cuda_libraries_on_a_machine_without_a_gpu_are_said_with_the_fix() -> None:
    (warning,) = install_warnings(0, CUDA_BUILD)
    assert "torch 2.14.1 is PyTorch's CUDA build, with 4.3 GB of CUDA libraries" in warning
    assert "no NVIDIA GPU" in warning and CPU_WHEELS in warning


def test_the_cpu_build_on_a_machine_with_a_gpu_is_said_with_the_fix() -> None:
    (warning,) = install_warnings(2, CPU_BUILD)
    assert "has 2 NVIDIA GPUs but torch 2.13.0+cpu is PyTorch's CPU-only build" in warning
    assert "CUDA cells are skipped" in warning


@pytest.mark.parametrize(("gpus", "build"), [(0, CPU_BUILD), (1, CUDA_BUILD), (0, None)])
def test_a_build_that_suits_the_machine_says_nothing(gpus: int, build: TorchBuild | None) -> None:
    assert install_warnings(gpus, build) == []


@pytest.mark.parametrize(
    ("version", "requires", "cuda"),
    [
        ("2.13.0+cpu", [], False),
        ("2.14.1+cu130", [], True),
        ("2.14.1", ['nvidia-cudnn-cu13==9.24; platform_system == "Linux"'], True),
        ("2.14.1", ["filelock"], False),  # a macOS or aarch64 wheel: no CUDA
    ],
)
def test_the_build_is_read_from_the_metadata(
    monkeypatch: pytest.MonkeyPatch, version: str, requires: list[str], cuda: bool
) -> None:
    fake = SimpleNamespace(version=version, requires=requires)
    monkeypatch.setattr(importlib.metadata, "distribution", lambda name: fake)
    monkeypatch.setattr(install, "_cuda_libraries_mb", lambda: 0.0)
    build = torch_build()
    assert build is not None and build.version == version and build.cuda is cuda


def test_this_machines_torch_is_read_without_importing_it() -> None:
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
    assert out.lstrip().startswith("{") and err.startswith("warning: torch 2.14.1 is PyTorch's")
