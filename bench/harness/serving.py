"""MLPerf LoadGen's scenarios as cells: LoadGen issues the queries, the runtime's request
slots serve them, and LoadGen's own logs judge the run.

The system under test follows MLPerf's reference Python harness (its ``QueueRunner``):
issued samples wait in one queue, and each of the cell's request slots (a session's
``request_slots``: ONNX Runtime's thread-safe ``run``, one OpenVINO InferRequest each,
PyTorch threads with a CUDA stream each) has a thread of its own that takes up to the
cell's batch of waiting samples, runs one request and completes them. Every request runs
on the cell's staged seeded inputs: the sample library is ``sample_count`` indices onto
them, so no sample is copied per request (as in the throughput scenario).

A Server cell without a ``target_qps`` searches for the highest arrival rate whose run
LoadGen calls VALID under the latency bound (``peak_search``).
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.core.record import Throughput
from bench.core.settings import LoadgenConfig
from bench.core.timing import LoopRecord, StopRule, time_throughput

LOADGEN_NAMES = {
    "single_stream": "SingleStream",
    "multi_stream": "MultiStream",
    "server": "Server",
    "offline": "Offline",
}
"""Our scenario names and LoadGen's."""
MULTI_STREAM_MIN_QUERIES = 662
"""MLPerf's MultiStream min_query_count: what LoadGen's early stopping needs to estimate
a 99th percentile (fewer queries make the run INVALID)."""
EARLY_STOPPING_CONFIDENCE = 0.99
"""The confidence of LoadGen's early stopping (its ``kConfidence``)."""
OFFLINE_MARGIN = 1.25
"""The Offline query is sized for this much more than the measured rate: LoadGen calls a
run INVALID when its one query ends before the minimum duration."""
LOG_FILES = ("mlperf_log_summary.txt", "mlperf_log_detail.txt")
INSTALL_HINT = "pip install mlcommons-loadgen"


def loadgen_unavailable_reason() -> str | None:
    """Why the LoadGen scenarios cannot run here (None when they can). Cheap."""
    import importlib.util

    if importlib.util.find_spec("mlperf_loadgen") is None:
        return f"MLPerf LoadGen (mlcommons-loadgen) is not installed: {INSTALL_HINT}"
    return None


class Dispatcher:
    """The system under test: issued samples wait in one queue; one thread per request
    slot takes up to ``batch`` of them, runs one request and completes them with
    ``complete``. ``times_ns`` keeps each request's own time. A request that raises stops
    the serving (the rest are completed unserved, so that LoadGen ends) and ``error``
    keeps it.

    ``inline``: the one slot runs in LoadGen's issue thread, no queue, no thread hop
    (SingleStream, where LoadGen issues the next query only once this one completed:
    the hand-over to a slot thread cost 10–30 µs a query here, half a LeNet-5 request)."""

    def __init__(
        self,
        slots: list[Callable[[], None]],
        batch: int,
        complete: Callable[[list[int]], None],
        inline: bool = False,
    ) -> None:
        self.batch = batch
        self.complete = complete
        self.times_ns: list[int] = []
        self.sizes: list[int] = []
        """The samples each served request carried."""
        self.error: BaseException | None = None
        self._waiting: deque[int] = deque()
        self._ready = threading.Condition()
        self._closed = False
        self._inline = slots[0] if inline and len(slots) == 1 else None
        self._threads = [
            threading.Thread(target=self._serve, args=(slot,), daemon=True)
            for slot in ([] if self._inline else slots)
        ]
        for thread in self._threads:
            thread.start()

    def issue(self, ids: list[int]) -> None:
        """Queue samples (LoadGen's issue thread: it must not wait here), or serve them
        at once (``inline``)."""
        if self._inline is not None:
            for start in range(0, len(ids), self.batch):
                self._run(self._inline, ids[start : start + self.batch])
            return
        with self._ready:
            self._waiting.extend(ids)
            self._ready.notify(len(ids))

    def _serve(self, slot: Callable[[], None]) -> None:
        while True:
            with self._ready:
                while not self._waiting and not self._closed:
                    self._ready.wait()
                if not self._waiting:
                    return
                take = min(self.batch, len(self._waiting))
                ids = [self._waiting.popleft() for _ in range(take)]
            self._run(slot, ids)

    def _run(self, slot: Callable[[], None], ids: list[int]) -> None:
        """One request for ``ids`` (none after a failure), then their completion."""
        if self.error is None:
            start = time.perf_counter_ns()
            try:
                slot()
            except BaseException as exc:  # re-raised by the cell once LoadGen ended
                self.error = exc
            self.times_ns.append(time.perf_counter_ns() - start)
            self.sizes.append(len(ids))
        self.complete(ids)

    def close(self) -> None:
        """Serve what is queued, then end the threads."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()
        for thread in self._threads:
            thread.join()


@dataclass
class Result:
    """One LoadGen run, as its detail log says: validity and why not, rates, latencies,
    early stopping and the limits it ran under. Latencies are per sample in ms (per query
    too in MultiStream); ``logs`` holds LoadGen's log files' text."""

    scenario: str
    valid: bool
    why: list[str]
    target_qps: float | None
    completed_qps: float | None
    scheduled_qps: float | None
    latency_ms: dict[str, float]
    query_latency_ms: dict[str, float]
    early_stopping: str
    early_stopping_ms: float | None
    min_duration_s: float | None
    min_query_count: int | None
    query_count: int | None
    samples_per_query: int | None
    target_latency_ms: float | None
    target_percentile: float | None
    duration_s: float
    errors: list[str]
    logs: dict[str, str] = field(default_factory=dict)

    def figures(self) -> dict[str, Any]:
        """The record's ``loadgen`` section (the logs travel apart)."""
        return {k: v for k, v in self.__dict__.items() if k != "logs"}

    def probe(self) -> dict[str, Any]:
        """What a peak search keeps of a run: the load curve's point."""
        return {
            "target_qps": self.target_qps,
            "completed_qps": self.completed_qps,
            "p50_ms": self.latency_ms.get("p50"),
            "p99_ms": self.latency_ms.get("p99"),
            "valid": self.valid,
            "why": self.why,
            "duration_s": self.duration_s,
        }


