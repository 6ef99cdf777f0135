"""Cells run several times (``run --repeat N``): grouping their records, and one merged
record per cell for the summary and speedup tables."""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.stats import Summary


def by_key(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Each cell's records in repetition order, cells in the order they first appear."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        grouped.setdefault(record["key"], []).append(record)
    for group in grouped.values():
        group.sort(key=lambda r: r.get("repetition", 0))
    return grouped


def merged(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per cell. A cell with one record is returned as it is. For several, the
    latency summary and raw times pool every repetition's times, throughput is the median
    of the repetitions' figures, and ``repetitions`` holds each one's median and status;
    every other figure (power, memory, cold start, accuracy) is the middle repetition's by
    median latency, not the first's (whose caches were cold). A cell is ``ok`` only when
    every repetition was; otherwise it takes the first other status, with how many
    repetitions had it."""
    return [_merge(group) if len(group) > 1 else group[0] for group in by_key(records).values()]


def status_of(group: list[dict[str, Any]]) -> tuple[str, str | None]:
    """A cell's status over its repetitions: ``ok`` only when every one ran; else the
    first other status, its reason prefixed with how many repetitions had such a status."""
    bad = [r for r in group if r["status"] != "ok"]
    if not bad:
        return "ok", None
    first = bad[0]
    if len(group) == 1:
        return first["status"], first.get("reason")
    return first[
        "status"
    ], f"{len(bad)}/{len(group)} repetitions {first['status']}: {first.get('reason')}"


def _merge(group: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in group if r["status"] == "ok"]
    by_median = sorted(ok, key=lambda r: (r.get("latency_ms") or {}).get("median") or 0.0)
    merged_record = dict(by_median[len(by_median) // 2] if ok else group[0])
    merged_record["repetitions"] = [
        {
            "repetition": r.get("repetition", 0),
            "status": r["status"],
            "median_ms": (r.get("latency_ms") or {}).get("median"),
        }
        for r in group
    ]
    merged_record["status"], merged_record["reason"] = status_of(group)
    if ok:
        times = [t for r in ok for t in r.get("raw_times_ms") or []]
        if times:
            merged_record["raw_times_ms"] = times
            merged_record["latency_ms"] = Summary.from_ms(times).to_dict()
        rates = [(r.get("throughput") or {}).get("samples_per_s") for r in ok]
        rates = [x for x in rates if x is not None]
        if rates:
            merged_record["throughput"] = {
                **(ok[0].get("throughput") or {}),
                "samples_per_s": float(np.median(rates)),
            }
    return merged_record
