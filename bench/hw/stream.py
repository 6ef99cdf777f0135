"""STREAM bandwidth (copy, scale, add, triad on float64 arrays well beyond the last-level
cache, best of N as STREAM reports it) and pinned host↔device copies."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import psutil

from bench.hw.clock import DeviceClock
from bench.hw.records import STREAM_ARRAYS, HwRecord, rates, stream_bytes

SCALAR = 3.0
CACHE_MULTIPLE = 4
"""STREAM's rule: each array at least 4x the size of all last-level caches together."""
MIN_ARRAY_BYTES = 64 * 2**20
GPU_MIN_ARRAY_BYTES = 256 * 2**20
MEMORY_SHARE = 0.4
"""The three arrays take at most this share of the free memory."""
_SYSFS_CPU = Path("/sys/devices/system/cpu")
_SIZE = re.compile(r"^(\d+)\s*([KMG]?)", re.IGNORECASE)


def parse_cache_size(text: str) -> int | None:
    """Bytes of a sysfs / lscpu cache size such as ``491520K``, ``48 MiB`` or ``2097152``."""
    match = _SIZE.match(text.strip())
    if not match:
        return None
    return int(match.group(1)) * {"": 1, "K": 2**10, "M": 2**20, "G": 2**30}[match.group(2).upper()]


def cache_levels(sysfs: Path = _SYSFS_CPU) -> dict[int, int]:
    """Bytes of data cache per level over the whole machine, from sysfs: each distinct
    cache (by the CPUs sharing it) counted once, instruction caches left out."""
    caches: dict[tuple[int, str], int] = {}
    for index in sysfs.glob("cpu[0-9]*/cache/index[0-9]*"):
        try:
            level = int((index / "level").read_text())
            kind = (index / "type").read_text().strip()
            size = parse_cache_size((index / "size").read_text())
            shared = (index / "shared_cpu_list").read_text().strip()
        except (OSError, ValueError):
            continue
        if kind != "Instruction" and size:
            caches[(level, shared)] = size
    levels: dict[int, int] = {}
    for (level, _), size in caches.items():
        levels[level] = levels.get(level, 0) + size
    return levels


def llc_bytes(sysfs: Path = _SYSFS_CPU) -> tuple[int | None, str]:
    """``(bytes, source)`` of all last-level caches together: the highest cache level in
    sysfs, each distinct cache (by the CPUs sharing it) counted once; else lscpu's total."""
    levels = cache_levels(sysfs)
    if levels:
        top = max(levels)
        return levels[top], f"sysfs L{top}"
    return _lscpu_llc()


