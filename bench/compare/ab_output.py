"""What ``ab`` writes: the terminal table (worst first), Markdown, JSON and JUnit XML; each
says which design measured the cells and what the confirmation of an alert found."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

from rich.console import Group
from rich.text import Text

from bench.compare.ab import AbCell, Stage
from bench.compare.gate import GATE_FAILS, ORDER
from bench.compare.output import gate_table
from bench.compare.significance import REGRESSED
from bench.views.report import markdown_table, markdown_text

PAIRED = "paired in one worker"
COLUMNS = (
    "verdict",
    "cell",
    "base",
    "new",
    "change",
    "95% CI",
    "± reached",
    "workers",
    "confirmed",
    "note",
)


@dataclass
class AbResult:
    """The whole A/B gate: the sides as given, the design that ran and why, the settings,
    and every cell."""

    base: str
    new: str
    design: str
    why: str
    settings: dict[str, Any]
    cells: list[AbCell]
    results_dir: str | None = None

    @property
    def failed(self) -> bool:
        return any(cell.verdict in GATE_FAILS for cell in self.cells)

    def ordered(self) -> list[AbCell]:
        """Worst first: failed, regressed, inconclusive, improved, unchanged, skipped."""
        rank = {verdict: index for index, verdict in enumerate(ORDER)}
        return sorted(self.cells, key=lambda c: rank.get(c.verdict, len(ORDER)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "gate": "fail" if self.failed else "pass",
            "base": self.base,
            "new": self.new,
            "design": self.design,
            "design_reason": self.why,
            "settings": self.settings,
            "results_dir": self.results_dir,
            "cells": [cell.to_dict() for cell in self.ordered()],
            "cost": cost(self.cells),
        }


def cost(cells: list[AbCell]) -> dict[str, Any]:
    """Workers and seconds spent, in all and on confirmations."""
    stages = [stage for cell in cells for stage in cell.stages]
    confirming = [stage for stage in stages if stage.name != "first"]
    return {
        "workers": sum(len(stage.workers) for stage in stages),
        "seconds": round(sum(stage.seconds for stage in stages), 1),
        "confirmation_workers": sum(len(stage.workers) for stage in confirming),
        "confirmation_seconds": round(sum(stage.seconds for stage in confirming), 1),
    }


def headline(result: AbResult) -> str:
    counts: dict[str, int] = {}
    for cell in result.cells:
        counts[cell.verdict] = counts.get(cell.verdict, 0) + 1
    summary = ", ".join(f"{n} {verdict}" for verdict, n in counts.items())
    return f"gate: {'FAIL' if result.failed else 'pass'} ({summary})"


def context_lines(result: AbResult) -> list[str]:
    spent = cost(result.cells)
    settings = result.settings
    lines = [
        f"base: {result.base}",
        f"new:  {result.new}",
        f"design: {result.design} ({result.why})",
        f"threshold {settings['threshold']:.1%}; interval: 95%, Student's t over workers "
        f"of each worker's median pair ratio, floored by a bootstrap of its pairs; "
        f"stop at ±{settings['half_width']:.1%} or {settings['max_s']:g} s a cell",
        f"measured: {spent['workers']} workers in {spent['seconds']:.0f} s",
    ]
    if spent["confirmation_workers"]:
        lines.append(
            f"confirmation of alerts: {spent['confirmation_workers']} fresh workers, "
            f"{spent['confirmation_seconds']:.0f} s"
        )
    elif not settings["confirm"]:
        lines.append("alerts are not confirmed (--no-confirm)")
    return lines


def rows(result: AbResult) -> list[list[str]]:
    return [_row(cell) for cell in result.ordered()]


def _row(cell: AbCell) -> list[str]:
    stage = cell.decisive
    change = stage.estimate if stage else None
    if change is None:
        figures = ["-"] * 6
    else:
        figures = [
            f"{change.base_ms:.3f} ms",
            f"{change.new_ms:.3f} ms",
            f"{change.ratio - 1:+.2%}",
            f"{change.low - 1:+.2%} … {change.high - 1:+.2%}",
            f"±{change.half_width:.2%}" + (" (cap)" if stage.capped else ""),
            f"{change.workers} × {change.pairs // change.workers}",
        ]
    return [cell.verdict, cell.key, *figures, _confirmed(cell), _note(cell, stage)]


def _confirmed(cell: AbCell) -> str:
    if cell.confirmation is None:
        return "-"
    return "yes" if cell.confirmation.verdict == REGRESSED else "no"


def _note(cell: AbCell, stage: Stage | None) -> str:
    if cell.reason:
        return cell.reason
    notes = []
    first = cell.first
    if cell.confirmation is not None and first is not None and first.estimate is not None:
        notes.append(
            f"first stage {first.estimate.ratio - 1:+.2%} ({first.verdict}), "
            f"confirmation {cell.confirmation.verdict}"
        )
    asked = {"base": cell.cell.precision, "new": cell.new_precision or cell.cell.precision}
    executed = {side: e.get("precision") for side, e in cell.executed.items()}
    if executed and executed != asked:
        notes.append(f"executed base {executed['base']}, new {executed['new']}")
    if stage is not None and stage.note:
        notes.append(stage.note)
    return "; ".join(notes)


def terminal(result: AbResult) -> Group:
    right = ("base", "new", "change", "± reached")
    table = gate_table(headline(result), COLUMNS, rows(result), right)
    return Group(*(Text(line) for line in context_lines(result)), table)


def markdown(result: AbResult) -> str:
    lines = [f"### deploybench ab — {markdown_text(headline(result))}", ""]
    lines += [f"- {markdown_text(line)}" for line in context_lines(result)]
    lines += ["", markdown_table(COLUMNS, rows(result))]
    return "\n".join(lines)


def junit(result: AbResult) -> str:
    """One test case per cell; regressions and failed cells are failures."""
    cells = result.ordered()
    suite = ET.Element(
        "testsuite",
        name="deploybench ab",
        tests=str(len(cells)),
        failures=str(sum(cell.verdict in GATE_FAILS for cell in cells)),
        skipped=str(sum(cell.verdict == "skipped" for cell in cells)),
    )
    for cell, row in zip(cells, rows(result), strict=True):
        case = ET.SubElement(suite, "testcase", classname="ab", name=cell.key)
        message = f"{row[4]} {row[5]} ({row[-1] or cell.verdict})".strip()
        if cell.verdict in GATE_FAILS:
            ET.SubElement(case, "failure", message=message, type=cell.verdict)
        elif cell.verdict == "skipped":
            ET.SubElement(case, "skipped", message=cell.reason or "skipped")
        else:
            ET.SubElement(case, "system-out").text = f"{cell.verdict}: {message}"
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"
