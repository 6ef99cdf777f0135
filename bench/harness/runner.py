"""Running a planned suite: the one loop of every executor (``run_suite``), preparing
each model once, and measuring a cell in its own worker on this machine (``measure``)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import psutil
from rich.console import Console

from bench.core.cell import Cell
from bench.core.errors import TargetLost, UserError
from bench.core.job import CellJob
from bench.core.record import CellRecord, Measured, ModelInfo
from bench.core.settings import PowerSettings
from bench.core.spec import BATCH, PreparedModel
from bench.harness import worker
from bench.harness.config import BenchConfig
from bench.harness.dataset import check_dataset, check_labels, labelled_task, stage
from bench.harness.executor import Column, Executor, Todo
from bench.harness.isolation import run_in_worker
from bench.harness.plan import ModelRequest, PlannedCell
from bench.harness.progress import progress
from runtimes import get_runtime

if TYPE_CHECKING:
    from bench.harness.start import Run


@dataclass(frozen=True)
class Workload:
    """Threads and requests in flight for a cell, resolved from the suite."""

    threads: int
    in_flight: int


GPU_IN_FLIGHT = 2
"""Default requests in flight on an accelerator: two streams keep it busy while the host
prepares the next request; more only add host-side contention."""


ONE_AT_A_TIME = ("latency", "train", "single_stream")
"""The scenarios of one request (or training step) at a time."""


def workload(config: BenchConfig, cell: Cell) -> Workload:
    """Latency: one request with every thread. Throughput on the CPU: ``in_flight``
    requests (default: one per physical core, at least two), the threads shared out between
    them. Throughput on an accelerator: ``in_flight`` requests (default 2), each on its own
    stream, the host threads left whole. A runtime that chooses its own threads and requests
    in flight (OpenVINO) gets 0 for each unless the suite sets it, and reports what it chose."""
    if get_runtime(cell.runtime).chooses_in_flight:  # 0 = the runtime's own choice
        in_flight = 1 if cell.scenario in ONE_AT_A_TIME else config.suite.in_flight
        return Workload(config.suite.threads, in_flight)
    cores = psutil.cpu_count(logical=False) or psutil.cpu_count() or 1
    total = config.suite.threads or cores
    if cell.scenario in ONE_AT_A_TIME:
        return Workload(total, 1)
    if cell.device != "cpu":
        return Workload(total, config.suite.in_flight or GPU_IN_FLIGHT)
    in_flight = config.suite.in_flight or max(2, cores)
    return Workload(max(1, total // in_flight), in_flight)


def run_suite(
    run: Run, executor: Executor, console: Console, show_progress: bool = True
) -> list[Column]:
    """The one loop of every run: measure, on ``executor``'s target, each repetition of
    each planned cell that has no result in its column yet; the columns.

    Each model is prepared here once, as its first cell needs it; a cell that ends before
    it is measured (skipped, its export failed, its int8 copy could not be made) is
    recorded here. Results are appended as each cell ends. The run directory is named once
    the first cell ends or begins, past the bad input (a ``--shape`` the model lacks, a calibration
    file that does not fit) that leaves no new folder behind. Ctrl-C: the interrupt goes
    on once the cells in flight are stopped, after saying what is kept and how to finish;
    a lost target likewise, as a TargetLost that says both.
    """
    try:
        columns = executor.columns(run, console)
    except BaseException:
        if not run.resumed:  # nothing was measured: leave no folder behind
            shutil.rmtree(run.run_dir.path, ignore_errors=True)
        raise
    repeat = run.config.suite.repeat
    todo = [(column, rep, item) for column in columns for rep, item in column.missing(repeat)]
    totals: dict[str | None, int] = {}
    for column, _, _ in todo:
        totals[column.name] = totals.get(column.name, 0) + 1
    models = Models(run)
    named = False

    def name() -> None:  # once, as the first cell ends or starts
        nonlocal named
        if not named:
            console.print(f"run directory: {run.run_dir.path}")
            named = True

    def keep(column: Column, record: CellRecord) -> None:
        name()
        column.run_dir.append(record)
        label = repetition_label(record.cell, record.repetition, repeat)
        shown.ended(column.name, label, record.status, (record.node or {}).get("name"))

    def ready() -> Iterator[Todo]:
        for column, rep, item in todo:
            cell = item.cell
            if item.skip_reason is None and cell.model not in models.prepared:
                shown.started(column.name, f"{cell.model}: preparing")
            model = models.get(cell.model) if item.skip_reason is None else None
            shown.started(column.name, repetition_label(cell, rep, repeat))
            record = models.ended_early(item, model, rep)
            if record is not None:
                keep(column, record)
                continue
            name()
            yield Todo(column, cell, rep, models.as_seen(model, cell, column))

    if not todo:  # a finished run resumed
        console.print(f"run directory: {run.run_dir.path}")
    try:
        with progress(console, totals, show_progress) as shown:
            for column, record in executor.measure(run, ready(), shown):
                keep(column, record)
    except KeyboardInterrupt:
        stopped = f"{executor.stops}; " if executor.stops else ""
        console.print(
            f"\ninterrupted: {stopped}every finished cell is kept in {run.run_dir.path}; "
            f"finish with: {executor.resume_hint(run.run_dir.path)}",
            soft_wrap=True,
        )
        raise
    except UserError as exc:
        measured = any(column.run_dir.records() for column in columns)
        if not measured and not run.resumed:  # leave no empty new run behind
            shutil.rmtree(run.run_dir.path, ignore_errors=True)
        if isinstance(exc, TargetLost) and run.run_dir.path.exists():
            raise type(exc)(
                f"{exc}; the cells done are kept in {run.run_dir.path}: finish with: "
                f"{executor.resume_hint(run.run_dir.path)}"
            ) from None
        raise
    return columns


class Models:
    """The run's models, each prepared once as its first cell needs it (or why it could
    not be), and the int8 copies made of them."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.requests = {m.name: m for m in run.models}
        self.prepared: dict[str, PreparedModel | ExportFailed] = {}
        self.costed: set[tuple[str | None, str, str]] = set()
        self.calibration: dict[str, dict[str, np.ndarray]] = {}
        """Each model's calibration samples held out of the run's dataset."""

    def get(self, name: str) -> PreparedModel | ExportFailed:
        if name not in self.prepared:
            try:
                model = prepare(self.requests[name], self.run.config, self.run.cache_dir)
            except ExportFailed as failure:
                self.prepared[name] = failure
            else:
                self.prepared[name] = self.scored(model)
        return self.prepared[name]

    def scored(self, model: PreparedModel) -> PreparedModel:
        """``model`` with the run's dataset staged for its cells and the reference
        outputs on it (made in a worker; where that fails, the reason); UserError where
        the dataset does not fit the model."""
        if self.run.dataset is None:
            return model
        config, cache_dir = self.run.config, self.run.cache_dir
        dataset = check_dataset(self.run.dataset, model.inputs, model.name)
        model = replace(model, task=labelled_task(model.task, model.outputs, dataset.labels))
        check_labels(dataset, model.task, model.outputs, model.name)
        if dataset.calibration:
            self.calibration[model.name] = dataset.calibration_arrays()
        timed = max(config.suite.batch_sizes)
        staged = stage(dataset, cache_dir, config.dataset.ignore_index, timed)
        job = worker.ScoredReferenceJob(model, staged)
        outcome = run_in_worker(worker.scored_reference, job, config.suite.export_timeout_s)
        if outcome.status == "ok" and outcome.payload is not None:
            staged = outcome.payload
        else:
            why = f"the reference on {staged.name} {outcome.status}: {outcome.reason}"
            staged = replace(staged, no_reference=why)
        return replace(model, scored=staged)

    def ended_early(
        self, item: PlannedCell, model: PreparedModel | ExportFailed | None, rep: int
    ) -> CellRecord | None:
        """The record of a cell that ends before it is measured: skipped, its model's
        export failed, or its int8 copy could not be made (made here, once per model and
        scheme). None when the cell is to be measured."""
        cell, run_id = item.cell, self.run.run_dir.run_id
        if item.skip_reason is not None:
            return CellRecord.new(run_id, cell, "skipped", item.skip_reason, repetition=rep)
        if isinstance(model, ExportFailed):
            return CellRecord.new(
                run_id, cell, model.status, model.reason, repetition=rep, phase=model.phase
            )
        if model is not None and cell.precision == "int8":
            data = self.calibration.get(model.name) or None
            why = quantized_for(model, cell, self.run.config, self.run.cache_dir, data)
            if why:
                return CellRecord.new(run_id, cell, "failed", why, repetition=rep, phase="quantize")
        return None

    def as_seen(self, model: PreparedModel, cell: Cell, column: Column) -> PreparedModel:
        """``model`` as ``cell`` sees it: each column's first int8 cell of a scheme
        carries what calibrating cost, the later ones see the copy cached (cost 0)."""
        if cell.precision != "int8" or not model.quantized:
            return model
        quantized = dict(model.quantized)
        for scheme, copy in model.quantized.items():
            key = (column.name, model.name, scheme)
            if key in self.costed:
                quantized[scheme] = replace(copy, calibrate_s=0.0, cache_hit=True)
            elif scheme == _scheme(cell, self.run.config):
                self.costed.add(key)
        return replace(model, quantized=quantized)


