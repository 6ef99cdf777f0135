"""The LoadGen scenarios section of a run's page: the table of bench.views.serving (an
INVALID run's row red, its reason listed below) and, for each model, the latency-vs-load
curve of its Server cells whose peak was searched by bisection over LoadGen runs."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from bench.core.metrics import percentile_name
from bench.core.record import CellRecord
from bench.views.html import charts
from bench.views.html.page import Cell, Page
from bench.views.report import target_text
from bench.views.serving import (
    CAPTION,
    INLINE,
    INVALID_HEADING,
    TITLE,
    invalid_reasons,
    serving_columns,
    serving_records,
)


def serving_section(page: Page, records: list[CellRecord]) -> None:
    """The section; nothing when no LoadGen cell ran."""
    cells = serving_records(records)
    if not cells:
        return
    page.heading(TITLE, anchor="loadgen")
    columns = serving_columns(INLINE)
    rows = [
        [
            Cell(column.text(record), column.value(record)) if column.value else column.text(record)
            for column in columns
        ]
        for record in cells
    ]
    invalid = ["failed" if r.loadgen and r.loadgen.valid is False else "" for r in cells]
    page.table(
        [c.name for c in columns],
        rows,
        row_classes=invalid,
        caption=f"{CAPTION}. Red: INVALID (LoadGen's reason below).",
        ident="loadgen-table",
    )
    reasons = invalid_reasons(records)
    if reasons:
        page.paragraph(f"{INVALID_HEADING}:")
        page.items(reasons)
    _load_curves(page, cells)


def search_of(record: CellRecord) -> dict[str, Any]:
    """A Server cell's peak search (``loadgen.search``); empty where there was none."""
    figures = record.loadgen
    return (figures.search or {}) if figures and figures.scenario == "Server" else {}


def load_curve(record: CellRecord) -> charts.LoadCurve:
    """A searched Server cell's probes as a curve, labelled by runtime, device, precision
    and batch."""
    search, label = search_of(record), _label(record)
    probes = [
        charts.Probe(
            p["target_qps"], p.get("p50_ms"), p["p99_ms"], p["valid"] is True, _tip(label, p)
        )
        for p in search.get("probes") or []
        if p.get("target_qps") is not None and p.get("p99_ms") is not None
    ]
    bound = record.loadgen.target_latency_ms if record.loadgen else None
    return charts.LoadCurve(label, probes, search.get("peak_qps"), bound)


def _label(record: CellRecord) -> str:
    """Runtime, device, precision (requested→executed where they differ) and batch."""
    return f"{record.cell.runtime} {target_text(record)} b{record.cell.batch}"


def _tip(label: str, probe: dict[str, Any]) -> str:
    verdict = "VALID" if probe["valid"] else "INVALID"
    why = probe.get("why") or []
    done = probe.get("completed_qps")
    text = f"{label}: {probe['target_qps']:,.1f} QPS offered"
    text += f", {done:,.1f} completed" if done is not None else ""
    if probe.get("p50_ms") is not None:
        text += f", p50 {probe['p50_ms']:.3g} ms"
    text += f", p99 {probe['p99_ms']:.3g} ms: {verdict}"
    return text + (f" ({why[0]})" if why and not probe["valid"] else "")


def _load_curves(page: Page, records: list[CellRecord]) -> None:
    """One chart per model of its bisected Server cells; a note for each searched by
    LoadGen's FindPeakPerformance, which keeps no latencies per run."""
    by_model: dict[str, list[CellRecord]] = defaultdict(list)
    for record in records:
        if search_of(record):
            by_model[record.cell.model].append(record)
    for number, (model, group) in enumerate(by_model.items()):
        bisected = [r for r in group if search_of(r).get("method") == "bisect"]
        curves = [curve for curve in map(load_curve, bisected) if curve.probes]
        notes = [_search_note(r) for r in group]
        if curves:
            ident = f"loadcurve-{number}"
            figures = bisected[0].loadgen
            percentile = percentile_name((figures and figures.target_percentile) or 0.99)
            page.figure(
                charts.load_chart(curves, ident, percentile),
                f"{model}: latency against offered load in the Server scenario: each point a "
                "LoadGen run of the peak search at that target QPS, its p99 (circles, solid) "
                "and p50 (squares, dashed) latency per sample; filled: VALID, hollow: INVALID; "
                "dotted horizontal: the latency bound; star and dotted vertical: the peak, "
                "the highest VALID rate. Searched by bisection over LoadGen runs: the first at "
                "80% of the rate the slots served alone, then up by a quarter (or down to 80% "
                "of what an overloaded run completed) until a VALID and an INVALID rate "
                "bracket the peak, then halving the bracket to within the search's precision. "
                + " ".join(notes),
                ident,
            )
        elif notes:
            page.paragraph(" ".join(notes))


def _search_note(record: CellRecord) -> str:
    """How one cell's peak was searched, what it found and what it cost."""
    search, label = search_of(record), _label(record)
    peak = search.get("peak_qps")
    found = f"peak {peak:,.1f} QPS" if peak is not None else "no VALID rate"
    extra = f"; {search['note']}" if search.get("note") else ""
    if search.get("method") == "loadgen":
        return (
            f"{label}: {found}, found by LoadGen's FindPeakPerformance{extra}. "
            "It keeps no latencies per run, so there is no curve to draw."
        )
    runs = len(search.get("probes") or [])
    precision = search.get("precision")
    within = f" to within {precision:.0%}" if isinstance(precision, (int, float)) else ""
    return f"{label}: {found}{within} in {runs} LoadGen runs{extra}."
