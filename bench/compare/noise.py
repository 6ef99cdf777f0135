"""Thresholds from each cell's own noise: how far its figures strayed between runs of
unchanged code (main's saved baselines, or A/A calibration runs), instead of one
percentage for every cell. The models follow Bencher's per-testbed thresholds:

- ``percentage``: the metric's fixed threshold (bench.compare.thresholds), for every cell;
- ``t-test``: the upper bound of a 99% prediction interval for one more run of the cell,
  from Student's t over the history's runs (log scale: the history's spread times
  t(0.99, n − 1) · √(1 + 1/n));
- ``iqr``: Tukey's fence over the history's runs, the upper quartile plus 1.5 times the
  interquartile range, as a change from their median (log scale).

Each run of the history gives one value per cell and metric, the median over its
repetitions. A cell with fewer than ``MIN_RUNS`` runs in the history keeps its percentage,
and says so; a derived threshold is never below ``FLOOR``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from bench.compare.sides import Side
from bench.core.errors import UserError

PERCENTAGE, T_TEST, IQR = "percentage", "t-test", "iqr"
MODELS = (PERCENTAGE, T_TEST, IQR)
MIN_RUNS = 3
FLOOR = 0.01
"""No derived threshold below 1%: below that a gate would flag the rounding of a clock."""
PREDICTION = 0.99


@dataclass(frozen=True)
class CellThreshold:
    """One cell's threshold for one metric, and the model and history it came from."""

    key: str
    metric: str
    value: float
    model: str


def noise_thresholds(history: list[Side], model: str) -> list[CellThreshold]:
    """Per cell and metric, the threshold ``model`` derives from ``history`` (runs of
    unchanged code); cells and metrics with fewer than MIN_RUNS runs are left out."""
    if model not in MODELS:
        raise UserError(f"unknown threshold model '{model}': use one of {', '.join(MODELS)}")
    if model == PERCENTAGE:
        return []
    values: dict[tuple[str, str], list[float]] = {}
    for side in history:
        for key, cell in side.cells.items():
            if cell.status != "ok":
                continue
            for metric in {name for rep in cell.repetitions for name in rep}:
                figures = [rep[metric] for rep in cell.repetitions if metric in rep]
                median = float(np.median(figures))
                if median > 0:
                    values.setdefault((key, metric), []).append(median)
    derived = []
    for (key, metric), runs in sorted(values.items()):
        if len(runs) < MIN_RUNS:
            continue
        value = max(FLOOR, _spread(np.log(runs), model))
        derived.append(CellThreshold(key, metric, value, f"{model} over {len(runs)} runs"))
    return derived


def _spread(logs: np.ndarray, model: str) -> float:
    """How far one more run may stray by noise alone, as a fraction."""
    if model == T_TEST:
        n = logs.size
        bound = stats.t.ppf(PREDICTION, n - 1) * logs.std(ddof=1) * math.sqrt(1 + 1 / n)
        return math.expm1(float(bound))
    q1, median, q3 = np.percentile(logs, [25, 50, 75])
    return math.expm1(float(q3 - median + 1.5 * (q3 - q1)))
