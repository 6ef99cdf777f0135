"""``cli.py report DIR...``: the machines side by side, then each machine's roofline,
printed and written as Markdown and HTML when asked."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from bench.core.errors import UserError
from bench.harness.results import check_output_folders, write_output
from bench.views.html.machines_page import machines_page
from bench.views.machines import (
    Machine,
    beside_published,
    load_machines,
    machine_rows,
    machines_markdown,
    machines_table,
)
from bench.views.report import beside_markdown, beside_table, markdown_text
from bench.views.roofline import find_hw, roofline_markdown, roofline_rows, roofline_table


def machines_report(
    dirs: list[Path],
    hw_dirs: list[Path],
    markdown: Path | None,
    console: Console,
    html: Path | None = None,
) -> int:
    """The machines side by side, then each machine's roofline, printed and written as
    Markdown and HTML when asked. A machine with no ``hw`` figures among ``dirs`` +
    ``hw_dirs`` takes a matching one found beside its runs."""
    for path in [*dirs, *hw_dirs]:
        if not path.is_dir():
            raise UserError(f"{path} is not a directory: pass run or hw result directories")
    check_output_folders(markdown, html)
    machines = load_machines([*dirs, *hw_dirs])
    for machine in machines:
        if not machine.hw and machine.cells:
            machine.hw = find_hw(machine.sources[0], machine.environment, [])
    rows = machine_rows(machines)
    console.print(machines_table(machines, rows))
    text = machines_markdown(machines, rows)
    for machine in machines:
        for beside in beside_published(machine):
            console.print(beside_table(beside, machine.label))
            text += beside_markdown(beside, machine.label)
        roofline = _machine_roofline(machine)
        if roofline:
            console.print(roofline_table(roofline, f"Roofline: {machine.label}"))
            text += (
                f"\n## Roofline: {markdown_text(machine.label)}\n\n{roofline_markdown(roofline)}"
            )
    if markdown is not None:
        write_output(markdown, text)
        console.print(f"written: {markdown}")
    if html is not None:
        write_output(html, machines_page(machines, rows))
        console.print(f"written: {html}")
    return 0


def _machine_roofline(machine: Machine) -> list:
    return roofline_rows(list(machine.cells.values()), machine.hw)
