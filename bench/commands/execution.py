"""A run measured by an executor, then each machine column's end state and report:
what ``run``, ``run --resume`` and each step of a device's power-mode sweep share."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from rich.console import Console

from bench.harness.executor import Column, Executor
from bench.harness.runner import run_suite
from bench.harness.start import Run, Setup, new_run
from bench.views.run_report import finish, show_roofline


@dataclass(frozen=True)
class Display:
    """How a run shows itself: a progress display, and hw results for the roofline."""

    show_progress: bool = True
    hw_dirs: tuple[Path, ...] = ()


def execute(
    setup: Setup, executor: Executor, console: Console, display: Display
) -> tuple[Path | None, int]:
    """``setup`` as a new run on ``executor``: its folder (None when none was made) and
    the exit code."""
    if executor.hands_over:
        return executor.hand_over(setup, console)
    setup = replace(setup, config=executor.adjust(setup.config, setup.models))
    run = new_run(setup, executor.name)
    return run.run_dir.path, measured(run, executor, console, display)


def measured(run: Run, executor: Executor, console: Console, display: Display) -> int:
    """Run the one loop on ``executor``, then each column's end state and report (its
    roofline from ``display.hw_dirs``, else a matching ``hw`` result beside the run)."""
    columns = run_suite(run, executor, console, display.show_progress)
    codes = []
    for column in columns:
        changes, noise = executor.end_state(column)
        shown = len(columns) == 1
        codes.append(
            finish(column_run(run, column), console, display.hw_dirs, changes, noise, shown)
        )
    if len(columns) == 1:
        show_roofline(columns[0].run_dir.path, list(display.hw_dirs), console)
    return executor.conclude(run, codes, console)


def column_run(run: Run, column: Column) -> Run:
    """The run as one column's folder holds it."""
    return Run(column.run_dir, run.config, run.models, run.planned, run.cache_dir, run.resumed)
