"""The ``hw`` results as a table: one row per figure, unavailable ones with the reason."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from bench.hw.records import HwRecord

COLUMNS = ("device", "benchmark", "what", "size", "best", "median", "min–max", "unit", "notes")
_KINDS = {
    "matmul": "matrix multiply",
    "stream": "STREAM",
    "transfer": "copy",
    "cache": "cache size",
    "device": "every benchmark",
}


def hw_rows(records: list[HwRecord]) -> list[list[str]]:
    """One row per record: rates with three significant figures, the size as the matrix
    side or MiB, and in notes the reason, the cap, the cache and the threads."""
    rows = []
    for record in records:
        if record.status != "ok":
            figures = ["-", "-", "-"]
        elif record.kind == "cache":  # a fact, not a measurement: no spread
            figures = [format_rate(record.best), "-", "-"]
        else:
            figures = [
                format_rate(record.best),
                format_rate(record.median),
                f"{format_rate(record.min)}–{format_rate(record.max)}",
            ]
        rows.append(
            [
                record.device,
                _KINDS.get(record.kind, record.kind),
                record.name,
                _size(record),
                *figures,
                record.unit,
                _notes(record),
            ]
        )
    return rows


def hw_table(records: list[HwRecord], title: str) -> Table:
    caption = (
        "matrix multiply: square M=N=K, 2·M·N·K operations per product; STREAM: float64 "
        "arrays, copy/scale count 2 arrays, add/triad 3; best = fastest repeat"
    )
    table = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
    for name in COLUMNS:
        right = name in ("size", "best", "median", "min–max")
        table.add_column(name, justify="right" if right else "left", no_wrap=name != "notes")
    for row in hw_rows(records):
        table.add_row(*(escape(cell) for cell in row))  # reasons are text, not markup
    return table


def format_rate(value: float | None) -> str:
    """Three significant figures, or whole numbers from 1000 up."""
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 1000 else f"{value:.3g}"


def _size(record: HwRecord) -> str:
    if record.size is None or record.kind == "cache":
        return "-"
    if record.kind == "matmul":
        return str(record.size)
    return f"{record.size / 2**20:,.0f} MiB"


def _notes(record: HwRecord) -> str:
    if record.status != "ok":
        return f"{record.status}: {record.reason}"
    details = record.details
    notes = [details["source"]] if record.kind == "cache" else []
    if "counted" in details:
        notes.append(f"counted: {details['counted']}")
    if "host_memory" in details:
        notes.append(f"{details['host_memory']} host memory")
    if "peer_access" in details:
        notes.append("peer access" if details["peer_access"] else "no peer access: staged")
    if details.get("capped"):
        notes.append(f"capped at {record.repeats} repeats")
    if record.kind == "stream" and details.get("cache_bytes"):
        notes.append(f"cache {details['cache_bytes'] / 2**20:,.0f} MiB ({details['cache_source']})")
    notes.extend(details.get("notes", []))
    if "threads" in details:
        notes.append(f"{details['threads']} threads")
    return "; ".join(notes)
