"""``compare BASELINE CURRENT``: match cells by key, assess every metric, give each cell a
verdict, and decide whether the gate fails."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from bench.compare.fingerprint import Difference, differences, setting_differences
from bench.compare.sides import CellRuns, Side
from bench.compare.significance import IMPROVED, INCONCLUSIVE, REGRESSED, UNCHANGED, Change, assess
from bench.compare.thresholds import ACCURACY, TASK, VALIDITY, Thresholds
from bench.core.budget import AccuracyBudget
from bench.core.errors import UserError
from bench.core.metrics import DEFAULT_ALPHA, METRICS

FAILED = "failed"  # ran in the baseline, fails now
FIXED = "fixed"  # failed in the baseline, runs now
NEW, MISSING = "new", "missing"
STILL_FAILING, SKIPPED = "still failing", "skipped"

ORDER = (
    FAILED,
    REGRESSED,
    INCONCLUSIVE,
    IMPROVED,
    UNCHANGED,
    FIXED,
    NEW,
    MISSING,
    STILL_FAILING,
    SKIPPED,
)
"""Cell verdicts, worst first."""
GATE_FAILS = (FAILED, REGRESSED)
_RAN = "ok"


@dataclass
class CellComparison:
    """One cell's verdict, the metric changes behind it and a note for the other cases."""

    key: str
    cell: dict[str, Any]
    verdict: str
    changes: list[Change] = field(default_factory=list)
    note: str | None = None

    @property
    def decisive(self) -> Change | None:
        """The change that decided the verdict: among those with the cell's verdict, the
        one that moved most in the bad direction (most in the good one for improved)."""
        same = [c for c in self.changes if c.verdict == self.verdict] or self.changes
        if not same:
            return None
        if self.verdict == IMPROVED:
            return min(same, key=lambda c: c.worse_by)
        return max(same, key=lambda c: c.worse_by)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "cell": self.cell,
            "verdict": self.verdict,
            "note": self.note,
            "changes": [c.to_dict() for c in self.changes],
        }


@dataclass
class Comparison:
    """The whole comparison: environment differences, then every cell, worst first."""

    baseline: Side
    current: Side
    differences: list[Difference]
    different_hardware_allowed: bool
    thresholds: Thresholds
    alpha: float
    cells: list[CellComparison]

    @property
    def failed(self) -> bool:
        """Whether the gate fails: a cell regressed or newly fails."""
        return any(c.verdict in GATE_FAILS for c in self.cells)

    def counts(self) -> dict[str, int]:
        counts = {verdict: 0 for verdict in ORDER}
        for cell in self.cells:
            counts[cell.verdict] += 1
        return {verdict: n for verdict, n in counts.items() if n}

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": {"source": self.baseline.label, "run_id": self.baseline.run_id},
            "current": {"source": self.current.label, "run_id": self.current.run_id},
            "gate": "fail" if self.failed else "pass",
            "counts": self.counts(),
            "different_hardware_allowed": self.different_hardware_allowed,
            "differences": [d.to_dict() for d in self.differences],
            "thresholds": self.thresholds.effective(),
            "alpha": self.alpha,
            "cells": [c.to_dict() for c in self.cells],
        }


