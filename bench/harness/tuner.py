"""The deployment decision (``cli.py tune``): which runtime, precision, batch and requests
in flight to ship for one model, under a latency bound, the accuracy verdict, a memory
and a power limit.

Each configuration is measured as a cell; what its measurement says about others is used
before measuring them. Latency and memory grow with the batch and with the requests in
flight, so a configuration over the bound (or the memory limit) rules out every larger
one of its runtime and precision (``pruned``), and a failed accuracy verdict rules out
its runtime and precision whole. A small space is walked as a grid in that order; a
large one is searched by Optuna's constrained TPE sampler within a budget of
measurements, configurations already ruled out answered without measuring.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.core.budget import AccuracyBudget
from bench.core.errors import UserError
from bench.core.record import CellRecord

TIE = 0.03
"""Configurations within this share of the highest samples/s are as fast as it (beyond a
closed-loop measurement's run-to-run noise on a quiet machine, about 1–2%): of those the
one with the lowest p99 is chosen."""
Measure = Callable[["Configuration"], CellRecord | None]
"""Measures one configuration: its cell's record (None when it could not be run)."""


@dataclass(frozen=True, order=True)
class Configuration:
    """One way to deploy: runtime, device, precision, batch and requests in flight."""

    runtime: str
    device: str
    precision: str
    batch: int
    in_flight: int

    @property
    def label(self) -> str:
        return f"{self.runtime} {self.device} {self.precision} b{self.batch} ×{self.in_flight}"

    @property
    def path(self) -> tuple[str, str, str]:
        """What the batch and requests in flight vary within: runtime, device, precision."""
        return (self.runtime, self.device, self.precision)

    def covers(self, other: Configuration) -> bool:
        """Whether ``other`` is at least as large (same runtime, device and precision,
        batch and requests in flight no smaller): it cannot have lower latency or memory."""
        return (
            self.path == other.path
            and other.batch >= self.batch
            and other.in_flight >= self.in_flight
        )


@dataclass(frozen=True)
class Constraints:
    """What a configuration to ship must meet: its p99 latency under ``latency_bound_ms``
    (or, with ``target_qps``, a VALID LoadGen Server run at that rate under the bound), an
    accuracy verdict that did not fail (``accuracy``), peak memory and average power
    under their limits where given (power only where it was measured); with labelled
    data, a task metric no further below the FP32 reference's than ``accuracy_budget``."""

    latency_bound_ms: float | None = None
    target_qps: float | None = None
    accuracy: bool = True
    accuracy_budget: AccuracyBudget | None = None
    max_memory_mb: float | None = None
    max_watts: float | None = None


@dataclass
class Trial:
    """A configuration and what became of it: ``measured`` (its figures), then ``met``
    the constraints or ``rejected`` with the reason and the limits it broke
    (``violations``: accuracy, latency, invalid, memory, power); ``pruned`` (ruled out by
    another's measurement, not measured), ``skipped`` (its runtime cannot run it here) or
    ``failed`` (its cell did not end ok)."""

    configuration: Configuration
    status: str
    reason: str = ""
    violations: tuple[str, ...] = ()
    samples_per_s: float | None = None
    p99_ms: float | None = None
    peak_rss_mb: float | None = None
    avg_w: float | None = None
    verdict: str | None = None
    metric: str | None = None
    metric_value: float | None = None
    reference_value: float | None = None
    executed_precision: str | None = None
    key: str | None = None

    @property
    def measured(self) -> bool:
        return self.status in ("met", "rejected")

    @property
    def ran(self) -> bool:
        """Whether a measurement was spent on it (a failed cell too)."""
        return self.measured or self.status == "failed"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "label": self.configuration.label}


def figures_of(record: CellRecord) -> dict[str, Any]:
    """The figures a decision reads from a cell's record: samples/s and p99 latency (the
    LoadGen Server run's own, where it is one), peak memory, average power, accuracy and
    the task metric on labelled data beside its FP32 reference's."""
    served = record.loadgen
    task = record.scored
    if served is not None and served.latency_ms:
        p99 = served.latency_ms.get("p99")
        rate = served.completed_qps
    else:
        p99 = record.latency_ms.p99 if record.latency_ms else None
        rate = record.samples_per_s
    return {
        "samples_per_s": rate,
        "p99_ms": p99,
        "peak_rss_mb": record.memory.peak_rss_mb if record.memory else None,
        "avg_w": record.power.avg_w if record.power else None,
        "verdict": record.verdict,
        "metric": task.metric if task else None,
        "metric_value": task.value if task else None,
        "reference_value": task.reference_value if task else None,
        "executed_precision": record.executed_precision,
        "key": record.key,
    }


