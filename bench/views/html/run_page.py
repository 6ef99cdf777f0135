"""``report.html`` of a run: the summary table, LoadGen's scenarios (their table and
latency-vs-load curves), each cell's latency distribution, the low-precision speedups,
throughput against batch size and requests in flight, power and efficiency, the roofline
where an ``hw`` result exists, and the environment."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import numpy as np

from bench.core.cell import SERVING_SCENARIOS
from bench.core.record import CellRecord
from bench.hw.records import HwRecord, best_of
from bench.views.html import charts
from bench.views.html.page import Cell, Page
from bench.views.html.published_page import published_sections
from bench.views.html.serving_page import serving_section
from bench.views.report import (
    SERVING_NOTE,
    SPEEDUP_COLUMNS,
    speedup_rows,
    summary_columns,
    summary_rows,
)
from bench.views.reproduce import reproduction
from bench.views.roofline import COLUMNS as ROOFLINE_COLUMNS
from bench.views.roofline import RooflineRow, roofline_rows, row_cells
from bench.views.serving import serving_records
from bench.views.speedup import Speedup

LINES_PER_CHART = 10
"""Latency curves per chart: a model with more cells gets several charts."""
ITEMSIZE = {"fp64": 8, "fp32": 4, "tf32": 4, "fp16": 2, "bf16": 2, "int8": 1}


def run_page(
    title: str,
    records: list[CellRecord],
    speedups: list[Speedup],
    environment: dict[str, Any],
    hw: list[HwRecord],
    warnings: list[str],
) -> str:
    """The whole page for one run's merged records (one per cell)."""
    page = Page(title)
    page.heading(title, level=1)
    page.paragraph(_counts(records) + f" Machine: {environment_label(environment)}.")
    page.items(warnings)
    _summary(page, records)
    serving_section(page, records)
    _latency(page, records)
    _speedups(page, speedups)
    _scaling(page, records)
    _power(page, records, environment)
    published_sections(page, reproduction(records))
    roofline_section(page, records, hw)
    page.heading("Environment", anchor="environment")
    page.definitions(environment_pairs(environment))
    return page.render()


def _counts(records: list[CellRecord]) -> str:
    counts: dict[str, int] = defaultdict(int)
    for record in records:
        counts[record.status] += 1
    unstable = sum(bool(r.unstable) for r in records if r.ok)
    parts = [f"{n} {status}" for status, n in sorted(counts.items())]
    if unstable:
        parts.append(f"{unstable} unstable")
    return f"{len(records)} cells: " + ", ".join(parts) + "."


def row_class(record: CellRecord) -> str:
    """How a summary row is marked: failed, skipped, unstable, or not at all."""
    if record.failed:
        return "failed"
    if not record.ok:
        return "skipped"
    return "unstable" if record.unstable else ""


def _summary(page: Page, records: list[CellRecord]) -> None:
    page.heading("Summary", anchor="summary")
    columns = summary_columns(records)
    texts = summary_rows(records, columns)
    rows = [
        [
            Cell(text, _finite(column.value(record))) if column.value else text
            for column, text in zip(columns, row, strict=True)
        ]
        for record, row in zip(records, texts, strict=True)
    ]
    page.table(
        [c.name for c in columns],
        rows,
        row_classes=[row_class(r) for r in records],
        caption="Click a heading to sort. Red: failed, crashed or timed out (reason in "
        "status); grey: skipped; yellow: unstable (CV above the suite's cv_threshold)."
        + (f" {SERVING_NOTE}." if serving_records(records) else ""),
        ident="summary-table",
    )


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def cell_label(record: CellRecord, *, model: bool = True) -> str:
    cell = record.cell
    precision = record.executed_precision
    if precision != cell.precision:
        precision = f"{cell.precision}→{precision}"
    runs = f" ×{len(record.repetitions)}" if record.repetitions else ""
    text = f"{cell.runtime} {cell.device} {precision} {cell.scenario} b{cell.batch}{runs}"
    return f"{cell.model} {text}" if model else text


