"""The job a cell's worker process receives: everything it needs, typed, and nothing it
must look up again. It crosses the process boundary by pickling, as it is."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.core.cell import Cell
from bench.core.settings import LoadgenConfig, MeasureConfig, PowerSettings, RuntimeSettings
from bench.core.spec import PreparedModel


@dataclass(frozen=True)
class CellJob:
    """One cell to measure: the prepared model, how to measure, the threads and requests
    in flight resolved for it, the suite's batch sizes (a shape profile spans them), the
    cell's runtime options (its runtime's own model), the cache and the power source, and
    how LoadGen runs a LoadGen scenario's cell."""

    cell: Cell
    model: PreparedModel
    measure: MeasureConfig
    threads: int
    in_flight: int
    batch_sizes: tuple[int, ...]
    options: RuntimeSettings
    cache_dir: Path
    power: PowerSettings
    spawned_at: float
    loadgen: LoadgenConfig = LoadgenConfig()