def judge(configuration: Configuration, record: CellRecord | None, limits: Constraints) -> Trial:
    """The trial of a measured configuration: met, or rejected with the first reason."""
    if record is not None and record.status == "skipped":
        return Trial(configuration, "skipped", record.reason or "skipped")
    if record is None or not record.ok:
        why = "not run" if record is None else f"{record.status}: {record.reason}"
        return Trial(configuration, "failed", why)
    trial = Trial(configuration, "met", **figures_of(record))
    reasons: dict[str, str] = {}
    over = None
    if limits.accuracy_budget is not None:
        budget = limits.accuracy_budget
        over = budget.overrun(trial.metric, trial.reference_value, trial.metric_value)
    if limits.accuracy and trial.verdict == "fail":
        reasons["accuracy"] = "accuracy failed against the fp32 reference"
    elif limits.accuracy and over:
        reasons["accuracy"] = over
    if limits.target_qps:
        served = record.loadgen
        if served is None or not served.valid:
            why = "; ".join(served.why or []) if served else "no LoadGen run"
            reasons["invalid"] = f"INVALID at {limits.target_qps:g} QPS: {why}"
    elif (
        limits.latency_bound_ms is not None and (trial.p99_ms or math.inf) > limits.latency_bound_ms
    ):
        bound = limits.latency_bound_ms
        reasons["latency"] = f"p99 {trial.p99_ms:.3g} ms over the {bound:g} ms bound"
    if limits.max_memory_mb is not None and (trial.peak_rss_mb or 0) > limits.max_memory_mb:
        memory = f"peak memory {trial.peak_rss_mb:.0f} MB over {limits.max_memory_mb:g} MB"
        reasons["memory"] = memory
    if limits.max_watts is not None and trial.avg_w is not None and trial.avg_w > limits.max_watts:
        reasons["power"] = f"{trial.avg_w:.1f} W over {limits.max_watts:g} W"
    if reasons:
        trial.status, trial.reason = "rejected", "; ".join(reasons.values())
        trial.violations = tuple(reasons)
    return trial


Rule = Callable[[Configuration], Trial | None]
"""What a measured trial says of another configuration: its trial without measuring
(pruned or skipped), or None."""
GROWING = {"latency", "invalid", "memory"}
"""The limits a larger batch or more requests in flight cannot bring back under."""


def rules_out(trial: Trial) -> Rule:
    """What a measured trial says of others (see ``Rule``)."""
    done = trial.configuration
    if trial.status == "skipped":  # the runtime cannot run this device and precision here

        def by_skip(other: Configuration) -> Trial | None:
            return Trial(other, "skipped", trial.reason) if other.path == done.path else None

        return by_skip
    if "accuracy" in trial.violations:

        def by_accuracy(other: Configuration) -> Trial | None:
            if other.path == done.path and other != done:
                why = f"{' '.join(done.path)} failed accuracy ({done.label})"
                return Trial(other, "pruned", why)
            return None

        return by_accuracy
    if GROWING & set(trial.violations):

        def by_size(other: Configuration) -> Trial | None:
            if other != done and done.covers(other):
                why = f"no smaller than {done.label}, which was rejected: {trial.reason}"
                return Trial(other, "pruned", why)
            return None

        return by_size
    return lambda other: None


def ruled(rules: list[Rule], configuration: Configuration) -> Trial | None:
    """The first trial ``rules`` give ``configuration`` without measuring it, if any."""
    return next((t for rule in rules if (t := rule(configuration)) is not None), None)


@dataclass
class Decision:
    """A search's outcome: every trial (measured, rejected, pruned …), the chosen one
    (the highest samples/s of those that met the constraints) and why, the Pareto front
    of samples/s against p99 over the measured ones, and how many were measured."""

    trials: list[Trial]
    chosen: Trial | None
    why: str
    front: list[Trial]
    method: str
    measurements: int
    closest: list[Trial] = field(default_factory=list)


def space(
    runtimes: Iterable[str],
    devices: Iterable[str],
    precisions: Iterable[str],
    batches: Iterable[int],
    in_flight: Iterable[int],
) -> list[Configuration]:
    """Every configuration, smallest first within each runtime, device and precision (the
    order in which measuring one rules out the most others)."""
    axes = (runtimes, devices, precisions, batches, in_flight)
    return sorted(Configuration(*values) for values in itertools.product(*axes))


def grid(configurations: list[Configuration], measure: Measure, limits: Constraints) -> Decision:
    """Measure each configuration in order, skipping those a measurement ruled out."""
    trials: list[Trial] = []
    rules: list[Rule] = []
    for configuration in configurations:
        known = ruled(rules, configuration)
        if known is not None:
            trials.append(known)
            continue
        trial = judge(configuration, measure(configuration), limits)
        trials.append(trial)
        rules.append(rules_out(trial))
    return decide(trials, "grid")


