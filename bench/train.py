"""What a worker does for a ``train`` cell: build the training session, take a first step,
then time whole steps with the same warm-up and measurement rules as inference."""

from __future__ import annotations

import time
from typing import Any

from bench.config import MeasureConfig
from bench.plan import Cell
from bench.power import CellPower, PowerSettings
from bench.timing import StopRule, time_latency
from bench.worker import peak_rss_mb, timed_figures
from exporters.spec import PreparedModel
from runtimes.pytorch_train import FORWARD_FLOP_FACTOR, TrainSession


def measure_train(
    job: dict[str, Any],
    cell: Cell,
    model: PreparedModel,
    measure: MeasureConfig,
    import_s: float,
    rss_after_import_mb: float,
) -> dict[str, Any]:
    """Time training steps of ``cell``: samples/s over the measured window, step-time
    statistics (``latency_ms``), peak memory, power over the measured window as for
    inference (``j_per_sample`` is then per training sample), and the loss at the first and
    last step in place of an accuracy check. Each timed step ends with a device
    synchronisation on CUDA.
    """
    start = time.perf_counter()
    session = TrainSession(model, cell.target, cell.batch, job["threads"])
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    session.step()
    session.synchronize()
    first_step_ms = (time.perf_counter() - start) * 1e3
    warmup, measurement = StopRule.warmup(measure), StopRule.measurement(measure)
    with CellPower(PowerSettings(**job.get("power", {})), cell.device) as power:
        record = time_latency(session.step, session.synchronize, warmup, measurement)
    return {
        **timed_figures(session.executed, record, measure, cell.batch, power),
        "cold_start": {
            "worker_start_s": job["worker_started_at"] - job["spawned_at"],
            "import_s": import_s,
            "build_s": build_s,
            "first_step_ms": first_step_ms,
        },
        "memory": {"after_import_mb": rss_after_import_mb, "peak_rss_mb": peak_rss_mb()},
        "device_metrics": _device_metrics(session.device_peak_mb()),
        "accuracy": None,
        "training": {
            "loss": session.loss_name,
            "loss_first": session.first_loss,
            "loss_last": session.last_loss,
            "steps": session.steps,
            "flop_factor": FORWARD_FLOP_FACTOR,
        },
        "notes": list(model.notes),
        "raw_times_ms": [t / 1e6 for t in record.times_ns],
    }


def _device_metrics(peak_mb: float | None) -> dict[str, Any]:
    """Peak device memory under the name inference cells use (runtimes' device_metrics)."""
    return {} if peak_mb is None else {"peak_allocated_mb": peak_mb}
