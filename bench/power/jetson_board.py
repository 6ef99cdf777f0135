"""A Jetson's power-relevant state: board model, L4T release, nvpmodel mode, jetson_clocks."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench.power.jetson import l4t_release

_MODE = re.compile(r"NV Power Mode:\s*(\S+)")
_CONF_MODE = re.compile(r"<\s*POWER_MODEL\s+ID=(\d+)\s+NAME=(\S+?)\s*>")
_STATUS = re.compile(r"pmode:(\d+)")
GPU_DEVFREQ = ("gpu", "gv11b", "ga10b", "gp10b", "gm20b")
"""What a Jetson GPU's devfreq folder is named after (``17000000.ga10b``, ``gpu.0``)."""
THOR_DEVFREQ = "gpu-"
"""Thor's GPU devfreq folders (``gpu-gpc-0``, ``gpu-nvd-0``: jetson_stats' hw_detect):
not nvgpu's, and what jetson_clocks pins there is not known, so they are not read, and
the GPU's pinned state is unknown (None), never "off"."""
_GPU_DEVFREQ = re.compile("|".join(GPU_DEVFREQ), re.IGNORECASE)


def is_jetson(root: Path = Path("/")) -> bool:
    """True on an NVIDIA Jetson (an L4T release file, or a Jetson device-tree model)."""
    return (root / "etc/nv_tegra_release").is_file() or "jetson" in board_model(root).lower()


def board_model(root: Path = Path("/")) -> str:
    """``/proc/device-tree/model`` (NUL-terminated), empty when there is none."""
    try:
        return (root / "proc/device-tree/model").read_bytes().rstrip(b"\0").decode().strip()
    except OSError:
        return ""


def jetson_state(root: Path = Path("/")) -> dict[str, Any] | None:
    """The board's model, L4T/JetPack release, nvpmodel mode and whether jetson_clocks is
    on; None when this is not a Jetson."""
    if not is_jetson(root):
        return None
    try:
        release = l4t_release((root / "etc/nv_tegra_release").read_text())
    except OSError:
        release = None
    return {
        "model": board_model(root),
        "release": release,
        "nvpmodel": nvpmodel_mode(root),
        "jetson_clocks": jetson_clocks_state(root),
    }


def parse_nvpmodel_query(output: str) -> dict[str, Any] | None:
    """``nvpmodel -q`` output: ``NV Power Mode: MAXN`` then the mode id on the next line
    (warnings such as ``NVPM WARN: fan mode is not set!`` may come first)."""
    lines = output.splitlines()
    for index, line in enumerate(lines):
        match = _MODE.search(line)
        if match:
            following = lines[index + 1].strip() if index + 1 < len(lines) else ""
            return {"name": match.group(1), "id": int(following) if following.isdigit() else None}
    return None


def parse_nvpmodel_files(conf: str, status: str) -> dict[str, Any] | None:
    """The mode from ``/var/lib/nvpmodel/status`` (``pmode:0002 fmode:quiet``) named by
    ``/etc/nvpmodel.conf`` (``< POWER_MODEL ID=2 NAME=MODE_15W_6CORE >``)."""
    match = _STATUS.search(status)
    if not match:
        return None
    mode = int(match.group(1))
    names = {int(i): name for i, name in _CONF_MODE.findall(conf)}
    return {"name": names.get(mode), "id": mode}


def nvpmodel_mode(root: Path = Path("/")) -> dict[str, Any] | None:
    """The power mode: ``nvpmodel -q`` where it runs (only on the real root), else the
    nvpmodel status and configuration files; None when neither says."""
    if root == Path("/") and shutil.which("nvpmodel"):
        try:
            query = subprocess.run(
                ["nvpmodel", "-q"], capture_output=True, text=True, timeout=10, check=False
            )
            mode = parse_nvpmodel_query(query.stdout)
            if mode is not None:
                return {**mode, "from": "nvpmodel -q"}
        except (OSError, subprocess.SubprocessError):
            pass
    try:
        conf = (root / "etc/nvpmodel.conf").read_text()
        status = (root / "var/lib/nvpmodel/status").read_text()
    except OSError:
        return None
    mode = parse_nvpmodel_files(conf, status)
    return {**mode, "from": "/var/lib/nvpmodel/status"} if mode else None


def jetson_clocks_state(root: Path = Path("/")) -> dict[str, Any]:
    """Whether jetson_clocks is on, inferred as it works: it pins every CPU's and the GPU's
    minimum clock to its maximum. ``on`` is None when the clocks cannot be read."""
    cpus = _pinned(
        (d / "scaling_min_freq", d / "scaling_max_freq")
        for d in sorted(root.glob("sys/devices/system/cpu/cpu[0-9]*/cpufreq"))
    )
    gpus = _pinned(
        (d / "min_freq", d / "max_freq")
        for d in sorted(root.glob("sys/class/devfreq/*"))
        if _GPU_DEVFREQ.search(d.name) and not d.name.startswith(THOR_DEVFREQ)
    )
    return clocks_state(cpus, gpus)


def clocks_state(cpus: list[bool], gpus: list[bool]) -> dict[str, Any]:
    """jetson_clocks' state from whether each CPU's and GPU's minimum clock is its
    maximum (what it pins): on when all are, None where either list is empty (unread)."""
    cpu = all(cpus) if cpus else None
    gpu = all(gpus) if gpus else None
    on = None if cpu is None or gpu is None else cpu and gpu
    return {"on": on, "cpu_min_is_max": cpu, "gpu_min_is_max": gpu}


def _pinned(pairs: Iterable[tuple[Path, Path]]) -> list[bool]:
    """Whether each readable (min, max) file pair holds equal values."""
    results = []
    for minimum, maximum in pairs:
        try:
            results.append(minimum.read_text().strip() == maximum.read_text().strip())
        except OSError:
            continue
    return results