def optuna_search(
    configurations: list[Configuration],
    measure: Measure,
    limits: Constraints,
    budget: int,
    seed: int = 0,
) -> Decision:
    """Optuna's TPE sampler with constraints over the configurations' axes, ``budget``
    measurements at most: a configuration measured or ruled out before is answered from
    what is known, without measuring (nor counting against the budget)."""
    try:
        import optuna
    except ImportError:
        raise UserError(
            f"{len(configurations)} configurations need Optuna to search within the budget: "
            "pip install optuna, or walk them all with --search grid"
        ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    axes = {
        "runtime": sorted({c.runtime for c in configurations}),
        "device": sorted({c.device for c in configurations}),
        "precision": sorted({c.precision for c in configurations}),
        "batch": sorted({c.batch for c in configurations}),
        "in_flight": sorted({c.in_flight for c in configurations}),
    }
    allowed = set(configurations)
    known: dict[Configuration, Trial] = {}
    rules: list[Rule] = []

    sampler = optuna.samplers.TPESampler(seed=seed)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    asked = 0
    while sum(t.ran for t in known.values()) < budget:
        asked += 1
        if asked > budget * 20 or len(known) == len(allowed):
            break
        optuna_trial = study.ask()
        configuration = Configuration(
            **{
                name: optuna_trial.suggest_categorical(name, values)
                for name, values in axes.items()
            }
        )
        if configuration not in known:
            answer = ruled(rules, configuration)
            if configuration not in allowed:
                known[configuration] = Trial(configuration, "pruned", "not in the space")
            elif answer is not None:
                known[configuration] = answer
            else:
                known[configuration] = judge(configuration, measure(configuration), limits)
                rules.append(rules_out(known[configuration]))
        trial = known[configuration]
        feasible = trial.status == "met"
        optuna_trial.set_constraint("constraints", 0.0 if feasible else 1.0)
        study.tell(optuna_trial, trial.samples_per_s or 0.0)
    trials = [
        known[c] if c in known else Trial(c, "unmeasured", "budget spent") for c in configurations
    ]
    return decide(trials, f"optuna TPE, budget {budget}")


def decide(trials: list[Trial], method: str) -> Decision:
    """The chosen trial, the Pareto front and, when none met the constraints, the
    closest (the fastest rejected ones)."""
    met = [t for t in trials if t.status == "met" and t.samples_per_s]
    measured = [t for t in trials if t.measured and t.samples_per_s and t.p99_ms is not None]
    front = pareto(measured)
    count = sum(t.ran for t in trials)
    if not met:
        rejected = sorted(
            (t for t in trials if t.status == "rejected"),
            key=lambda t: -(t.samples_per_s or 0),
        )
        why = "no configuration met the constraints"
        return Decision(trials, None, why, front, method, count, rejected[:3])
    fastest = max(met, key=lambda t: t.samples_per_s or 0)
    as_fast = [t for t in met if t.samples_per_s >= fastest.samples_per_s * (1 - TIE)]
    chosen = min(as_fast, key=lambda t: (t.p99_ms or math.inf, -t.samples_per_s))
    why = (
        f"{chosen.samples_per_s:.4g} samples/s at p99 {chosen.p99_ms:.3g} ms: of the "
        f"{len(met)} that met every constraint"
    )
    if len(as_fast) > 1:
        others = ", ".join(t.configuration.label for t in as_fast if t is not chosen)
        why += (
            f", the lowest p99 of those within {TIE:.0%} of the highest samples/s "
            f"({fastest.samples_per_s:.4g}; also {others})"
        )
    else:
        runner_up = max((t for t in met if t is not chosen), key=_rate, default=None)
        why += ", the highest samples/s"
        if runner_up is not None:
            gain = chosen.samples_per_s / runner_up.samples_per_s - 1
            why += f", {gain:.1%} above the next ({runner_up.configuration.label})"
    return Decision(trials, chosen, why, front, method, count)


def _rate(trial: Trial) -> float:
    return trial.samples_per_s or 0.0


def pareto(trials: list[Trial]) -> list[Trial]:
    """The trials no other beats on both samples/s (higher) and p99 (lower)."""

    def beaten(t: Trial) -> bool:
        return any(
            o.samples_per_s >= t.samples_per_s
            and o.p99_ms <= t.p99_ms
            and (o.samples_per_s > t.samples_per_s or o.p99_ms < t.p99_ms)
            for o in trials
        )

    return sorted((t for t in trials if not beaten(t)), key=lambda t: t.p99_ms)
