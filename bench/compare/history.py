"""``history``: a series of runs (results directories or baseline files), oldest first, as
per-cell trends of each metric, and the change points in them.

Each run is one point: the median of a metric over that run's repetitions. Change points
come from ruptures (PELT, l1 cost on log values, penalty ``PENALTY · sigma · ln n`` with
sigma the noise read from the series itself), chosen by scripts/change_points.py; the
newest run gets a rule of its own (``segments``), since a segment-based detector cannot
put a change point at the last point. docs/history.md has the figures and the rules.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench.compare.fingerprint import differences
from bench.compare.sides import Side, load_side
from bench.compare.significance import worse_factor
from bench.compare.thresholds import Thresholds
from bench.core.errors import UserError
from bench.core.metrics import METRICS
from bench.harness.results import FLEET_FILE, RESULTS_FILE, RUN_FILE, read_json_object

PENALTY = 2.0
"""beta in the penalty beta · sigma · ln n of a new segment (scripts/change_points.py)."""
MIN_SEGMENT = 2
"""Runs in a segment: a single run out of line is an outlier, not a change."""
NEWEST_PENALTY = 2.0
"""beta in the newest run's test, on the l2 cost: beta · sigma² · ln n."""
MIN_BEFORE_NEWEST = 3
"""Runs of the last segment needed before the newest run can be told apart from it."""
SIGMA_FLOOR = 0.002
"""Noise below 0.2% counts as 0.2%: quantized figures (memory in MB) can show none."""


def segments(values: Sequence[float]) -> list[int]:
    """The change points of a series of positive figures (one per run, oldest first): the
    index of the first run of each new segment, in order.

    Segments hold at least MIN_SEGMENT runs, except that the newest run starts one of its
    own when it stands apart from the segment before it (once that has MIN_BEFORE_NEWEST
    runs; a last segment of MIN_SEGMENT runs counts as part of it): the best single split
    of that segment and the newest run (binary segmentation, l2 cost, so that one run can
    outweigh the penalty) falls right before the newest run and gains more than the
    penalty. A newest run that is an outlier looks the same: the
    next run confirms or drops it."""
    logs = np.log(np.asarray(values, dtype=float))
    if len(logs) < 2:
        return []
    sigma = _noise(logs[:-1])
    found = _detect(logs, sigma)
    # a last segment of MIN_SEGMENT runs may be the newest run's own doing: test from before it
    earlier = [c for c in found if c < len(logs) - MIN_SEGMENT]
    tail = logs[earlier[-1] if earlier else 0 :]
    if len(tail) > MIN_BEFORE_NEWEST:
        import ruptures

        split = ruptures.Binseg(model="l2", min_size=1, jump=1).fit(tail)
        best = split.predict(n_bkps=1)[0]
        gain = split.cost.error(0, len(tail)) - split.cost.sum_of_costs([best, len(tail)])
        if best == len(tail) - 1 and gain > NEWEST_PENALTY * sigma**2 * math.log(len(logs)):
            return [*earlier, len(logs) - 1]
    return found


def _detect(logs: np.ndarray, sigma: float) -> list[int]:
    if len(logs) < 2 * MIN_SEGMENT:
        return []
    import ruptures

    penalty = PENALTY * sigma * math.log(len(logs))
    found = ruptures.Pelt(model="l1", min_size=MIN_SEGMENT, jump=1).fit(logs).predict(pen=penalty)
    return found[:-1]


def _noise(logs: np.ndarray) -> float:
    """The noise's standard deviation, robust to steps and outliers: the MAD of the first
    differences (each the difference of two noisy points, hence the 1/sqrt(2))."""
    diffs = np.diff(logs)
    if len(diffs) == 0:
        return SIGMA_FLOOR
    mad = float(np.median(np.abs(diffs - np.median(diffs))))
    return max(1.4826 * mad / math.sqrt(2), SIGMA_FLOOR)


@dataclass(frozen=True)
class ChangePoint:
    """A metric of a cell changes at run ``index``: the medians of the segments before and
    from it (each the median of its runs' figures)."""

    cell: str
    metric: str
    index: int
    run_id: str
    before: float
    after: float
    threshold: float
    newest: bool
    """It starts at the newest run of the history."""

    @property
    def change(self) -> float:
        return self.after / self.before - 1 if self.before else math.inf

    @property
    def worse_by(self) -> float:
        """How much worse, as a fraction (negative = better), whatever the direction."""
        return worse_factor(1 + self.change, METRICS[self.metric].higher_is_worse) - 1

    @property
    def regression(self) -> bool:
        return self.worse_by > 0

    @property
    def beyond_threshold(self) -> bool:
        """Worse or better by more than the metric's threshold (compare's band)."""
        return not (1 / (1 + self.threshold) <= 1 + self.worse_by <= 1 + self.threshold)

    @property
    def fails(self) -> bool:
        """The newest run starts a regression beyond the threshold: history exits 1."""
        return self.newest and self.regression and self.beyond_threshold

    def to_dict(self) -> dict[str, Any]:
        return {
            "cell": self.cell,
            "metric": self.metric,
            "index": self.index,
            "run_id": self.run_id,
            "before": self.before,
            "after": self.after,
            "change": _finite(self.change),
            "kind": "regression" if self.regression else "improvement",
            "threshold": self.threshold,
            "beyond_threshold": self.beyond_threshold,
            "newest": self.newest,
            "fails": self.fails,
        }


