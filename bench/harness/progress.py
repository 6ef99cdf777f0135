"""What a run shows while it measures: in a terminal, a bar with the cell measured now
and an ETA (a bar per machine column too, in a fleet run); elsewhere (a log, CI, a
device's progress streamed over SSH) one line per cell that ends."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import (
    Progress as Bars,
)


class Progress:
    """Told by the loop and the executor when a cell starts and ends. ``totals``: the
    cells each column has to do (one unnamed column, None, outside a fleet run)."""

    def __init__(self, console: Console, bars: Bars | None, totals: dict[str | None, int]):
        self.console = console
        self.bars = bars
        self.total = sum(totals.values())
        self.done = 0
        self.tasks: dict[str | None, TaskID] = {}
        if bars is not None:
            self.overall = bars.add_task(
                "starting" if None in totals else "fleet", total=self.total
            )
            for name, total in totals.items():
                if name is not None:
                    self.tasks[name] = bars.add_task(f"{name}: waiting", total=total)

    def started(self, column: str | None, label: str, where: str | None = None) -> None:
        """The column's machine begins ``label`` (on node ``where``)."""
        if self.bars is None:
            return
        if column is None:
            self.bars.update(self.overall, description=label)
            return
        on = f" on {where}" if where and where != column else ""
        self.bars.update(self.tasks[column], description=f"{column}: {label}{on}")

    def ended(self, column: str | None, label: str, status: str, where: str | None = None) -> None:
        """The cell ``label`` ended with ``status`` (on node ``where``, named where the
        column has nodes of other names: a shard)."""
        self.done += 1
        on = f" on {where}" if where and column is not None and where != column else ""
        text = f"{label}{on}: {status}" if column is None else f"{column}: {label}{on}: {status}"
        if self.bars is None:
            self.console.print(f"[{self.done}/{self.total}] {text}", markup=False, highlight=False)
            return
        if column is None:
            self.bars.update(self.overall, advance=1, description=text)
            return
        self.bars.update(self.tasks[column], advance=1, description=text)
        self.bars.update(self.overall, advance=1)


class Silent(Progress):
    """``--no-progress`` in a terminal: nothing shown."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.bars = None

    def started(self, column: str | None, label: str, where: str | None = None) -> None:
        pass

    def ended(self, column: str | None, label: str, status: str, where: str | None = None) -> None:
        pass


@contextmanager
def progress(console: Console, totals: dict[str | None, int], enabled: bool) -> Iterator[Progress]:
    """The display for columns of these many cells: bars in a terminal, lines elsewhere,
    nothing when not ``enabled`` in a terminal."""
    if enabled and not console.is_terminal:
        yield Progress(console, None, totals)
        return
    if not enabled:
        yield Silent(console)
        return
    with progress_bar(console) as bars:
        yield Progress(console, bars, totals)


def progress_bar(console: Console, enabled: bool = True) -> Bars:
    """The bar a run shows in a terminal: what it does now, done of total, elapsed, eta."""
    return Bars(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        disable=not enabled,
        transient=False,
    )
