"""``report DIR... --html FILE``: machines side by side as grouped bar charts (one chart
per unit: TFLOPS, GB/s, samples/s, speedup, joules), the table with its ratio column,
then each machine's roofline and environment."""

from __future__ import annotations

from bench.views.html import charts
from bench.views.html.page import Cell, Page
from bench.views.html.published_page import published_sections
from bench.views.html.run_page import environment_pairs, roofline_section
from bench.views.machines import Machine, Row, beside_published, caption

GROUPS = (
    ("tflops", "TFLOPS", "TFLOP/s (TOP/s for int8); higher is better", False),
    ("bandwidth", "GB/s", "GB/s; higher is better", False),
    ("samples", "samples/s", "samples/s (log scale); higher is better", True),
    ("speedup", "speedup over fp32", "speedup over fp32 (x); higher is better", False),
    ("energy", "J/inference", "joules per inference; lower is better", True),
)
"""Charts by the rows' unit: (id, what a row's label holds, axis label, log scale)."""


def machines_page(machines: list[Machine], rows: list[Row]) -> str:
    labels = [m.label for m in machines]
    page = Page("Machines side by side")
    page.heading("Machines side by side (measured)", level=1)
    for ident, holds, axis, log in GROUPS:
        chosen = [row for row in rows if holds in row.label and _measured(row)]
        if not chosen:
            continue
        page.heading(axis.split(";")[0].split(" (")[0], anchor=f"{ident}-section")
        page.figure(
            charts.bars_chart(
                [row.label for row in chosen],
                labels,
                [row.values for row in chosen],
                f"machines-{ident}",
                axis,
                log=log,
                tips=[
                    [
                        f"{label}: {row.label}: {text}"
                        for label, text in zip(labels, row.texts, strict=True)
                    ]
                    for row in chosen
                ],
            ),
            f"one bar per machine; a missing bar was not measured there. {axis}",
            f"machines-{ident}",
        )
    page.heading("The table", anchor="table")
    header = ["", *labels]
    ratio = len(machines) == 2
    if ratio:
        header.append(f"{labels[1]} / {labels[0]}")
    table = [
        [row.label, *(Cell(t, v) for t, v in zip(row.texts, row.values, strict=True))]
        + ([row.ratio()] if ratio else [])
        for row in rows
    ]
    page.table(header, table, caption=caption(machines), ident="machines-table")
    for number, machine in enumerate(machines):
        records = list(machine.cells.values())
        published_sections(page, beside_published(machine), machine.label, number)
        roofline_section(
            page, records, machine.hw, f"Roofline: {machine.label}", f"roofline-{number}"
        )
    for machine in machines:
        page.heading(f"Environment: {machine.label}", anchor=None)
        page.definitions(environment_pairs(machine.environment))
    return page.render()


def _measured(row: Row) -> bool:
    return any(isinstance(value, (int, float)) for value in row.values)
