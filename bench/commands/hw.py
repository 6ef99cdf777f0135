"""The ``hw`` verb: measure with progress, write the result directory, print the tables."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench.commands.console import console
from bench.hw.records import HwRecord
from bench.hw.sheet import gpu_sheet
from bench.hw.suite import HwOptions, create_hw_dir, hw_options, run_hw, write_hw
from bench.hw.table import format_rate, hw_table
from bench.views.report import beside_table


class BarProgress:
    """In a terminal: a bar over the steps, the step under way as its label."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._task = progress.add_task("starting", total=None)

    def begin(self, index: int, total: int, label: str) -> None:
        self._progress.update(self._task, description=label, total=total, completed=index)

    def end(self, records: list[HwRecord], seconds: float) -> None:
        self._progress.advance(self._task)


class LineProgress:
    """In a pipe or a log: one line per step as it ends, with its figures and time."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._prefix = ""

    def begin(self, index: int, total: int, label: str) -> None:
        self._prefix = f"[{index + 1}/{total}] {label}"

    def end(self, records: list[HwRecord], seconds: float) -> None:
        summary = "; ".join(_summary(r) for r in records)
        line = escape(f"{self._prefix}: {summary} ({seconds:.1f} s)")
        self._console.print(line, highlight=False, soft_wrap=True)


def _summary(record: HwRecord) -> str:
    """``3.21 TFLOP/s`` (the best repeat), or the status and the reason."""
    if record.status != "ok":
        return f"{record.status}: {record.reason}"
    name = "" if record.kind == "matmul" else f"{record.name} "
    return f"{name}{format_rate(record.best)} {record.unit}"


def hw_command(options: HwOptions, results_root: Path, console: Console) -> int:
    """Measure, write ``<results_root>/<stamp>-hw/`` and print the tables (every figure,
    then the GPU sheet's rows). Exit code 0 when nothing failed (an unavailable or capped
    figure is not a failure), else 1."""
    run_dir = create_hw_dir(results_root, options)
    try:
        if console.is_terminal:
            columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
            with Progress(*columns, TimeElapsedColumn(), console=console) as progress:
                records = run_hw(options, BarProgress(progress))
        else:
            records = run_hw(options, LineProgress(console))
    except BaseException:  # Ctrl-C or a crash: leave no directory without hw.json behind
        shutil.rmtree(run_dir.path)
        raise
    write_hw(run_dir, records)
    console.print(hw_table(records, f"hw: {run_dir.path}"))
    console.print(beside_table(gpu_sheet(records)))
    return 1 if any(r.status == "failed" for r in records) else 0


def hw_verb(args: argparse.Namespace) -> int:
    mode = "quick" if args.quick else "thorough" if args.thorough else "default"
    options = hw_options(args.devices, args.dtypes, args.sizes, mode, args.stream_mib, args.max_s)
    return hw_command(options, args.results_dir, console())
