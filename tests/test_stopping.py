"""The stop rule on synthetic latency sequences: a loop that ends once its figure is known,
one that runs to its cap and says so, and fixed windows when there is no target; through
the timed loops on a fake clock and into the cell record's JSON."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from bench.core import timing
from bench.core.record import CellRecord, Executed, Measured
from bench.core.settings import MeasureConfig
from bench.core.stopping import BATCHES, Progress, StopRule, half_width, t975
from bench.core.timing import ThroughputWindow, time_latency
from bench.harness.start import ResumeRequest, resumed_run
from bench.views.report import COLUMNS, summary_rows

MS = 1_000_000  # nanoseconds per millisecond
TARGET = 0.01


class FakeRequests:
    """A clock that only requests move: each ``launch`` takes the next latency (ms)."""

    def __init__(self, latencies_ms: Iterator[float]) -> None:
        self.now = 10**12
        self.latencies = latencies_ms
        self.launched = 0

    def clock(self) -> int:
        return self.now

    def launch(self) -> None:
        self.launched += 1
        self.now += round(next(self.latencies) * MS)


def steady(ms: float, spread: float, seed: int = 0) -> Iterator[float]:
    """Latencies around ``ms``, each off by up to ± ``spread`` of it, independent."""
    rng = np.random.default_rng(seed)
    while True:
        yield ms * (1 + spread * rng.uniform(-1, 1))


def drifting(ms: float, per_request: float) -> Iterator[float]:
    """Latencies that grow by ``per_request`` of ``ms`` with every request."""
    i = 0
    while True:
        yield ms * (1 + per_request * i)
        i += 1


def run(
    monkeypatch: pytest.MonkeyPatch,
    latencies: Iterator[float],
    warmup: StopRule,
    measure: StopRule,
) -> tuple[timing.LoopRecord, FakeRequests]:
    fake = FakeRequests(latencies)
    monkeypatch.setattr(timing, "_clock", fake.clock)
    return time_latency(fake.launch, lambda: None, warmup, measure), fake


def test_a_steady_series_stops_early_with_its_half_width(monkeypatch: pytest.MonkeyPatch) -> None:
    measure = StopRule(3.0, 50, 60.0, half_width=TARGET)
    record, _ = run(monkeypatch, steady(10.0, 0.05), StopRule(0, 1), measure)
    assert record.stop == "early" and not record.capped
    assert record.window_ns < 3e9  # sooner than the fixed window
    assert record.window_ns >= BATCHES * measure.batch_s * 1e9
    assert record.half_width is not None and record.half_width <= TARGET
    assert record.batches == BATCHES and record.target == TARGET
    times = np.asarray(record.times_ns, dtype=np.float64)
    ends = record.start_ns + np.cumsum(times).astype(np.int64)  # the fake clock has no gaps
    width, parts = half_width(times, ends, record.start_ns, record.end_ns, "median")
    assert (width, parts) == (pytest.approx(record.half_width), BATCHES)


def test_a_drifting_series_runs_to_the_cap_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    measure = StopRule(30.0, 10**9, 5.0, half_width=TARGET)
    record, _ = run(monkeypatch, drifting(10.0, 0.002), StopRule(0, 1), measure)
    assert record.stop == "cap" and record.capped
    assert 5e9 <= record.window_ns < 5.1e9
    assert record.half_width is not None and record.half_width > TARGET


def test_a_noisy_series_runs_the_fixed_window_and_says_its_half_width(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    measure = StopRule(3.0, 50, 60.0, half_width=0.001)
    record, _ = run(monkeypatch, steady(10.0, 0.5), StopRule(0, 1), measure)
    assert record.stop == "window" and not record.capped
    assert record.window_ns >= 3e9 and record.completed >= 50
    assert record.half_width is not None and record.half_width > 0.001


def test_no_target_keeps_the_fixed_window(monkeypatch: pytest.MonkeyPatch) -> None:
    config = MeasureConfig(half_width=0)
    warmup, measure = config.warmup_rule(), config.measurement_rule()
    assert (warmup.settle, measure.half_width) == (0, 0)
    record, fake = run(monkeypatch, steady(10.0, 0.01), warmup, measure)
    assert record.stop == "window" and record.warmup_stop == "window"
    assert record.warmup_count == 100  # 1 s of 10 ms requests: both minimums, no sooner
    assert record.completed == 300 == fake.launched - 100
    assert record.window_ns == 3_000_000_000 or record.completed == 300
    assert record.half_width is not None and record.half_width < TARGET  # stated all the same


def test_a_settled_warmup_ends_before_the_fixed_one(monkeypatch: pytest.MonkeyPatch) -> None:
    def cooling() -> Iterator[float]:  # 40 ms, falling to within 1% of 10 ms by request 100
        for i in range(100):
            yield 10.0 * (1 + 3 * np.exp(-i / 18))
        yield from steady(10.0, 0.01)

    warmup = StopRule(5.0, 10, 60.0, settle=0.05)
    record, _ = run(monkeypatch, cooling(), warmup, StopRule(0.5, 1))
    assert record.warmup_stop == "settled"
    assert record.warmup_ns is not None and record.warmup_ns < 2e9
    assert record.warmup_count > 40  # not while the latency still fell fast
    assert max(record.times_ns) < 12 * MS  # the window holds no request 20% slow


def test_a_warmup_that_never_settles_ends_at_the_fixed_rule(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    warmup = StopRule(1.0, 10, 60.0, settle=0.05)
    record, _ = run(monkeypatch, steady(10.0, 0.8), warmup, StopRule(0.5, 1))
    assert record.warmup_stop == "window"
    assert record.warmup_ns is not None and record.warmup_ns >= 1e9


def test_a_slow_cell_is_known_from_one_request_a_part(monkeypatch: pytest.MonkeyPatch) -> None:
    measure = StopRule(3.0, 50, 60.0, half_width=0.02)
    record, _ = run(monkeypatch, steady(1200.0, 0.02), StopRule(0, 1), measure)
    assert record.stop == "early"
    assert record.completed == record.batches >= BATCHES  # each request its own part
    assert record.half_width is not None and record.half_width <= 0.02


def feed(window: ThroughputWindow, gaps_ms: Callable[[int], float], count: int) -> None:
    now = time.perf_counter_ns()  # completions on the window's own clock, from its start
    for i in range(count):
        now += round(gaps_ms(i) * MS)
        window.completed(2 * MS, now)
        if window.closed.is_set():
            return


def test_the_throughput_window_stops_early_on_a_steady_rate() -> None:
    window = ThroughputWindow(StopRule(0.1, 5), StopRule(3.0, 50, 60.0, half_width=TARGET))
    feed(window, lambda i: 1.0, 100_000)
    assert window.closed.is_set()
    record = window.record(in_flight=2)
    assert record.stop == "early" and record.figure == "rate"
    assert record.half_width is not None and record.half_width <= TARGET
    assert record.window_ns < 3e9


def test_the_throughput_window_runs_to_the_cap_on_a_falling_rate() -> None:
    window = ThroughputWindow(StopRule(0.1, 5), StopRule(30.0, 10**9, 2.0, half_width=TARGET))
    feed(window, lambda i: 1.0 + i / 500, 100_000)
    record = window.record(in_flight=2)
    assert record.stop == "cap" and record.capped
    assert record.half_width is not None and record.half_width > TARGET


def test_a_stall_counts_against_the_rate() -> None:
    """A part with no completion is a rate of 0, not a part left out."""
    times = np.full(40, 1.0)
    ends = np.concatenate((np.arange(1, 21), np.arange(61, 81))) * MS
    width, parts = half_width(times, ends, 0, 80 * MS, "rate")
    assert parts == BATCHES and width is not None and width > 0.5


def test_the_t_quantiles() -> None:
    assert t975(1) == pytest.approx(12.706)
    assert t975(7) == pytest.approx(2.365)
    assert t975(30) == pytest.approx(2.042)
    assert t975(31) == pytest.approx(2.0395, abs=1e-4)
    assert t975(10_000) == pytest.approx(1.960, abs=0.001)


def test_progress_ends_once_with_one_reason() -> None:
    progress = Progress(StopRule(0.0, 3), 0, "median")
    assert [progress.add(MS, i * MS) for i in (1, 2, 3)] == [False, False, True]
    assert progress.ending(3 * MS).stop == "window"


def test_the_record_carries_how_the_window_ended(monkeypatch: pytest.MonkeyPatch) -> None:
    config = MeasureConfig(half_width=TARGET, min_duration_s=3.0, warmup_s=1.0)
    rules = config.warmup_rule(), config.measurement_rule()
    record, _ = run(monkeypatch, steady(10.0, 0.02), *rules)
    measured = Measured.timed(Executed("fp32", "cpu"), record, 1, 0.1, {"source": "none"})
    line = CellRecord.model_validate(
        {"key": "k", "cell": cell_dict(), "status": "ok", **measured.sections()}
    ).to_dict()
    window = json.loads(json.dumps(line))["window"]
    assert window["stop"] == "early" and window["figure"] == "median"
    assert window["half_width"] <= TARGET == window["target"]
    assert window["batches"] == BATCHES
    assert window["warmup_stop"] == "settled" and 0 < window["warmup_s"] < 1.0
    assert line["throughput"]["capped"] is False
    assert CellRecord.from_dict(line).to_dict() == line  # it reads back unchanged


def cell_dict() -> dict[str, object]:
    return {
        "model": "mlp",
        "runtime": "onnxruntime",
        "device": "cpu",
        "precision": "fp32",
        "batch": 1,
        "scenario": "latency",
    }


def test_a_run_stored_before_early_stopping_resumes_with_fixed_windows(tmp_path: Path) -> None:
    before = {"warmup_s": 1.0, "warmup_min_iters": 10, "min_duration_s": 3.0, "min_iters": 50}
    before |= {"max_duration_s": 60.0, "cv_threshold": 0.1}  # what run.json held then
    model = {"name": "mlp", "kind": "zoo", "ref": "mlp", "shapes": {}, "ranges": {}}
    run = {"run_id": "old", "config": {"measure": before}, "models": [model]}
    (tmp_path / "run.json").write_text(json.dumps(run))
    resumed = resumed_run(ResumeRequest(tmp_path, cache_dir=tmp_path / "cache"))
    assert resumed.config.measure.half_width == 0.0
    assert resumed.config.measure.measurement_rule() == StopRule(3.0, 50, 60.0)


@pytest.mark.parametrize(
    ("window", "text"),
    [
        ({"stop": "early", "half_width": 0.0063, "target": 0.01}, "0.6%"),
        ({"stop": "window", "half_width": 0.031, "target": 0.01}, "3.1%!"),
        ({"stop": "cap", "half_width": 0.072, "target": 0.01}, "7.2%! cap"),
        ({"stop": "window", "half_width": 0.031, "target": 0.0}, "3.1%"),  # fixed windows
        ({"stop": "window", "half_width": 125.1, "target": 0.01}, ">100%!"),
        ({"stop": "window", "half_width": None, "target": 0.01}, "-"),
    ],
)
def test_the_summary_says_how_well_each_median_is_known(window: dict, text: str) -> None:
    record = CellRecord.model_validate(
        {"key": "k", "cell": cell_dict(), "status": "ok", "window": window}
    )
    assert summary_rows([record])[0][COLUMNS.index("known ±")] == text