def _scheme(cell: Cell, config: BenchConfig) -> str:
    runtime = get_runtime(cell.runtime)
    return runtime.quantization_scheme(cell.target, config.runtime.of(cell.runtime))


def quantized_for(
    model: PreparedModel,
    cell: Cell,
    config: BenchConfig,
    cache_dir: Path,
    held_out: dict[str, np.ndarray] | None = None,
) -> str | None:
    """Make the QDQ copy an int8 cell runs, once per model and scheme, in a worker bounded
    by the export timeout; None when it is there, else why not. It calibrates on the
    calibration file, else on ``held_out`` (the dataset's calibration split), else on
    generated samples. UserError for a calibration file that does not fit the model."""
    scheme = _scheme(cell, config)
    if scheme in model.quantized:  # made for an earlier cell
        return None
    if scheme in model.not_quantized:
        return model.not_quantized[scheme]
    settings = config.quantize
    data, origin = held_out, None
    if held_out is not None:  # said in the int8 notes
        origin = f"{config.dataset.path} (the samples held out of scoring)"
    if settings.calibration_data:
        from exporters.onnx_file import load_inputs_file
        from exporters.quantize import check_calibration_data

        data = load_inputs_file(Path(settings.calibration_data), "--calibration-data")
        check_calibration_data(data, model.inputs, settings.calibration_data)
    job = worker.QuantizeJob(model, scheme, settings, data, cache_dir, origin)
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
        loadgen=config.loadgen,
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
        values = f"the samples of {prepared.scored.name}" if prepared.scored else spec.values()
        inputs.append({"name": spec.name, "shape": shape, "dtype": spec.dtype, "values": values})
    return ModelInfo(
        source=prepared.source or "onnx",
        task=prepared.task,
        params=prepared.params,
        flops_per_sample=prepared.flops_per_sample,
        onnx=str(prepared.onnx_path),
        inputs=inputs,
    )