def latency_cells(records: list[CellRecord]) -> list[CellRecord]:
    """The cells the latency charts draw: ok, with raw per-request times."""
    return [r for r in records if r.ok and r.raw_times_ms]


def _latency(page: Page, records: list[CellRecord]) -> None:
    page.heading("Latency distributions", anchor="latency")
    cells = latency_cells(records)
    if not cells:
        page.paragraph("No cell has per-request times to draw.")
        return
    by_model: dict[str, list[CellRecord]] = defaultdict(list)
    for record in cells:
        by_model[record.cell.model].append(record)
    for number, (model, group) in enumerate(by_model.items()):
        charts_needed = -(-len(group) // LINES_PER_CHART)
        for part_number, part in enumerate(np.array_split(np.arange(len(group)), charts_needed)):
            series = [
                (cell_label(group[i], model=False), np.asarray(group[i].raw_times_ms)) for i in part
            ]
            ident = f"latency-{number}-{part_number}"
            page.figure(
                charts.latency_chart(series, ident),
                f"{model}: every measured request's latency (left: share of requests at or "
                "under x, dots at p50 and p99; right: in run order, each point the median of "
                "a bin). A step on the left is a bimodal cell; a slope on the right, drift.",
                ident,
            )


def speedup_marks(rows: list[Speedup]) -> list[charts.Mark]:
    """A bar per measured speedup; an accuracy failure is a cross, never a bar."""
    marks = []
    for row in rows:
        label = (
            f"{row.model} {row.runtime} {row.device} {row.precision} {row.scenario} b{row.batch}"
        )
        interval = (
            f" (95% CI {row.ci_low:.2f}–{row.ci_high:.2f}, {row.interval_over})"
            if row.ci_low is not None and row.ci_high is not None
            else ""
        )
        if row.verdict == "accuracy failed":
            kind = "failed"
            tip = (
                f"accuracy failed: {row.speedup:.2f}x is no win"
                if row.speedup
                else "accuracy failed"
            )
        else:
            verdict = row.verdict.split(",")[0]  # "faster, host-bound (...)": still faster
            kind = verdict if verdict in ("faster", "slower") else "unclear"
            tip = f"{row.speedup:.2f}x{interval}; {row.verdict}" if row.speedup else row.verdict
        if row.speedup:
            tip += f"; fp32 {row.fp32_median_ms:.3g} ms, {row.precision} {row.median_ms:.3g} ms"
            tip += f"; accuracy {row.accuracy or 'not checked'}"
        marks.append(charts.Mark(label, row.speedup, row.ci_low, row.ci_high, kind, tip))
    return marks


def _speedups(page: Page, rows: list[Speedup]) -> None:
    page.heading("Low-precision speedup over fp32", anchor="speedup")
    if not rows:
        page.paragraph("No low-precision cell has an fp32 twin in this run.")
        return
    marks = [mark for mark in speedup_marks(rows) if mark.value or mark.kind == "failed"]
    unmeasured = len(rows) - len(marks)
    if marks:
        page.figure(
            charts.interval_chart(marks, "speedup", "speedup over fp32 (log scale)"),
            "median fp32 / median low precision, whisker = 95% bootstrap interval. Green: "
            "faster, red: slower, grey: no clear difference; a cross: accuracy failed, so no "
            "win."
            + (
                f" Not drawn: {unmeasured} rows not measured (see the table)." if unmeasured else ""
            ),
            "speedup",
        )
    page.table(SPEEDUP_COLUMNS, speedup_rows(rows), ident="speedup-table")


def scaling_series(records: list[CellRecord], axis: str) -> list[charts.Series]:
    """samples/s against ``batch`` or ``in_flight``: one series per cell that differs only
    in that, kept where it has two points or more. LoadGen's scenarios are left out: their
    samples/s follow the load LoadGen offered (their rates are in the LoadGen table)."""
    groups: dict[tuple, list[tuple[float, float, str]]] = defaultdict(list)
    for record in records:
        cell, samples = record.cell, record.samples_per_s
        flight = record.executed and record.executed.in_flight
        if not record.ok or not samples or not flight or cell.scenario in SERVING_SCENARIOS:
            continue
        if axis == "batch":
            key = (cell.model, cell.runtime, cell.device, record.executed_precision, cell.scenario)
            x, what = cell.batch, f"batch {cell.batch}, {flight} in flight"
        else:
            key = (
                cell.model,
                cell.runtime,
                cell.device,
                record.executed_precision,
                f"b{cell.batch}",
            )
            x, what = flight, f"{flight} in flight ({cell.scenario}), batch {cell.batch}"
        groups[key].append((x, samples, f"{' '.join(key)}: {what}: {samples:,.1f} samples/s"))
    return [
        charts.Series(" ".join(key), points)
        for key, points in groups.items()
        if len({p[0] for p in points}) > 1
    ]


def _scaling(page: Page, records: list[CellRecord]) -> None:
    for axis, name, label in (
        ("batch", "batch size", "Throughput against batch size"),
        ("in_flight", "requests in flight", "Throughput against requests in flight"),
    ):
        series = scaling_series(records, axis)
        if not series:
            continue
        page.heading(label, anchor=f"scaling-{axis}")
        ident = f"scaling-{axis.replace('_', '')}"
        page.figure(
            charts.lines_chart(series, ident, name, "samples/s", logx=True),
            f"samples/s over the measured window against {name}; the latency scenario holds "
            "one request in flight, the throughput scenario several.",
            ident,
        )


def power_cells(records: list[CellRecord]) -> list[CellRecord]:
    return [r for r in records if r.ok and r.power and r.power.avg_w is not None]


def _power(page: Page, records: list[CellRecord], environment: dict[str, Any]) -> None:
    page.heading("Power and efficiency", anchor="power")
    measured = power_cells(records)
    if not measured:
        reasons = [r.power.unavailable for r in records if r.power and r.power.unavailable]
        sources = (environment.get("power") or {}).get("sources") or {}
        page.paragraph("Power was not measured in this run.")
        page.items(reasons[:1] or [f"{name}: {why}" for name, why in sources.items()])
        return
    labels = [cell_label(r) for r in measured]
    watts = [[r.power.avg_w] for r in measured]
    efficiency = [[r.power.samples_per_j] for r in measured]
    source = ", ".join(sorted({str(r.power.source) for r in measured}))
    page.figure(
        charts.bars_chart(labels, ["avg W"], watts, "power", "average W over the window"),
        f"average power over each cell's measured window ({source})",
        "power",
    )
    if any(e[0] for e in efficiency):
        page.figure(
            charts.bars_chart(labels, ["samples/J"], efficiency, "efficiency", "samples per joule"),
            "samples per joule over the same window (higher is better)",
            "efficiency",
        )


def roof(records: list[RooflineRow], hw: list[HwRecord]) -> charts.Roof:
    """The measured peaks of the precisions the cells ran, and the device's bandwidth."""
    device = records[0].device
    peaks = {}
    for precision in sorted({r.precision for r in records}):
        peak = best_of(hw, "matmul", device, (precision,))
        if peak and peak.best:
            peaks[precision] = peak.best
    bandwidth = best_of(hw, "stream", device, ("triad", "copy"))
    label = f"STREAM {bandwidth.name}" if bandwidth else ""
    return charts.Roof(peaks, bandwidth.best if bandwidth else None, label)


def roofline_points(rows: list[RooflineRow], records: list[CellRecord]) -> list[tuple]:
    """``(label, intensity, TFLOP/s, tip)`` for each row whose model has a parameter count.
    Intensity counts each weight read once per request (activations not counted): the
    least traffic there can be, so the most intensity."""
    params = {r.cell.model: r.model.params for r in records if r.model and r.model.params}
    points = []
    for row in rows:
        if not params.get(row.model):
            continue
        weight_bytes = params[row.model] * ITEMSIZE.get(row.precision, 4)
        intensity = row.flops_per_sample * row.flop_factor * row.batch / weight_bytes
        label = f"{row.model} {row.runtime} {row.precision} b{row.batch}"
        share = f", {row.share:.1%} of peak" if row.share is not None else ""
        tip = f"{label}: {row.achieved_tflops:.3g} TFLOP/s{share}, {intensity:.3g} FLOP/byte"
        points.append((label, intensity, row.achieved_tflops, tip))
    return points


def roofline_section(
    page: Page,
    records: list[CellRecord],
    hw: list[HwRecord],
    title: str = "Roofline",
    ident: str = "roofline",
) -> None:
    """The roofline chart and table of ``records`` against the peaks in ``hw`` (a note
    saying how to get them when there are none); nothing when no cell has a FLOP count."""
    rows = roofline_rows(records, hw)
    if not rows:
        return
    page.heading(title, anchor=f"{ident}-section")
    if not hw:
        page.paragraph(
            "No hw result for this machine: run python cli.py hw (its folder beside this run "
            "is found), or pass run --hw DIR, to draw this run against the measured peaks."
        )
        return
    per_device = [r for r in rows if r.device == rows[0].device]
    points = roofline_points(per_device, records)
    measured_roof = roof(per_device, hw)
    if points and (measured_roof.compute_tflops or measured_roof.bandwidth_gbs):
        page.figure(
            charts.roofline_chart(points, measured_roof, ident),
            f"{rows[0].device}: achieved TFLOP/s (counted forward FLOPs x samples/s) against "
            "FLOP per byte of weights read once per request (a lower bound on traffic, so an "
            "upper bound on intensity); dashed: the measured matrix-multiply peak of each "
            "precision under the measured STREAM bandwidth (cli.py hw).",
            ident,
        )
    page.table(ROOFLINE_COLUMNS, [row_cells(row) for row in rows], ident=f"{ident}-table")


def environment_label(environment: dict[str, Any]) -> str:
    cpu = environment.get("cpu") or {}
    gpus = [str(g.get("name")) for g in environment.get("gpus") or [] if isinstance(g, dict)]
    label = f"{cpu.get('model', 'unknown CPU')}, {cpu.get('physical_cores', '?')} cores"
    label += f", {environment.get('memory_gib', '?')} GiB"
    return label + (f", {', '.join(gpus)}" if gpus else "")


def environment_pairs(environment: dict[str, Any]) -> list[tuple[str, str]]:
    """The environment as (what, value) lines: machine, software, power state and changes."""
    libraries = environment.get("libraries") or {}
    git = environment.get("git") or {}
    power = environment.get("power") or {}
    pairs = [
        ("machine", environment_label(environment)),
        ("OS", str(environment.get("os", "?"))),
        ("Python", str(environment.get("python", "?"))),
        ("libraries", ", ".join(f"{k} {v}" for k, v in libraries.items()) or "?"),
    ]
    if git:
        pairs.append(("commit", f"{git.get('commit')}" + (" (dirty)" if git.get("dirty") else "")))
    for gpu in environment.get("gpus") or []:
        if isinstance(gpu, dict):
            pairs.append(("GPU", ", ".join(f"{k} {v}" for k, v in gpu.items())))
    for name, status in (power.get("sources") or {}).items():
        pairs.append((f"power source {name}", str(status)))
    state = power.get("state")
    if state:
        pairs.append(("power state at start", _flat(state)))
    for change in power.get("changes") or []:
        pairs.append(("power state changed", str(change)))
    for key, value in (environment.get("environment") or {}).items():
        pairs.append((f"env {key}", str(value)))
    return pairs


def _flat(value: Any) -> str:
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_flat(v)}" for k, v in value.items() if v is not None)
    return str(value)
