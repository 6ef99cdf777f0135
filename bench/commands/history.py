"""The ``history`` verb: read a series of runs, find each cell's change points, print the
change points and the trends, write the requested files, and return the exit code
(1 when the newest run starts a regression beyond its threshold; UserError → 2)."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console, Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from bench.commands.compare import compare_settings
from bench.commands.console import console
from bench.compare.history import (
    MIN_BEFORE_NEWEST,
    ChangePoint,
    History,
    Trend,
    history,
    load_runs,
)
from bench.compare.thresholds import Thresholds
from bench.core.metrics import METRICS
from bench.harness.results import check_output_folders, write_output
from bench.views.html.page import Page, text
from bench.views.report import markdown_table, markdown_text

SHOWN = ("latency_median", "throughput")
"""The metrics whose trend every cell shows; any other metric shows where it changed."""
CHANGE_COLUMNS = ("cell", "metric", "run", "before", "after", "change", "kind")
TREND_COLUMNS = ("cell", "metric", "trend", "first", "latest", "change points")
BLOCKS = "▁▂▃▄▅▆▇█"
MIN_SPAN = 0.10
"""A trend is drawn over at least ±5% of its middle figure."""


@dataclass
class HistoryRequest:
    """A ``history`` as given on the command line."""

    runs: list[Path]
    config: Path | None = None
    thresholds: list[str] = field(default_factory=list)
    markdown: Path | None = None
    json: Path | None = None
    html: Path | None = None


def run_history(request: HistoryRequest, console: Console) -> int:
    """Analyse the runs, print, write the requested files; 1 when the newest run starts a
    regression beyond its threshold."""
    thresholds = Thresholds.of_suite(compare_settings(request.config))
    thresholds = thresholds.with_specs(request.thresholds)
    check_output_folders(request.markdown, request.json, request.html)
    found = history(load_runs(request.runs), thresholds)
    console.print(terminal(found))
    if request.markdown:
        write_output(request.markdown, markdown(found))
    if request.json:
        write_output(request.json, json.dumps(found.to_dict(), indent=2, allow_nan=False) + "\n")
    if request.html:
        write_output(request.html, page(found))
    return 1 if found.failing else 0


def headline(found: History) -> str:
    newest = found.runs[-1].run_id
    failing = found.failing
    gate = f"FAIL: {len(failing)} regression(s) start at" if failing else "pass at"
    return (
        f"history of {len(found.runs)} runs, {len({t.cell for t in found.trends})} cells: "
        f"{len(found.change_points)} change point(s); {gate} the newest run {newest}"
    )


def context_lines(found: History) -> list[str]:
    thresholds = ", ".join(f"{k} {v:.0%}" for k, v in found.thresholds.effective().items())
    return [
        f"{len(found.runs)} runs, oldest {found.runs[0].run_id} ({found.runs[0].label}), "
        f"newest {found.runs[-1].run_id} ({found.runs[-1].label})",
        "each point: a run's median over its repetitions; change points: ruptures PELT "
        "(docs/history.md); the newest run is tested against the segment before it once "
        f"that has {MIN_BEFORE_NEWEST} runs",
        f"thresholds: {thresholds}; exit 1 when the newest run starts a regression beyond them",
    ]


def change_rows(found: History) -> list[list[str]]:
    """Every change point, newest first: where, the segment medians, and its kind."""
    return [
        [
            point.cell,
            METRICS[point.metric].label,
            point.run_id + (" (newest)" if point.newest else ""),
            _figure(point.before, point.metric),
            _figure(point.after, point.metric),
            f"{point.change:+.1%}",
            _kind(point),
        ]
        for point in found.change_points
    ]


def shown_trends(found: History) -> list[Trend]:
    return [t for t in found.trends if t.metric in SHOWN or t.change_points]


def trend_rows(found: History) -> list[list[str]]:
    rows = []
    for trend in shown_trends(found):
        present = [v for v in trend.values if v is not None]
        rows.append(
            [
                trend.cell,
                METRICS[trend.metric].label,
                sparkline(trend.values),
                _figure(present[0], trend.metric),
                _figure(present[-1], trend.metric),
                ", ".join(f"{p.run_id} {p.change:+.1%}" for p in trend.change_points) or "-",
            ]
        )
    return rows


def sparkline(values: list[float | None]) -> str:
    """One character per run, its height the figure's (a gap where the cell did not run)."""
    low, span = _scale(values)
    return "".join(
        " " if v is None else BLOCKS[round((v - low) / span * (len(BLOCKS) - 1))] for v in values
    )


def terminal(found: History) -> Group:
    changes = Table(title=headline(found), title_justify="left")
    for name in CHANGE_COLUMNS:
        changes.add_column(
            name, justify="right" if name in ("before", "after", "change") else "left"
        )
    for point, row in zip(found.change_points, change_rows(found), strict=True):
        style = "bold red" if point.fails else ("red" if _counts(point) else None)
        style = style if point.beyond_threshold else "dim"
        changes.add_row(*(escape(cell) for cell in row), style=style)
    trends = Table(title="trends (oldest run left)", title_justify="left")
    for name in TREND_COLUMNS:
        trends.add_column(name, justify="right" if name in ("first", "latest") else "left")
    for row in trend_rows(found):
        trends.add_row(*(escape(cell) for cell in row))
    return Group(*(Text(line) for line in context_lines(found)), changes, trends)


