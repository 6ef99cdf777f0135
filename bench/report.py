"""The summary table printed after a run, and the same table as Markdown (report.md)."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table

from bench.speedup import Speedup

COLUMNS = (
    "model",
    "runtime",
    "target",
    "scenario",
    "median ms",
    "p99 ms",
    "CV",
    "samples/s",
    "accuracy",
    "status",
)
_NUMERIC = ("median ms", "p99 ms", "CV", "samples/s", "avg W", "J/sample")
POWER_COLUMNS = ("avg W", "J/sample")


def summary_rows(records: list[dict[str, Any]]) -> list[list[str]]:
    """One row per cell: what ran (executed device and precision, with the request beside
    it when they differ), scenario and batch, latency median and p99, CV, throughput and
    accuracy verdict and status. An unstable cell's CV carries a '!'."""
    rows = []
    for record in records:
        cell = record["cell"]
        executed = record.get("executed") or {}
        latency = record.get("latency_ms") or {}
        throughput = (record.get("throughput") or {}).get("samples_per_s")
        rows.append(
            [
                cell["model"],
                cell["runtime"],
                _requested_vs_executed(cell["device"], executed.get("device"))
                + " "
                + _requested_vs_executed(cell["precision"], executed.get("precision")),
                f"{cell['scenario']} b{cell['batch']}" + _runs(record),
                _number(latency.get("median")),
                _number(latency.get("p99")),
                _cv(latency.get("cv"), record.get("unstable")),
                _number(throughput),
                (record.get("accuracy") or {}).get("verdict") or _loss(record),
                _status(record),
            ]
        )
    return rows


def summary_table(records: list[dict[str, Any]], title: str) -> Table:
    caption = (
        "CV! = unstable (CV above the suite's cv_threshold); samples/s = samples / wall time "
        "of the measured window; ×N = N repetitions (latency over all their times, samples/s "
        "their median)"
    )
    columns, rows = with_power_columns(records, COLUMNS, summary_rows(records))
    if columns != COLUMNS:
        caption += "; avg W and J/sample over the same window (each cell's power.source)"
    return _table(title, caption, columns, rows, "status")


def summary_markdown(records: list[dict[str, Any]]) -> str:
    return markdown_table(*with_power_columns(records, COLUMNS, summary_rows(records)))


def with_power_columns(
    records: list[dict[str, Any]], columns: tuple[str, ...], rows: list[list[str]]
) -> tuple[tuple[str, ...], list[list[str]]]:
    """``columns`` and ``rows`` with average W and energy per sample (J) put before the last
    column, when some cell measured power; unchanged otherwise."""
    powers = [record.get("power") or {} for record in records]
    if not any("avg_w" in power for power in powers):
        return columns, rows
    added = [
        [*row[:-1], _number(power.get("avg_w")), _number(power.get("j_per_sample")), row[-1]]
        for row, power in zip(rows, powers, strict=True)
    ]
    return (*columns[:-1], *POWER_COLUMNS, columns[-1]), added


def _requested_vs_executed(requested: str, executed: str | None) -> str:
    if executed is None or executed == requested:
        return requested
    return f"{requested}→{executed}"


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if value < 10 else f"{value:.1f}"


def _cv(cv: float | None, unstable: bool | None) -> str:
    if cv is None:
        return "-"
    return f"{cv:.0%}" + ("!" if unstable else "")


def _runs(record: dict[str, Any]) -> str:
    """' ×N' for a cell merged from N repetitions (bench.repetitions)."""
    runs = record.get("repetitions")
    return f" ×{len(runs)}" if runs else ""


def _loss(record: dict[str, Any]) -> str:
    """A train cell's loss at its first and last step (in place of an accuracy check)."""
    training = record.get("training") or {}
    first, last = training.get("loss_first"), training.get("loss_last")
    if first is None or last is None:
        return "-"
    return f"loss {first:.3g}→{last:.3g}"


def _status(record: dict[str, Any]) -> str:
    if record["status"] == "ok":
        return "ok"
    reason = record.get("reason") or ""
    return f"{record['status']}: {reason}" if reason else record["status"]


SPEEDUP_COLUMNS = (
    "model",
    "runtime",
    "target",
    "scenario",
    "fp32 ms",
    "low ms",
    "speedup",
    "95% CI",
    "accuracy",
    "verdict",
)


def speedup_rows(rows: list[Speedup]) -> list[list[str]]:
    """One row per low-precision cell: its fp32 and own medians, the speedup with its
    interval, the accuracy verdict and the overall verdict."""
    table = []
    for row in rows:
        measured = row.speedup is not None
        figures = (
            [
                _number(row.fp32_median_ms),
                _number(row.median_ms),
                f"{row.speedup:.2f}x",
                f"{row.ci_low:.2f}–{row.ci_high:.2f}" if row.ci_low is not None else "-",
            ]
            if measured
            else ["-"] * 4
        )
        table.append(
            [
                row.model,
                row.runtime,
                f"{row.device} {_requested_vs_executed(row.precision, row.executed)}",
                f"{row.scenario} b{row.batch}",
                *figures,
                row.accuracy or "-",
                row.verdict,
            ]
        )
    return table


def speedup_table(rows: list[Speedup]) -> Table:
    title = "Low-precision speedup over fp32 (median fp32 / median low precision)"
    caption = (
        "95% bootstrap interval over both cells' raw times (iterations are correlated: read "
        "narrow intervals with care); a speedup whose accuracy failed is no win"
    )
    return _table(title, caption, SPEEDUP_COLUMNS, speedup_rows(rows), "verdict")


def _table(
    title: str, caption: str, columns: tuple[str, ...], rows: list[list[str]], wraps: str
) -> Table:
    """A left-titled table; figure columns right-aligned; only the ``wraps`` column wraps."""
    table = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
    for name in columns:
        figure = name in _NUMERIC or name.endswith(("ms", "speedup"))
        table.add_column(name, justify="right" if figure else "left", no_wrap=name != wraps)
    for row in rows:
        table.add_row(*(escape(cell) for cell in row))  # text, not markup: 'deploybench[gpu]'
    return table


def speedup_markdown(rows: list[Speedup]) -> str:
    """The speedup table as Markdown, for report.md."""
    return markdown_table(SPEEDUP_COLUMNS, speedup_rows(rows))


def markdown_table(columns: tuple[str, ...], rows: list[list[str]]) -> str:
    """A Markdown table; a '|' inside a value becomes '/'."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(cell.replace("|", "/") for cell in row) + " |")
    return "\n".join(lines) + "\n"
