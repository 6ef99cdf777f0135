"""The LoadGen scenarios table: one row per ``ok`` MLPerf LoadGen cell (single_stream,
multi_stream, server, offline) with the scenario's own MLPerf metric as LoadGen logged it
(the record's ``loadgen`` section, bench.harness.serving), LoadGen's verdict, and for an
INVALID run LoadGen's first reason below the table.

The summary table's latency and samples/s of these cells are the runtime's per-request
times under LoadGen's load (the dispatcher's), not LoadGen's figures: these are here.
An INVALID run's figures are no result: its row says INVALID beside them, its reason is
listed, and no metric of compare (bench.core.metrics) reads them.
"""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from bench.core.cell import SERVING_SCENARIOS
from bench.core.metrics import loadgen_latency_ms, loadgen_rate, percentile_name
from bench.core.record import CellRecord, Serving
from bench.views.report import (
    SERVING_NOTE,
    Column,
    markdown_table,
    markdown_text,
    number_text,
    repetitions_mark,
    rich_table,
    target_text,
)

TITLE = "LoadGen scenarios"
CAPTION = (
    "MLPerf metric as LoadGen's detail log has it: SingleStream the p90 latency per sample "
    "and MultiStream the p99 per query (of 8 samples by default), each with LoadGen's "
    "early-stopping estimate of that percentile; Server the target QPS (peak: the highest "
    "VALID one searched), the QPS completed and the bounded percentile against its bound; "
    "Offline the samples/s completed. slots = requests in flight. An INVALID run's figures "
    "are no result: compare reads none of them. ×N = the middle repetition's run"
)
INVALID_HEADING = "INVALID runs, LoadGen's first reason"


def serving_records(records: list[CellRecord]) -> list[CellRecord]:
    """The ``ok`` cells of LoadGen's scenarios, in the records' order."""
    return [r for r in records if r.ok and r.cell.scenario in SERVING_SCENARIOS]


def verdict(record: CellRecord) -> str:
    """``VALID`` or ``INVALID`` as LoadGen judged the run, or why there is no verdict."""
    figures = record.loadgen
    if figures is None or figures.valid is None:
        return "no LoadGen result"
    return "VALID" if figures.valid else "INVALID"


def metric_parts(record: CellRecord) -> list[str]:
    """The scenario's MLPerf metric as short phrases (the terminal puts one a line)."""
    figures = record.loadgen
    if figures is None:
        return ["-"]
    scenario = figures.scenario
    if scenario in ("SingleStream", "MultiStream"):
        name = percentile_name(figures.target_percentile) if figures.target_percentile else "p?"
        per = "/query" if scenario == "MultiStream" else ""
        parts = [f"{name} {_ms(loadgen_latency_ms(figures))} ms{per}"]
        if figures.early_stopping_ms is not None:
            parts.append(f"estimate {_ms(figures.early_stopping_ms)} ms")
        return parts
    if scenario == "Server":
        return _server_parts(figures)
    if scenario == "Offline":
        return [f"{number_text(loadgen_rate(figures))} samples/s"]
    return ["-"]


def _server_parts(figures: Serving) -> list[str]:
    """Target (or searched peak) QPS, QPS completed, the percentile against the bound."""
    search = figures.search or {}
    if search and search.get("peak_qps") is None:
        # no rate was VALID: the record keeps the highest rate tried
        parts = ["no VALID rate", f"at {number_text(figures.target_qps)} QPS"]
    else:
        rate = "peak" if search else "target"
        parts = [f"{rate} {number_text(figures.target_qps)} QPS"]
    parts.append(f"completed {number_text(figures.completed_qps)} QPS")
    percentile = figures.target_percentile or 0.99
    name = percentile_name(percentile)
    latency = (figures.latency_ms or {}).get(name)
    bound = figures.target_latency_ms
    if latency is not None and bound is not None:
        relation = "≤" if latency <= bound else ">"
        parts.append(f"{name} {_ms(latency)} {relation} {bound:g} ms")
    else:
        parts.append(f"{name} {_ms(latency)} ms")
    return parts


def _ms(value: float | None) -> str:
    """A latency to 3 significant digits, trailing zeros kept (2.00, 0.0720, 463)."""
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:#.3g}"


def _slots(record: CellRecord) -> int | None:
    return record.executed.in_flight if record.executed else None


def serving_columns(separator: str) -> tuple[Column, ...]:
    """The table's columns; the metric's phrases joined by ``separator``."""

    def metric(record: CellRecord) -> str:
        return separator.join(metric_parts(record))

    return (
        Column("model", lambda r: r.cell.model),
        Column("runtime", lambda r: r.cell.runtime),
        Column("target", target_text),  # requested → executed (read back)
        Column("scenario", lambda r: f"{r.cell.scenario} b{r.cell.batch}" + repetitions_mark(r)),
        Column("slots", lambda r: number_text(_slots(r)), lambda r: _slots(r)),
        Column("MLPerf metric", metric),
        Column("LoadGen", verdict),
    )


INLINE = "; "
"""How the metric's phrases are joined on one line (Markdown, HTML)."""
TEXT_COLUMNS = ("model", "runtime", "target", "scenario", "MLPerf metric", "LoadGen")


def serving_rows(records: list[CellRecord], separator: str = INLINE) -> list[list[str]]:
    """One row per ``ok`` LoadGen cell of ``records``, a text per column."""
    columns = serving_columns(separator)
    return [[column.text(record) for column in columns] for record in serving_records(records)]


def invalid_reasons(records: list[CellRecord]) -> list[str]:
    """``<cell>: <LoadGen's first reason>`` for each INVALID run of ``records``."""
    lines = []
    for record in serving_records(records):
        figures = record.loadgen
        if figures is None or figures.valid is not False:
            continue
        cell = record.cell
        label = f"{cell.model} {cell.runtime} {target_text(record)} {cell.scenario} b{cell.batch}"
        lines.append(f"{label}: {(figures.why or ['LoadGen gave no reason'])[0]}")
    return lines


def serving_table(records: list[CellRecord]) -> Table | None:
    """The table for the terminal (the metric one phrase a line, so that it reads at 100
    columns), INVALID runs' reasons after the caption; None without LoadGen cells."""
    if not serving_records(records):
        return None
    names = tuple(c.name for c in serving_columns(INLINE))
    rows = serving_rows(records, "\n")
    table = rich_table(TITLE, CAPTION, names, rows, "MLPerf metric", TEXT_COLUMNS)
    reasons = invalid_reasons(records)
    if reasons:
        notes = "\n".join(f"INVALID: {escape(line)}" for line in reasons)
        table.caption = f"{CAPTION}\n{notes}"
    return table


def serving_markdown(records: list[CellRecord]) -> str:
    """The table as a report.md section (heading, table, caption, INVALID runs' reasons);
    empty without LoadGen cells."""
    if not serving_records(records):
        return ""
    names = tuple(c.name for c in serving_columns(INLINE))
    text = f"\n## {TITLE}\n\n{markdown_table(names, serving_rows(records))}\n"
    text += f"{markdown_text(CAPTION)}. {markdown_text(SERVING_NOTE)}.\n"
    reasons = invalid_reasons(records)
    if reasons:
        items = "\n".join(f"- {markdown_text(line)}" for line in reasons)
        text += f"\n{INVALID_HEADING}:\n\n{items}\n"
    return text