def compare(
    baseline: Side,
    current: Side,
    thresholds: Thresholds | None = None,
    alpha: float = DEFAULT_ALPHA,
    allow_different_hardware: bool = False,
    seed: int = 0,
    budget: AccuracyBudget | None = None,
) -> Comparison:
    """Compare ``current`` against ``baseline``. Raises UserError when the hardware differs
    (a field recorded on both sides) and that was not allowed, or when the two sides share
    no cell. A task metric on labelled data that fell past ``budget`` has regressed
    (without a budget its change is shown, not judged)."""
    thresholds = thresholds or Thresholds()
    found = differences(baseline.environment, current.environment)
    found += setting_differences(baseline.settings, current.settings)
    hardware = [d for d in found if d.hardware and d.known]  # unknown on one side: reported
    if hardware and not allow_different_hardware:
        first = hardware[0]
        raise UserError(
            f"the runs are from different hardware ({first.what}: {first.baseline} vs "
            f"{first.current}): compare runs from one machine, or pass "
            "--allow-different-hardware to compare machines"
        )
    shared = baseline.cells.keys() & current.cells.keys()
    if not shared:
        raise UserError(
            f"{baseline.label} and {current.label} have no cell in common: "
            "compare two runs of the same suite"
        )
    cells = [
        _compare_cell(
            baseline.cells.get(key), current.cells.get(key), thresholds, alpha, seed, budget
        )
        for key in list(current.cells) + [k for k in baseline.cells if k not in current.cells]
    ]
    cells.sort(key=_severity)
    return Comparison(baseline, current, found, bool(hardware), thresholds, alpha, cells)


def _compare_cell(
    base: CellRuns | None,
    current: CellRuns | None,
    thresholds: Thresholds,
    alpha: float,
    seed: int,
    budget: AccuracyBudget | None = None,
) -> CellComparison:
    either = current or base
    assert either is not None
    if base is None:
        return CellComparison(either.key, either.cell, NEW, note=_status(either))
    if current is None:
        return CellComparison(base.key, base.cell, MISSING, note="not in the current run")
    ran = base.status == _RAN, current.status == _RAN
    if ran == (True, False):
        verdict = SKIPPED if current.status == "skipped" else FAILED
        return CellComparison(current.key, current.cell, verdict, note=_status(current))
    if ran == (False, True):
        return CellComparison(current.key, current.cell, FIXED, note=f"baseline {_status(base)}")
    if ran == (False, False):
        both_skipped = base.status == current.status == "skipped"
        verdict = SKIPPED if both_skipped else STILL_FAILING
        return CellComparison(current.key, current.cell, verdict, note=_status(current))
    changes = _metric_changes(current.key, base, current, thresholds, alpha, seed)
    measured = bool(changes)
    judged = (
        _accuracy_change(base, current),
        _task_change(base, current, budget),
        _validity_change(base, current),
    )
    for change in judged:
        if change is not None:
            changes.append(change)
    verdict = _cell_verdict(changes)
    if not measured and verdict == UNCHANGED:  # no timing was compared: not a sign of "same"
        note = "no metric measured on both sides"
        return CellComparison(current.key, current.cell, INCONCLUSIVE, changes, note)
    return CellComparison(current.key, current.cell, verdict, changes)


def _metric_changes(
    key: str,
    base: CellRuns,
    current: CellRuns,
    thresholds: Thresholds,
    alpha: float,
    seed: int,
) -> list[Change]:
    changes = []
    for metric in METRICS.values():
        a = [r[metric.name] for r in base.repetitions if metric.name in r]
        b = [r[metric.name] for r in current.repetitions if metric.name in r]
        if a and b:
            threshold, model = thresholds.for_cell(key, metric.name)
            change = assess(metric.name, a, b, metric.higher_is_worse, threshold, alpha, seed)
            changes.append(replace(change, threshold_model=model))
    return changes


def _validity_change(base: CellRuns, current: CellRuns) -> Change | None:
    """A LoadGen run that turns INVALID is a regression whatever its other figures (it
    has none to compare); one that turns VALID an improvement. Compared on the share of
    repetitions LoadGen called VALID."""
    if not base.valid or not current.valid:
        return None
    was, now = sum(base.valid) / len(base.valid), sum(current.valid) / len(current.valid)
    if now < 1 and was == 1:
        verdict, note = REGRESSED, "LoadGen's run is now INVALID (was VALID)"
    elif was < 1 and now == 1:
        verdict, note = IMPROVED, "LoadGen's run is now VALID (was INVALID)"
    else:
        verdict, note = UNCHANGED, None
    counts = (len(base.valid), len(current.valid))
    return _judged(VALIDITY, was, now, verdict, note, higher_is_worse=False, counts=counts)