def read_detail(text: str) -> tuple[dict[str, Any], list[str]]:
    """The last value of each key of a LoadGen detail log (``:::MLLOG {json}`` lines),
    and its error and warning messages."""
    values: dict[str, Any] = {}
    messages: list[str] = []
    for line in text.splitlines():
        _, marker, payload = line.partition(":::MLLOG ")
        if not marker:
            continue
        try:
            entry = json.loads(payload)
        except json.JSONDecodeError:
            continue
        values[entry.get("key")] = entry.get("value")
        meta = entry.get("metadata") or {}
        if meta.get("is_error") or meta.get("is_warning"):
            kind = "error" if meta.get("is_error") else "warning"
            messages.append(f"{kind}: {entry.get('key')}: {entry.get('value')}")
    return values, messages


_PERCENTILES = (("p50", "50.00"), ("p90", "90.00"), ("p95", "95.00"), ("p97", "97.00"))
_PERCENTILES += (("p99", "99.00"), ("p99.9", "99.90"))


def result_of(values: dict[str, Any], messages: list[str], duration_s: float) -> Result:
    """A Result from a detail log's values (see ``read_detail``)."""

    def ms(key: str) -> float | None:
        value = values.get(key)
        return value / 1e6 if isinstance(value, (int, float)) else None

    latency = {name: ms(f"result_{p}_percentile_latency_ns") for name, p in _PERCENTILES}
    latency |= {n: ms(f"result_{n}_latency_ns") for n in ("mean", "min", "max")}
    query = {n: ms(f"result_{p}_percentile_per_query_latency_ns") for n, p in _PERCENTILES}
    query |= {n: ms(f"result_{n}_query_latency_ns") for n in ("mean", "min", "max")}
    scenario = str(values.get("effective_scenario", ""))
    estimate_key = {"SingleStream": "early_stopping_latency_ss"}.get(
        scenario, "early_stopping_latency_ms"
    )
    completed = values.get("result_completed_samples_per_sec")
    if completed is None:  # Offline's and the stream scenarios' rate keys
        completed = values.get(
            "result_samples_per_second", values.get("result_qps_with_loadgen_overhead")
        )
    percentile = values.get("effective_target_latency_percentile")
    rated = scenario in ("Server", "Offline")  # the stream scenarios issue on completion
    return Result(
        scenario=scenario,
        valid=values.get("result_validity") == "VALID",
        why=_why_invalid(values),
        target_qps=values.get("effective_target_qps") if rated else None,
        completed_qps=completed,
        scheduled_qps=values.get("result_scheduled_samples_per_sec"),
        latency_ms={k: v for k, v in latency.items() if v is not None},
        query_latency_ms={k: v for k, v in query.items() if v is not None},
        early_stopping=" ".join(str(values.get("early_stopping_result", "")).split()),
        early_stopping_ms=ms(estimate_key) or None,
        min_duration_s=_seconds(values.get("effective_min_duration_ms")),
        min_query_count=values.get("effective_min_query_count"),
        query_count=values.get("result_query_count"),
        samples_per_query=values.get("effective_samples_per_query"),
        target_latency_ms=ms("effective_target_latency_ns") or None,
        target_percentile=percentile if isinstance(percentile, (int, float)) else None,
        duration_s=duration_s,
        errors=messages,
    )


