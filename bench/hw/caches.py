"""Cache sizes as facts beside the measured figures (the sheet's L2 and L1 rows): sysfs
on the CPU, the CUDA device properties on a GPU."""

from __future__ import annotations

from typing import Any

from bench.hw.records import HwRecord
from bench.hw.stream import cache_levels


def cache_records(torch: Any, device: Any) -> list[HwRecord]:
    """The L1 and L2 data-cache sizes of ``device`` in MiB (``best``), whole-device totals;
    unavailable with the reason where the platform does not report one."""
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        sms = props.multi_processor_count
        l2 = getattr(props, "L2_cache_size", 0)
        shared = getattr(props, "shared_memory_per_multiprocessor", 0)
        l1_reason = "CUDA does not report the L1 size" + (
            f" (shared memory, carved from it: {shared // 1024} KiB per SM x {sms} SMs)"
            if shared
            else ""
        )
        return [
            _cache(device, "L1", None, l1_reason, "CUDA device properties"),
            _cache(
                device, "L2", l2 or None, "this torch does not report it", "CUDA device properties"
            ),
        ]
    levels = cache_levels()
    return [
        _cache(device, f"L{level}", levels.get(level), "not in sysfs here", "sysfs")
        for level in (1, 2)
    ]


def _cache(device: Any, name: str, size: int | None, reason: str, source: str) -> HwRecord:
    if not size:
        return HwRecord.unavailable("cache", str(device), name, "MiB", reason)
    return HwRecord(
        "cache", str(device), name, size, "MiB", best=size / 2**20, details={"source": source}
    )
