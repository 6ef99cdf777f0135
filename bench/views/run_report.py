"""A run folder's report: speedups.json, report.md and report.html written from its
records, the summary (and the LoadGen scenarios' table) printed, and its roofline where
there are peaks for it."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from bench.harness.environment import read_environment
from bench.harness.repetitions import merged
from bench.harness.results import (
    ENVIRONMENT_FILE,
    HTML_REPORT_FILE,
    REPORT_FILE,
    RESULTS_FILE,
    SPEEDUP_FILE,
    read_records,
)
from bench.harness.start import Run
from bench.views.html.run_page import run_page
from bench.views.report import (
    beside_markdown,
    beside_table,
    markdown_text,
    speedup_markdown,
    speedup_table,
    summary_markdown,
    summary_table,
)
from bench.views.reproduce import reproduction
from bench.views.roofline import find_hw, roofline_rows, roofline_table
from bench.views.serving import serving_markdown, serving_table
from bench.views.speedup import speedups


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
    budget = run.config.dataset.accuracy_budget()
    rows = speedups(records, seed=run.config.suite.seed, budget=budget)
    run.run_dir.write_json(SPEEDUP_FILE, [row.to_dict() for row in rows])
    heading = markdown_text(f"{run.config.suite.name} ({run.run_dir.run_id})")
    report = f"# {heading}\n\n{summary_markdown(records)}{serving_markdown(records)}"
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
    serving = serving_table(records)
    if serving is not None:
        console.print(serving)
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