def _lscpu_llc() -> tuple[int | None, str]:
    try:
        text = subprocess.run(
            ["lscpu", "-B"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None, "unknown"
    sizes = {}
    for line in text.splitlines():
        match = re.match(r"^L(\d) cache:\s*(\S+)", line.strip())
        if match and (size := parse_cache_size(match.group(2))):
            sizes[int(match.group(1))] = size
    return (sizes[max(sizes)], f"lscpu L{max(sizes)}") if sizes else (None, "unknown")


def array_bytes(
    cache: int | None, free: int, minimum: int, requested: int | None = None
) -> tuple[int, list[str]]:
    """Bytes per STREAM array and notes: ``requested`` when given, else 4x ``cache`` (at
    least ``minimum``); in both cases at most a share of ``free`` memory for three arrays.
    A size under 4x the cache is noted, since caches then inflate the figure."""
    notes = []
    size = requested or max(CACHE_MULTIPLE * (cache or 0), minimum)
    if cache is None:
        notes.append("last-level cache size unknown")
    limit = int(free * MEMORY_SHARE / 3)
    if size > limit:
        size = limit
        notes.append("arrays limited by free memory")
    if cache and size < CACHE_MULTIPLE * cache:
        notes.append(f"arrays under {CACHE_MULTIPLE}x the last-level cache: caches inflate this")
    return size - size % 8, notes


def stream_plan(torch: Any, device: Any, requested_mib: int | None) -> dict[str, Any]:
    """Cache size, array size and notes for STREAM on ``device``."""
    requested = requested_mib * 2**20 if requested_mib else None
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        cache = getattr(props, "L2_cache_size", None) or None
        free, _ = torch.cuda.mem_get_info(device)
        size, notes = array_bytes(cache, free, GPU_MIN_ARRAY_BYTES, requested)
        return {
            "cache_bytes": cache,
            "cache_source": "L2 (CUDA)",
            "array_bytes": size,
            "notes": notes,
        }
    cache, source = llc_bytes()
    size, notes = array_bytes(cache, psutil.virtual_memory().available, MIN_ARRAY_BYTES, requested)
    return {"cache_bytes": cache, "cache_source": source, "array_bytes": size, "notes": notes}


def measure_stream(torch: Any, device: Any, plan: dict[str, Any], ntimes: int) -> list[HwRecord]:
    """Copy, scale, add and triad over three float64 arrays, each kernel timed alone in
    each of ``ntimes`` + 1 passes; the first pass is left out, as STREAM does."""
    elements = plan["array_bytes"] // 8
    a = torch.full((elements,), 1.0, dtype=torch.float64, device=device)
    b = torch.full((elements,), 2.0, dtype=torch.float64, device=device)
    c = torch.zeros(elements, dtype=torch.float64, device=device)
    kernels = {
        "copy": lambda: c.copy_(a),
        "scale": lambda: torch.mul(c, SCALAR, out=b),
        "add": lambda: torch.add(a, b, out=c),
        "triad": lambda: torch.add(b, c, alpha=SCALAR, out=a),
    }
    clock = DeviceClock(torch, device)
    seconds: dict[str, list[float]] = {name: [] for name in kernels}
    for iteration in range(ntimes + 1):
        for name, kernel in kernels.items():
            took = clock.time(kernel)
            if iteration:
                seconds[name].append(took)
    details = {k: v for k, v in plan.items() if k != "array_bytes"}
    if device.type == "cpu":
        details["threads"] = torch.get_num_threads()
    return [
        HwRecord(
            "stream",
            str(device),
            name,
            plan["array_bytes"],
            "GB/s",
            repeats=ntimes,
            work=stream_bytes(name, elements),
            details={**details, "arrays": STREAM_ARRAYS[name]},
            **rates(stream_bytes(name, elements), seconds[name], 1e9),
        )
        for name in kernels
    ]


def measure_transfer(torch: Any, device: Any, nbytes: int, repeats: int) -> list[HwRecord]:
    """Host→device and device→host copies of ``nbytes`` from / to pinned host memory,
    timed with CUDA events, best of ``repeats``."""
    host = torch.empty(nbytes, dtype=torch.uint8, pin_memory=True)
    host.fill_(1)
    on_device = torch.empty(nbytes, dtype=torch.uint8, device=device)
    clock = DeviceClock(torch, device)
    copies = {
        "h2d": lambda: on_device.copy_(host, non_blocking=True),
        "d2h": lambda: host.copy_(on_device, non_blocking=True),
    }
    records = []
    for name, copy in copies.items():
        seconds = clock.after_warm_up(copy, repeats)
        records.append(
            HwRecord(
                "transfer",
                str(device),
                name,
                nbytes,
                "GB/s",
                repeats=repeats,
                work=nbytes,
                details={"host_memory": "pinned"},
                **rates(nbytes, seconds, 1e9),
            )
        )
    return records


def measure_device_copy(torch: Any, device: Any, nbytes: int, repeats: int) -> HwRecord:
    """Device-to-device copy of ``nbytes`` within ``device``'s memory, timed with CUDA
    events, best of ``repeats``. Counted as CUDA's bandwidthTest counts it: each byte is
    read once and written once, so 2 x ``nbytes`` move per copy."""
    source = torch.ones(nbytes, dtype=torch.uint8, device=device)
    target = torch.empty_like(source)
    seconds = DeviceClock(torch, device).after_warm_up(lambda: target.copy_(source), repeats)
    return HwRecord(
        "transfer",
        str(device),
        "d2d",
        nbytes,
        "GB/s",
        repeats=repeats,
        work=2 * nbytes,
        details={"counted": "read + write, as CUDA's bandwidthTest"},
        **rates(2 * nbytes, seconds, 1e9),
    )


def measure_peer(torch: Any, source: Any, target: Any, nbytes: int, repeats: int) -> HwRecord:
    """One-way copy of ``nbytes`` from GPU ``source`` to GPU ``target`` (NVLink or PCIe,
    peer-to-peer where the pair allows it, as p2pBandwidthLatencyTest's unidirectional
    figure), timed with CUDA events on the source, best of ``repeats``."""
    peer = bool(torch.cuda.can_device_access_peer(source.index, target.index))
    there = torch.empty(nbytes, dtype=torch.uint8, device=target)
    here = torch.ones(nbytes, dtype=torch.uint8, device=source)
    clock = DeviceClock(torch, source)
    with torch.cuda.device(source):
        there.copy_(here)
        torch.cuda.synchronize(source)
        torch.cuda.synchronize(target)
        seconds = [clock.time(lambda: there.copy_(here, non_blocking=True)) for _ in range(repeats)]
        torch.cuda.synchronize(target)
    return HwRecord(
        "transfer",
        str(source),
        f"p2p {source}->{target}",
        nbytes,
        "GB/s",
        repeats=repeats,
        work=nbytes,
        details={"peer_access": peer, "to": str(target)},
        **rates(nbytes, seconds, 1e9),
    )
