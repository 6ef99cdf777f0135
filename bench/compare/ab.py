"""The paired A/B gate: both sides of each cell measured in the same workers, until the
ratio is known, and an alert measured again before it counts.

A cell's measurement goes in stages. The first stage adds paired workers (see
bench.harness.pairs), one per cell per round, the cells in a shuffled order each round
so that the machine's drift touches them alike, until the ratio's interval (see
bench.compare.pairs) is within the target half-width or the cell has measured for its
time cap. A cell whose first stage says ``regressed`` is an alert: a second stage with
fresh workers measures it again, and the gate fails only when that one says
``regressed`` too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.compare.pairs import Estimate, WorkerPairs, estimate, verdict
from bench.compare.significance import INCONCLUSIVE, REGRESSED
from bench.core.cell import Cell
from bench.core.timing import StopRule
from bench.harness.config import AbConfig
from bench.harness.isolation import WorkerOutcome, run_in_worker
from bench.harness.pairs import PairJob, PairTimes, measure_pair

FIRST, CONFIRMATION = "first", "confirmation"
FAILED, SKIPPED = "failed", "skipped"


@dataclass
class Stage:
    """One stage of a cell's measurement: its workers' pairs, the seconds they took, and
    the estimate and verdict after the last of them."""

    name: str
    workers: list[WorkerPairs] = field(default_factory=list)
    seconds: float = 0.0
    estimate: Estimate | None = None
    verdict: str = INCONCLUSIVE
    note: str | None = None
    target: float = 0.0
    """The half-width the stage aimed at."""

    def add(self, pairs: WorkerPairs, seconds: float, threshold: float) -> None:
        self.workers.append(pairs)
        self.seconds += seconds
        if len(self.workers) >= 2:
            self.estimate = estimate(self.workers)
            self.verdict, self.note = verdict(self.estimate, threshold)

    def done(self, settings: AbConfig) -> bool:
        """Known well enough (the half-width reached, from at least ``min_workers``
        workers), or out of time."""
        if self.seconds >= settings.max_s and len(self.workers) >= 2:
            return True
        if self.estimate is None or len(self.workers) < settings.min_workers:
            return False
        return self.estimate.half_width <= settings.half_width

    @property
    def capped(self) -> bool:
        """Stopped by the time cap before the half-width was reached."""
        return self.estimate is not None and not self.estimate.half_width <= self.target

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.name,
            "verdict": self.verdict,
            "note": self.note,
            "seconds": round(self.seconds, 2),
            "worker_ratios": [w.ratio for w in self.workers],
            "estimate": self.estimate.to_dict() if self.estimate else None,
            "half_width_target": self.target,
            "capped": self.capped,
        }


@dataclass
class AbCell:
    """One cell of the A/B gate: the base's cell (its ``model`` is the base's name), the
    new side's model name, its stages, and how it ended (``ok``, ``failed`` with the
    side named, or ``skipped``)."""

    cell: Cell
    new_model: str
    status: str = "ok"
    reason: str | None = None
    stages: list[Stage] = field(default_factory=list)
    executed: dict[str, dict[str, Any]] = field(default_factory=dict)
    new_precision: str | None = None
    """The new side's precision where it differs from the cell's (a paired speedup)."""

    @property
    def key(self) -> str:
        """The cell's key, with ``base→new`` where the sides differ in model or precision."""
        parts = self.cell.key.split("/")
        if self.new_model != self.cell.model:
            parts[0] = f"{self.cell.model}→{self.new_model}"
        if self.new_precision and self.new_precision != self.cell.precision:
            parts[3] = f"{self.cell.precision}→{self.new_precision}"
        return "/".join(parts)

    @property
    def first(self) -> Stage | None:
        return self.stages[0] if self.stages else None

    @property
    def confirmation(self) -> Stage | None:
        return self.stages[1] if len(self.stages) > 1 else None

    @property
    def verdict(self) -> str:
        """The stage verdict, except that a regression needs its confirmation (where one
        was measured): unconfirmed, it is inconclusive."""
        if self.status != "ok" or self.first is None:
            return self.status
        if self.first.verdict == REGRESSED and self.confirmation is not None:
            return REGRESSED if self.confirmation.verdict == REGRESSED else INCONCLUSIVE
        return self.first.verdict

    @property
    def decisive(self) -> Stage | None:
        """The stage whose figures the verdict stands on: the confirmation where one ran."""
        return self.confirmation or self.first

    def to_dict(self) -> dict[str, Any]:
        confirmation = self.confirmation
        return {
            "key": self.key,
            "cell": self.cell.to_dict(),
            "new_model": self.new_model,
            "new_precision": self.new_precision or self.cell.precision,
            "status": self.status,
            "reason": self.reason,
            "verdict": self.verdict,
            "confirmed": None if confirmation is None else confirmation.verdict == REGRESSED,
            "executed": self.executed,
            "stages": [stage.to_dict() for stage in self.stages],
        }


