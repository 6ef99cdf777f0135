"""When a timed loop ends: the stop rule, and the estimate of how well the loop's figure is
known, from batches rather than from single requests.

Fixed (trtexec, benchmark_app): a loop ends once a minimum time and a minimum count are both
met, or at a cap. With a target, a loop may end sooner, once its figure is known well enough:

- the measured window, once the 95% interval of its figure (the median latency; in the
  throughput scenario, requests per second) is within ±``half_width`` of it. The interval
  comes from *batch medians* (rates): the window so far is cut into ``BATCHES`` parts of
  equal time, and the spread of their medians gives the median's standard error
  (t-interval over the parts). Consecutive requests are correlated (a neighbour's burst,
  a frequency step lasts many requests), so an interval that treats them as independent,
  as MLPerf LoadGen's binomial early-stopping bound does, is too narrow; parts that grow
  with the window take in correlation up to an eighth of its length. The check runs from
  ``BATCHES`` requests and ``BATCHES`` × ``batch_s`` on, then each time the window has
  grown by a tenth (at least ``batch_s``); a window of fewer than 2 × ``BATCHES`` requests
  (a slow cell) is judged with one request a part.
- the warm-up, once the medians (rates) of its last ``SETTLE_BATCHES`` batches of at least
  ``batch_s`` each lie within ±``settle`` of their mean, as Triton perf_analyzer calls a
  measurement stable when its last three windows agree within its stability percentage.

The fixed rule still ends a loop it meets first, so a target only ever shortens a loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Literal

import numpy as np

BATCHES = 8
"""Parts of equal time the measured window is cut into for its interval."""
SETTLE_BATCHES = 3
"""Consecutive warm-up batches that must agree for the warm-up to have settled."""
_T975 = (
    *(12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228),
    *(2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086),
    *(2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042),
)
"""Student's t, 97.5th percentile, for 1 to 30 degrees of freedom (scipy.stats.t.ppf)."""

Figure = Literal["median", "rate"]
Stop = Literal["early", "settled", "window", "cap"]


@dataclass(frozen=True)
class StopRule:
    """A loop ends once ``min_s`` and ``min_count`` are both met, or at ``max_s``. A
    ``half_width`` above 0 (the measured window) or a ``settle`` above 0 (the warm-up) lets
    it end sooner, once its figure is known to within that fraction (see the module's
    docstring); ``batch_s`` is the shortest batch those estimates use."""

    min_s: float
    min_count: int
    max_s: float = float("inf")
    half_width: float = 0.0
    settle: float = 0.0
    batch_s: float = 0.1

    def done(self, elapsed_ns: int, count: int) -> bool:
        """Whether the fixed rule, or the cap, ends a loop at this point."""
        return (elapsed_ns >= self.min_s * 1e9 and count >= self.min_count) or (
            elapsed_ns >= self.max_s * 1e9
        )


@dataclass(frozen=True)
class Ending:
    """How a loop ended: ``stop`` is ``early`` (the window's figure reached its target),
    ``settled`` (the warm-up's last batches agreed), ``window`` (the fixed rule) or ``cap``;
    ``half_width`` is the 95% interval's half-width reached, relative to the figure, over
    ``batches`` parts (None with too few requests for one)."""

    stop: Stop
    half_width: float | None
    batches: int


