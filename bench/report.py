"""The summary table printed after a run, and the same table as Markdown (report.md)."""

from __future__ import annotations

from typing import Any

from rich.table import Table

COLUMNS = (
    "model",
    "runtime",
    "target",
    "scenario",
    "median ms",
    "p99 ms",
    "CV",
    "samples/s",
    "status",
)
_NUMERIC = ("median ms", "p99 ms", "CV", "samples/s")


def summary_rows(records: list[dict[str, Any]]) -> list[list[str]]:
    """One row per cell: what ran (executed device and precision, with the request beside
    it when they differ), scenario and batch, latency median and p99, CV, throughput and
    status. An unstable cell's CV carries a '!'."""
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
                _status(record),
            ]
        )
    return rows


def summary_table(records: list[dict[str, Any]], title: str) -> Table:
    table = Table(
        title=title,
        title_justify="left",
        caption="CV! = unstable (CV above the "
        "suite's cv_threshold); samples/s = samples / wall time of the measured window",
        caption_justify="left",
    )
    for name in COLUMNS:
        wraps = name == "status"
        table.add_column(name, justify="right" if name in _NUMERIC else "left", no_wrap=not wraps)
    for row in summary_rows(records):
        table.add_row(*row)
    return table


def summary_markdown(records: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in summary_rows(records):
        lines.append("| " + " | ".join(cell.replace("|", "/") for cell in row) + " |")
    return "\n".join(lines) + "\n"


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
