"""Running a planned suite: prepare each model once, then each cell in its own worker,
appending each result as it ends."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psutil
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from bench.core.cell import Cell
from bench.core.errors import UserError
from bench.core.job import CellJob
from bench.core.record import CellRecord, Measured, ModelInfo
from bench.core.settings import PowerSettings
from bench.core.spec import BATCH, PreparedModel
from bench.harness import worker
from bench.harness.config import BenchConfig
from bench.harness.isolation import run_in_worker
from bench.harness.plan import ModelRequest, PlannedCell
from bench.harness.results import RunDir
from runtimes import get_runtime


@dataclass(frozen=True)
class Workload:
    """Threads and requests in flight for a cell, resolved from the suite."""

    threads: int
    in_flight: int


Measurer = Callable[[Cell, PreparedModel, BenchConfig, Path, str, int], CellRecord]
"""Measures one cell (cell, prepared model, suite, cache, run id, repetition)."""

GPU_IN_FLIGHT = 2
"""Default requests in flight on an accelerator: two streams keep it busy while the host
prepares the next request; more only add host-side contention."""


def workload(config: BenchConfig, cell: Cell) -> Workload:
    """Latency: one request with every thread. Throughput on the CPU: ``in_flight``
    requests (default: one per physical core, at least two), the threads shared out between
    them. Throughput on an accelerator: ``in_flight`` requests (default 2), each on its own
    stream, the host threads left whole. A runtime that chooses its own threads and requests
    in flight (OpenVINO) gets 0 for each unless the suite sets it, and reports what it chose."""
    if get_runtime(cell.runtime).chooses_in_flight:  # 0 = the runtime's own choice
        in_flight = 1 if cell.scenario == "latency" else config.suite.in_flight
        return Workload(config.suite.threads, in_flight)
    cores = psutil.cpu_count(logical=False) or psutil.cpu_count() or 1
    total = config.suite.threads or cores
    if cell.scenario in ("latency", "train"):  # one request (or training step) at a time
        return Workload(total, 1)
    if cell.device != "cpu":
        return Workload(total, config.suite.in_flight or GPU_IN_FLIGHT)
    in_flight = config.suite.in_flight or max(2, cores)
    return Workload(max(1, total // in_flight), in_flight)


def run_suite(
    config: BenchConfig,
    models: list[ModelRequest],
    planned: list[PlannedCell],
    run_dir: RunDir,
    cache_dir: Path,
    console: Console,
    show_progress: bool = True,
    measurer: Measurer | None = None,
) -> None:
    """Run every planned cell (each of its ``suite.repeat`` repetitions) that has no result
    in ``run_dir`` yet.

    Repetitions are interleaved: the whole suite runs once, then again, so that drift on
    the machine (heat, other load) touches every cell alike. Each model is prepared once.
    ``measurer`` measures a cell (default: ``measure``, in a worker on this machine).
    Results are appended as each cell ends; KeyboardInterrupt propagates after the current
    worker is killed, and everything appended before it stays. The run directory is named
    once the first cell begins, past the bad input (a ``--shape`` the model lacks, a
    calibration file that does not fit) that leaves no folder behind.
    """
    done = {(r.key, r.repetition) for r in run_dir.records()}
    repeat = config.suite.repeat
    todo = [
        (rep, p)
        for rep in range(repeat)
        for p in planned
        if (p.cell.key, rep) not in done and (p.skip_reason is None or rep == 0)
    ]
    by_model = {m.name: m for m in models}
    prepared: dict[str, PreparedModel | ExportFailed] = {}
    named = f"run directory: {run_dir.path}"
    started = not todo
    if started:  # a finished run resumed
        console.print(named)
    with _progress(console, len(todo), show_progress) as advance:
        for rep, item in todo:
            cell, label = item.cell, repetition_label(item.cell, rep, repeat)
            if item.skip_reason is None and cell.model not in prepared:
                advance(f"{cell.model}: preparing", step=0)
                try:
                    prepared[cell.model] = prepare(by_model[cell.model], config, cache_dir)
                except ExportFailed as failure:
                    prepared[cell.model] = failure
            model = prepared.get(cell.model)
            advance(label, step=0)
            record = ended_early(item, model, rep, config, cache_dir, run_dir.run_id)
            if not started:
                console.print(named)
                started = True
            if record is None:  # prepared: ended_early said why not otherwise
                record = (measurer or measure)(cell, model, config, cache_dir, run_dir.run_id, rep)
            run_dir.append(record)
            advance(f"{label}: {record.status}")


def ended_early(
    item: PlannedCell,
    model: PreparedModel | ExportFailed | None,
    rep: int,
    config: BenchConfig,
    cache_dir: Path,
    run_id: str,
) -> CellRecord | None:
    """The record of a cell that ends before it is measured: skipped, its model's export
    failed, or its int8 copy could not be made (made here, once per model and scheme).
    None when the cell is to be measured."""
    cell = item.cell
    if item.skip_reason is not None:
        return CellRecord.new(run_id, cell, "skipped", item.skip_reason, repetition=rep)
    if isinstance(model, ExportFailed):
        return CellRecord.new(
            run_id, cell, model.status, model.reason, repetition=rep, phase=model.phase
        )
    if model is not None and cell.precision == "int8":
        why = quantized_for(model, cell, config, cache_dir)
        if why:
            return CellRecord.new(run_id, cell, "failed", why, repetition=rep, phase="quantize")
    return None


def quantized_for(
    model: PreparedModel, cell: Cell, config: BenchConfig, cache_dir: Path
) -> str | None:
    """Make the QDQ copy an int8 cell runs, once per model and scheme, in a worker bounded
    by the export timeout; None when it is there, else why not. UserError for a
    calibration file that does not fit the model."""
    runtime = get_runtime(cell.runtime)
    scheme = runtime.quantization_scheme(cell.target, config.runtime.of(cell.runtime))
    if scheme in model.quantized:  # made for an earlier cell, which recorded its cost
        model.quantized[scheme] = replace(model.quantized[scheme], calibrate_s=0.0, cache_hit=True)
        return None
    if scheme in model.not_quantized:
        return model.not_quantized[scheme]
    settings = config.quantize
    data = None
    if settings.calibration_data:
        from exporters.onnx_file import load_inputs_file
        from exporters.quantize import check_calibration_data

        data = load_inputs_file(Path(settings.calibration_data), "--calibration-data")
        check_calibration_data(data, model.inputs, settings.calibration_data)
    job = worker.QuantizeJob(model, scheme, settings, data, cache_dir)
    outcome = run_in_worker(worker.quantize_model, job, config.suite.export_timeout_s)
    if outcome.status == "ok" and outcome.payload is not None:
        model.quantized[scheme] = outcome.payload
        return None
    reason = (outcome.reason or outcome.status).removeprefix("QuantizeFailed: ")
    why = reason if outcome.status == "failed" else f"{outcome.status}: {reason}"
    model.not_quantized[scheme] = why
    return why


def repetition_label(cell: Cell, rep: int, repeat: int) -> str:
    """A cell as progress names it: its key, and which repetition when repeated."""
    return cell.key if repeat == 1 else f"{cell.key} (run {rep + 1}/{repeat})"


class ExportFailed(Exception):
    """Preparing a model failed; every cell of that model carries this status, reason
    and phase."""

    def __init__(self, status: str, reason: str, phase: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.phase = phase


def prepare(request: ModelRequest, config: BenchConfig, cache_dir: Path) -> PreparedModel:
    """The prepared model for ``request``, each step in a worker bounded by the suite's
    export timeout: a zoo or factory model exported (torch), a user ONNX file read here
    (onnx only) and given reference outputs by ONNX Runtime on the CPU."""
    timeout_s = config.suite.export_timeout_s
    if request.kind == "onnx":
        return _prepare_onnx(request, config, cache_dir, timeout_s)
    job = worker.ExportJob(
        request,
        tuple(config.suite.batch_sizes),
        cache_dir,
        config.suite.opset,
        config.suite.seed,
    )
    outcome = run_in_worker(worker.prepare_model, job, timeout_s)
    if outcome.status == "error":
        raise UserError(outcome.reason or "bad model")
    if outcome.status != "ok" or outcome.payload is None:
        status = "failed" if outcome.status == "failed" else outcome.status
        raise ExportFailed(status, outcome.reason or status, outcome.phase)
    return outcome.payload


def _prepare_onnx(
    request: ModelRequest, config: BenchConfig, cache_dir: Path, timeout_s: float
) -> PreparedModel:
    from exporters.onnx_file import inspect_onnx, load_inputs_file
    from exporters.onnx_reference import reference_inputs, without_reference

    data = load_inputs_file(Path(request.inputs_file)) if request.inputs_file else None
    inspected = inspect_onnx(Path(request.ref), request.shapes, request.ranges, data)
    inspected = replace(inspected, seed=config.suite.seed)
    feeds = reference_inputs(inspected, data)
    job = worker.ReferenceJob(inspected, feeds, cache_dir)
    outcome = run_in_worker(worker.onnx_reference, job, timeout_s)
    if outcome.status == "ok" and outcome.payload is not None:
        return outcome.payload
    why = f"the onnxruntime CPU reference {outcome.status}: {outcome.reason}"  # crash, hang
    return without_reference(inspected, feeds, cache_dir, why)


def measure(
    cell: Cell,
    prepared: PreparedModel,
    config: BenchConfig,
    cache_dir: Path,
    run_id: str,
    repetition: int = 0,
) -> CellRecord:
    """Measure ``cell`` in its own worker and return its results.jsonl record."""
    load = workload(config, cell)
    suite = config.suite
    job = CellJob(
        cell=cell,
        model=prepared,
        measure=config.measure,
        threads=load.threads,
        in_flight=load.in_flight,
        batch_sizes=tuple(suite.batch_sizes),
        options=config.runtime.of(cell.runtime),
        cache_dir=cache_dir,
        power=PowerSettings(suite.power, suite.power_sample_hz, suite.power_idle_s),
        spawned_at=time.time(),
    )
    started_at = time.time()
    outcome = run_in_worker(worker.measure_cell, job, suite.cell_timeout_s)
    status = {"ok": "ok", "error": "failed"}.get(outcome.status, outcome.status)
    reason, measured = outcome.reason, outcome.payload
    if outcome.traceback is not None:
        measured = Measured(traceback=outcome.traceback)
    phase = None if outcome.status in ("ok", "skipped") else outcome.phase
    return cell_record(
        run_id, cell, status, reason, measured, prepared, started_at, repetition, phase
    )


def cell_record(
    run_id: str,
    cell: Cell,
    status: str,
    reason: str | None,
    measured: Measured | None,
    prepared: PreparedModel,
    started_at: float,
    repetition: int,
    phase: str | None,
) -> CellRecord:
    """The results.jsonl record of a measured cell. A cell that ran on another device
    than it asked for failed: its figures are not the cell's."""
    executed = measured.executed.device if measured and measured.executed else None
    if status == "ok" and executed and not cell.target.ran_on(executed):
        status = "failed"
        reason = f"asked for {cell.device} but ran on {executed}: the runtime fell back"
    return CellRecord.new(
        run_id,
        cell,
        status,
        reason,
        measured,
        model_info(prepared, cell.batch),
        started_at,
        repetition,
        phase,
    )