def t975(df: int) -> float:
    """Student's t quantile for a two-sided 95% interval with ``df`` degrees of freedom."""
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964  # beyond the table, the Cornish-Fisher expansion: within 0.005% from 31 on
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def half_width(
    times_ns: np.ndarray, ends_ns: np.ndarray, start_ns: int, end_ns: int, figure: Figure
) -> tuple[float | None, int]:
    """The relative half-width of the 95% interval of ``figure`` over a window from
    ``start_ns`` to ``end_ns`` whose requests took ``times_ns`` and completed at ``ends_ns``
    (ascending), and the number of parts it came from: ``BATCHES`` parts of equal time
    (for a median, empty ones left out; for a rate, an empty one counts as 0), or for a
    median over fewer than twice as many requests, one request a part. None with fewer
    than 3 parts."""
    count = len(times_ns)
    if count < 3 or end_ns <= start_ns:
        return None, 0
    if figure == "rate":  # requests per part; a part with none is a stall, its rate 0
        parts = min(BATCHES, count // 2)
        if parts < 3:
            return None, parts
        cuts = start_ns + (end_ns - start_ns) * np.arange(1, parts) / parts
        inner = np.searchsorted(ends_ns, cuts, side="right")
        values = np.diff(np.concatenate(([0], inner, [count]))).astype(np.float64)
    else:  # the median of each part that holds requests
        if count < 2 * BATCHES:
            bounds = np.arange(count + 1)
        else:
            cuts = start_ns + (end_ns - start_ns) * np.arange(1, BATCHES) / BATCHES
            inner = np.searchsorted(ends_ns, cuts, side="right")
            bounds = np.unique(np.concatenate(([0], inner, [count])))
        values = np.array([np.median(times_ns[a:b]) for a, b in pairwise(bounds)])
    k = len(values)
    if k < 3:
        return None, k
    centre = float(values.mean()) if figure == "rate" else float(np.median(times_ns))
    if centre <= 0:
        return None, k
    return t975(k - 1) * float(values.std(ddof=1)) / np.sqrt(k) / centre, k


class Progress:
    """One loop followed against its rule: ``add`` takes each completed request (its
    latency and the time it completed) and says whether the loop ends there; ``ending``
    says why it ended and how well its figure is known."""

    def __init__(self, rule: StopRule, start_ns: int, figure: Figure) -> None:
        self.rule = rule
        self.start_ns = start_ns
        self.figure: Figure = figure
        self.times: list[int] = []
        self.ends: list[int] = []
        self.stop: Stop | None = None
        self._batch_ns = int(rule.batch_s * 1e9)
        self._next_check = start_ns + BATCHES * self._batch_ns
        self._batch_start = (0, start_ns)  # the open warm-up batch: first request, its start
        self._batch_figures: list[float] = []

    def add(self, latency_ns: int, now_ns: int) -> bool:
        """Record one completed request; True when the loop ends with it."""
        self.times.append(latency_ns)
        self.ends.append(now_ns)
        elapsed = now_ns - self.start_ns
        rule = self.rule
        batch_ended = rule.settle > 0 and now_ns - self._batch_start[1] >= self._batch_ns
        if batch_ended and self._settled(now_ns):
            self.stop = "settled"
            return True
        if rule.half_width > 0 and now_ns >= self._next_check:
            self._next_check = now_ns + max(self._batch_ns, elapsed // 10)
            if self._known(now_ns):
                self.stop = "early"
                return True
        if elapsed >= rule.min_s * 1e9 and len(self.times) >= rule.min_count:
            self.stop = "window"
        elif elapsed >= rule.max_s * 1e9:
            self.stop = "cap"
        return self.stop is not None

    def _settled(self, now_ns: int) -> bool:
        """Close the open warm-up batch; whether the last few batches agree."""
        first, began = self._batch_start
        batch = self.times[first:]
        if self.figure == "median":
            value = float(np.median(batch))
        else:
            value = len(batch) / (now_ns - began)
        self._batch_figures.append(value)
        self._batch_start = (len(self.times), now_ns)
        last = self._batch_figures[-SETTLE_BATCHES:]
        if len(last) < SETTLE_BATCHES:
            return False
        mean = sum(last) / len(last)
        return mean > 0 and all(abs(v - mean) <= self.rule.settle * mean for v in last)

    def _known(self, now_ns: int) -> bool:
        """Whether the window's figure is within its target, over full parts."""
        if len(self.times) < BATCHES:
            return False
        width, parts = self._half_width(now_ns)
        return parts >= BATCHES and width is not None and width <= self.rule.half_width

    def _half_width(self, end_ns: int) -> tuple[float | None, int]:
        return half_width(
            np.asarray(self.times, dtype=np.float64),
            np.asarray(self.ends, dtype=np.int64),
            self.start_ns,
            end_ns,
            self.figure,
        )

    def ending(self, end_ns: int) -> Ending:
        """Why the loop ended and its figure's half-width over the loop from its start to
        ``end_ns`` (a loop that ended otherwise, a throughput window that never closed,
        reads ``cap``)."""
        width, parts = self._half_width(end_ns)
        return Ending(self.stop or "cap", width, parts)
