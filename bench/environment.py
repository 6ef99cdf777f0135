"""The hardware and software fingerprint stored with every run as environment.json."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil

from bench.core.devices import cuda_devices
from bench.power import power_fingerprint
from runtimes import RUNTIMES

LIBRARIES = ("deploybench", "numpy", "torch", "torchvision", "onnx", "onnxscript", "nvidia-ml-py")
"""What every run stands on (torch exports the reference models); each runtime adds its
own (``Runtime.libraries``)."""
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def fingerprint() -> dict[str, Any]:
    """What this machine is and what is installed on it (nothing here imports a framework)."""
    memory = psutil.virtual_memory()
    return {
        "cpu": {
            "model": cpu_model(),
            "architecture": platform.machine(),
            "physical_cores": psutil.cpu_count(logical=False),
            "logical_cores": psutil.cpu_count(logical=True),
            "usable_cores": len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else None,
            "max_mhz": _max_mhz(),
        },
        "memory_gib": round(memory.total / 2**30, 2),
        "gpus": cuda_devices(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "libraries": library_versions(),
        "git": git_state(),
        "power": power_fingerprint(),
        "environment": {
            k: v
            for k, v in os.environ.items()
            if k
            in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_CORETYPE", "CUDA_VISIBLE_DEVICES")
        },
    }


def cpu_model() -> str:
    """The CPU's marketing name, from /proc/cpuinfo where there is one."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Hardware", "Model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries whose version changes the numbers."""
    versions = {}
    runtime_libraries = [name for runtime in RUNTIMES.values() for name in runtime.libraries]
    for name in dict.fromkeys([*LIBRARIES, *runtime_libraries]):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def git_state() -> dict[str, Any] | None:
    """The checkout's commit and whether it has uncommitted changes (None outside git)."""
    try:
        commit = _git("rev-parse", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(dirty)}


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10, check=True
    ).stdout.strip()


def _max_mhz() -> float | None:
    try:
        frequency = psutil.cpu_freq()
    except (NotImplementedError, FileNotFoundError):
        return None
    return frequency.max if frequency and frequency.max else None


def machine_id(environment: dict[str, Any]) -> str:
    """A short hash of the hardware in an environment fingerprint: CPU model, usable
    cores, memory (GiB, rounded) and GPU models. Software versions do not count."""
    cpu = environment.get("cpu") or {}
    identity = [
        cpu.get("model"),
        cpu.get("usable_cores") or cpu.get("logical_cores"),
        round(environment.get("memory_gib") or 0),
        sorted(str(gpu.get("name")) for gpu in environment.get("gpus") or []),
    ]
    return hashlib.sha1(json.dumps(identity).encode()).hexdigest()[:12]
