"""``cli.py run`` on this machine: execute a started or resumed run (bench.harness.start),
then write and print its report (bench.views.run_report)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from bench.core.errors import UserError
from bench.harness.environment import local_end_state
from bench.harness.results import ENVIRONMENT_FILE
from bench.harness.runner import Measurer, run_suite
from bench.harness.start import Run
from bench.views.run_report import finish


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