def _seconds(value: Any) -> float | None:
    return value / 1e3 if isinstance(value, (int, float)) else None


def _why_invalid(values: dict[str, Any]) -> list[str]:
    """The constraints a run did not meet, in LoadGen's words where it has them."""
    why = []
    if values.get("result_perf_constraints_met") is False:
        over = values.get("result_overlatency_query_count")
        bound = values.get("effective_target_latency_ns")
        percentile = values.get("effective_target_latency_percentile")
        if isinstance(bound, (int, float)) and isinstance(percentile, (int, float)):
            why.append(
                f"the {percentile * 100:g}th percentile latency is above the "
                f"{bound / 1e6:g} ms bound ({over} queries over it)"
            )
        else:
            why.append("performance constraints not met")
    if values.get("result_min_duration_met") is False:
        why.append("the minimum duration was not met")
    if values.get("result_min_queries_met") is False:
        why.append("the minimum query count was not met")
    if values.get("early_stopping_met") is False:
        text = " ".join(str(values.get("early_stopping_result", "")).split())
        why.append(f"early stopping not met: {text}" if text else "early stopping not met")
    reason = str(values.get("result_invalid_reason") or "").strip()
    if reason:
        why.append(reason)
    if values.get("result_validity") != "VALID" and not why:
        why.append(f"LoadGen's result: {values.get('result_validity', 'none')}")
    return why


@dataclass(frozen=True)
class Load:
    """What one LoadGen run is asked: its scenario (ours), the Server's arrival rate, and
    the measured rate of the slots (samples/s) and single-request latency that size the
    Offline query and the stream scenarios' expectations."""

    scenario: str
    target_qps: float = 0.0
    rate: float = 0.0
    latency_s: float = 0.0
    find_peak: bool = False


def run_loadgen(dispatcher: Dispatcher, load: Load, config: LoadgenConfig, out: Path) -> Result:
    """One LoadGen test in PerformanceOnly mode (FindPeakPerformance for ``find_peak``)
    against ``dispatcher``; its logs are written to ``out`` and kept in the Result."""
    import mlperf_loadgen as lg

    out.mkdir(parents=True, exist_ok=True)
    settings = test_settings(lg, load, config)
    log = lg.LogSettings()
    log.log_output.outdir = str(out)
    log.log_output.copy_summary_to_stdout = False
    log.enable_trace = False

    def issue(samples: list[Any]) -> None:
        dispatcher.issue([sample.id for sample in samples])

    sut = lg.ConstructSUT(issue, lambda: None)
    count = config.sample_count
    qsl = lg.ConstructQSL(count, count, lambda _: None, lambda _: None)
    start = time.perf_counter()
    try:
        lg.StartTestWithLogSettings(sut, qsl, settings, log)
    finally:
        lg.DestroyQSL(qsl)
        lg.DestroySUT(sut)
    duration_s = time.perf_counter() - start
    logs = {name: (out / name).read_text() for name in LOG_FILES if (out / name).is_file()}
    values, messages = read_detail(logs.get("mlperf_log_detail.txt", ""))
    result = result_of(values, messages, duration_s)
    result.logs = logs
    return result


def min_queries(scenario: str, config: LoadgenConfig) -> int:
    """The queries a run issues at least: ``min_query_count``, raised to what LoadGen's
    early stopping needs to call the run VALID at all (MultiStream: MLPerf's 662; Server:
    enough that none over the bound shows the percentile is met at 99% confidence, 459
    for the 99th)."""
    if scenario == "multi_stream":
        return max(config.min_query_count, MULTI_STREAM_MIN_QUERIES)
    if scenario == "server":
        needed = math.ceil(
            math.log(1 - EARLY_STOPPING_CONFIDENCE) / math.log(config.server_percentile)
        )
        return max(config.min_query_count, needed)
    return config.min_query_count