MakeJob = Callable[[AbCell, int], PairJob]
"""The job of a cell's next worker, given the cell and the worker's seed."""


def paired_worker(job: PairJob, timeout_s: float) -> WorkerOutcome:
    """One paired worker in its own process, stopped after ``timeout_s``."""
    return run_in_worker(measure_pair, job, timeout_s)


@dataclass
class Measurer:
    """Runs the stages of every cell: the settings, how to make a worker's job, the
    worker timeout, where each worker's pairs are appended as it ends (``log``), who
    hears of progress (``say``), and what runs a worker (``run``)."""

    settings: AbConfig
    make_job: MakeJob
    timeout_s: float
    log: Path | None = None
    say: Callable[[str], None] = lambda line: None
    run: Callable[[PairJob, float], WorkerOutcome] = paired_worker
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    _seed: int = 0

    def gate(self, cells: list[AbCell]) -> None:
        """The first stage of every cell, then a confirmation of each alert."""
        self.stage(cells, FIRST)
        if not self.settings.confirm:
            return
        alerts = [c for c in cells if c.status == "ok" and c.verdict == REGRESSED]
        if alerts:
            self.say(f"confirming {len(alerts)} alert(s) with fresh workers")
            self.stage(alerts, CONFIRMATION)

    def stage(self, cells: list[AbCell], name: str) -> None:
        """Add a stage ``name`` to each cell and measure them in rounds until each is
        done or failed."""
        active = [c for c in cells if c.status == "ok"]
        for cell in active:
            cell.stages.append(Stage(name, target=self.settings.half_width))
        while active:
            for index in self.rng.permutation(len(active)):
                self.worker(active[index])
            for cell in list(active):
                stage = cell.stages[-1]
                if cell.status != "ok" or stage.done(self.settings):
                    active.remove(cell)
                    if cell.status == "ok":
                        self.say(f"{cell.key}: {name}: {describe(stage)}")

    def worker(self, cell: AbCell) -> None:
        """One paired worker of ``cell``'s current stage."""
        self._seed += 1
        job = self.make_job(cell, self._seed)
        started = time.perf_counter()
        outcome = self.run(job, self.timeout_s)
        seconds = time.perf_counter() - started
        stage = cell.stages[-1]
        if outcome.status != "ok":
            cell.status = FAILED if outcome.status != "skipped" else SKIPPED
            cell.reason = f"{outcome.status} in {outcome.phase}: {outcome.reason}"
            self.say(f"{cell.key}: {cell.reason}")
            return
        times: PairTimes = outcome.payload
        pairs = WorkerPairs(times.base_ns, times.new_ns, times.base_first)
        stage.add(pairs, seconds, self.settings.threshold)
        self.say(f"  {cell.key}: {stage.name}: worker {len(stage.workers)}: {describe(stage)}")
        cell.executed = {
            side: {"precision": e.precision, "device": e.device, "threads": e.threads}
            for side, e in zip(("base", "new"), times.executed, strict=True)
        }
        if self.log is not None:
            with self.log.open("a", encoding="utf-8") as out:
                line = {
                    "key": cell.key,
                    "stage": stage.name,
                    "seed": job.seed,
                    "seconds": round(seconds, 3),
                    "base_ns": times.base_ns.tolist(),
                    "new_ns": times.new_ns.tolist(),
                    "base_first": times.base_first.astype(int).tolist(),
                }
                out.write(json.dumps(line) + "\n")


def describe(stage: Stage) -> str:
    """``+4.9% [+4.4%, +5.4%] ±0.5% (6 workers, 1520 pairs, 52 s)``."""
    change = stage.estimate
    if change is None:
        return f"{len(stage.workers)} worker(s), no estimate yet"
    reached = "" if not stage.capped else f", time cap before ±{stage.target:.1%}"
    return (
        f"{change.ratio - 1:+.1%} [{change.low - 1:+.1%}, {change.high - 1:+.1%}] "
        f"±{change.half_width:.1%} ({change.workers} workers, {change.pairs} pairs, "
        f"{stage.seconds:.0f} s{reached}) {stage.verdict}"
    )


def window_rules(settings: AbConfig) -> tuple[StopRule, StopRule]:
    """A worker's warm-up and measured window, both in pairs: at least 5 and 20 pairs."""
    return StopRule(settings.warmup_s, 5), StopRule(settings.worker_s, 20)
