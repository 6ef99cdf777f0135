"""What ``compare`` writes: the terminal table (worst first), Markdown for a pull-request
comment or ``$GITHUB_STEP_SUMMARY``, JSON, JUnit XML, and github-action-benchmark's
``customSmallerIsBetter`` JSON."""

from __future__ import annotations

import re
import statistics
import xml.etree.ElementTree as ET
from typing import Any

from rich.console import Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from bench.compare.gate import GATE_FAILS, CellComparison, Comparison
from bench.compare.sides import Side
from bench.compare.significance import INCONCLUSIVE, UNCHANGED, Change
from bench.compare.thresholds import ACCURACY, TASK, VALIDITY
from bench.core.metrics import METRICS
from bench.harness.quiet import noise_warnings
from bench.views.report import markdown_table, markdown_text

COLUMNS = (
    "verdict",
    "cell",
    "metric",
    "runs",
    "baseline",
    "current",
    "change",
    "95% CI",
    "p",
    "note",
)

NON_METRIC_UNITS = {ACCURACY: "scaled error", TASK: "0-1", VALIDITY: "VALID share"}
"""What the figures of a change that is no metric of METRICS are."""


def rows(comparison: Comparison) -> list[list[str]]:
    """One row per cell, worst first: its verdict and the change that decided it."""
    table = []
    for cell in comparison.cells:
        change = cell.decisive
        figures = _figures(change) if change else ["-"] * 7
        note = cell.note or (_note(change) if change else "")
        table.append([cell.verdict, cell.key, *figures, note])
    return table


def headline(comparison: Comparison) -> str:
    counts = ", ".join(f"{n} {verdict}" for verdict, n in comparison.counts().items())
    gate = "FAIL" if comparison.failed else "pass"
    return f"gate: {gate} ({counts})"


def context_lines(comparison: Comparison) -> list[str]:
    """Which runs, with which thresholds, and what differs between their environments."""
    from bench.compare.fingerprint import commits

    base, current = commits(comparison.baseline.environment, comparison.current.environment)
    thresholds = ", ".join(
        f"{name} {value:.0%}" for name, value in comparison.thresholds.effective().items()
    )
    lines = [
        f"baseline: {_side(comparison.baseline)}" + (f" at {base}" if base else ""),
        f"current:  {_side(comparison.current)}" + (f" at {current}" if current else ""),
        f"thresholds: {thresholds}; significance: Mann-Whitney U p < {comparison.alpha} "
        "over repetitions; interval: 95% bootstrap of the median ratio",
        f"threshold model: {_threshold_model(comparison)}",
    ]
    if comparison.different_hardware_allowed:
        lines.append("DIFFERENT HARDWARE (--allow-different-hardware): this compares machines")
    for name, side in (("baseline", comparison.baseline), ("current", comparison.current)):
        for change in (side.environment.get("power") or {}).get("changes") or []:
            lines.append(f"{name} run flagged: {change}")
        system = side.environment.get("system") or {}
        for warning in noise_warnings(system, system.get("end")):
            lines.append(f"{name} run not quiet: {warning}")
    for difference in comparison.differences:
        kind = "hardware" if difference.hardware else "software"
        kind += "" if difference.known else " (recorded on one side only)"
        lines.append(
            f"{kind} differs: {difference.what}: {difference.baseline} → {difference.current}"
        )
    return lines


def terminal(comparison: Comparison) -> Group:
    right = ("baseline", "current", "change", "p")
    table = gate_table(headline(comparison), COLUMNS, rows(comparison), right)
    return Group(*(Text(line) for line in context_lines(comparison)), table)


def gate_table(
    title: str, columns: tuple[str, ...], rows: list[list[str]], right: tuple[str, ...]
) -> Table:
    """A gate's terminal table: its first column the verdict (a failing one in bold red),
    ``right`` aligned right, the cell folded and the note wrapped; text, never markup."""
    table = Table(title=title, title_justify="left")
    for name in columns:
        table.add_column(
            name,
            justify="right" if name in right else "left",
            no_wrap=name not in ("note", "cell"),
            overflow="fold" if name == "cell" else "ellipsis",
        )
    for row in rows:
        style = "bold red" if row[0] in GATE_FAILS else None
        table.add_row(*(escape(cell) for cell in row), style=style)
    return table


def markdown(comparison: Comparison) -> str:
    """A headline, the context, the table of cells, and every metric in a details block."""
    lines = [f"### deploybench compare — {markdown_text(headline(comparison))}", ""]
    lines += [f"- {markdown_text(line)}" for line in context_lines(comparison)]
    lines += [
        "",
        markdown_table(COLUMNS, rows(comparison)),
        "<details><summary>every metric</summary>",
        "",
    ]
    lines += [markdown_table(DETAIL_COLUMNS, detail_rows(comparison)), "</details>", ""]
    return "\n".join(lines)


DETAIL_COLUMNS = ("cell", *COLUMNS[2:-1], "verdict", "note")


def detail_rows(comparison: Comparison) -> list[list[str]]:
    """Every metric of every cell (cells worst first): figures, verdict and note."""
    return [
        [cell.key, *_figures(change), change.verdict, _note(change)]
        for cell in comparison.cells
        for change in cell.changes
    ]


_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
"""Characters XML 1.0 forbids (a name could hold them); ``junit`` writes U+FFFD instead."""


