"""What runs inside a worker process: preparing a model, and measuring one cell.

Both take and return plain dicts (see bench.isolation). A cell's worker imports only its
own runtime: exports and reference outputs are files it reads.
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.accuracy import compare_outputs
from bench.config import MeasureConfig
from bench.plan import Cell
from bench.power import CellPower, PowerSettings
from bench.stats import Summary
from bench.timing import LoopRecord, StopRule
from exporters.reference import load_reference, reference_batches
from exporters.spec import BATCH, PreparedModel, make_inputs
from runtimes import get_runtime
from runtimes.base import Executed, LoadOptions


def prepare_model(job: dict[str, Any]) -> dict[str, Any]:
    """Export (or find in the cache) the zoo or factory model of ``job["request"]``;
    returns its PreparedModel as a dict."""
    from bench.plan import ModelRequest

    request = ModelRequest.from_dict(job["request"])
    cache_dir = Path(job["cache_dir"])
    if request.kind == "zoo":
        from exporters.onnx_export import prepare_zoo_model

        prepared = prepare_zoo_model(
            request.ref, job["batch_sizes"], cache_dir, opset=job["opset"], seed=job["seed"]
        )
    else:
        from exporters.onnx_export import prepare_factory_model

        prepared = prepare_factory_model(
            request.ref,
            request.shapes,
            job["batch_sizes"],
            cache_dir,
            opset=job["opset"],
            seed=job["seed"],
        )
    prepared.name = request.name
    return prepared.to_dict()


def measure_cell(job: dict[str, Any]) -> dict[str, Any]:
    """Build, load, check and time one cell. Returns the measured fields of its result."""
    cell = Cell(**job["cell"])
    model = PreparedModel.from_dict(job["model"])
    measure = MeasureConfig(**job["measure"])
    options = LoadOptions(
        job["threads"],
        job["in_flight"],
        cell.scenario,
        job.get("runtime_options", {}),
        cell.batch,
        tuple(job.get("batch_sizes", ())),
    )

    runtime_class = get_runtime(cell.runtime)
    start = time.perf_counter()
    runtime_class.import_framework()
    import_s = time.perf_counter() - start
    rss_after_import_mb = peak_rss_mb()
    if cell.scenario == "train":
        from bench.train import measure_train

        return measure_train(job, cell, model, measure, import_s, rss_after_import_mb)
    runtime = runtime_class()
    built = runtime.build(model, cell.target, options, Path(job["cache_dir"]))
    start = time.perf_counter()
    session = runtime.load(built, model, cell.target, options)
    load_s = time.perf_counter() - start

    feeds, reference = _inputs_and_reference(model, cell.batch)
    start = time.perf_counter()
    outputs = session.infer(feeds)
    first_inference_ms = (time.perf_counter() - start) * 1e3

    warmup, measurement = StopRule.warmup(measure), StopRule.measurement(measure)
    with CellPower(PowerSettings(**job.get("power", {})), cell.device) as power:
        if cell.scenario == "latency":
            record = session.run_latency(feeds, warmup, measurement)
        else:
            record = session.run_throughput(feeds, options.in_flight, warmup, measurement)
    device_metrics = session.device_metrics()
    session.close()

    return {
        **timed_figures(session.executed, record, measure, cell.batch, power),
        "cold_start": {
            "worker_start_s": job["worker_started_at"] - job["spawned_at"],
            "import_s": import_s,
            "export_s": model.export_s,
            "export_cache_hit": model.cache_hit,
            "build_s": built.build_s,
            "build_cache_hit": built.cache_hit,
            "load_s": load_s,
            "first_inference_ms": first_inference_ms,
        },
        "memory": {"after_import_mb": rss_after_import_mb, "peak_rss_mb": peak_rss_mb()},
        "device_metrics": device_metrics,
        "accuracy": (
            compare_outputs(outputs, reference, cell.precision, model.task == "classification")
            if reference
            else None
        ),
        "notes": [*model.notes, *built.notes],
        "raw_times_ms": [t / 1e6 for t in record.times_ns],
    }


def _inputs_and_reference(
    model: PreparedModel, batch: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None]:
    """The seeded inputs for ``batch`` and the PyTorch FP32 outputs on them, when stored;
    otherwise (a user ONNX file) seeded inputs made from the specs and no reference."""
    if model.reference is not None and batch in reference_batches(model.reference):
        return load_reference(model.reference, batch)
    sizes = {BATCH: batch} if model.source else {}
    return make_inputs(model.inputs, sizes, model.seed), None


def timed_figures(
    executed: Executed, record: LoopRecord, measure: MeasureConfig, batch: int, power: CellPower
) -> dict[str, Any]:
    """A timed cell's figures (inference or training): what ran, the latency summary and
    whether it is unstable, throughput, and power over the same window."""
    summary = Summary.from_ns(record.times_ns)
    return {
        "executed": executed_figures(executed, record.in_flight),
        "latency_ms": summary.to_dict(),
        "unstable": summary.cv > measure.cv_threshold,
        "throughput": throughput_figures(record, batch),
        "power": power.result(record.start_ns, record.end_ns, record.completed, batch),
    }


def executed_figures(executed: Executed, in_flight: int) -> dict[str, Any]:
    """What ran, as read back from the runtime, with the requests in flight."""
    return {
        "precision": executed.precision,
        "device": executed.device,
        "threads": executed.threads,
        "in_flight": in_flight,
        "provider": executed.provider,
        **executed.details,
    }


def throughput_figures(record: LoopRecord, batch: int) -> dict[str, Any]:
    """Samples and requests per second over the measured window, and the window itself."""
    window_s = record.window_ns / 1e9
    return {
        "samples_per_s": record.completed * batch / window_s if window_s > 0 else None,
        "requests_per_s": record.completed / window_s if window_s > 0 else None,
        "window_s": window_s,
        "requests": record.completed,
        "warmup_requests": record.warmup_count,
        "capped": record.capped,
    }


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024
