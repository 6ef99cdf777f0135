"""The statistics of the gate: one metric of one cell, baseline against current.

The unit is the repetition (one worker run of the cell), never the single iteration:
iterations inside one run share its memory layout, clocks and neighbours, so they are
correlated and would make any interval far too narrow. Each side gives one value per
repetition; the change is the ratio of their medians, with a bootstrap interval over
repetitions and a Mann–Whitney U test.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
RESAMPLES = 4000
POWER = 0.8
"""The chance of detecting a change that the stated detectable change promises."""
MANN_WHITNEY_EFFICIENCY = 3 / math.pi
"""The Mann–Whitney U test's efficiency relative to the t-test on normal data (about
0.955): it needs about 1/0.955 as many repetitions to detect the same shift."""
MAX_REPETITIONS = 1000

REGRESSED, IMPROVED, UNCHANGED, INCONCLUSIVE = "regressed", "improved", "unchanged", "inconclusive"


@dataclass(frozen=True)
class Change:
    """How one metric moved. ``ratio`` is current ÷ baseline (medians over repetitions);
    ``ci_low``/``ci_high`` its bootstrap interval; ``p_value`` the two-sided Mann–Whitney
    U test; ``verdict`` one of regressed, improved, unchanged, inconclusive, with ``note``
    saying why when it is not obvious."""

    metric: str
    baseline: float
    current: float
    ratio: float
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    n_baseline: int
    n_current: int
    threshold: float
    higher_is_worse: bool
    verdict: str
    note: str | None = None
    detectable: float | None = None
    """The smallest change (a fraction) these repetitions detect with probability POWER
    at the comparison's alpha; None where no change can be detected (too few)."""
    repetitions_needed: int | None = None
    """Repetitions a side that would detect a change of the threshold (same spread)."""
    threshold_model: str = "percentage"
    """What set ``threshold``: the metric's percentage, or a model of the cell's own noise
    over a history of runs (bench.compare.noise), e.g. ``t-test over 8 runs``."""

    @property
    def worse_by(self) -> float:
        """How much worse, as a fraction (negative = better), whatever the metric's direction."""
        return self.worse_factor - 1.0

    @property
    def worse_factor(self) -> float:
        return worse_factor(self.ratio, self.higher_is_worse)

    def to_dict(self) -> dict[str, Any]:
        """The fields, with a non-finite figure (a ratio over a zero baseline) as None, so
        that the JSON output stays standard JSON."""
        fields = {**asdict(self), "worse_by": self.worse_by}
        return {
            k: None if isinstance(v, float) and not math.isfinite(v) else v
            for k, v in fields.items()
        }


def worse_factor(ratio: float, higher_is_worse: bool) -> float:
    """``ratio`` (current ÷ baseline) turned so that above 1 is worse: the ratio itself
    when higher is worse, else its inverse (a drop to zero is infinitely worse)."""
    if higher_is_worse:
        return ratio
    return 1.0 / ratio if ratio else math.inf


def smallest_p_value(n_a: int, n_b: int) -> float:
    """The smallest two-sided p-value an exact Mann–Whitney U test can reach with these
    sample sizes (complete separation): 2 / C(n_a + n_b, n_a)."""
    if n_a == 0 or n_b == 0:
        return 1.0
    log_comb = math.lgamma(n_a + n_b + 1) - math.lgamma(n_a + 1) - math.lgamma(n_b + 1)
    return min(1.0, 2.0 * math.exp(-log_comb))


def enough_repetitions(n_a: int, n_b: int, alpha: float) -> bool:
    """Whether a significant difference is possible at all with these sizes."""
    return smallest_p_value(n_a, n_b) < alpha


def detectable_change(
    baseline: np.ndarray, current: np.ndarray, alpha: float, power: float = POWER
) -> float | None:
    """The smallest change of the median, as a fraction (0.05 = 5%), that a two-sided
    Mann–Whitney test at ``alpha`` would detect with probability ``power``, given the
    spread of the repetitions: the t-test's minimum detectable shift on log values
    (pooled standard deviation, Student quantiles), widened by the Mann–Whitney test's
    efficiency. None when these sizes cannot reach ``alpha`` at all."""
    if not enough_repetitions(baseline.size, current.size, alpha):
        return None
    spread = _log_spread(baseline, current)
    shift = _shift(spread, baseline.size, current.size, alpha, power)
    return math.expm1(shift)


def repetitions_needed(
    baseline: np.ndarray,
    current: np.ndarray,
    threshold: float,
    alpha: float,
    power: float = POWER,
) -> int | None:
    """Repetitions a side at which a change of ``threshold`` is detected with probability
    ``power`` at ``alpha``, for the spread these repetitions show (None beyond
    MAX_REPETITIONS)."""
    spread = _log_spread(baseline, current)
    target = math.log1p(threshold)
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    normal = 2 * (z * spread / target) ** 2 / MANN_WHITNEY_EFFICIENCY  # Student's needs more
    for n in range(max(2, int(normal)), MAX_REPETITIONS + 1):
        if enough_repetitions(n, n, alpha) and _shift(spread, n, n, alpha, power) <= target:
            return n
    return None


