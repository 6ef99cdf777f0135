"""``ab`` between two deploybench checkouts, where the sides cannot share a process: each
side's harness is its own code. Each round runs the suite once with each checkout's own
``cli.py`` (one repetition, the two in a drawn order), so that the machine's drift
touches both sides alike; the gate then compares their repetitions as ``compare`` does
(bench.compare.gate). Rounds go on until every cell's interval is within the half-width
or the time cap, and an alert is measured again by fresh rounds of the alerted cells
before it fails the gate."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.console import Console
from rich.text import Text

from bench.commands.ab_request import AbRequest
from bench.compare import output
from bench.compare.gate import Comparison, compare
from bench.compare.sides import Side, side_from_records
from bench.compare.significance import INCONCLUSIVE, REGRESSED
from bench.compare.thresholds import Thresholds
from bench.core.errors import UserError
from bench.harness.config import AbConfig, load_config
from bench.harness.environment import read_environment
from bench.harness.overrides import flags_for
from bench.harness.results import ENVIRONMENT_FILE, RESULTS_FILE, read_records, write_output

if TYPE_CHECKING:
    from bench.compare.gate import CellComparison
    from bench.core.record import CellRecord

PROCESSES = "interleaved processes"
MIN_ROUNDS = 5
"""Repetitions a side before the gate can judge: 4 against 4 is the least from which the
Mann-Whitney test can reach p < 0.05."""


def is_checkout(text: str) -> bool:
    """Whether ``text`` names a deploybench checkout (a folder with cli.py and bench/)."""
    path = Path(text)
    return (path / "cli.py").is_file() and (path / "bench").is_dir()


def run_checkouts(request: AbRequest, console: Console) -> int:
    """Measure and gate two checkouts in interleaved rounds; 1 when a regression is
    confirmed or a cell newly fails."""
    paired_only = [
        flag
        for flag, given in (
            ("--base-option", request.base_options),
            ("--new-option", request.new_options),
            ("--new-precision", request.new_precision),
        )
        if given
    ]
    if paired_only:
        raise UserError(
            f"{', '.join(paired_only)} applies to two models measured paired, not to two "
            "checkouts: drop it, or give the checkouts' suite files the settings"
        )
    for side, text in (("base", request.base), ("new", request.new)):
        if not is_checkout(text):
            raise UserError(
                f"the {side} side '{text}' is not a deploybench checkout, and the other side "
                "is: give two checkouts, or two models"
            )
    own = Path(request.new) / request.config_path  # the new side's suite sets the gate
    path = own if own.is_file() else request.config_path
    config = load_config(path, request.profile, request.overrides)
    settings = config.ab.model_copy(update=request.settings)
    thresholds = Thresholds.of_suite(config.compare)
    root = Path(config.suite.results_dir) / f"ab-{time.strftime('%Y%m%d-%H%M%S')}"
    flags = flags_for(request.overrides, skip=("suite.results_dir",))
    flags += ["--profile", request.profile] if request.profile else []
    rounds = Rounds(request, root, console)
    first = rounds.measure(flags, settings, thresholds, config.compare.alpha)
    alerts = [cell for cell in first.cells if cell.verdict == REGRESSED]
    note = "alerts are not confirmed (--no-confirm)" if not settings.confirm else ""
    if alerts and settings.confirm:
        console.print(f"confirming {len(alerts)} alert(s) with fresh rounds", markup=False)
        fresh = Rounds(request, root / "confirmation", console)
        again = fresh.measure(
            flags + _only(alerts), settings, thresholds, config.compare.alpha, first.rounds
        )
        confirmed = {c.key for c in again.cells if c.verdict == REGRESSED}
        for cell in alerts:
            if cell.key not in confirmed:
                cell.verdict = INCONCLUSIVE
                cell.note = f"alert not confirmed by {again.rounds} fresh rounds"
        note = f"confirmation: {len(confirmed)} of {len(alerts)} alerts confirmed by " + (
            f"{again.rounds} fresh rounds of the alerted cells, {again.seconds:.0f} s"
        )
    comparison = first.comparison
    design = (
        f"design: {PROCESSES} ({first.rounds} rounds, one run a side each in a drawn order, "
        f"{first.seconds:.0f} s): two checkouts cannot share a process"
    )
    console.print(Text(design))
    if note:
        console.print(Text(note))
    console.print(output.terminal(comparison))
    if request.markdown:
        write_output(request.markdown, f"- {design}\n- {note}\n\n" + output.markdown(comparison))
    if request.json:
        document = {"design": PROCESSES, "design_note": note, **comparison.to_dict()}
        write_output(request.json, json.dumps(document, indent=2, allow_nan=False) + "\n")
    if request.junit:
        write_output(request.junit, output.junit(comparison))
    return 1 if comparison.failed else 0


@dataclass
class Outcome:
    """The comparison of the rounds measured, how many, and their seconds."""

    comparison: Comparison
    rounds: int
    seconds: float

    @property
    def cells(self) -> list[CellComparison]:
        return self.comparison.cells


class Rounds:
    """Rounds of one run per checkout into ``root``, each side's records gathered."""

    def __init__(self, request: AbRequest, root: Path, console: Console) -> None:
        self.request, self.root, self.console = request, root, console
        self.records: dict[str, list[CellRecord]] = {"base": [], "new": []}
        self.environment: dict[str, dict[str, Any]] = {}
        self.rng = np.random.default_rng(0)

    def measure(
        self,
        flags: list[str],
        settings: AbConfig,
        thresholds: Thresholds,
        alpha: float,
        at_least: int = MIN_ROUNDS,
    ) -> Outcome:
        """Rounds until every cell's latency interval is within the half-width (after
        ``at_least`` rounds) or the time cap (``max_s`` a cell) is spent."""
        started = time.perf_counter()
        rounds = 0
        while True:
            rounds += 1
            for side in self.rng.permutation(["base", "new"]):
                self._run(str(side), rounds, flags)
            comparison = compare(self._side("base"), self._side("new"), thresholds, alpha)
            seconds = time.perf_counter() - started
            self.console.print(f"round {rounds}: {seconds:.0f} s", markup=False)
            if rounds >= at_least and (
                _narrow(comparison, settings.half_width)
                or seconds >= settings.max_s * len(comparison.cells)
            ):
                return Outcome(comparison, rounds, seconds)

    def _run(self, side: str, round_: int, flags: list[str]) -> None:
        checkout = Path(getattr(self.request, side)).resolve()
        results = self.root / f"{side}-{round_}"
        config = self.request.config_path
        own = checkout / config  # each side runs its own suite file of that name
        argv = [sys.executable, str(checkout / "cli.py"), "run", "--repeat", "1"]
        argv += ["--config", str(own if own.is_file() else config.resolve())]
        argv += ["--results-dir", str(results.resolve()), "--no-progress", *flags]
        done = subprocess.run(argv, cwd=checkout, capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise UserError(
                f"the {side} checkout's run failed (exit {done.returncode}): {last}; "
                f"its results are in {results}"
            )
        (run_dir,) = [p for p in results.iterdir() if p.is_dir()]
        self.records[side] += read_records(run_dir / RESULTS_FILE)
        fix = "run the checkout's suite once by hand to see why"
        self.environment[side] = read_environment(run_dir / ENVIRONMENT_FILE, fix)

    def _side(self, side: str) -> Side:
        label = f"{getattr(self.request, side)} ({side})"
        return side_from_records(label, side, self.environment[side], self.records[side])


def _narrow(comparison: Comparison, half_width: float) -> bool:
    """Every measured cell's latency-median interval is within ``half_width``."""
    for cell in comparison.cells:
        for change in cell.changes:
            if change.metric != "latency_median":
                continue
            if change.ci_low is None or change.ci_high is None:
                return False
            if (change.ci_high - change.ci_low) / 2 / change.ratio > half_width:
                return False
    return True


def _only(alerts: list[CellComparison]) -> list[str]:
    """The run flags that narrow the suite to the alerted cells (every cell of their
    models, runtimes, devices, precisions and batch sizes; the others are not compared)."""
    flags = []
    for flag, field, joiner in (
        ("--models", "model", ","),
        ("--runtimes", "runtime", ","),
        ("--devices", "device", ";"),
        ("--precisions", "precision", ","),
        ("--batch-sizes", "batch", ","),
        ("--scenarios", "scenario", ","),
    ):
        values = sorted({str(cell.cell[field]) for cell in alerts})
        flags += [flag, joiner.join(values)]
    return flags
