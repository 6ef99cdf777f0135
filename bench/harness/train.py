"""What a worker does for a ``train`` cell: build the training session, take a first step,
then time whole steps with the same warm-up and measurement rules as inference."""

from __future__ import annotations

import time

from bench.core.job import CellJob
from bench.core.memory import peak_rss_mb
from bench.core.record import ColdStart, DeviceMetrics, Measured, Memory, Training
from bench.core.timing import time_latency
from bench.harness.isolation import enter_phase
from bench.power import CellPower
from runtimes.base import LoadOptions
from runtimes.pytorch_rt import PyTorchRuntime, module_of
from runtimes.pytorch_train import FORWARD_FLOP_FACTOR, TrainSession


def measure_train(
    job: CellJob, options: LoadOptions, cold_start: ColdStart, rss_after_import_mb: float
) -> Measured:
    """Time training steps of ``job.cell``: samples/s over the measured window, step-time
    statistics (``latency_ms``), peak memory, power over the measured window as for
    inference (``j_per_sample`` is then per training sample), and the loss at the first and
    last step in place of an accuracy check. Each timed step ends with a device
    synchronisation on CUDA. ``cold_start`` holds the worker's start and import; the
    session's build and first step are added to it.
    """
    cell = job.cell
    enter_phase("build")
    start = time.perf_counter()
    settings = PyTorchRuntime.settings_of(options)
    session = TrainSession(
        module_of(options),
        job.model,
        cell.target,
        cell.batch,
        job.threads,
        cudnn_benchmark=settings.cudnn_benchmark,
    )
    build_s = time.perf_counter() - start
    enter_phase("first step")
    start = time.perf_counter()
    session.step()
    session.synchronize()
    first_step_ms = (time.perf_counter() - start) * 1e3
    warmup, measurement = job.measure.warmup_rule(), job.measure.measurement_rule()
    enter_phase("timed loop")
    with CellPower(job.power, cell.device) as power:
        loop = time_latency(session.step, session.synchronize, warmup, measurement)
    peak_device_mb = session.device_peak_mb()
    return Measured.timed(
        session.executed,
        loop,
        cell.batch,
        job.measure.cv_threshold,
        power.result(loop.start_ns, loop.end_ns, loop.completed, cell.batch),
        memory=Memory(after_import_mb=rss_after_import_mb, peak_rss_mb=peak_rss_mb()),
        cold_start=cold_start.model_copy(
            update={"build_s": build_s, "first_step_ms": first_step_ms}
        ),
        device_metrics=DeviceMetrics()
        if peak_device_mb is None
        else DeviceMetrics(peak_allocated_mb=peak_device_mb),
        accuracy=None,
        training=Training(
            loss=session.loss_name,
            loss_first=session.first_loss,
            loss_last=session.last_loss,
            steps=session.steps,
            flop_factor=FORWARD_FLOP_FACTOR,
        ),
        notes=list(job.model.notes),
    )