def test_settings(lg: Any, load: Load, config: LoadgenConfig) -> Any:
    """LoadGen's TestSettings for ``load`` under ``config``."""
    settings = lg.TestSettings()
    settings.scenario = getattr(lg.TestScenario, LOADGEN_NAMES[load.scenario])
    mode = "FindPeakPerformance" if load.find_peak else "PerformanceOnly"
    settings.mode = getattr(lg.TestMode, mode)
    settings.min_duration_ms = round(config.min_duration_s * 1e3)
    settings.min_query_count = min_queries(load.scenario, config)
    settings.performance_sample_count_override = config.sample_count
    settings.qsl_rng_seed = config.qsl_seed
    settings.sample_index_rng_seed = config.sample_index_seed
    settings.schedule_rng_seed = config.schedule_seed
    settings.server_target_latency_ns = round(config.latency_bound_ms * 1e6)
    settings.server_target_latency_percentile = config.server_percentile
    settings.server_target_qps = load.target_qps or 1.0
    settings.single_stream_target_latency_percentile = config.single_stream_percentile
    settings.multi_stream_target_latency_percentile = config.multi_stream_percentile
    settings.multi_stream_samples_per_query = config.samples_per_query
    latency_ns = max(1, round(load.latency_s * 1e9))
    settings.single_stream_expected_latency_ns = latency_ns
    settings.multi_stream_expected_latency_ns = latency_ns * config.samples_per_query
    settings.offline_expected_qps = max(1.0, load.rate * OFFLINE_MARGIN)
    settings.server_find_peak_qps_decimals_of_precision = 0  # whole QPS: runs differ more
    return settings


@dataclass
class Search:
    """A Server peak search: each run (a point of the latency-vs-load curve), the highest
    VALID rate, how it was searched and what it cost."""

    method: str
    probes: list[dict[str, Any]]
    peak_qps: float | None
    precision: float
    seconds: float
    note: str = ""

    def figures(self) -> dict[str, Any]:
        return dict(self.__dict__)


def peak_search(
    run: Callable[[float], Result], rate: float, config: LoadgenConfig
) -> tuple[Search, Result | None]:
    """The highest Server rate whose run is VALID, by bisection over LoadGen runs
    (``run(target_qps)``): the first probe at 60% of the slots' measured rate ``rate``
    (which leaves out the dispatcher and LoadGen: a tiny model's peak is well below it),
    then up by a quarter (or down to 80% of what an overloaded run completed) until the
    VALID and INVALID rates bracket the peak, then halving the bracket until it is
    within ``search_precision`` of the VALID end or ``search_runs`` runs were made. The
    INVALID end of the last bracket is run once more before it is believed: one
    disturbed run (a neighbour's burst) would otherwise cap the answer. Returns the
    search and the run at the peak (None when no rate was VALID)."""
    start = time.perf_counter()
    probes: list[Result] = []
    valid: Result | None = None
    low, high = 0.0, math.inf
    checked: set[float] = set()
    invalid: list[float] = []
    target = max(rate * 0.6, 1e-3)
    while len(probes) < config.search_runs:
        result = run(target)
        probes.append(result)
        if result.valid:
            low, valid = target, result
        else:
            invalid.append(target)
            if target in checked:
                break  # the bracket's INVALID end, confirmed
        # the lowest rate above the VALID end that was found INVALID (and not VALID since)
        high = min((t for t in invalid if t > low), default=math.inf)
        if math.isinf(high):
            target = low * 1.25
        elif low == 0:  # overloaded: it completed what it could serve, at best
            target = 0.8 * min(high, result.completed_qps or high)
            if target < rate * 1e-3:  # a thousandth of what the slots serve: give up
                break
        elif (high - low) / low <= config.search_precision:
            if high in checked:
                break
            checked.add(high)
            target = high  # once more, before it bounds the answer
        else:
            target = (low + high) / 2
    note = ""
    if valid is None:
        note = "no rate tried was VALID: the bound is below what one request takes"
    elif math.isinf(high):
        note = f"every rate tried was VALID: the peak is above {low:.4g} QPS"
    elif (high - low) / low > config.search_precision:
        note = f"stopped after {len(probes)} runs with the peak between {low:.4g} and {high:.4g}"
    search = Search(
        method="bisect",
        probes=[p.probe() for p in probes],
        peak_qps=(valid.target_qps or low) if valid else None,  # as LoadGen ran it
        precision=config.search_precision,
        seconds=time.perf_counter() - start,
        note=note,
    )
    return search, valid


