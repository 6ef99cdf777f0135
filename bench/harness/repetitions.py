"""Cells run several times (``run --repeat N``): grouping their records, and one merged
record per cell for the summary and speedup tables."""

from __future__ import annotations

import numpy as np

from bench.core.record import CellRecord, RepetitionSummary, Throughput
from bench.core.stats import Summary


def by_key(records: list[CellRecord]) -> dict[str, list[CellRecord]]:
    """Each cell's records in repetition order, cells in the order they first appear."""
    grouped: dict[str, list[CellRecord]] = {}
    for record in records:
        grouped.setdefault(record.key, []).append(record)
    for group in grouped.values():
        group.sort(key=lambda r: r.repetition)
    return grouped


def merged(records: list[CellRecord]) -> list[CellRecord]:
    """One record per cell. A cell with one record is returned as it is. For several, the
    latency summary and raw times pool every repetition's times, throughput is the median
    of the repetitions' figures, and ``repetitions`` holds each one's median and status;
    every other figure (power, memory, cold start, accuracy) is the middle repetition's by
    median latency, not the first's (whose caches were cold). A cell is ``ok`` only when
    every repetition was; otherwise it takes the first other status, with how many
    repetitions had it."""
    return [_merge(group) if len(group) > 1 else group[0] for group in by_key(records).values()]


def status_of(group: list[CellRecord]) -> tuple[str, str | None]:
    """A cell's status over its repetitions: ``ok`` only when every one ran; else the
    first other status, its reason prefixed with how many repetitions had such a status."""
    bad = [r for r in group if not r.ok]
    if not bad:
        return "ok", None
    first = bad[0]
    if len(group) == 1:
        return first.status, first.reason
    return first.status, f"{len(bad)}/{len(group)} repetitions {first.status}: {first.reason}"


def _merge(group: list[CellRecord]) -> CellRecord:
    ok = [r for r in group if r.ok]
    by_median = sorted(ok, key=lambda r: r.median_ms or 0.0)
    status, reason = status_of(group)
    update: dict = {
        "status": status,
        "reason": reason,
        "repetitions": [
            RepetitionSummary(repetition=r.repetition, status=r.status, median_ms=r.median_ms)
            for r in group
        ],
    }
    times = [t for r in ok for t in r.raw_times_ms or []]
    if times:
        update["raw_times_ms"] = times
        update["latency_ms"] = Summary.from_ms(times)
    rates = [r.samples_per_s for r in ok if r.samples_per_s is not None]
    if rates:
        throughput = ok[0].throughput or Throughput()
        update["throughput"] = throughput.model_copy(
            update={"samples_per_s": float(np.median(rates))}
        )
    middle = by_median[len(by_median) // 2] if ok else group[0]
    return middle.model_copy(update=update)
