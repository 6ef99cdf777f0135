"""What runs inside a worker process: preparing a model, and measuring one cell.

A cell's worker takes a typed ``CellJob`` and returns its ``Measured`` figures (see
bench.harness.isolation). It imports only its own runtime: exports and reference outputs are
files it reads.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.core.cell import SERVING_SCENARIOS, Cell
from bench.core.job import CellJob
from bench.core.memory import peak_rss_mb
from bench.core.record import ColdStart, DeviceMetrics, Measured, Memory, Serving
from bench.core.settings import QuantizeConfig, RuntimeSettings
from bench.core.spec import BATCH, PreparedModel, Quantized, ScoredData, make_inputs
from bench.core.timing import LoopRecord
from bench.harness.accuracy import cell_accuracy, tolerance_of
from bench.harness.isolation import enter_phase
from bench.harness.plan import ModelRequest
from bench.harness.scoring import score_cell, timed_samples
from bench.power import CellPower
from exporters.reference import load_reference, reference_batches
from exporters.source import module_loader
from runtimes import get_runtime
from runtimes.base import LoadOptions, Session

if TYPE_CHECKING:
    from bench.harness.serving import Served


@dataclass(frozen=True)
class ExportJob:
    """A zoo, factory or pretrained model to export (or find in the cache) for the suite's
    batch sizes, with the suite's opset and seed."""

    request: ModelRequest
    batch_sizes: tuple[int, ...]
    cache_dir: Path
    opset: int
    seed: int


def prepare_model(job: ExportJob) -> PreparedModel:
    """Export (or find in the cache) the zoo, factory or pretrained model of ``job.request``."""
    request = job.request
    enter_phase("export")
    if request.kind == "zoo":
        from exporters.onnx_export import prepare_zoo_model

        prepared = prepare_zoo_model(
            request.ref, list(job.batch_sizes), job.cache_dir, opset=job.opset, seed=job.seed
        )
    else:
        from exporters.onnx_export import prepare_factory_model, prepare_pretrained_model

        pretrained = request.kind == "pretrained"
        prepare = prepare_pretrained_model if pretrained else prepare_factory_model
        prepared = prepare(
            request.source if pretrained else request.ref,
            request.shapes,
            list(job.batch_sizes),
            job.cache_dir,
            opset=job.opset,
            seed=job.seed,
            ranges=request.ranges,
        )
    prepared.name = request.name
    return prepared


@dataclass(frozen=True)
class QuantizeJob:
    """A prepared model to quantize into a QDQ copy in ``scheme``, calibrated as
    ``settings`` say on ``data`` (the checked arrays of a calibration file) or generated
    samples (``data`` None)."""

    prepared: PreparedModel
    scheme: str
    settings: QuantizeConfig
    data: dict[str, np.ndarray] | None
    cache_dir: Path
    origin: str | None = None
    """What ``data`` is, where it is not the calibration file."""


def quantize_model(job: QuantizeJob) -> Quantized:
    """The QDQ copy of ``job.prepared`` (made, or found in the cache)."""
    from exporters.quantize import quantize

    enter_phase("quantize")
    return quantize(job.prepared, job.scheme, job.settings, job.data, job.cache_dir, job.origin)


@dataclass(frozen=True)
class ReferenceJob:
    """A user ONNX file, as inspected, to make reference outputs for: ONNX Runtime on the
    CPU, fed ``feeds`` (see exporters.onnx_reference)."""

    prepared: PreparedModel
    feeds: dict[str, np.ndarray]
    cache_dir: Path


def onnx_reference(job: ReferenceJob) -> PreparedModel:
    """The file of ``job`` with its reference outputs (or the reason there are none)."""
    from exporters.onnx_reference import with_ort_reference

    enter_phase("reference")
    return with_ort_reference(job.prepared, job.feeds, job.cache_dir)


@dataclass(frozen=True)
class ScoredReferenceJob:
    """The reference outputs of a prepared model on its staged dataset samples."""

    prepared: PreparedModel
    scored: ScoredData


def scored_reference(job: ScoredReferenceJob) -> ScoredData:
    """``job.scored`` with the reference outputs on its samples (see
    exporters.scored_reference)."""
    from exporters.scored_reference import with_scored_reference

    enter_phase("reference")
    return with_scored_reference(job.prepared, job.scored)


