"""Where a run's cells are measured: one interface for this machine, a device over SSH
and a Ray cluster (the registry: bench.commands.executors).

An executor adjusts the suite and its plan for its target, measures the cells it is
handed, reads the target's end state and names the command that resumes a run. Everything
else belongs to the one loop (bench.harness.runner.run_suite), the same for every
executor: the cells still to do and their repetitions, cells that end before they are
measured, appending each result as it ends, progress, Ctrl-C and a lost target.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from bench.core.cell import Cell
from bench.core.errors import UserError
from bench.core.record import CellRecord
from bench.core.spec import PreparedModel
from bench.harness.config import BenchConfig
from bench.harness.plan import ModelRequest, PlannedCell
from bench.harness.results import RunDir

if TYPE_CHECKING:
    from rich.console import Console

    from bench.harness.progress import Progress
    from bench.harness.start import Run, Setup


@dataclass(frozen=True)
class Target:
    """Where the user asked the cells to run (the command line's target flags): a named
    executor, a device over SSH (``host``), or a Ray cluster (the suite's ``[cluster]``,
    with ``--cluster`` over it); none of them: this machine."""

    executor: str | None = None
    host: str | None = None
    remote_mode: str | None = None
    cluster: str | None = None
    nodes: tuple[str, ...] = ()
    config_path: Path = Path("bench.toml")
    power_modes: tuple[str, ...] = ()
    clocks: tuple[str, ...] = ()
    cluster_flags: tuple[str, ...] = ()
    """The flags given that only a cluster takes (``--fleet``, ``--nodes``, ``--per-gpu``)."""


@dataclass
class Column:
    """One machine's share of a run: its run folder and its plan (cells skipped where
    that machine cannot run them). A run has one, unnamed, except a fleet run: one per
    machine column, each named."""

    run_dir: RunDir
    planned: list[PlannedCell]
    name: str | None = None

    def missing(self, repeat: int) -> list[tuple[int, PlannedCell]]:
        """Each repetition of each cell with no result yet, the whole suite once, then
        again (so that drift on the machine touches every cell alike); a skipped cell
        once."""
        done = {(r.key, r.repetition) for r in self.run_dir.records()}
        return [
            (rep, planned)
            for rep in range(repeat)
            for planned in self.planned
            if (planned.cell.key, rep) not in done and (planned.skip_reason is None or rep == 0)
        ]


@dataclass
class Todo:
    """A cell (one repetition) ready to measure: its column, and its prepared model as
    this cell must see it (the first int8 cell of a machine carries what calibrating
    cost; the others see it cached)."""

    column: Column
    cell: Cell
    repetition: int
    model: PreparedModel


class Executor:
    """Measures cells on one target. ``name`` is its registry key, kept in run.json so
    that ``--resume`` comes back to it; ``stops`` says what Ctrl-C stopped there."""

    name: ClassVar[str]
    stops: ClassVar[str] = ""
    hands_over: ClassVar[bool] = False
    """True when the target runs the whole loop itself (deploybench on a device):
    ``hand_over`` and ``hand_over_resume`` replace the loop."""

    @classmethod
    def check_target(cls, target: Target, resumed: Path | None) -> None:
        """UserError when ``target`` names another kind of machine than this executor
        measures on (``resumed``: the folder of the run being resumed)."""
        if resumed is None and target.cluster_flags:
            raise UserError(f"{target.cluster_flags[0]} needs --cluster (a Ray cluster)")
        if resumed is not None and target.host:
            raise UserError(
                f"{resumed} was run on this machine, not {target.host}: resume it without --host"
            )
        if resumed is not None and target.cluster:
            raise UserError(f"{resumed} was not run on a cluster: drop --cluster")

    @classmethod
    @contextmanager
    def opened(
        cls, target: Target, config: BenchConfig | None, console: Console
    ) -> Iterator[Executor]:
        """The executor, connected to its target for the run and closed after it."""
        yield cls()

    def hand_over(self, setup: Setup, console: Console) -> tuple[Path | None, int]:
        """A new run on a target that runs the loop itself: its folder, copied here, and
        the exit code."""
        raise NotImplementedError

    def hand_over_resume(self, path: Path, console: Console) -> int:
        raise NotImplementedError

    def adjust(self, config: BenchConfig, models: list[ModelRequest]) -> BenchConfig:
        """The suite as this target runs it (a device's TensorRT parses a lower opset)."""
        return config

    def columns(self, run: Run, console: Console) -> list[Column]:
        """The run's machine columns, each planned for what its machine has; written
        into the run folder (its environment, run.json)."""
        return [Column(run.run_dir, run.planned)]

    def measure(
        self, run: Run, ready: Iterator[Todo], progress: Progress
    ) -> Iterator[tuple[Column, CellRecord]]:
        """Each cell of ``ready`` measured, its record yielded as it ends. The default
        takes them one at a time, in order (``measure_cell``); an executor that runs
        several at once may take them all first."""
        for todo in ready:
            yield todo.column, self.measure_cell(run, todo)

    def measure_cell(self, run: Run, todo: Todo) -> CellRecord:
        raise NotImplementedError

    def end_state(self, column: Column) -> tuple[list[str], list[str]]:
        """How the column's machine's power state changed over the run and why it was
        not quiet (each written into its environment.json)."""
        return [], []

    def resume_hint(self, path: Path) -> str:
        """The command that finishes an interrupted run in ``path``."""
        return f"python cli.py run --resume {shlex.quote(str(path))}"

    def conclude(self, run: Run, codes: list[int], console: Console) -> int:
        """The exit code once every column's report is written."""
        return max(codes, default=0)
