"""The power-relevant state of the machine for environment.json, at a run's start and
end, and what changed between the two (throttling, a clock drop, a power-mode change)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.power.jetson_board import jetson_state
from bench.power.nvml import gpu_states
from bench.power.source import PowerUnavailable
from bench.power.sources import available_sources

CLOCK_DROP = 0.10
"""An SM clock this much lower at the end than at the start is flagged."""


def power_state(root: Path = Path("/")) -> dict[str, Any]:
    """GPUs as NVML reports them (or why it cannot) and the Jetson board's state (None
    when this is not a Jetson)."""
    try:
        gpus: list[dict[str, Any]] | dict[str, str] = gpu_states()
    except PowerUnavailable as exc:
        gpus = {"unavailable": str(exc)}
    return {"gpus": gpus, "jetson": jetson_state(root)}


def power_fingerprint(root: Path = Path("/")) -> dict[str, Any]:
    """environment.json's ``power``: the sources found here and the state at the start."""
    return {"sources": available_sources(root=root), "state": power_state(root)}


def state_changes(start: dict[str, Any], end: dict[str, Any]) -> list[str]:
    """One line per change that may have changed the numbers between ``start`` and
    ``end`` (both from ``power_state``): GPU throttling at the end, an SM clock drop, a
    power-limit change; a Jetson power-mode or jetson_clocks change."""
    changes = []
    before = {gpu["index"]: gpu for gpu in _gpus(start)}
    for gpu in _gpus(end):
        first = before.get(gpu["index"])
        if first is None:
            continue
        label = f"GPU {gpu['index']}"
        if gpu.get("throttle_reasons"):
            changes.append(f"{label} limited at the end by: {', '.join(gpu['throttle_reasons'])}")
        start_clock, end_clock = first.get("sm_clock_mhz"), gpu.get("sm_clock_mhz")
        if start_clock and end_clock is not None and end_clock < (1 - CLOCK_DROP) * start_clock:
            changes.append(f"{label} SM clock dropped from {start_clock} to {end_clock} MHz")
        if first.get("power_limit_w") != gpu.get("power_limit_w"):
            changes.append(
                f"{label} power limit changed from {first.get('power_limit_w')} "
                f"to {gpu.get('power_limit_w')} W"
            )
    jetson_start, jetson_end = start.get("jetson") or {}, end.get("jetson") or {}
    if _mode(jetson_start) != _mode(jetson_end):  # not where it was read from
        changes.append(f"nvpmodel mode changed from {_mode(jetson_start)} to {_mode(jetson_end)}")
    clocks_start = (jetson_start.get("jetson_clocks") or {}).get("on")
    clocks_end = (jetson_end.get("jetson_clocks") or {}).get("on")
    if clocks_start != clocks_end:
        changes.append(f"jetson_clocks changed from {clocks_start} to {clocks_end}")
    return changes


def _gpus(state: dict[str, Any]) -> list[dict[str, Any]]:
    """The GPUs of a state (none where NVML was unavailable)."""
    gpus = state.get("gpus")
    return gpus if isinstance(gpus, list) else []


def _mode(jetson: dict[str, Any]) -> str:
    mode = jetson.get("nvpmodel") or {}
    return f"{mode.get('name')} ({mode.get('id')})" if mode else "unknown"


def record_end_state(environment_file: Path, root: Path = Path("/")) -> list[str]:
    """Add the state now (``power.end``) and the changes since the start
    (``power.changes``) to a run's environment.json; returns the changes (none when the
    file or its start state is missing)."""
    try:
        environment = json.loads(environment_file.read_text())
    except (OSError, ValueError, RecursionError):
        return []
    if not isinstance(environment, dict):  # damaged: the run's readers will say so
        return []
    power = environment.setdefault("power", {})
    if not isinstance(power, dict):
        return []
    end = power_state(root)
    start = power.get("state")
    changes = state_changes(start, end) if start else []
    power["end"] = end
    power["changes"] = changes
    environment_file.write_text(json.dumps(environment, indent=2, default=str) + "\n")
    return changes
