"""The seed lecture's GPU sheet as a table of ours: each row of ``seed-gpu-sheet.csv``
(P100 vs V100) with the figure ``hw`` measured for it on each device here, or why none.

The rows are one declarative table: which records answer a row and how they were taken.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.hw.records import HwRecord
from bench.hw.table import format_rate
from bench.published import GPU_SHEET, Beside, read_table, source


@dataclass(frozen=True)
class SheetRow:
    """A sheet row (its name as published), the ``kind`` and ``names`` of the records
    that answer it (the best ok one wins), and how ours is taken."""

    row: str
    kind: str
    names: tuple[str, ...]
    how: str
    prefix: bool = False
    """``names`` are prefixes (the peer copies are named by their pair)."""
    not_on_cpu: str = ""
    """Why a CPU has no such figure, for rows of GPU parts."""
    comparable: bool = True
    """False where ours measures something else than the published figure: no ratio."""


SHEET_ROWS = (
    SheetRow(
        "DL training (TFLOPS)",
        "matmul",
        ("fp16", "bf16"),
        "best fp16/bf16 product: the tensor-core rate mixed-precision training runs at",
    ),
    SheetRow(
        "DL inferencing (TFLOPS)",
        "matmul",
        ("fp16", "bf16"),
        "best fp16/bf16 product (the sheet's inference figures are fp16 tensor rates)",
    ),
    SheetRow("INT8 (TOPS)", "matmul", ("int8",), "int8 product, not in the sheet"),
    SheetRow("FP64 (TFLOPS)", "matmul", ("fp64",), "fp64 product"),
    SheetRow("FP32 (TFLOPS)", "matmul", ("fp32",), "fp32 product, TF32 off"),
    SheetRow(
        "HBM2 bandwidth (GB/s)",
        "transfer",
        ("d2d",),
        "device-to-device copy, read + write counted",
        not_on_cpu="a CPU has no device memory: its memory bandwidth is the STREAM row",
    ),
    SheetRow("STREAM triad (GB/s)", "stream", ("triad",), "STREAM triad, float64, best pass"),
    SheetRow(
        "NVLink bandwidth (GB/s)",
        "transfer",
        ("p2p",),
        "peer-to-peer copy, one way (the sheet's figures are the links' total, both ways)",
        prefix=True,
        not_on_cpu="a link between GPUs",
        comparable=False,
    ),
    SheetRow("L2 cache (MB)", "cache", ("L2",), "whole device, MiB"),
    SheetRow("L1 caches (MB)", "cache", ("L1",), "all L1 data caches together, MiB"),
)


@dataclass(frozen=True)
class SheetFigure:
    """Our figure for a row on one device (None with ``note`` saying why), and what
    answered it (``note``: the dtype, the size)."""

    value: float | None
    note: str


def sheet_figure(records: list[HwRecord], row: SheetRow, device: str) -> SheetFigure:
    """Our figure for ``row`` on ``device``: the best ok record, else the reason of the
    first record that was not measured, else that ``hw`` did not measure it."""
    mine = [
        r
        for r in records
        if r.kind == row.kind
        and r.device == device
        and (r.name.startswith(row.names) if row.prefix else r.name in row.names)
    ]
    ok = [r for r in mine if r.status == "ok" and r.best is not None]
    if ok:
        best = max(ok, key=lambda r: r.best or 0.0)
        return SheetFigure(best.best, _answered_by(best))
    if row.not_on_cpu and device == "cpu":
        return SheetFigure(None, f"not on a CPU: {row.not_on_cpu}")
    absent = [r for r in records if r.kind == "device" and r.device == device]
    reasons = [f"{r.name} {r.status}: {r.reason}" for r in mine + absent if r.reason]
    return SheetFigure(None, reasons[0] if reasons else "not measured by this hw run")


def _answered_by(record: HwRecord) -> str:
    if record.kind == "matmul":
        return f"{record.name} {record.size}³"
    if record.kind == "cache":
        return str(record.details.get("source", ""))
    if record.kind == "transfer" and record.name.startswith("p2p"):
        peer = "peer access" if record.details.get("peer_access") else "no peer access"
        return f"{record.name} ({peer})"
    return f"{(record.size or 0) / 2**20:,.0f} MiB"


def published_sheet() -> dict[str, dict[str, str]]:
    """The published rows by name: ``{"p100": …, "v100": …, "ratio": …}``."""
    return {line["row"]: line for line in read_table(GPU_SHEET)}


def sheet_devices(records: list[HwRecord]) -> list[str]:
    """The devices of ``records`` (GPUs first), absent ones included."""
    devices = list(dict.fromkeys(r.device for r in records))
    return sorted(devices, key=lambda d: (not d.startswith("cuda"), d))


def sheet_rows(records: list[HwRecord]) -> tuple[tuple[str, ...], list[list[str]]]:
    """``(columns, rows)``: each sheet row with P100 and V100 as published, ours per device
    (with the ratio to V100), and how each of ours was taken or why there is none."""
    published = published_sheet()
    devices = sheet_devices(records)
    rows = []
    for row in SHEET_ROWS:
        line = published.get(row.row, {})
        cells, notes = [], []
        for device in devices:
            figure = sheet_figure(records, row, device)
            cells.append(_with_ratio(figure.value, line.get("v100") if row.comparable else None))
            notes.append((f"{device}: " if len(devices) > 1 else "") + figure.note)
        notes.append(row.how)
        rows.append(
            [row.row, line.get("p100", "-"), line.get("v100", "-"), *cells, "; ".join(notes)]
        )
    return ("row", "P100", "V100", *devices, "ours: how measured, or why not"), rows


def gpu_sheet(records: list[HwRecord]) -> Beside:
    """The sheet's rows beside ours, for every renderer."""
    columns, rows = sheet_rows(records)
    caption = f"published: {source(GPU_SHEET)}"
    return Beside("gpu-sheet", SHEET_TITLE, columns, rows, caption, (columns[0], columns[-1]))


SHEET_TITLE = "The GPU sheet beside ours"


def _with_ratio(value: float | None, v100: str | None) -> str:
    if value is None:
        return "-"
    text = format_rate(value)
    try:
        ratio = value / float(v100 or "")
    except (ValueError, ZeroDivisionError):  # no published V100 figure to divide by
        return text
    return f"{text} ({ratio:.2g}x V100)" if ratio >= 0.01 else f"{text} (<0.01x V100)"
