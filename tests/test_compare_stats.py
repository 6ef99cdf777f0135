"""The gate's statistics on synthetic repetitions with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from bench.compare.significance import (
    IMPROVED,
    INCONCLUSIVE,
    REGRESSED,
    UNCHANGED,
    assess,
    enough_repetitions,
    ratio_interval,
    smallest_p_value,
)
from bench.compare.thresholds import (
    DEFAULT_PER_METRIC,
    DEFAULT_THRESHOLD,
    Thresholds,
    parse_fraction,
)
from bench.core.errors import UserError
from bench.core.metrics import METRICS


def noisy(center: float, n: int, rng: np.random.Generator, spread: float = 0.01) -> list[float]:
    return list(center * (1 + spread * rng.standard_normal(n)))


def test_identical_samples_are_unchanged() -> None:
    values = [1.0, 1.01, 0.99, 1.02, 0.98]
    change = assess("latency_median", values, values, True, 0.05)
    assert change.verdict == UNCHANGED
    assert change.ratio == pytest.approx(1.0)
    assert change.p_value == pytest.approx(1.0)
    assert change.ci_low <= 1.0 <= change.ci_high


def test_equal_constants_give_a_zero_width_interval() -> None:
    change = assess("peak_memory", [100.0] * 5, [100.0] * 5, True, 0.05)
    assert (change.ci_low, change.ci_high, change.verdict) == (1.0, 1.0, UNCHANGED)


def test_a_ten_percent_slowdown_regresses_and_a_speedup_improves() -> None:
    rng = np.random.default_rng(1)
    base, slow = noisy(1.0, 8, rng), noisy(1.10, 8, rng)
    slower = assess("latency_median", base, slow, True, 0.05)
    assert slower.verdict == REGRESSED
    assert slower.ratio == pytest.approx(1.10, rel=0.03)
    assert slower.ci_low > 1.05 and slower.p_value < 0.01
    faster = assess("latency_median", slow, base, True, 0.05)
    assert faster.verdict == IMPROVED
    assert faster.worse_by == pytest.approx(-0.09, abs=0.03)


def test_direction_follows_the_metric() -> None:
    """10% less throughput is worse; 10% more is better."""
    rng = np.random.default_rng(2)
    base, less = noisy(1000.0, 8, rng), noisy(900.0, 8, rng)
    assert assess("throughput", base, less, False, 0.05).verdict == REGRESSED
    assert assess("throughput", less, base, False, 0.05).verdict == IMPROVED


def test_a_significant_change_below_the_threshold_is_unchanged() -> None:
    rng = np.random.default_rng(3)
    change = assess("latency_median", noisy(1.0, 8, rng), noisy(1.10, 8, rng), True, 0.20)
    assert change.p_value < 0.05
    assert change.verdict == UNCHANGED
    assert "smaller than the threshold" in change.note


def test_a_large_but_noisy_change_is_inconclusive() -> None:
    """+10% in the medians but 30% noise: not significant, interval past the threshold."""
    base = [1.0, 0.7, 1.3, 0.9, 1.2]
    noisy_current = [1.1, 0.8, 1.4, 0.75, 1.3]
    change = assess("latency_median", base, noisy_current, True, 0.05)
    assert change.p_value >= 0.05
    assert change.verdict == INCONCLUSIVE


def test_too_few_repetitions_are_inconclusive_whatever_the_change() -> None:
    for n in (1, 2, 3):
        change = assess("latency_median", [1.0] * n, [2.0] * n, True, 0.05)
        assert change.verdict == INCONCLUSIVE
        assert "--repeat" in change.note
        assert change.p_value is None and change.ci_low is None


def test_smallest_p_value_matches_the_exact_test() -> None:
    for n_a, n_b in ((3, 3), (4, 4), (5, 5), (3, 5)):
        exact = stats.mannwhitneyu(
            list(range(n_a)), [10 + i for i in range(n_b)], method="exact"
        ).pvalue
        assert smallest_p_value(n_a, n_b) == pytest.approx(exact)
    assert not enough_repetitions(3, 3, 0.05)
    assert enough_repetitions(4, 4, 0.05)
    assert smallest_p_value(0, 5) == 1.0


def test_heavy_tailed_noise_rarely_regresses_when_nothing_changed() -> None:
    """A/A under Pareto-tailed noise: the false 'regressed' rate stays near alpha / 2 or
    below (the threshold adds to the test), while a real 20% shift is caught most times."""
    rng = np.random.default_rng(7)

    def sample(scale: float) -> list[float]:
        return list(scale * (1 + 0.05 * rng.pareto(2.5, 6)))

    trials = 300
    false = sum(
        assess("latency_median", sample(1.0), sample(1.0), True, 0.05).verdict == REGRESSED
        for _ in range(trials)
    )
    caught = sum(
        assess("latency_median", sample(1.0), sample(1.2), True, 0.05).verdict == REGRESSED
        for _ in range(trials)
    )
    assert false / trials <= 0.05
    assert caught / trials >= 0.8


def test_the_interval_covers_the_true_ratio() -> None:
    rng = np.random.default_rng(11)
    covered = 0
    for _ in range(100):
        low, high = ratio_interval(
            np.asarray(noisy(1.0, 10, rng, 0.05)), np.asarray(noisy(1.25, 10, rng, 0.05)), 0
        )
        covered += low <= 1.25 <= high
    assert covered >= 80  # a percentile bootstrap on 10 values runs a little narrow


def test_thresholds_from_specs() -> None:
    thresholds = Thresholds(0.05, (("latency_p99", 0.2),)).with_specs(
        ["3%", "throughput=0.1", "latency_p99=25%"]
    )
    assert thresholds.of("latency_median") == pytest.approx(0.03)
    assert thresholds.of("throughput") == pytest.approx(0.1)
    assert thresholds.of("latency_p99") == pytest.approx(0.25)
    assert parse_fraction("5%", "5%") == pytest.approx(0.05)


@pytest.mark.parametrize("spec", ["fast", "0", "-5%", "latency=5%", "1e9"])
def test_bad_threshold_specs_are_one_line_errors(spec: str) -> None:
    with pytest.raises(UserError) as error:
        Thresholds().with_specs([spec])
    message = str(error.value)
    assert "\n" not in message
    assert spec in message and ("5%" in message or "metric" in message or "below" in message)


def test_built_in_thresholds_and_what_overrides_them() -> None:
    built_in = Thresholds()
    assert built_in.of("latency_median") == pytest.approx(DEFAULT_THRESHOLD)
    assert built_in.of("latency_p99") == pytest.approx(dict(DEFAULT_PER_METRIC)["latency_p99"])
    assert built_in.of("peak_memory") < built_in.of("latency_median")
    everywhere = built_in.with_specs(["4%"])  # one threshold for every metric
    assert list(everywhere.effective().values()) == pytest.approx([0.04] * len(METRICS))
    own = built_in.with_specs(["4%", "latency_p99=30%"])
    assert own.of("latency_p99") == pytest.approx(0.3) and own.of("throughput") == pytest.approx(
        0.04
    )


def test_throughput_that_drops_to_zero_is_worse_not_a_crash() -> None:
    change = assess("throughput", [1000.0] * 5, [0.0] * 5, False, 0.05)
    assert change.ratio == 0.0 and change.worse_by == float("inf")
    assert change.verdict == REGRESSED


def test_a_ratio_over_a_zero_baseline_is_null_in_json() -> None:
    import json

    change = assess("peak_memory", [0.0] * 5, [1.0] * 5, True, 0.05)
    assert change.ratio == float("inf") and change.verdict == REGRESSED
    document = json.dumps(change.to_dict(), allow_nan=False)  # raises on inf / nan
    assert json.loads(document)["ratio"] is None


@pytest.mark.parametrize("n", [8, 12])
def test_the_stated_detectable_change_is_detected_about_four_times_in_five(n: int) -> None:
    """Simulated: repetitions with a 5% spread; a shift of the detectable change the gate
    states is found significant at alpha 0.05 in about 80% of pairs (the exact test's
    coarse p-values keep it a little lower at small n)."""
    from bench.compare.significance import _shift, detectable_change

    rng = np.random.default_rng(n)
    sigma = 0.05
    stated = detectable_change(
        np.exp(rng.normal(0, sigma, n)), np.exp(rng.normal(0, sigma, n)), 0.05
    )
    assert stated is not None and 0.03 < stated < 0.2
    shift = _shift(sigma, n, n, 0.05, 0.8)  # the same rule with the true spread
    base = rng.normal(0, sigma, (2000, n))
    moved = rng.normal(shift, sigma, (2000, n))
    found = stats.mannwhitneyu(moved, base, axis=1, alternative="two-sided").pvalue < 0.05
    assert 0.7 <= found.mean() <= 0.9


def test_too_few_repetitions_detect_nothing_and_say_how_many_would() -> None:
    from bench.compare.significance import detectable_change, repetitions_needed

    three = np.array([1.0, 1.05, 0.97])
    assert detectable_change(three, three * 1.01, 0.05) is None
    needed = repetitions_needed(three, three * 1.01, 0.05, 0.05)
    assert needed is not None and needed > 3
    wide = repetitions_needed(three, three * 1.01, 0.20, 0.05)
    assert wide is not None and wide < needed  # a bigger change needs fewer


def test_unchanged_and_inconclusive_say_what_they_could_have_seen() -> None:
    rng = np.random.default_rng(3)
    base = list(np.exp(rng.normal(0, 0.05, 5)))
    change = assess("latency_median", base, list(np.array(base) * 1.01), True, 0.05)
    assert change.verdict in ("unchanged", "inconclusive")
    assert change.detectable is not None and change.repetitions_needed is not None
    from bench.compare.output import _note

    note = _note(change)
    assert f"detects ≥{change.detectable:.1%}" in note
    if change.detectable > 0.05:
        assert f"{change.repetitions_needed} reps a side for 5%" in note