def junit(comparison: Comparison) -> str:
    """JUnit XML: one test case per cell; regressions and new failures are failures, cells
    missing from the current run are skipped."""
    failures = sum(cell.verdict in GATE_FAILS for cell in comparison.cells)
    skipped = sum(cell.verdict in ("missing", "skipped") for cell in comparison.cells)
    suite = ET.Element(
        "testsuite",
        name="deploybench.compare",
        tests=str(len(comparison.cells)),
        failures=str(failures),
        errors="0",
        skipped=str(skipped),
    )
    for cell in comparison.cells:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"deploybench.{cell.cell['model']}.{cell.cell['runtime']}",
            name=cell.key,
        )
        message = _message(cell)
        if cell.verdict in GATE_FAILS:
            ET.SubElement(case, "failure", message=message, type=cell.verdict).text = message
        elif cell.verdict in ("missing", "skipped"):
            ET.SubElement(case, "skipped", message=message)
        ET.SubElement(case, "system-out").text = "\n".join(_describe(c) for c in cell.changes)
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    text = ET.tostring(root, encoding="unicode", xml_declaration=True)
    return _NOT_XML.sub("\ufffd", text) + "\n"  # ElementTree writes control characters as is


def github_benchmark(side: Side) -> list[dict[str, Any]]:
    """The current run in github-action-benchmark's ``customSmallerIsBetter`` format: one
    entry per cell and metric (median over repetitions; ``range`` their spread).
    Throughput becomes time per sample, so that smaller is better for every entry."""
    entries = []
    for cell in side.cells.values():
        if cell.status != "ok" or not cell.repetitions:
            continue
        for metric in METRICS.values():
            values = sorted(r[metric.name] for r in cell.repetitions if metric.name in r)
            if not values:
                continue
            name, unit = f"{cell.key} {metric.label}", metric.unit
            if not metric.higher_is_worse:  # samples/s → ms per sample
                values = sorted(1e3 / v for v in values if v > 0)
                name, unit = f"{cell.key} time per sample", "ms"
            if not values:
                continue
            entries.append(
                {
                    "name": name,
                    "unit": unit,
                    "value": statistics.median(values),
                    "range": f"{values[0]:.6g}–{values[-1]:.6g}",
                    "extra": f"{len(values)} repetitions of run {side.run_id}",
                }
            )
    return entries


def _figures(change: Change) -> list[str]:
    """metric, runs, baseline, current, change, interval, p."""
    metric = METRICS.get(change.metric)
    unit = metric.unit if metric else NON_METRIC_UNITS.get(change.metric, "")
    label = metric.label if metric else change.metric
    interval = (
        f"[{_percent(change.ci_low - 1)}, {_percent(change.ci_high - 1)}]"
        if change.ci_low is not None and change.ci_high is not None
        else "-"
    )
    p_value = "-" if change.p_value is None else f"{change.p_value:.3g}"
    return [
        label,
        f"{change.n_baseline}/{change.n_current}" if metric else "-",
        f"{change.baseline:.4g} {unit}",
        f"{change.current:.4g} {unit}",
        _percent(change.ratio - 1),
        interval,
        p_value,
    ]


def _note(change: Change) -> str:
    """The change's note; beside ``unchanged`` and ``inconclusive``, what these
    repetitions could have seen: the smallest change they detect (power 0.8 at the
    comparison's alpha), and the repetitions a side that would detect the threshold."""
    notes = [change.note] if change.note else []
    if change.threshold_model != "percentage":
        notes.append(f"threshold {change.threshold:.1%} ({change.threshold_model})")
    if change.verdict in (UNCHANGED, INCONCLUSIVE) and change.detectable is not None:
        sensitivity = f"detects ≥{change.detectable:.1%}"
        if change.detectable > change.threshold:
            needed = change.repetitions_needed
            reps = f"{needed} reps a side" if needed else "more repetitions than is practical"
            sensitivity += f"; {reps} for {change.threshold:.0%}"
        notes.append(sensitivity)
    return "; ".join(notes)


def _describe(change: Change) -> str:
    figures = _figures(change)
    label, runs, base, current, ratio, interval, p_value = figures
    text = f"{label} over {runs} runs: {base} → {current} ({ratio}, CI {interval}, p {p_value})"
    note = _note(change)
    return f"{text}: {change.verdict}" + (f" ({note})" if note else "")


def _message(cell: CellComparison) -> str:
    change = cell.decisive
    if cell.note or change is None:
        return f"{cell.verdict}: {cell.note or ''}".rstrip(": ")
    return f"{cell.verdict}: {_describe(change)}"


def _threshold_model(comparison: Comparison) -> str:
    """Which model set the thresholds: the percentages, or each cell's own noise."""
    derived = comparison.thresholds.cells
    if not derived:
        return "percentage (the same for every cell)"
    models = sorted({threshold.model for threshold in derived})
    cells = len({threshold.key for threshold in derived})
    return (
        f"per-cell noise ({'; '.join(models)}) for {cells} cells, percentage for the rest "
        "(each derived threshold is in its metric's note)"
    )


def _percent(fraction: float) -> str:
    if fraction != fraction or abs(fraction) == float("inf"):
        return "n/a"
    return f"{fraction:+.1%}"


def _side(side: Side) -> str:
    return side.label if side.run_id in side.label else f"{side.label} (run {side.run_id})"
