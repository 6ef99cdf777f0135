"""How far a task metric (top-1, mean IoU, agreement with the FP32 reference) may fall
below its reference before a precision or a change is judged to cost too much accuracy."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_BUDGET = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(%|pt|points?)?\s*$")


@dataclass(frozen=True)
class AccuracyBudget:
    """``limit`` percentage points of a metric read from 0 to 1 (``1``: one point of
    top-1, 0.01), or with ``relative`` a fraction of the reference value (``2%``)."""

    limit: float
    relative: bool = False

    @classmethod
    def parse(cls, text: str) -> AccuracyBudget:
        """``"1"`` or ``"1pt"`` (points), ``"2%"`` (of the reference); ValueError naming
        the forms otherwise."""
        match = _BUDGET.match(str(text))
        if not match or not math.isfinite(float(match.group(1))):
            raise ValueError(
                f"accuracy budget '{text}': give points of the metric (1 or 1pt: one point "
                "of top-1) or a drop relative to the reference (2%)"
            )
        return cls(float(match.group(1)), relative=match.group(2) == "%")

    def allowed(self, reference: float) -> float:
        """The largest drop from ``reference`` within the budget, on the 0-1 scale."""
        if self.relative:
            return abs(reference) * self.limit / 100
        return self.limit / 100

    def exceeded(self, reference: float, value: float) -> bool:
        """Whether ``value`` fell further below ``reference`` than the budget allows."""
        return reference - value > self.allowed(reference) + 1e-12

    def overrun(
        self,
        metric: str | None,
        reference: float | None,
        value: float | None,
        against: str = "the FP32 reference",
    ) -> str | None:
        """``over the accuracy budget: …`` where ``value`` fell further below ``reference``
        (``against`` names it) than allowed; None within the budget or with nothing to
        judge."""
        if reference is None or value is None or not self.exceeded(reference, value):
            return None
        drop = (reference - value) * 100
        return (
            f"over the accuracy budget: {metric} {drop:.2f} points below {against} (budget {self})"
        )

    def __str__(self) -> str:
        if self.relative:
            return f"{self.limit:g}% of the reference"
        return f"{self.limit:g} point{'s' if self.limit != 1 else ''}"