def _accuracy_change(base: CellRuns, current: CellRuns) -> Change | None:
    """An accuracy check that newly fails is a regression whatever the speed; one that no
    longer fails is an improvement. Compared on the error scaled by the output's size."""
    if not base.accuracy or not current.accuracy:
        return None
    was, now = base.accuracy.get("verdict"), current.accuracy.get("verdict")
    error_a = float(base.accuracy.get("scaled_error") or 0.0)
    error_b = float(current.accuracy.get("scaled_error") or 0.0)
    if now == "fail" and was != "fail":
        verdict, note = REGRESSED, f"accuracy check now fails (was {was})"
    elif was == "fail" and now != "fail":
        verdict, note = IMPROVED, f"accuracy check now {now} (was fail)"
    else:
        verdict, note = UNCHANGED, f"accuracy {was} → {now}" if was != now else None
    return _judged(ACCURACY, error_a, error_b, verdict, note, higher_is_worse=True)


def _task_change(base: CellRuns, current: CellRuns, budget: AccuracyBudget | None) -> Change | None:
    """The task metric of two runs scored on the same data (the same samples, labels and
    split, by content):
    regressed where it fell further than ``budget`` allows from the baseline's value,
    improved where it rose as far; without a budget, shown but not judged."""
    was = (base.accuracy or {}).get("dataset") or {}
    now = (current.accuracy or {}).get("dataset") or {}
    same = ("dataset", "digest", "split", "samples", "metric")
    if was.get("value") is None or now.get("value") is None:
        return None
    if any(was.get(key) != now.get(key) for key in same):
        return None
    a, b = float(was["value"]), float(now["value"])
    points = f"{(b - a) * 100:+.2f} points of {now['metric']} on {now['dataset']}"
    if budget is None:
        verdict, note = UNCHANGED, f"{points} (give --accuracy-budget to judge it)"
    elif budget.exceeded(a, b):
        verdict, note = REGRESSED, f"{points}: past the accuracy budget of {budget}"
    elif budget.exceeded(b, a):
        verdict, note = IMPROVED, f"{points}: beyond the accuracy budget of {budget}"
    else:
        verdict, note = UNCHANGED, f"{points}, within {budget}" if a != b else None
    threshold = budget.allowed(a) if budget else 0.0
    return _judged(TASK, a, b, verdict, note, higher_is_worse=False, threshold=threshold)


def _judged(
    metric: str,
    was: float,
    now: float,
    verdict: str,
    note: str | None,
    *,
    higher_is_worse: bool,
    counts: tuple[int, int] = (1, 1),
    threshold: float = 0.0,
) -> Change:
    """A change judged by a rule of its own (no interval, no test): its figures before
    and now, the verdict the rule gave and why."""
    return Change(
        metric=metric,
        baseline=was,
        current=now,
        ratio=now / was if was else (1.0 if now == 0 else float("inf")),
        ci_low=None,
        ci_high=None,
        p_value=None,
        n_baseline=counts[0],
        n_current=counts[1],
        threshold=threshold,
        higher_is_worse=higher_is_worse,
        verdict=verdict,
        note=note,
    )


def _cell_verdict(changes: list[Change]) -> str:
    verdicts = {c.verdict for c in changes}
    for verdict in (REGRESSED, IMPROVED, INCONCLUSIVE):
        if verdict in verdicts:
            return verdict
    return UNCHANGED


def _severity(cell: CellComparison) -> tuple[int, float]:
    decisive = cell.decisive
    magnitude = abs(decisive.worse_by) if decisive is not None else 0.0
    return ORDER.index(cell.verdict), -magnitude


def _status(cell: CellRuns) -> str:
    return f"{cell.status}: {cell.reason}" if cell.reason else cell.status
