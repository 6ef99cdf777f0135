"""The thresholds a suite or the command line sets for the compared metrics
(bench.core.metrics), and the built-in ones."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bench.compare.noise import PERCENTAGE, CellThreshold
from bench.core.errors import UserError
from bench.core.metrics import METRICS
from bench.harness.config import CompareConfig

DEFAULT_THRESHOLD = 0.10
DEFAULT_PER_METRIC = (("latency_p99", 0.50), ("peak_memory", 0.05), ("device_memory", 0.05))
"""Chosen from A/A comparisons on a noisy 2-core machine (scripts/noise_floor.py,
docs/ci.md): between two runs of one build, medians and throughput strayed by up to
4–8% (a 5% threshold raised false alarms, 10% none), p99 by up to 12–48% (significant
up to 35%, on a 25 µs cell), memory by under 1%."""
ACCURACY = "accuracy"
"""Not a threshold metric: a cell whose accuracy check newly fails has regressed."""
TASK = "task metric"
"""Not a threshold metric: a task metric (top-1, mean IoU) on labelled data that fell
further than the accuracy budget has regressed."""
VALIDITY = "LoadGen validity"
"""Not a threshold metric: a LoadGen cell whose run newly turns INVALID has regressed
(an INVALID run gives no figure to compare)."""


@dataclass(frozen=True)
class Thresholds:
    """The change (a fraction: 0.05 = 5%) beyond which a significant change counts.

    A metric's threshold is the one set for it (``per_metric``), else ``default`` when one
    is set, else the built-in one (DEFAULT_PER_METRIC, then DEFAULT_THRESHOLD). ``cells``
    hold thresholds derived from a cell's own noise (bench.compare.noise), which take
    precedence for that cell and metric."""

    default: float | None = None
    per_metric: tuple[tuple[str, float], ...] = ()
    cells: tuple[CellThreshold, ...] = ()

    @classmethod
    def of_suite(cls, settings: CompareConfig) -> Thresholds:
        """The thresholds a suite's ``[compare]`` table sets."""
        return cls(settings.threshold, tuple(sorted(settings.thresholds.items())))

    def for_cell(self, key: str, metric: str) -> tuple[float, str]:
        """The threshold of ``metric`` in cell ``key`` and the model that set it."""
        for derived in self.cells:
            if derived.key == key and derived.metric == metric:
                return derived.value, derived.model
        return self.of(metric), PERCENTAGE

    def of(self, metric: str) -> float:
        own = dict(self.per_metric)
        if metric in own:
            return own[metric]
        if self.default is not None:
            return self.default
        return dict(DEFAULT_PER_METRIC).get(metric, DEFAULT_THRESHOLD)

    def effective(self) -> dict[str, float]:
        """Every metric's threshold."""
        return {name: self.of(name) for name in METRICS}

    def with_specs(self, specs: list[str]) -> Thresholds:
        """These thresholds updated by command-line specs: ``5%`` or ``0.05`` (every
        metric without one of its own) or ``latency_p99=10%``."""
        default, per_metric = self.default, dict(self.per_metric)
        for spec in specs:
            name, _, value = spec.rpartition("=")
            if name:
                per_metric[check_metric(name, spec)] = parse_fraction(value, spec)
            else:
                default = parse_fraction(value, spec)
        return Thresholds(default, tuple(sorted(per_metric.items())), self.cells)


def check_metric(name: str, spec: str) -> str:
    if name not in METRICS:
        raise UserError(
            f"unknown metric '{name}' in threshold '{spec}': use one of {', '.join(METRICS)}"
        )
    return name


def parse_fraction(text: str, spec: str, what: str = "threshold") -> float:
    """``5%`` or ``0.05`` → 0.05; anything else, or a value outside (0, 10), is an error
    naming ``what`` was given."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(%?)\s*", text)
    if not match:
        raise UserError(f"{what} '{spec}' is not a number: write 5% or 0.05")
    value = float(match.group(1)) / (100 if match.group(2) else 1)
    if not 0 < value < 10:
        raise UserError(f"{what} '{spec}' must be above 0 and below 1000%")
    return value
