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
from pydantic import BaseModel, ConfigDict, ValidationError

from bench.core.devices import cuda_devices
from bench.core.errors import UserError
from bench.harness.quiet import noise_warnings, system_state
from bench.harness.results import read_json_object
from bench.power import power_fingerprint, record_end_state
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
        "system": system_state(cpu_model()),
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


class _Power(BaseModel):
    model_config = ConfigDict(extra="allow")

    state: dict[str, Any] | None = None
    changes: list[str] | None = None


class StoredEnvironment(BaseModel):
    """The parts of an environment.json that readers (compare, report, the roofline) look
    into, each of the kind ``fingerprint`` writes; anything else is kept as it is."""

    model_config = ConfigDict(extra="allow")

    cpu: dict[str, Any] | None = None
    gpus: list[dict[str, Any]] | None = None
    memory_gib: float | None = None
    power: _Power | None = None
    git: dict[str, Any] | None = None
    libraries: dict[str, Any] | None = None
    python: str | None = None
    os: str | None = None
    system: dict[str, Any] | None = None


def record_system_end(environment_file: Path) -> list[str]:
    """Add the CPU model and load now (``system.end``) to a run's environment.json, and
    return the quiet-machine warnings of the run (bench.harness.quiet); none for a file that
    cannot be read or has no checks."""
    try:
        environment = json.loads(environment_file.read_text())
    except (OSError, ValueError, RecursionError):
        return []
    system = environment.get("system") if isinstance(environment, dict) else None
    if not isinstance(system, dict):
        return []
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    system["end"] = {"cpu_model": cpu_model(), "load_average_1m": load}
    environment_file.write_text(json.dumps(environment, indent=2, default=str) + "\n")
    return noise_warnings(system, system["end"])


def read_environment(path: Path, fix: str) -> dict[str, Any]:
    """A run's environment.json, checked (see ``check_environment``)."""
    return check_environment(read_json_object(path, fix), str(path), fix)


def check_environment(data: Any, where: str, fix: str) -> dict[str, Any]:
    """``data`` when it is an environment fingerprint (``StoredEnvironment``); otherwise a
    UserError naming ``where`` and the field, ending in ``fix``."""
    try:
        StoredEnvironment.model_validate(data)
    except ValidationError as exc:
        problem = exc.errors()[0]
        field = ".".join(str(part) for part in problem["loc"]) or "environment"
        raise UserError(f"{where} is damaged ({field}: {problem['msg']}): {fix}") from None
    return data


def machine_id(environment: dict[str, Any]) -> str:
    """A short hash of the hardware in an environment fingerprint: CPU model, usable
    cores, memory (GiB, rounded) and GPU models, and on a Jetson its power mode and
    jetson_clocks (a board in another mode measures as another machine). Software
    versions do not count."""
    cpu = environment.get("cpu") or {}
    identity = [
        cpu.get("model"),
        cpu.get("usable_cores") or cpu.get("logical_cores"),
        round(environment.get("memory_gib") or 0),
        sorted(str(gpu.get("name")) for gpu in environment.get("gpus") or []),
    ]
    if mode := jetson_mode(environment):
        identity.append(mode)
    return hashlib.sha1(json.dumps(identity).encode()).hexdigest()[:12]


def fleet_node(environment: dict[str, Any]) -> str | None:
    """The node of a fleet run's machine column (``run --cluster --fleet compare``), else
    None: nodes alike in hardware are still each a column of their own."""
    fleet = environment.get("fleet")
    node = fleet.get("node") if isinstance(fleet, dict) else None
    return str(node) if node else None


def machine_label(environment: dict[str, Any]) -> str:
    """A machine as a reader names it: its first GPU (and how many), else its CPU, and
    a Jetson's power mode."""
    mode = jetson_mode(environment)
    gpus = [str(g.get("name")) for g in environment.get("gpus") or []]
    if gpus:
        label = gpus[0] + (f" x{len(gpus)}" if len(gpus) > 1 else "")
    else:
        label = str((environment.get("cpu") or {}).get("model") or "unknown machine")
    return f"{label} ({mode})" if mode else label


def jetson_mode(environment: dict[str, Any]) -> str | None:
    """``MAXN, jetson_clocks on``: a Jetson's power mode as the run recorded it at its
    start; None for other machines."""
    power = environment.get("power")
    state = power.get("state") if isinstance(power, dict) else None
    jetson = state.get("jetson") if isinstance(state, dict) else None
    if not isinstance(jetson, dict):
        return None
    mode = (jetson.get("nvpmodel") or {}).get("name") or "mode unknown"
    clocks = {True: "on", False: "off"}.get((jetson.get("jetson_clocks") or {}).get("on"), "?")
    return f"{mode}, jetson_clocks {clocks}"


def local_end_state(environment_file: Path) -> tuple[list[str], list[str]]:
    """How this machine's power state changed over the run, and why it was not quiet
    (each written into the run's environment.json)."""
    return record_end_state(environment_file), record_system_end(environment_file)
