"""GPU cells whose device mostly waited for the host: the busy share from the device time
per request (CUDA events) against the measured window, the flag, and how the summary, the
speedup table and the machines table mark a figure that measures the host."""

from __future__ import annotations

from fixtures.records import cell, timed

from bench.core.record import DeviceMetrics
from bench.core.timing import LoopRecord
from bench.views.machines import _speedup_text
from bench.views.report import summary_rows
from bench.views.speedup import speedups

MS = 1_000_000  # ns


def window(requests: int, ms_each: float) -> LoopRecord:
    times = [round(ms_each * MS)] * requests
    return LoopRecord(times, sum(times), requests, 0)


def test_the_busy_share_is_device_time_over_wall_time() -> None:
    busy = DeviceMetrics.of({"compute_ms": 1.8, "split_source": "cuda events"}, window(50, 2.0))
    assert abs(busy.device_busy - 0.9) < 1e-9 and busy.host_bound is False
    starved = DeviceMetrics.of({"compute_ms": 0.6}, window(50, 2.0))
    assert abs(starved.device_busy - 0.3) < 1e-9 and starved.host_bound is True
    assert starved.to_dict()["host_bound"] is True  # written to results.jsonl
    cpu = DeviceMetrics.of({}, window(50, 2.0))  # no device time: nothing claimed
    assert cpu.device_busy is None and cpu.host_bound is None
    assert "device_busy" not in cpu.to_dict()


def gpu_cell(precision: str, ms: float, compute_ms: float):  # noqa: ANN201 - a CellRecord
    metrics = DeviceMetrics.of({"compute_ms": compute_ms}, window(60, ms))
    times = [ms * (1 + 0.01 * (i % 5)) for i in range(60)]
    return timed(
        cell("resnet18", "pytorch", "cuda:0", precision, batch=8),
        times,
        device_metrics=metrics,
        accuracy={"verdict": "pass"},
    )


def test_a_speedup_on_a_host_bound_pair_is_marked() -> None:
    # the H100 case: fp32 1.97 ms and fp16 1.88 ms a request, the GPU busy a fraction of it
    records = [gpu_cell("fp32", 1.97, 0.9), gpu_cell("fp16", 1.88, 0.3)]
    (row,) = speedups(records)
    assert row.verdict.startswith("faster, host-bound (fp32 and fp16)")
    assert "measures the host, not fp16" in row.verdict
    assert _speedup_text(row).endswith("x (host-bound)")
    status = [r[-1] for r in summary_rows(records)]
    assert status == [
        "ok, host-bound (device busy 46% of the time)",
        "ok, host-bound (device busy 16% of the time)",
    ]
    busy = [gpu_cell("fp32", 1.97, 1.9), gpu_cell("fp16", 1.0, 0.95)]
    (clean,) = speedups(busy)
    assert clean.verdict == "faster" and [r[-1] for r in summary_rows(busy)] == ["ok", "ok"]


def test_a_timed_split_counts_its_copies_as_device_time() -> None:
    """TensorRT with data_transfers: the copies keep the device busy too."""
    figures = {"compute_ms": 0.4, "h2d_ms": 0.7, "d2h_ms": 0.5, "latency_ms": 1.6}
    metrics = DeviceMetrics.of(figures, window(50, 2.0))
    assert abs(metrics.device_busy - 0.8) < 1e-9 and metrics.host_bound is False