def markdown(found: History) -> str:
    lines = [f"### deploybench history — {markdown_text(headline(found))}", ""]
    lines += [f"- {markdown_text(line)}" for line in context_lines(found)]
    lines += ["", "#### Change points, newest first", ""]
    lines += [markdown_table(CHANGE_COLUMNS, change_rows(found)) if found.change_points else "none"]
    lines += ["", "<details><summary>trends</summary>", ""]
    lines += [markdown_table(TREND_COLUMNS, trend_rows(found)), "</details>", ""]
    return "\n".join(lines)


def page(found: History) -> str:
    """The history as a self-contained page: verdict, change points, one small trend
    chart per cell and metric."""
    title = headline(found)
    built = Page(f"deploybench history: {title}")
    built.heading(f"deploybench history — {title}", level=1)
    badge = "verdict-fail" if found.failing else "verdict-pass"
    built.raw(f'<p id="gate" class="{badge}">{text("FAIL" if found.failing else "pass")}</p>')
    built.items(context_lines(found))
    built.heading("Change points, newest first", anchor="change-points")
    rows = change_rows(found)
    classes = ["regressed" if _counts(p) else "" for p in found.change_points]
    built.table(CHANGE_COLUMNS, rows, row_classes=classes, ident="change-points-table")
    built.heading("Trends", anchor="trends")
    body = []
    for number, (trend, row) in enumerate(zip(shown_trends(found), trend_rows(found), strict=True)):
        cells = [text(row[0]), text(row[1]), trend_svg(trend, found, f"trend-{number}")]
        cells += [text(value) for value in row[3:]]
        body.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    head = "".join(f"<th>{text(name)}</th>" for name in TREND_COLUMNS)
    built.raw(
        f'<table class="sortable" id="trends-table"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )
    built.paragraph(
        "Each dot is a run (oldest left), its figure the median over its repetitions; a "
        "vertical line marks a change point (red: worse beyond the threshold, green: better "
        "beyond it, grey: within it); hover a dot for its run and figure."
    )
    return built.render()


def trend_svg(trend: Trend, found: History, ident: str, width: int = 220, height: int = 40) -> str:
    """A small inline SVG of one trend: a line through the runs, a dot per run (its tip
    the run and figure), a vertical line at each change point (its tip the change)."""
    present = [(i, v) for i, v in enumerate(trend.values) if v is not None]
    (low, span), steps = _scale(trend.values), max(len(trend.values) - 1, 1)

    def x(index: int) -> float:
        return 4 + index * (width - 8) / steps

    def y(value: float) -> float:
        return height - 4 - (value - low) / span * (height - 8)

    parts = [
        f'<line x1="{x(p.index):.1f}" x2="{x(p.index):.1f}" y1="0" y2="{height}" '
        f'stroke="{_colour(p)}" stroke-width="1.5"><title>{text(_tip(p))}</title></line>'
        for p in trend.change_points
    ]
    points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in present)
    parts.append(f'<polyline points="{points}" fill="none" stroke="#4c72b0" stroke-width="1"/>')
    for n, (i, v) in enumerate(present):
        tip = f"{found.runs[i].run_id}: {_figure(v, trend.metric)}"
        parts.append(
            f'<g id="mark-{ident}-{n}"><circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="2" '
            f'fill="#4c72b0"/><title>{text(tip)}</title></g>'
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" id="{ident}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img">{"".join(parts)}</svg>'
    )


def _scale(values: list[float | None]) -> tuple[float, float]:
    """The bottom and height of a trend's drawing: the figures' range, widened to at
    least MIN_SPAN of their middle, so that noise of a percent does not fill it."""
    present = [v for v in values if v is not None]
    low, high = min(present), max(present)
    middle = (low + high) / 2
    span = max(high - low, MIN_SPAN * middle) or 1.0
    return middle - span / 2, span


def _counts(point: ChangePoint) -> bool:
    return point.regression and point.beyond_threshold


def _kind(point: ChangePoint) -> str:
    kind = "regression" if point.regression else "improvement"
    within = "" if point.beyond_threshold else f" (within {point.threshold:.0%})"
    return ("REGRESSION starts at the newest run" if point.fails else kind) + within


def _colour(point: ChangePoint) -> str:
    if not point.beyond_threshold:
        return "#8a8a8a"
    return "#b00020" if point.regression else "#1b7f3b"


def _tip(point: ChangePoint) -> str:
    before, after = (_figure(v, point.metric) for v in (point.before, point.after))
    return f"{point.run_id}: {before} → {after} ({point.change:+.1%}), {_kind(point)}"


def _figure(value: float, metric: str) -> str:
    return f"{value:.4g} {METRICS[metric].unit}"


def history_verb(args: argparse.Namespace) -> int:
    request = HistoryRequest(
        runs=args.runs,
        config=args.config,
        thresholds=args.threshold,
        markdown=args.markdown,
        json=args.json,
        html=args.html,
    )
    return run_history(request, console())