def measure_cell(job: CellJob) -> Measured:
    """Build, load, check and time one cell. With a dataset, the cell is timed on its
    first scored samples and scored on all of them after the timed loop, once its peak
    memory is read: holding the dataset is not the cell's memory."""
    worker_start_s = time.time() - job.spawned_at
    cell, model = job.cell, job.model
    options = load_options(cell, model, job.threads, job.in_flight, job.options, job.batch_sizes)
    runtime_class = get_runtime(cell.runtime)
    enter_phase("import")
    start = time.perf_counter()
    runtime_class.import_framework()
    import_s = time.perf_counter() - start
    rss_after_import_mb = peak_rss_mb()
    if cell.scenario == "train":
        from bench.harness.train import measure_train

        cold_start = ColdStart(worker_start_s=worker_start_s, import_s=import_s)
        return measure_train(job, options, cold_start, rss_after_import_mb)
    runtime = runtime_class()
    enter_phase("build")
    built = runtime.build(model, cell.target, options, job.cache_dir)
    enter_phase("load")
    start = time.perf_counter()
    session = runtime.load(built, model, cell.target, options)
    load_s = time.perf_counter() - start

    if model.scored is not None:  # timed on the first scored samples, scored after
        feeds, reference = timed_samples(model.scored, cell.batch), None
    else:
        feeds, reference = inputs_and_reference(model, cell.batch)
    enter_phase("first inference")
    start = time.perf_counter()
    outputs = session.infer(feeds)
    first_inference_ms = (time.perf_counter() - start) * 1e3

    warmup, measurement = job.measure.warmup_rule(), job.measure.measurement_rule()
    enter_phase("timed loop")
    served = None
    with CellPower(job.power, cell.device) as power:
        if cell.scenario in SERVING_SCENARIOS:
            served = serve_cell(session, feeds, job, options.in_flight)
            loop = served.loop
        elif cell.scenario == "latency":
            loop = session.run_latency(feeds, warmup, measurement)
        else:
            loop = session.run_throughput(feeds, options.in_flight, warmup, measurement)
    enter_phase("teardown")
    device_metrics = session.device_metrics()
    peak_mb = peak_rss_mb()  # before scoring: the dataset held then is not the cell's
    if model.scored is not None:
        enter_phase("scoring")
        accuracy = score_cell(session, model, cell.batch, tolerance_of(model, cell.precision))
    else:
        accuracy = cell_accuracy(model, outputs, reference, cell.precision)
    session.close()

    return Measured.timed(
        session.executed,
        loop,
        cell.batch,
        job.measure.cv_threshold,
        power.result(loop.start_ns, loop.end_ns, *_served(loop, cell.batch, served)),
        memory=Memory(after_import_mb=rss_after_import_mb, peak_rss_mb=peak_mb),
        cold_start=ColdStart(
            worker_start_s=worker_start_s,
            import_s=import_s,
            export_s=model.export_s,
            export_cache_hit=model.cache_hit,
            build_s=built.build_s,
            build_cache_hit=built.cache_hit,
            load_s=load_s,
            first_inference_ms=first_inference_ms,
            **_calibration(model, cell, job.options),
        ),
        device_metrics=DeviceMetrics.of(device_metrics, loop),
        accuracy=accuracy,
        notes=[*model.notes, *built.notes],
        **(served_sections(served) if served else {}),
    )


def _served(loop: LoopRecord, batch: int, served: Served | None) -> tuple[int, int]:
    """Requests and samples a request of the window: a LoadGen cell's requests carry up to
    the batch, so its energy is counted per sample served."""
    return (served.samples, 1) if served else (loop.completed, batch)


def load_options(
    cell: Cell,
    model: PreparedModel,
    threads: int,
    in_flight: int,
    settings: RuntimeSettings,
    batch_sizes: tuple[int, ...],
) -> LoadOptions:
    """What a cell's session is built and loaded with (a measured cell, a shipped one)."""
    return LoadOptions(
        threads,
        in_flight,
        load_scenario(cell.scenario),
        settings,
        cell.batch,
        batch_sizes,
        module_loader(model.source, model.seed),
    )


def load_scenario(scenario: str) -> str:
    """The scenario a session is loaded for: a LoadGen scenario's closest own (one
    stream is latency; the rest keep several requests in flight), so that runtimes with
    hints (OpenVINO's performance hint) need not know LoadGen's names."""
    if scenario not in SERVING_SCENARIOS:
        return scenario
    return "latency" if scenario == "single_stream" else "throughput"


def serve_cell(
    session: Session, feeds: dict[str, np.ndarray], job: CellJob, in_flight: int
) -> Served:
    """Run the cell's LoadGen scenario on ``in_flight`` request slots of ``session``
    (0: the runtime's own optimum, where it chooses: OpenVINO), its logs written to a
    scratch folder and carried back in the result."""
    from bench.harness.serving import serve

    slots = session.request_slots(feeds, in_flight)
    with tempfile.TemporaryDirectory(prefix="loadgen-") as scratch:
        return serve(
            slots,
            job.cell.batch,
            job.cell.scenario,
            job.loadgen,
            job.measure.warmup_rule(),
            Path(scratch),
        )


def served_sections(served: Served) -> dict[str, Any]:
    """The record's ``loadgen`` section and the log files to keep beside it."""
    figures = served.result.figures()
    if served.search is not None:
        figures["search"] = served.search.figures()
    return {
        "throughput": served.throughput(),
        "loadgen": Serving(**figures),
        "attached": {f"loadgen/{name}": text for name, text in served.result.logs.items()},
    }


def inputs_and_reference(
    model: PreparedModel, batch: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None]:
    """The stored inputs for ``batch`` and the reference outputs on them (None where the
    file holds inputs alone); without a stored batch, seeded inputs and no reference."""
    if model.reference is not None and batch in reference_batches(model.reference):
        feeds, reference = load_reference(model.reference, batch)
        return feeds, reference or None
    sizes = {BATCH: batch} if model.source else {}
    return make_inputs(model.inputs, sizes, model.seed), None


def _calibration(model: PreparedModel, cell: Cell, options: RuntimeSettings) -> dict:
    """An int8 cell's calibration cost (what quantizing adds to a cold run)."""
    if cell.precision != "int8":
        return {}
    quantized = get_runtime(cell.runtime).quantized(model, cell.target, options)  # it ran
    return {"calibrate_s": quantized.calibrate_s, "calibrate_cache_hit": quantized.cache_hit}