@dataclass
class Served:
    """A LoadGen cell's outcome: the reported run (the Server's peak run when searched),
    the search where there was one, the reported run's request times as a loop (its
    window: LoadGen's whole run), and the samples its requests served."""

    result: Result
    search: Search | None
    loop: LoopRecord
    samples: int

    def throughput(self) -> Throughput:
        """The record's ``throughput``: samples per second as LoadGen counted them (the
        dispatcher's count where LoadGen gives no rate: MultiStream), requests per
        second over LoadGen's run (a request carries up to the cell's batch)."""
        window_s = self.loop.window_ns / 1e9
        rate = self.result.completed_qps or (self.samples / window_s if window_s else None)
        return Throughput(
            samples_per_s=rate,
            requests_per_s=self.loop.completed / window_s if window_s else None,
            window_s=window_s,
            requests=self.loop.completed,
            warmup_requests=self.loop.warmup_count,
            capped=False,
        )


def serve(
    slots: list[Callable[[], None]],
    batch: int,
    scenario: str,
    config: LoadgenConfig,
    warmup: StopRule,
    out: Path,
) -> Served:
    """Warm the slots up and measure their rate (the throughput scenario's loop, a
    second's window), then run LoadGen's ``scenario`` on them: once, or for a Server
    without a target rate, a peak search (``config.search``)."""
    window_s = min(1.0, config.min_duration_s / 2)
    estimate = time_throughput(slots, warmup, StopRule(window_s, 10, 5.0))
    rate = estimate.completed * batch / (estimate.window_ns / 1e9)
    latency_s = sorted(estimate.times_ns)[len(estimate.times_ns) // 2] / 1e9
    runs = 0

    def run(target_qps: float = 0.0, find_peak: bool = False) -> Served:
        nonlocal runs
        runs += 1
        dispatcher = Dispatcher(slots, batch, _complete, inline=scenario == "single_stream")
        load = Load(scenario, target_qps, rate, latency_s, find_peak)
        start = time.perf_counter_ns()
        try:
            result = run_loadgen(dispatcher, load, config, out / f"run-{runs}")
        finally:
            dispatcher.close()
        if dispatcher.error is not None:
            raise dispatcher.error
        window_ns = round(result.duration_s * 1e9)
        times = dispatcher.times_ns
        loop = LoopRecord(times, window_ns, len(times), 0, in_flight=len(slots))
        loop.start_ns, loop.end_ns, loop.figure = start, start + window_ns, "loadgen"
        loop.warmup_count = estimate.completed + estimate.warmup_count
        loop.warmup_ns = estimate.window_ns + (estimate.warmup_ns or 0)
        loop.warmup_stop = estimate.warmup_stop
        return Served(result, None, loop, sum(dispatcher.sizes))

    if scenario == "server" and not config.target_qps:
        if config.search == "loadgen":
            # its start must be VALID (it only searches upward): a tenth of the slots' rate
            search = loadgen_search(run(rate * 0.1, find_peak=True).result, config)
            # its log describes its last run, not the peak: measure the peak itself
            served = run(search.peak_qps or rate * 0.1)
        else:
            kept: dict[float, Served] = {}

            def probe(target: float) -> Result:
                kept[target] = run(target)
                return kept[target].result

            search, peak = peak_search(probe, rate, config)
            served = next((k for k in kept.values() if k.result is peak), kept[max(kept)])
        served.search = search
        return served
    served = run(config.target_qps)
    ended_early = any("minimum duration" in why for why in served.result.why)
    if scenario == "offline" and ended_early and served.result.completed_qps:
        # the query was sized on the warm-up's rate and ended early: size it on the rate
        # LoadGen measured, once (the first run's figures are replaced)
        rate = max(rate, served.result.completed_qps)
        served = run(config.target_qps)
    return served


def _complete(ids: list[int]) -> None:
    import mlperf_loadgen as lg

    lg.QuerySamplesComplete([lg.QuerySampleResponse(i, 0, 0) for i in ids])


_PEAK = re.compile(r"Found peak performance field: ([0-9.eE+-]+)")
_TRIED = re.compile(r"(?:Testing the mid value of bounds|Checking fields|base settings field)")


def loadgen_search(result: Result, config: LoadgenConfig) -> Search:
    """What LoadGen's FindPeakPerformance found, from its log's messages: the peak and
    how many runs it took (it keeps no latencies per run)."""
    text = result.logs.get("mlperf_log_detail.txt", "")
    found = _PEAK.findall(text)
    tried = len(_TRIED.findall(text))
    peak = float(found[-1]) if found else None
    note = "" if found else "LoadGen found no peak: its starting rate was not VALID"
    return Search(
        method="loadgen",
        probes=[],
        peak_qps=peak,
        precision=config.search_precision,
        seconds=result.duration_s,
        note=f"{tried} LoadGen runs" + (f"; {note}" if note else ""),
    )
