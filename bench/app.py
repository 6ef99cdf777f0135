"""What the command line's verbs do: execute a started or resumed run (bench.runs) with
its report and roofline, and ``report``, the machines side by side."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from bench.core.errors import UserError
from bench.environment import read_environment, record_system_end
from bench.html.machines import machines_page
from bench.html.run import run_page
from bench.machines import (
    Machine,
    beside_published,
    load_machines,
    machine_rows,
    machines_markdown,
    machines_table,
)
from bench.power import record_end_state
from bench.repetitions import merged
from bench.report import (
    beside_markdown,
    beside_table,
    markdown_text,
    speedup_markdown,
    speedup_table,
    summary_markdown,
    summary_table,
)
from bench.reproduce import reproduction
from bench.results import (
    ENVIRONMENT_FILE,
    HTML_REPORT_FILE,
    REPORT_FILE,
    RESULTS_FILE,
    SPEEDUP_FILE,
    check_output_folders,
    read_records,
    write_output,
)
from bench.roofline import find_hw, roofline_markdown, roofline_rows, roofline_table
from bench.runner import Measurer, run_suite
from bench.runs import Run
from bench.speedup import speedups


def local_end_state(environment_file: Path) -> tuple[list[str], list[str]]:
    """How this machine's power state changed over the run, and why it was not quiet
    (each written into the run's environment.json)."""
    return record_end_state(environment_file), record_system_end(environment_file)


def execute(
    run: Run,
    console: Console,
    show_progress: bool = True,
    hw_dirs: tuple[Path, ...] = (),
    measurer: Measurer | None = None,
    end_state: Callable[[Path], tuple[list[str], list[str]]] = local_end_state,
) -> int:
    """Run the missing cells (each by ``measurer``, default: in a worker here), write
    report.md and report.html (its roofline from ``hw_dirs``, else a matching ``hw``
    result beside the run), print the summary. ``end_state`` says how the measured
    machine's power state changed and why it was not quiet. Exit code: 0 when no cell
    failed, crashed or timed out, else 1."""
    try:
        run_suite(
            run.config,
            run.models,
            run.planned,
            run.run_dir,
            run.cache_dir,
            console,
            show_progress,
            measurer,
        )
    except UserError:
        if not run.resumed and not run.run_dir.records():  # leave no empty new run behind
            shutil.rmtree(run.run_dir.path)
        raise
    power_changes, noise = end_state(run.run_dir.path / ENVIRONMENT_FILE)
    return finish(run, console, hw_dirs, power_changes, noise)


def finish(
    run: Run,
    console: Console,
    hw_dirs: tuple[Path, ...] = (),
    power_changes: list[str] | None = None,
    noise: list[str] | None = None,
    show: bool = True,
) -> int:
    """Write a run folder's speedups.json, report.md and report.html from its records,
    with how the machine's power state changed and why it was not quiet; print its
    summary (``show``). Exit code: 0 when no cell failed, crashed or timed out, else 1."""
    power_changes, noise = power_changes or [], noise or []
    all_records = run.run_dir.records()
    records = merged(all_records)
    rows = speedups(records, seed=run.config.suite.seed)
    run.run_dir.write_json(SPEEDUP_FILE, [row.to_dict() for row in rows])
    heading = markdown_text(f"{run.config.suite.name} ({run.run_dir.run_id})")
    report = f"# {heading}\n\n{summary_markdown(records)}"
    if rows:
        report += f"\n## Low-precision speedup over fp32\n\n{speedup_markdown(rows)}"
    besides = reproduction(records)
    report += "".join(beside_markdown(beside) for beside in besides)
    if power_changes:
        changes = markdown_text("; ".join(power_changes))
        report += f"\nPower state changed during the run: {changes}\n"
    if noise:
        report += f"\nThe machine was not quiet: {markdown_text('; '.join(noise))}\n"
    (run.run_dir.path / REPORT_FILE).write_text(report)
    environment = read_environment(run.run_dir.path / ENVIRONMENT_FILE, "start a new run")
    hw = find_hw(run.run_dir.path, environment, list(hw_dirs))
    title = f"{run.config.suite.name} ({run.run_dir.run_id})"
    warnings = [f"power state changed during the run: {c}" for c in power_changes]
    warnings += [f"the machine was not quiet: {w}" for w in noise]
    page = run_page(title, records, rows, environment, hw, warnings)
    (run.run_dir.path / HTML_REPORT_FILE).write_text(page, encoding="utf-8")
    code = 1 if any(r.failed for r in all_records) else 0
    if not show:
        return code
    console.print(summary_table(records, f"{run.config.suite.name}: {run.run_dir.path}"))
    if rows:
        console.print(speedup_table(rows))
    for beside in besides:
        console.print(beside_table(beside))
    if power_changes:
        console.print("power state changed during the run: " + "; ".join(power_changes))
    for warning in noise:
        console.print(f"not quiet: {warning}", markup=False)
    return code


def show_roofline(run_dir: Path, hw_dirs: list[Path], console: Console) -> None:
    """Print the roofline table of a run's cells when there are peaks for it: from
    ``hw_dirs``, or a matching ``hw`` result beside the run (nothing printed without)."""
    records = merged(read_records(run_dir / RESULTS_FILE))
    environment = read_environment(run_dir / ENVIRONMENT_FILE, "start a new run")
    hw = find_hw(run_dir, environment, hw_dirs)
    rows = roofline_rows(records, hw)
    if hw and rows:
        console.print(roofline_table(rows, f"Roofline: {run_dir}"))


def report_command(
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