def model_info(prepared: PreparedModel, batch: int) -> ModelInfo:
    """The record's ``model``: where it came from, its cost, and each input as fed."""
    sizes = {BATCH: batch} if prepared.source else {}
    inputs = []
    for spec in prepared.inputs:
        try:
            shape: list[int | str] = list(spec.concrete_shape(sizes))
        except UserError:  # still dynamic: the cell failed before feeding it
            shape = list(spec.shape)
        inputs.append(
            {"name": spec.name, "shape": shape, "dtype": spec.dtype, "values": spec.values()}
        )
    return ModelInfo(
        source=prepared.source or "onnx",
        task=prepared.task,
        params=prepared.params,
        flops_per_sample=prepared.flops_per_sample,
        onnx=str(prepared.onnx_path),
        inputs=inputs,
    )


@contextmanager
def _progress(console: Console, total: int, enabled: bool) -> Iterator[Any]:
    """A progress bar with the current cell and an ETA in a terminal; elsewhere (a log,
    a pipe: a device's progress streamed over SSH) one line per finished cell.
    ``advance(label, step=1)``."""
    if enabled and not console.is_terminal:
        done = 0

        def line(label: str, step: int = 1) -> None:
            nonlocal done
            if step:
                done += step
                console.print(f"[{done}/{total}] {label}", markup=False, highlight=False)

        yield line
        return
    progress = progress_bar(console, enabled)
    with progress:
        task = progress.add_task("starting", total=total)

        def advance(label: str, step: int = 1) -> None:
            progress.update(task, description=label, advance=step)

        yield advance


def progress_bar(console: Console, enabled: bool = True) -> Progress:
    """The bar a run shows in a terminal: what it does now, done of total, elapsed, eta."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        disable=not enabled,
        transient=False,
    )
