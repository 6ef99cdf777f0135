"""The local executor: each cell in a worker process of its own on this machine."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.core.record import CellRecord
from bench.harness.environment import local_end_state
from bench.harness.executor import Column, Executor, Todo
from bench.harness.results import ENVIRONMENT_FILE
from bench.harness.runner import measure

if TYPE_CHECKING:
    from bench.harness.start import Run


class LocalExecutor(Executor):
    """This machine: the default."""

    name = "local"

    def measure_cell(self, run: Run, todo: Todo) -> CellRecord:
        return measure(
            todo.cell,
            todo.model,
            run.config,
            run.cache_dir,
            run.run_dir.run_id,
            todo.repetition,
        )

    def end_state(self, column: Column) -> tuple[list[str], list[str]]:
        return local_end_state(column.run_dir.path / ENVIRONMENT_FILE)
