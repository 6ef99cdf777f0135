"""The paired worker: both sides of an A/B cell loaded in one process, their requests
alternated in random order in one timed loop.

Both sessions get the same inputs and the same thread settings, and are told that another
session shares the process (``LoadOptions.shared``: no thread pool spinning while the
other side runs). Which side is built and loaded first is drawn per worker, and which
runs first in each pair is drawn per pair, so that neither side owns a seat.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.core.cell import Cell, Target
from bench.core.record import Executed
from bench.core.settings import RuntimeSettings
from bench.core.spec import PreparedModel
from bench.core.timing import StopRule
from bench.harness.isolation import enter_phase
from bench.harness.worker import inputs_and_reference
from exporters.source import module_loader
from runtimes import get_runtime
from runtimes.base import LoadOptions, Session

SIDES = ("base", "new")
_clock = time.perf_counter_ns


@dataclass(frozen=True)
class PairJob:
    """One worker of an A/B cell: the two prepared models and their runtime options (the
    cell's ``model`` names the base), how long to warm up and measure, the threads, the
    suite's batch sizes, the cache, the seed that draws the load order and each pair's
    order, and the new side's precision where it differs from the cell's (a paired
    speedup: fp16 against fp32 in one worker)."""

    cell: Cell
    models: tuple[PreparedModel, PreparedModel]
    options: tuple[RuntimeSettings, RuntimeSettings]
    warmup: StopRule
    window: StopRule
    max_pairs: int
    threads: int
    batch_sizes: tuple[int, ...]
    cache_dir: Path
    seed: int
    new_precision: str | None = None

    def target(self, index: int) -> Target:
        """Side ``index``'s target: the cell's, the new side in its own precision."""
        if index == 1 and self.new_precision:
            return Target(self.cell.device, self.new_precision)
        return self.cell.target


@dataclass
class PairTimes:
    """What a paired worker measured: each pair's two request times (ns) and whether the
    base ran first, what each side executed, and the worker's notes."""

    base_ns: np.ndarray
    new_ns: np.ndarray
    base_first: np.ndarray
    executed: tuple[Executed, Executed]
    warmup_pairs: int
    window_s: float
    notes: list[str] = field(default_factory=list)


def measure_pair(job: PairJob) -> PairTimes:
    """Build and load both sides (in a drawn order), check each on the shared inputs, then
    time them alternately."""
    rng = np.random.default_rng(job.seed)
    runtime_class = get_runtime(job.cell.runtime)
    enter_phase("import")
    runtime_class.import_framework()
    feeds, _ = inputs_and_reference(job.models[0], job.cell.batch)
    sessions: dict[str, Session] = {}
    for index in rng.permutation(2):
        side = SIDES[index]
        sessions[side] = _loaded(job, index, feeds)
    base, new = sessions["base"], sessions["new"]
    for session in (base, new):
        session.stage(feeds)
    enter_phase("timed loop (both sides)")
    warm = time_pairs(base, new, job.warmup, job.max_pairs, rng)
    timed = time_pairs(base, new, job.window, job.max_pairs, rng)
    enter_phase("teardown")
    for session in (base, new):
        session.close()
    base_ns, new_ns, base_first, window_ns = timed
    return PairTimes(
        base_ns,
        new_ns,
        base_first,
        (base.executed, new.executed),
        warmup_pairs=warm[0].size,
        window_s=window_ns / 1e9,
    )


def _loaded(job: PairJob, index: int, feeds: dict[str, np.ndarray]) -> Session:
    """Side ``index``'s session, built, loaded and run once on ``feeds``; each phase
    names the side, so that a crash or timeout says whose it was."""
    side, model, cell = SIDES[index], job.models[index], job.cell
    options = LoadOptions(
        job.threads,
        1,
        "latency",
        job.options[index],
        cell.batch,
        job.batch_sizes,
        module_loader(model.source, model.seed),
        shared=True,
    )
    runtime = get_runtime(cell.runtime)()
    enter_phase(f"build ({side})")
    built = runtime.build(model, job.target(index), options, job.cache_dir)
    enter_phase(f"load ({side})")
    session = runtime.load(built, model, job.target(index), options)
    enter_phase(f"first inference ({side})")
    session.infer(feeds)
    return session


def time_pairs(
    base: Session, new: Session, rule: StopRule, max_pairs: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Pairs of requests, one per side in a drawn order, until ``rule`` is met or
    ``max_pairs`` were timed: each side's times (ns), which pairs ran the base first, and
    the loop's wall time (ns). Both sessions must have staged their inputs."""
    base_first = rng.random(max_pairs) < 0.5
    times = np.zeros((2, max_pairs), dtype=np.int64)
    steps = ((base.launch, base.synchronize), (new.launch, new.synchronize))
    count = 0
    start = _clock()
    while count < max_pairs:
        order = (0, 1) if base_first[count] else (1, 0)
        for index in order:
            launch, synchronize = steps[index]
            t0 = _clock()
            launch()
            synchronize()
            times[index, count] = _clock() - t0
        count += 1
        if rule.done(_clock() - start, count):
            break
    window = _clock() - start
    return times[0, :count], times[1, :count], base_first[:count], window
