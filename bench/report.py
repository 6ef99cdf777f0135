"""The summary table printed after a run, and the same table as Markdown (report.md)."""

from __future__ import annotations

from typing import Any

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
_NUMERIC = ("median ms", "p99 ms", "CV", "samples/s")


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
                f"{cell['scenario']} b{cell['batch']}",
                _number(latency.get("median")),
                _number(latency.get("p99")),
                _cv(latency.get("cv"), record.get("unstable")),
                _number(throughput),
                (record.get("accuracy") or {}).get("verdict") or "-",
                _status(record),
            ]
        )
    return rows


def summary_table(records: list[dict[str, Any]], title: str) -> Table:
    caption = (
        "CV! = unstable (CV above the suite's cv_threshold); samples/s = samples / wall time "
        "of the measured window"
    )
    return _table(title, caption, COLUMNS, summary_rows(records), "status")


def summary_markdown(records: list[dict[str, Any]]) -> str:
    return _markdown(COLUMNS, summary_rows(records))


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


def _status(record: dict[str, Any]) -> str:
    if record["status"] == "ok":
        return "ok"
    reason = record.get("reason") or ""
    return f"{record['status']}: {reason}" if reason else record["status"]


SPEEDUP_COLUMNS = (
    "model", "runtime", "target", "scenario", "fp32 ms", "low ms", "speedup", "95% CI",
    "accuracy", "verdict",
)  # fmt: skip


def speedup_rows(rows: list[Speedup]) -> list[list[str]]:
    """One row per low-precision cell: its fp32 and own medians, the speedup with its
    interval, the accuracy verdict and the overall verdict."""
    table = []
    for row in rows:
        measured = row.speedup is not None
        figures = (
            [_number(row.fp32_median_ms), _number(row.median_ms), f"{row.speedup:.2f}x",
             f"{row.ci_low:.2f}–{row.ci_high:.2f}" if row.ci_low is not None else "-"]
            if measured else ["-"] * 4
        )  # fmt: skip
        table.append([
            row.model, row.runtime,
            f"{row.device} {_requested_vs_executed(row.precision, row.executed)}",
            f"{row.scenario} b{row.batch}", *figures, row.accuracy or "-", row.verdict,
        ])  # fmt: skip
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
        table.add_row(*row)
    return table


def speedup_markdown(rows: list[Speedup]) -> str:
    """The speedup table as Markdown, for report.md."""
    return _markdown(SPEEDUP_COLUMNS, speedup_rows(rows))


def _markdown(columns: tuple[str, ...], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(cell.replace("|", "/") for cell in row) + " |")
    return "\n".join(lines) + "\n"
