"""``compare ... --html FILE``: the regression gate as a page a CI job keeps as an
artifact: the verdict, what was compared, a chart per metric of every cell's ratio with
its interval (worst first), the table of cells and every metric."""

from __future__ import annotations

from collections import defaultdict

from bench.compare import output
from bench.compare.gate import GATE_FAILS, Comparison
from bench.compare.significance import Change
from bench.core.metrics import METRICS
from bench.views.html import charts
from bench.views.html.page import Page

KINDS = {"regressed": "regressed", "improved": "improved", "inconclusive": "inconclusive"}
"""A change's colour by its verdict; unchanged is grey."""


def comparison_page(comparison: Comparison) -> str:
    headline = output.headline(comparison)
    page = Page(f"deploybench compare: {headline}")
    page.heading(f"deploybench compare — {headline}", level=1)
    badge = "verdict-fail" if comparison.failed else "verdict-pass"
    gate = "FAIL: a cell regressed or now fails" if comparison.failed else "pass"
    page.raw(f'<p id="gate" class="{badge}">gate: {gate}</p>')
    page.items(output.context_lines(comparison))
    page.heading("Cells, worst first", anchor="cells")
    page.table(
        output.COLUMNS,
        output.rows(comparison),
        row_classes=[_row_class(cell.verdict) for cell in comparison.cells],
        ident="cells-table",
    )
    for number, (metric, changes) in enumerate(metric_changes(comparison).items()):
        ident = f"compare-{number}"
        label = METRICS[metric].label if metric in METRICS else metric
        threshold = {change.threshold for _, change in changes}
        band = None
        if len(threshold) == 1:
            value = threshold.pop()
            band = (1 / (1 + value), 1 + value)
        page.heading(f"{label}: current / baseline", anchor=f"{ident}-section")
        page.figure(
            charts.interval_chart(
                [_mark(key, change) for key, change in changes],
                ident,
                f"{label}: current / baseline (log scale)",
                band=band,
            ),
            f"ratio of the medians over repetitions, whisker = 95% bootstrap interval; shaded: "
            f"within the threshold; {_direction(metric)}. Red: regressed, green: improved, "
            "orange: inconclusive, grey: unchanged. Worst first.",
            ident,
        )
    page.heading("Every metric", anchor="metrics")
    page.table(output.DETAIL_COLUMNS, output.detail_rows(comparison), ident="metrics-table")
    return page.render()


def metric_changes(comparison: Comparison) -> dict[str, list[tuple[str, Change]]]:
    """Each metric's changes with a finite ratio, the worst first."""
    by_metric: dict[str, list[tuple[str, Change]]] = defaultdict(list)
    for cell in comparison.cells:
        for change in cell.changes:
            if change.ratio == change.ratio and 0 < change.ratio < float("inf"):
                by_metric[change.metric].append((cell.key, change))
    for changes in by_metric.values():
        changes.sort(key=lambda item: -item[1].worse_by)
    return dict(by_metric)


def _mark(key: str, change: Change) -> charts.Mark:
    interval = (
        f" (95% CI {change.ci_low:.3f}–{change.ci_high:.3f})"
        if change.ci_low is not None and change.ci_high is not None
        else ""
    )
    p_value = f", p {change.p_value:.3g}" if change.p_value is not None else ""
    tip = (
        f"{key}: {change.baseline:.4g} → {change.current:.4g}, x{change.ratio:.3f}{interval}"
        f"{p_value}, {change.n_baseline}/{change.n_current} runs: {change.verdict}"
    )
    return charts.Mark(
        key, change.ratio, change.ci_low, change.ci_high, KINDS.get(change.verdict, "same"), tip
    )


def _direction(metric: str) -> str:
    known = METRICS.get(metric)
    if known is None or known.higher_is_worse:
        return "above 1 is worse"
    return "below 1 is worse"


def _row_class(verdict: str) -> str:
    if verdict in GATE_FAILS:
        return "regressed"
    return {"improved": "improved", "fixed": "improved", "inconclusive": "inconclusive"}.get(
        verdict, ""
    )