@dataclass
class Trend:
    """One metric of one cell over the runs: its figure per run (None where the cell did
    not run then) and its change points."""

    cell: str
    metric: str
    values: list[float | None]
    change_points: list[ChangePoint] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "cell": self.cell,
            "metric": self.metric,
            "unit": METRICS[self.metric].unit,
            "values": self.values,
            "change_points": [c.to_dict() for c in self.change_points],
        }


@dataclass
class History:
    """The runs, oldest first, and every cell's trends."""

    runs: list[Side]
    thresholds: Thresholds
    trends: list[Trend]

    @property
    def change_points(self) -> list[ChangePoint]:
        """Every change point, newest run first, then the worst."""
        found = [c for t in self.trends for c in t.change_points]
        return sorted(found, key=lambda c: (-c.index, -c.worse_by))

    @property
    def failing(self) -> list[ChangePoint]:
        return [c for c in self.change_points if c.fails]

    def to_dict(self) -> dict[str, Any]:
        return {
            "gate": "fail" if self.failing else "pass",
            "runs": [{"label": s.label, "run_id": s.run_id} for s in self.runs],
            "thresholds": self.thresholds.effective(),
            "detector": {
                "library": "ruptures",
                "method": "Pelt, l1 cost on log figures, min_size 2",
                "penalty": f"{PENALTY} * sigma * ln n",
                "newest_run": f"Pelt, l2 cost, min_size 1, {NEWEST_PENALTY} * sigma^2 * ln n",
            },
            "change_points": [c.to_dict() for c in self.change_points],
            "trends": [t.to_dict() for t in self.trends],
        }


def history(runs: list[Side], thresholds: Thresholds) -> History:
    """Each cell's trend of every metric over ``runs`` (oldest first) and its change
    points. UserError for fewer than 2 runs or runs of different hardware."""
    if len(runs) < 2:
        raise UserError(
            f"history needs at least 2 runs, got {len(runs)}: give more results "
            "directories or baseline files, or a folder of them"
        )
    newest = runs[-1]
    for side in runs[:-1]:
        hardware = [d for d in differences(side.environment, newest.environment) if d.hardware]
        if hardware := [d for d in hardware if d.known]:
            first = hardware[0]
            raise UserError(
                f"{side.label} and {newest.label} are from different hardware ({first.what}: "
                f"{first.baseline} vs {first.current}): give the runs of one machine"
            )
    keys = sorted({key for side in runs for key in side.cells})
    trends = []
    for key in keys:
        for metric in METRICS:
            values = [_median(side, key, metric) for side in runs]
            if sum(v is not None for v in values) >= 2:
                trends.append(_trend(key, metric, values, runs, thresholds.of(metric)))
    if not trends:
        raise UserError(
            "the runs share no cell that ran in two of them: give runs of the same suite"
        )
    return History(runs, thresholds, trends)


def _median(side: Side, key: str, metric: str) -> float | None:
    cell = side.cells.get(key)
    if cell is None or cell.status != "ok":
        return None
    figures = [r[metric] for r in cell.repetitions if metric in r]
    return float(statistics.median(figures)) if figures and min(figures) > 0 else None


def _trend(
    key: str, metric: str, values: list[float | None], runs: list[Side], threshold: float
) -> Trend:
    present = [i for i, v in enumerate(values) if v is not None]
    series = [values[i] for i in present]
    cuts = segments(series)  # type: ignore[arg-type]
    bounds = [0, *cuts, len(series)]
    found = []
    for before, at, after in zip(bounds, bounds[1:], bounds[2:], strict=False):
        index = present[at]
        found.append(
            ChangePoint(
                key,
                metric,
                index,
                runs[index].run_id,
                float(np.median(series[before:at])),
                float(np.median(series[at:after])),
                threshold,
                newest=index == len(runs) - 1,
            )
        )
    return Trend(key, metric, values, found)


_STAMP = re.compile(r"(\d{8}-\d{6})")


def load_runs(paths: list[Path]) -> list[Side]:
    """The runs at ``paths``, in the order given; a folder holding several runs
    (results directories or baseline files) stands for them, oldest first by the start
    time each records (its run id's stamp, else run.json's or the baseline's ``created``)."""
    runs: list[Side] = []
    for path in paths:
        if (
            path.is_dir()
            and not (path / RESULTS_FILE).is_file()
            and not (path / FLEET_FILE).is_file()
        ):
            inside = [load_side(p) for p in _runs_in(path)]
            runs += sorted(inside, key=_started)
        else:
            runs.append(load_side(path))
    return runs


def _runs_in(folder: Path) -> list[Path]:
    found = sorted(
        p
        for p in folder.iterdir()
        if (p.is_dir() and (p / RESULTS_FILE).is_file()) or (p.is_file() and p.suffix == ".json")
    )
    if not found:
        raise UserError(
            f"{folder} holds no results directory ({RESULTS_FILE}) and no baseline file: "
            "give runs or a folder of them"
        )
    return found


def _started(side: Side) -> datetime:
    """When the run started: its run id's stamp (RunDir.create names runs by it), else
    the ``created`` of run.json or of the baseline file."""
    match = _STAMP.match(side.run_id)
    if match:
        return datetime.strptime(match.group(1), "%Y%m%d-%H%M%S")
    path = Path(side.label)
    source = path / RUN_FILE if path.is_dir() else path
    fix = "give the runs one by one, oldest first"
    created = read_json_object(source, fix).get("created") if source.is_file() else None
    try:
        return datetime.strptime(str(created)[:19], "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        raise UserError(f"{side.label} records no start time: {fix}") from None


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
