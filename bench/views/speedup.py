"""The FP16 / BF16 speedup table: median(fp32) / median(low precision) for the same
model, runtime, device, batch and scenario in one run, with a bootstrap interval: over
repetitions (``run --repeat`` 3 or more, each repetition's median one sample, as
``compare`` does), else over one run's iterations, which are correlated and so give an
interval too narrow (the row says which).

MLPerf LoadGen's scenarios (single_stream, multi_stream, server, offline) are left out.
Their per-request times are the runtime's requests under LoadGen's load (queued behind
each other in Server and Offline), so their ratio is no latency speedup; and the
scenario's own metric is one figure per run (a percentile, a rate, a searched peak) with
no per-request sample to bootstrap an interval from, judged VALID or INVALID, so a ratio
of two of them would have no interval and could set an INVALID run against a VALID one.
The LoadGen scenarios table shows each precision's metric and verdict side by side."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

from bench.core.budget import AccuracyBudget
from bench.core.cell import SERVING_SCENARIOS, Cell
from bench.core.record import CellRecord, TaskAccuracy

CONFIDENCE = 0.95
RESAMPLES = 2000
MAX_SAMPLES = 5000
"""Raw times beyond this many per cell are thinned (evenly) before resampling."""
MIN_REPETITIONS = 3
"""Repetitions a side from which the interval resamples repetitions, not iterations."""


@dataclass(frozen=True)
class Speedup:
    """One low-precision cell against its fp32 twin. ``verdict`` is ``faster``, ``slower``
    or ``no clear difference`` (the interval holds 1), each followed by ``, host-bound``
    and why when a GPU cell of the pair mostly waited for the host (its device busy under
    half the time: the figure measures kernel launches, not the precision), ``accuracy
    failed`` (never a win),
    ``over the accuracy budget`` (its task metric fell further below the fp32 cell's
    than the run's budget allows: never a win either),
    ``not comparable`` (the two ran with different numbers of requests in flight), or
    ``not measured`` / ``no interval`` with the reason."""

    model: str
    runtime: str
    device: str
    batch: int
    scenario: str
    precision: str
    executed: str | None
    fp32_median_ms: float | None
    median_ms: float | None
    speedup: float | None
    ci_low: float | None
    ci_high: float | None
    accuracy: str | None
    verdict: str
    interval_over: str | None = None
    """``N/M repetitions`` or ``one run's iterations`` (too narrow: they are correlated)."""
    metric: str | None = None
    """The task metric on labelled data (``top1``, ``miou``, ``agreement``), where scored."""
    fp32_value: float | None = None
    value: float | None = None
    """The metric of the fp32 cell and of this one, from 0 to 1."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def speedups(
    records: list[CellRecord], seed: int = 0, budget: AccuracyBudget | None = None
) -> list[Speedup]:
    """A row for every non-fp32 cell whose twin fp32 cell is in ``records``, cells of
    LoadGen's scenarios left out (see the module's docstring); a cell whose task metric
    fell past ``budget`` is no win."""
    by_key = {_twin_key(r.cell, r.cell.precision): r for r in records}
    rows = []
    for record in records:
        if record.cell.precision == "fp32" or record.cell.scenario in SERVING_SCENARIOS:
            continue
        base = by_key.get(_twin_key(record.cell, "fp32"))
        if base is None:
            continue
        rows.append(_compare(base, record, seed, budget))
    return rows


def _twin_key(cell: Cell, precision: str) -> tuple:
    return (cell.model, cell.runtime, cell.device, cell.batch, cell.scenario, precision)


def _compare(
    base: CellRecord, low: CellRecord, seed: int, budget: AccuracyBudget | None
) -> Speedup:
    cell = low.cell
    task, fp32_task = _task(low), _task(base)
    common = dict(
        model=cell.model,
        runtime=cell.runtime,
        device=cell.device,
        batch=cell.batch,
        scenario=cell.scenario,
        precision=cell.precision,
        executed=low.executed and low.executed.precision,
        accuracy=low.verdict,
        metric=task.metric if task else None,
        fp32_value=fp32_task.value if fp32_task else None,
        value=task.value if task else None,
    )
    over = None  # judged against the fp32 cell the row shows beside it
    if budget is not None and task is not None and fp32_task is not None:
        over = budget.overrun(task.metric, fp32_task.value, task.value, "the fp32 cell's")
    accuracy = low.verdict
    for record in (base, low):
        if not record.ok or record.median_ms is None:
            reason = f"{record.cell.precision} cell {record.status}"
            if record.ok:
                reason = f"{record.cell.precision} cell has no latency figures"
            return Speedup(
                **common,
                fp32_median_ms=None,
                median_ms=None,
                speedup=None,
                ci_low=None,
                ci_high=None,
                verdict=f"not measured: {reason}",
            )
    fp32_ms, low_ms = base.median_ms, low.median_ms  # the summary table's medians
    flights = [r.executed and r.executed.in_flight for r in (base, low)]
    fast, slow = _repetition_medians(base), _repetition_medians(low)
    interval_over = f"{fast.size}/{slow.size} repetitions"
    if min(fast.size, slow.size) < MIN_REPETITIONS:
        fast, slow = (np.asarray(r.raw_times_ms, float) for r in (base, low))
        interval_over = "one run's iterations"
    if min(fast.size, slow.size) < 2:
        low_ci = high_ci = None
        verdict = "no interval: fewer than 2 timed requests"
    else:
        low_ci, high_ci = ratio_interval(fast, slow, seed)
    if accuracy == "fail":
        verdict = "accuracy failed"
    elif over:
        verdict = over
    elif flights[0] != flights[1]:  # latencies under different loads do not compare
        verdict = f"not comparable: {flights[0]} vs {flights[1]} requests in flight"
    elif low_ci is None:
        pass
    elif low_ci > 1:
        verdict = "faster"
    elif high_ci < 1:
        verdict = "slower"
    else:
        verdict = "no clear difference"
    bound = [r.cell.precision for r in (base, low) if r.host_bound]
    if bound and verdict in ("faster", "slower", "no clear difference"):
        verdict += (
            f", host-bound ({' and '.join(bound)}): this measures the host, not {cell.precision}"
        )
    return Speedup(
        **common,
        fp32_median_ms=fp32_ms,
        median_ms=low_ms,
        speedup=fp32_ms / low_ms,
        ci_low=low_ci,
        ci_high=high_ci,
        verdict=verdict,
        interval_over=interval_over,
    )


def _task(record: CellRecord) -> TaskAccuracy | None:
    task = record.scored
    return task if task is not None and task.value is not None else None


def _repetition_medians(record: CellRecord) -> np.ndarray:
    """The median latency of each repetition that ran (none for a single run)."""
    runs = record.repetitions or []
    return np.asarray([r.median_ms for r in runs if r.status == "ok" and r.median_ms], float)


def ratio_interval(
    numerator: np.ndarray, denominator: np.ndarray, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of median(numerator) / median(denominator), each
    sample resampled on its own (scipy.stats.bootstrap)."""
    rng = np.random.default_rng(seed)
    samples = tuple(_thin(np.asarray(s, float)) for s in (numerator, denominator))

    def statistic(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.median(a, axis=axis) / np.median(b, axis=axis)

    result = stats.bootstrap(
        samples,
        statistic,
        n_resamples=RESAMPLES,
        confidence_level=CONFIDENCE,
        method="percentile",
        vectorized=True,
        batch=100,
        random_state=rng,
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def _thin(times: np.ndarray) -> np.ndarray:
    if times.size <= MAX_SAMPLES:
        return times
    return times[np.linspace(0, times.size - 1, MAX_SAMPLES).astype(int)]
