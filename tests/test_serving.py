"""MLPerf LoadGen's scenarios (bench.harness.serving): the system under test, LoadGen's
verdicts read from its own logs, the Server's peak search on slots whose knee is known,
and whole cells on ONNX Runtime and OpenVINO with the real LoadGen."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from bench.core.cell import Cell
from bench.core.settings import LoadgenConfig
from bench.core.stopping import StopRule
from bench.harness.config import config_from_dict
from bench.harness.results import RunDir
from bench.harness.runner import measure
from bench.harness.serving import Dispatcher, peak_search, serve
from exporters.onnx_export import prepare_zoo_model

pytest.importorskip("mlperf_loadgen")

QUICK = LoadgenConfig(min_duration_s=0.3, min_query_count=50, sample_count=64)
WARMUP = StopRule(0.05, 5)


def sleeping_slots(count: int, seconds: float) -> list:
    return [lambda: time.sleep(seconds) for _ in range(count)]


def test_dispatcher_takes_up_to_a_batch_of_waiting_samples() -> None:
    completed: list[list[int]] = []
    gate = threading.Event()
    dispatcher = Dispatcher([gate.wait], batch=4, complete=completed.append)
    dispatcher.issue(list(range(10)))
    gate.set()
    dispatcher.close()
    assert sorted(i for ids in completed for i in ids) == list(range(10))
    assert all(len(ids) <= 4 for ids in completed)
    assert len(dispatcher.times_ns) == len(completed)


def test_a_failing_request_completes_the_rest_unserved_and_is_kept() -> None:
    calls = []

    def slot() -> None:
        calls.append(1)
        raise RuntimeError("device lost")

    completed: list[int] = []
    dispatcher = Dispatcher([slot], batch=1, complete=completed.extend)
    dispatcher.issue([1, 2, 3])
    dispatcher.close()
    assert completed == [1, 2, 3]  # LoadGen still ends
    assert len(calls) == 1
    assert isinstance(dispatcher.error, RuntimeError)


@pytest.mark.parametrize("scenario", ["single_stream", "multi_stream", "offline"])
def test_each_scenario_is_judged_by_loadgen(scenario: str, tmp_path: Path) -> None:
    served = serve(sleeping_slots(2, 0.0005), 1, scenario, QUICK, WARMUP, tmp_path)
    result = served.result
    assert result is not None and result.valid, result.why
    assert "mlperf_log_summary.txt" in result.logs
    assert f"Scenario : {result.scenario}" in result.logs["mlperf_log_summary.txt"]
    if scenario == "offline":  # one query of every sample
        assert result.query_count == 1 and served.loop.completed >= 50
    else:
        assert result.query_count >= 50
    assert result.latency_ms["p50"] >= 0.5  # a request sleeps 0.5 ms
    assert served.loop.completed == len(served.loop.times_ns) > 0
    if scenario == "multi_stream":
        assert result.samples_per_query == 8 and result.query_latency_ms["p99"] > 0


def test_a_bound_below_one_request_is_invalid_with_loadgens_reason(tmp_path: Path) -> None:
    update = {"latency_bound_ms": 1.0, "target_qps": 100.0, "server_percentile": 0.9}
    config = QUICK.model_copy(update=update)
    served = serve(sleeping_slots(1, 0.003), 1, "server", config, WARMUP, tmp_path)
    assert served.result is not None and not served.result.valid
    assert any("above the 1 ms bound" in why for why in served.result.why)


def knee(service_s: float, bound_s: float, queries: int = 20_000) -> float:
    """The highest Poisson rate at which one server of fixed service time keeps the 99th
    percentile response under ``bound_s`` (Lindley's recursion over seeded arrivals)."""
    rng = np.random.default_rng(0)
    gaps = rng.exponential(1.0, queries)

    def p99(rate: float) -> float:
        wait, responses = 0.0, np.empty(queries)
        for i, gap in enumerate(gaps / rate):
            wait = max(0.0, wait + service_s - gap) if i else 0.0
            responses[i] = wait + service_s
        return float(np.percentile(responses, 99))

    low, high = 0.0, 1 / service_s
    for _ in range(30):
        middle = (low + high) / 2
        low, high = (middle, high) if p99(middle) <= bound_s else (low, middle)
    return low


@pytest.mark.slow
def test_the_server_search_finds_a_known_knee(tmp_path: Path) -> None:
    service = time.perf_counter()
    time.sleep(0.002)
    service = time.perf_counter() - service  # what a 2 ms sleep takes here
    config = LoadgenConfig(
        min_duration_s=1.0, min_query_count=100, latency_bound_ms=40.0, search_runs=10
    )
    served = serve(sleeping_slots(1, 0.002), 1, "server", config, WARMUP, tmp_path)
    search = served.search
    expected = knee(service, 0.040)
    assert search is not None and search.peak_qps is not None, search
    assert 0.75 * expected <= search.peak_qps <= 1.05 * expected, (search.peak_qps, expected)
    valid = [p["target_qps"] for p in search.probes if p["valid"]]
    invalid = [p["target_qps"] for p in search.probes if not p["valid"]]
    assert max(valid) == search.peak_qps and max(invalid) > search.peak_qps


def test_the_search_bisects_to_its_precision_and_keeps_every_probe() -> None:
    peak, runs = 730.0, []

    class Run:
        def __init__(self, target: float) -> None:
            self.valid = target <= peak
            self.completed_qps = min(target, 800.0)
            self.target_qps = target

        def probe(self) -> dict:
            return {"target_qps": self.target_qps, "valid": self.valid}

    def run(target: float) -> Run:
        runs.append(target)
        return Run(target)

    config = LoadgenConfig(search_precision=0.02, search_runs=20)
    search, found = peak_search(run, 1000.0, config)
    assert found is not None and found.valid
    assert peak / 1.02 <= search.peak_qps <= peak
    assert len(search.probes) == len(runs) <= 10
    assert search.note == ""
    never, _ = peak_search(lambda t: Run(t * 1e6), 1000.0, config)  # nothing is VALID
    assert never.peak_qps is None and "no rate tried was VALID" in never.note
    assert runs.count(runs[-1]) == 2  # the last INVALID end was run twice before it counted

    disturbed: list[float] = []

    def noisy(target: float) -> Run:  # the first run near the peak meets a neighbour's burst
        outcome = Run(target)
        if 700 <= target <= peak and not disturbed:
            disturbed.append(target)
            outcome.valid = False
        return outcome

    search, found = peak_search(noisy, 1000.0, config)
    assert disturbed and peak / 1.02 <= search.peak_qps <= peak, search.probes
    above = [p["target_qps"] for p in search.probes if not p["valid"]]
    assert search.note == "" and min(t for t in above if t > search.peak_qps) <= peak * 1.02


@pytest.fixture(scope="module")
def lenet(cache_dir: Path):
    return prepare_zoo_model("lenet5", [1], cache_dir)


def loadgen_suite(**loadgen: float) -> dict:
    return {
        "measure": {"warmup_s": 0.1, "warmup_min_iters": 5},
        "loadgen": {"min_duration_s": 0.3, "min_query_count": 50, **loadgen},
    }


@pytest.mark.parametrize(
    ("runtime", "scenario"),
    [("onnxruntime", "single_stream"), ("openvino", "offline"), ("onnxruntime", "server")],
)
def test_a_loadgen_cell_keeps_its_figures_and_logs(
    runtime: str, scenario: str, lenet, cache_dir: Path, tmp_path: Path
) -> None:
    if runtime == "openvino":
        pytest.importorskip("openvino")
    config = config_from_dict(loadgen_suite(target_qps=200.0))
    cell = Cell("lenet5", runtime, "cpu", "fp32", 1, scenario)
    record = measure(cell, lenet, config, cache_dir, "run")
    assert record.status == "ok", record.reason
    figures = record.loadgen
    assert figures is not None and figures.valid, figures.why if figures else None
    assert figures.scenario == {"single_stream": "SingleStream", "offline": "Offline"}.get(
        scenario, "Server"
    )
    assert figures.latency_ms["p99"] >= figures.latency_ms["p50"] > 0
    assert record.executed.in_flight >= 1 and record.latency_ms.count > 0
    if scenario == "server":
        assert figures.target_qps == 200.0 and figures.search is None
    if figures.completed_qps:  # the record's throughput is LoadGen's count of samples
        assert record.throughput.samples_per_s == figures.completed_qps
    run_dir = RunDir.create(tmp_path, "serving")
    run_dir.append(record)
    stored = run_dir.records()[0]
    assert stored.files and all((run_dir.path / f).is_file() for f in stored.files)
    summary = next(f for f in stored.files if f.endswith("mlperf_log_summary.txt"))
    assert "Result is : VALID" in (run_dir.path / summary).read_text()
    assert stored.attached is None


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
@pytest.mark.parametrize("scenario", ["single_stream", "multi_stream", "server", "offline"])
def test_every_scenario_on_both_cpu_runtimes(
    runtime: str, scenario: str, lenet, cache_dir: Path
) -> None:
    config = config_from_dict(loadgen_suite(latency_bound_ms=20.0))
    record = measure(
        Cell("lenet5", runtime, "cpu", "fp32", 1, scenario), lenet, config, cache_dir, "r"
    )
    assert record.status == "ok", record.reason
    assert record.loadgen is not None and record.loadgen.valid, record.loadgen.why
    if scenario == "server":  # no target rate: the peak was searched
        search = record.loadgen.search
        assert search["peak_qps"] and any(not p["valid"] for p in search["probes"])


def test_loadgen_missing_is_one_line_before_measuring(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from bench.core.errors import UserError
    from bench.harness.plan import ModelRequest, expand

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "mlperf_loadgen" else real(name, *a),
    )
    suite = {"runtimes": ["onnxruntime"], "scenarios": ["latency", "server"]}
    with pytest.raises(UserError, match="pip install mlcommons-loadgen"):
        expand(config_from_dict({"suite": suite}), [ModelRequest("mlp", "zoo", "mlp")])
    suite["scenarios"] = ["latency"]  # without a LoadGen scenario nothing is asked of it
    assert len(expand(config_from_dict({"suite": suite}), [ModelRequest("mlp", "zoo", "mlp")])) == 1


def test_a_tools_mode_device_refuses_loadgen_scenarios_in_one_line() -> None:
    from bench.core.errors import UserError
    from bench.harness.plan import PlannedCell
    from bench.remote.tools import tools_plan

    class Jetson:
        name = "jetson"

    cell = Cell("mlp", "tensorrt", "cuda:0", "fp16", 1, "offline")
    with pytest.raises(UserError, match="offline scenario here: .*needs the agent mode"):
        tools_plan(Jetson(), [PlannedCell(cell)])


@pytest.mark.slow
def test_a_loadgen_cell_past_its_timeout_is_stopped_like_any_cell(lenet, cache_dir: Path) -> None:
    import psutil

    raw = loadgen_suite(min_duration_s=600.0)
    raw["suite"] = {"cell_timeout_s": 4.0}
    cell = Cell("lenet5", "onnxruntime", "cpu", "fp32", 1, "single_stream")
    before = set(psutil.Process().children(recursive=True))
    record = measure(cell, lenet, config_from_dict(raw), cache_dir, "run")
    assert record.status == "timeout" and record.phase == "timed loop"
    assert set(psutil.Process().children(recursive=True)) <= before  # no orphan left


def test_single_stream_serves_in_loadgens_issue_thread() -> None:
    threads: set[int] = set()
    completed: list[list[int]] = []
    dispatcher = Dispatcher(
        [lambda: threads.add(threading.get_ident())], 1, completed.append, inline=True
    )
    dispatcher.issue([7])
    assert completed == [[7]] and threads == {threading.get_ident()}
    dispatcher.close()
