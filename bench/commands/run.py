"""``cli.py run``: a suite measured by one executor (bench.commands.executors), then its
report written and printed. ``--resume`` comes back to the executor run.json names: one
path for every executor."""

from __future__ import annotations

from rich.console import Console

from bench.commands.execution import Display, execute, measured
from bench.commands.executors import get_executor
from bench.harness.executor import Target
from bench.harness.start import (
    ResumeRequest,
    RunRequest,
    executor_of,
    resumed_run,
    settle,
)


def run_command(request: RunRequest, target: Target, console: Console, display: Display) -> int:
    """Read the suite once, then measure it where ``target`` says; the exit code (0: no
    cell failed, crashed or timed out; 1: some did)."""
    setup = settle(request)
    if target.host:  # a device over SSH: its mode is known once it answers
        from bench.commands.edge import edge_run

        return edge_run(setup, target, console, display)
    name = target.executor or ("ray" if setup.config.cluster.address else "local")
    executor_class = get_executor(name)
    executor_class.check_target(target, None)
    with executor_class.opened(target, setup.config, console) as executor:
        return execute(setup, executor, console, display)[1]


def resume_command(
    request: ResumeRequest, target: Target, console: Console, display: Display
) -> int:
    """Finish the run in ``request.path`` on the executor that began it (its target
    given again: resume connects to nothing a results folder names)."""
    name = executor_of(request.path)
    executor_class = get_executor(name)
    executor_class.check_target(target, request.path)
    if executor_class.hands_over:
        with executor_class.opened(target, None, console) as executor:
            return executor.hand_over_resume(request.path, console)
    run = resumed_run(request)
    with executor_class.opened(target, run.config, console) as executor:
        return measured(run, executor, console, display)
