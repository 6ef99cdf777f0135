"""Whether the machine was quiet enough to measure on, checked as ``pyperf system show``
checks it: the CPU frequency governor, turbo boost, the load average, other processes
busy at the start, and a CPU model that changed during the run (a VM moved to another
host). Recorded in environment.json (``system``); each finding becomes a warning where
the run ends and where ``compare`` reads it."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import psutil

BUSY_PERCENT = 20.0
"""A process using more CPU than this at the start competes with the measurement."""
LOAD_PER_CORE = 0.5
"""A 1-minute load average above this many per usable core means other work ran."""


def system_state(cpu_model: str, root: Path = Path("/"), sample_s: float = 0.3) -> dict:
    """The checks' readings now; ``sample_s`` is how long processes are watched."""
    cpu = root / "sys/devices/system/cpu"
    governors = sorted({_read(p) for p in cpu.glob("cpu[0-9]*/cpufreq/scaling_governor")})
    return {
        "cpu_model": cpu_model,
        "governors": [g for g in governors if g] or None,
        "turbo": _turbo(cpu),
        "load_average_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "busy_processes": busy_processes(sample_s),
    }


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _turbo(cpu: Path) -> bool | None:
    """On (True), off (False), or None where neither intel_pstate nor cpufreq says."""
    no_turbo = _read(cpu / "intel_pstate/no_turbo")
    if no_turbo:
        return no_turbo == "0"
    boost = _read(cpu / "cpufreq/boost")
    return boost == "1" if boost else None


def busy_processes(sample_s: float) -> list[dict[str, Any]]:
    """Other processes above BUSY_PERCENT of one core over ``sample_s`` seconds."""
    ours = {os.getpid(), os.getppid()}
    watched = []
    for process in psutil.process_iter(["pid", "name"]):
        if process.pid in ours:
            continue
        try:
            process.cpu_percent(None)
            watched.append(process)
        except psutil.Error:
            continue
    time.sleep(sample_s)
    busy = []
    for process in watched:
        try:
            percent = process.cpu_percent(None)
        except psutil.Error:
            continue
        if percent >= BUSY_PERCENT:
            busy.append({"pid": process.pid, "name": process.info["name"], "cpu_percent": percent})
    return sorted(busy, key=lambda p: -p["cpu_percent"])[:5]


def noise_warnings(start: dict | None, end: dict | None = None) -> list[str]:
    """What makes this run's numbers less reliable, one line each (none when quiet or
    when the run recorded no checks)."""
    if not isinstance(start, dict):
        return []
    warnings = []
    governors = start.get("governors")
    governors = [str(g) for g in governors] if isinstance(governors, list) else []
    if any(g != "performance" for g in governors):
        names = ", ".join(governors)
        warnings.append(f"CPU frequency governor {names}, not performance: clocks follow load")
    if start.get("turbo"):
        warnings.append("turbo boost on: clocks depend on temperature and on the other cores")
    load, cores = start.get("load_average_1m"), start.get("usable_cores")
    cores = cores if isinstance(cores, int) and cores > 0 else 1
    if isinstance(load, (int, float)) and load > LOAD_PER_CORE * cores:
        unit = "core" if cores == 1 else "cores"
        warnings.append(f"load average {load:g} on {cores} {unit} at the start: other work ran")
    listed = start.get("busy_processes")
    busy = [p for p in listed if isinstance(p, dict)] if isinstance(listed, list) else []
    if busy:
        names = ", ".join(f"{p.get('name')} ({_percent(p.get('cpu_percent'))})" for p in busy)
        warnings.append(f"busy at the start: {names}")
    if isinstance(end, dict) and end.get("cpu_model") != start.get("cpu_model"):
        warnings.append(f"CPU model changed: {start.get('cpu_model')} → {end.get('cpu_model')}")
    return warnings


def _percent(value: object) -> str:
    return f"{value:.0f}%" if isinstance(value, (int, float)) else "?%"
