"""The ``hw`` and ``report`` verbs, and the roofline printed after a run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from rich.console import Console

from bench.errors import UserError
from bench.hw.suite import HwOptions, create_hw_dir, run_hw, write_hw
from bench.hw.table import hw_table
from bench.machines import Machine, load_machines, machine_rows, machines_markdown, machines_table
from bench.repetitions import merged
from bench.results import ENVIRONMENT_FILE, RESULTS_FILE, read_records
from bench.roofline import find_hw, roofline_markdown, roofline_rows, roofline_table


def hw_command(options: HwOptions, results_root: Path, console: Console) -> int:
    """Measure, write ``<results_root>/<stamp>-hw/`` and print the table. Exit code 0 when
    nothing failed (an unavailable dtype or device is not a failure), else 1."""
    run_dir = create_hw_dir(results_root, options)
    try:
        with console.status("measuring") as status:
            records = run_hw(options, lambda label: status.update(f"measuring {label}"))
    except BaseException:  # Ctrl-C or a crash: leave no directory without hw.json behind
        shutil.rmtree(run_dir.path)
        raise
    write_hw(run_dir, records)
    console.print(hw_table(records, f"hw: {run_dir.path}"))
    return 1 if any(r.status == "failed" for r in records) else 0


def show_roofline(run_dir: Path, hw_dirs: list[Path], console: Console) -> None:
    """Print the roofline table of a run's cells when there are peaks for it: from
    ``hw_dirs``, or a matching ``hw`` result beside the run (nothing printed without)."""
    records = merged(read_records(run_dir / RESULTS_FILE))
    environment = json.loads((run_dir / ENVIRONMENT_FILE).read_text())
    hw = find_hw(run_dir, environment, hw_dirs)
    rows = roofline_rows(records, hw)
    if hw and rows:
        console.print(roofline_table(rows, f"Roofline: {run_dir}"))


def report_command(
    dirs: list[Path], hw_dirs: list[Path], markdown: Path | None, console: Console
) -> int:
    """The machines side by side, then each machine's roofline. A machine with no ``hw``
    figures among ``dirs`` + ``hw_dirs`` takes a matching one found beside its runs."""
    for path in [*dirs, *hw_dirs]:
        if not path.is_dir():
            raise UserError(f"{path} is not a directory: pass run or hw result directories")
    machines = load_machines([*dirs, *hw_dirs])
    for machine in machines:
        if not machine.hw and machine.cells:
            machine.hw = find_hw(machine.sources[0], machine.environment, [])
    rows = machine_rows(machines)
    console.print(machines_table(machines, rows))
    text = machines_markdown(machines, rows)
    for machine in machines:
        roofline = _machine_roofline(machine)
        if roofline:
            console.print(roofline_table(roofline, f"Roofline: {machine.label}"))
            text += f"\n## Roofline: {machine.label}\n\n{roofline_markdown(roofline)}"
    if markdown is not None:
        try:
            markdown.write_text(text)
        except OSError as exc:
            raise UserError(f"cannot write {markdown} ({exc.strerror})") from None
        console.print(f"written: {markdown}")
    return 0


def _machine_roofline(machine: Machine) -> list:
    return roofline_rows(list(machine.cells.values()), machine.hw)