def _log_spread(baseline: np.ndarray, current: np.ndarray) -> float:
    """The pooled standard deviation of the log values of both sides."""
    logs = [np.log(np.asarray(side, float)) for side in (baseline, current)]
    dof = sum(side.size - 1 for side in logs)
    if dof <= 0:
        return 0.0
    return math.sqrt(sum(float(np.sum((x - x.mean()) ** 2)) for x in logs) / dof)


def _shift(spread: float, n_a: int, n_b: int, alpha: float, power: float) -> float:
    dof = max(n_a + n_b - 2, 1)
    quantiles = stats.t.ppf(1 - alpha / 2, dof) + stats.t.ppf(power, dof)
    return quantiles * spread * math.sqrt((1 / n_a + 1 / n_b) / MANN_WHITNEY_EFFICIENCY)


def assess(
    metric: str,
    baseline: list[float],
    current: list[float],
    higher_is_worse: bool,
    threshold: float,
    alpha: float = 0.05,
    seed: int = 0,
) -> Change:
    """The verdict for one metric from its per-repetition values on each side.

    ``regressed`` needs both: the Mann–Whitney U test significant at ``alpha`` and the
    median ratio worse than ``threshold`` (0.05 = 5%). ``improved`` is the mirror image.
    ``unchanged``: the interval lies inside the threshold band, or the change is
    significant but smaller than the threshold. Anything else is ``inconclusive``, and so
    is every change when the sizes cannot reach significance (too few repetitions).
    """
    a, b = np.asarray(baseline, float), np.asarray(current, float)
    base_median, current_median = float(np.median(a)), float(np.median(b))
    ratio = _ratio(current_median, base_median)
    common = dict(
        metric=metric,
        baseline=base_median,
        current=current_median,
        ratio=ratio,
        n_baseline=a.size,
        n_current=b.size,
        threshold=threshold,
        higher_is_worse=higher_is_worse,
    )
    worse = worse_factor(ratio, higher_is_worse)
    band = (1.0 / (1.0 + threshold), 1.0 + threshold)
    if not enough_repetitions(a.size, b.size, alpha):
        within = band[0] <= worse <= band[1]
        note = (
            f"{a.size} vs {b.size} repetitions cannot reach p < {alpha}: "
            "run both sides with --repeat 5 or more"
        )
        return Change(
            **common,
            ci_low=None,
            ci_high=None,
            p_value=None,
            verdict=INCONCLUSIVE,
            note=note if not within else f"{note} (change within threshold)",
        )
    if np.all(a > 0) and np.all(b > 0):  # log spread: every figure here is positive
        common["detectable"] = detectable_change(a, b, alpha)
        common["repetitions_needed"] = repetitions_needed(a, b, threshold, alpha)
    ci_low, ci_high = ratio_interval(a, b, seed)
    p_value = float(stats.mannwhitneyu(b, a, alternative="two-sided").pvalue)
    if math.isnan(p_value):  # every value equal on both sides
        p_value = 1.0
    worse_ci = sorted(worse_factor(x, higher_is_worse) for x in (ci_low, ci_high))
    significant = p_value < alpha
    if significant and worse > band[1]:
        verdict, note = REGRESSED, None
    elif significant and worse < band[0]:
        verdict, note = IMPROVED, None
    elif significant:
        verdict, note = UNCHANGED, "a real change, smaller than the threshold"
    elif band[0] <= worse_ci[0] and worse_ci[1] <= band[1]:
        verdict, note = UNCHANGED, None
    else:
        verdict = INCONCLUSIVE
        note = "not significant, and the interval reaches past the threshold"
    return Change(
        **common, ci_low=ci_low, ci_high=ci_high, p_value=p_value, verdict=verdict, note=note
    )


def ratio_interval(baseline: np.ndarray, current: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of median(current) / median(baseline), each side
    resampled on its own. Equal values on both sides give a zero-width interval."""
    if np.ptp(baseline) == 0 and np.ptp(current) == 0:
        ratio = _ratio(float(current[0]), float(baseline[0]))
        return ratio, ratio

    def statistic(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.median(b, axis=axis) / np.median(a, axis=axis)

    result = stats.bootstrap(
        (baseline, current),
        statistic,
        n_resamples=RESAMPLES,
        confidence_level=CONFIDENCE,
        method="percentile",
        vectorized=True,
        random_state=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def _ratio(current: float, baseline: float) -> float:
    if baseline == 0:
        return 1.0 if current == 0 else math.inf
    return current / baseline
