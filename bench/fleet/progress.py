"""One progress display for the whole fleet: a bar per machine column with the cell it
measures now, and one for the run. Where the console is no terminal (a log, CI), one
line per cell that ends."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import Progress, TaskID

from bench.harness.runner import progress_bar


class FleetProgress:
    """What the dispatch loop tells the display: a cell started on a node, a cell ended."""

    def __init__(self, console: Console, progress: Progress | None, totals: dict[str, int]):
        self.console = console
        self.progress = progress
        self.total = sum(totals.values())
        self.done = 0
        self.tasks: dict[str, TaskID] = {}
        if progress is not None:
            self.overall = progress.add_task("fleet", total=self.total)
            for name, total in totals.items():
                self.tasks[name] = progress.add_task(f"{name}: waiting", total=total)

    def started(self, column: str, label: str, node: str) -> None:
        if self.progress is not None:
            where = f" on {node}" if node != column else ""
            self.progress.update(self.tasks[column], description=f"{column}: {label}{where}")

    def ended(self, column: str, label: str, status: str) -> None:
        self.done += 1
        if self.progress is None:
            line = f"[{self.done}/{self.total}] {column}: {label}: {status}"
            self.console.print(line, markup=False, highlight=False)
            return
        text = f"{column}: {label}: {status}"
        self.progress.update(self.tasks[column], advance=1, description=text)
        self.progress.update(self.overall, advance=1)


@contextmanager
def fleet_progress(
    console: Console, totals: dict[str, int], enabled: bool
) -> Iterator[FleetProgress | None]:
    """The display for columns of these many cells (None when disabled)."""
    if not enabled:
        yield None
        return
    if not console.is_terminal:
        yield FleetProgress(console, None, totals)
        return
    progress = progress_bar(console)
    with progress:
        yield FleetProgress(console, progress, totals)
