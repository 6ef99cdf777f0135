"""Choosing a power source for a cell, and listing the sources this machine has."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from bench.power.jetson import JetsonSource
from bench.power.nvml import NvmlSource
from bench.power.rapl import RaplSource
from bench.power.source import PowerSource, PowerUnavailable
from bench.power.tegrastats import TegrastatsSource

SOURCE_NAMES = ("nvml", "rapl", "jetson", "tegrastats")
SETTINGS = ("auto", *SOURCE_NAMES, "none")


def auto_order(device: str) -> tuple[str, ...]:
    """The sources ``auto`` tries for a cell on ``device``, best first: a CUDA cell is
    measured at the GPU (NVML; on a Jetson, whose GPU NVML does not measure, the board), a
    DLA cell at the board (the DLA is no GPU: NVML's GPU 0 would miss it), any other at the
    CPU packages (RAPL; on a Jetson the board)."""
    if device.startswith("dla"):
        return ("jetson", "tegrastats")
    if device.startswith("cuda"):
        return ("nvml", "jetson", "tegrastats")
    return ("rapl", "jetson", "tegrastats")


def open_source(name: str, device: str, interval_s: float, root: Path = Path("/")) -> PowerSource:
    """Source ``name`` opened for a cell on ``device``; PowerUnavailable with the reason."""
    openers: dict[str, Callable[[], PowerSource]] = {
        "nvml": lambda: NvmlSource(device),
        "rapl": lambda: RaplSource(root),
        "jetson": lambda: JetsonSource(root),
        "tegrastats": lambda: TegrastatsSource(interval_s),
    }
    if name not in openers:
        raise PowerUnavailable(f"unknown power source '{name}' (use one of {', '.join(SETTINGS)})")
    return openers[name]()


def choose_source(
    setting: str, device: str, interval_s: float, root: Path = Path("/")
) -> PowerSource:
    """The source for ``setting`` (``auto`` or a source name): ``auto`` takes the first of
    ``auto_order(device)`` that opens. PowerUnavailable says why none did (each reason)."""
    if setting == "none":
        raise PowerUnavailable('power measurement is off (suite.power = "none")')
    if setting != "auto":
        return open_source(setting, device, interval_s, root)
    reasons = []
    for name in auto_order(device):
        try:
            return open_source(name, device, interval_s, root)
        except PowerUnavailable as exc:
            reasons.append(f"{name}: {exc}")
    raise PowerUnavailable(f"no power counter for {device} here ({'; '.join(reasons)})")


def available_sources(interval_s: float = 0.05, root: Path = Path("/")) -> dict[str, str]:
    """Each source on this machine: ``available: <what it measures>`` or
    ``unavailable: <reason>`` (NVML for GPU 0; tegrastats only looked for, not started)."""
    found = {}
    for name in SOURCE_NAMES:
        try:
            if name == "tegrastats":  # starting it is not needed to know it is there
                path = shutil.which("tegrastats")
                if path is None:
                    raise PowerUnavailable("tegrastats is not on PATH (it comes with JetPack)")
                found[name] = f"available: {path} (board power from its output)"
                continue
            source = open_source(name, "cuda:0", interval_s, root)
        except PowerUnavailable as exc:
            found[name] = f"unavailable: {exc}"
            continue
        try:
            found[name] = f"available: {source.describe()['measures']}"
        finally:
            source.close()
    return found
