"""TensorRT cells in tools mode: the device's own ``trtexec``, driven over SSH.

A cell is three guarded commands on the device, then one copy back:

1. build the engine with ``trtexec`` (flags for the device's version, from its banner),
   unless the device's engine cache has it;
2. one run that writes the engine's layers (``--exportLayerInfo``: what precision and
   device each layer runs) and one request on the bundle's seeded inputs
   (``--loadInputs``/``--exportOutput``), whose outputs are compared here with the
   reference;
3. the timed run (``--exportTimes``), with ``tegrastats`` beside it on the device. Every
   line of tegrastats, and trtexec's up to its ``Starting inference`` line, is stamped
   with the device's clock as it is read, so the power readings are cut to exactly the
   trace's measured window: the trace's zero is the moment trtexec logs that line.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.accuracy import cell_accuracy
from bench.config import BenchConfig
from bench.core.cell import Cell
from bench.core.errors import Unavailable
from bench.core.record import ColdStart, DeviceMetrics, Measured
from bench.core.spec import PreparedModel
from bench.core.timing import StopRule
from bench.power import TegrastatsLog, window_figures
from bench.remote.bundle import MODEL_FILE
from bench.remote.device import COPY_TIMEOUT_S, CellFailed, DeviceWork
from exporters.reference import load_reference
from runtimes.tensorrt_build import (
    BuildPlan,
    EngineFile,
    TrtVersion,
    TypingSupport,
    engine_path,
    profile_shapes,
    resolve_typing,
)
from runtimes.tensorrt_inspect import layer_precisions
from runtimes.tensorrt_rt import TensorRTOptions
from runtimes.tensorrt_session import engine_executed, split_summary
from runtimes.trtexec_driver import (
    RunSettings,
    build_flags,
    layer_info_flags,
    one_request_flags,
    read_outputs,
    trace_record,
    trace_window_ms,
    warmup_queries,
)

STAMP = (
    'stamp() { while IFS= read -r l; do printf "%s %s\\n" "$(date +%s.%N)" "$l"; done; }\n'
    'stamp_until() { while IFS= read -r l; do printf "%s %s\\n" "$(date +%s.%N)" "$l"; '
    'case "$l" in *"$1"*) exec cat;; esac; done; }'
)
"""Shell functions that prefix each line with the device's clock (s.ns) as it is read:
``stamp`` every line; ``stamp_until TEXT`` up to the first line holding TEXT, then the
rest as they are (one ``date`` a line, none once trtexec's timed run begins)."""
STARTING = "Starting inference"
"""trtexec's log line just before its first request: its trace's time zero."""


def measure_tensorrt(
    work: DeviceWork,
    cell: Cell,
    model: PreparedModel,
    config: BenchConfig,
    cache_dir: Path,
    run_id: str,
    repetition: int,
    deadline: float,
) -> Measured:
    settings: TensorRTOptions = config.runtime.of("tensorrt")  # type: ignore[assignment]
    trtexec = work.device.trtexec
    if trtexec is None or work.device.tensorrt is None:
        raise Unavailable(
            f"no trtexec on {work.ssh.name} (JetPack puts it in /usr/src/tensorrt/bin)"
        )
    version = TrtVersion.parse(work.device.tensorrt)
    target = cell.target
    typing = resolve_typing(
        TypingSupport.of_version(version), version, settings.typing, target.precision
    )
    graph, kind = None, "fp32"
    if target.precision == "int8":  # explicit quantization: the QDQ copy's layers
        from runtimes.tensorrt_rt import TensorRTRuntime

        graph, kind = TensorRTRuntime.quantized(model, target, settings).path, "int8 qdq"
    elif typing == "strong" and target.precision == "fp16":
        from runtimes.fp16_graph import fp16_graph

        graph, kind = (
            fp16_graph(model.onnx_path, cache_dir, model.precision == "fp16").path,
            "fp16",
        )
    bundle = work.bundle(model, config, graph, kind, version)
    remote_model = work.work.model(bundle)
    onnx = f"{remote_model}/{MODEL_FILE}"
    dla = target.device_index if target.device_kind == "dla" else None
    plan = BuildPlan(
        precision=target.precision,
        typing=typing,
        workspace_mb=settings.workspace_mb,
        shapes=profile_shapes(model.inputs, config.suite.batch_sizes, cell.batch),
        tf32=settings.tf32,
        dla_core=dla,
        gpu_fallback=settings.gpu_fallback,
        optimization_level=settings.builder_optimization_level,
    )
    gpu = work.device.jetson["model"] if work.device.jetson else work.ssh.name
    local_name = engine_path(
        Path("."), Path(onnx), f"{version}-trtexec-{bundle.digest}", gpu, plan
    ).name
    engine = f"{work.work.engines}/{local_name}"
    cell_dir = work.work.cell(run_id, cell, repetition)
    timing = f"{work.work.engines}/timing-{version}.cache" if settings.timing_cache else None

    # 1. the engine
    partial = f"{engine}.partial"
    flags = build_flags(version, Path(onnx), Path(partial), plan, Path(timing) if timing else None)
    keep = "" if settings.engine_cache else f"rm -f {engine}; "
    out = work.run(
        f"mkdir -p {work.work.engines} {cell_dir} && cd {cell_dir} && {keep}"
        f"if [ -s {engine} ]; then echo cached; exit 0; fi; "
        f"s=$(date +%s.%N); {_trt(trtexec, flags)} > build.log 2>&1; rc=$?; "
        f"e=$(date +%s.%N); grep -q 'FAILED' build.log && rc=1; "
        f'[ $rc -eq 0 ] || {{ grep "\\[E\\]" build.log | head -3; exit 1; }}; '
        f'mv {partial} {engine} && echo "built $s $e"',
        deadline,
        "building the engine with trtexec",
        "build",
    )
    build_s, hit = _build_time(out)

    # 2. the layers, and one request on the bundle's inputs
    shapes = {name: triple[1] for name, triple in plan.shapes.items()}
    run = RunSettings(
        shapes=shapes,
        cuda_graph=settings.cuda_graph,
        data_transfers=settings.data_transfers,
        dla_core=dla,
    )
    load = [
        *_run_flags(version, engine, run, StopRule(0, 1), StopRule(0, 1)),
        *layer_info_flags(Path("layers.json")),
    ]
    inputs = bundle.inputs.get(cell.batch)
    infer = ""
    if inputs:
        spec = ",".join(
            f"{part.split(':', 1)[0]}:{remote_model}/{part.split(':', 1)[1]}"
            for part in inputs.split(",")
        )
        one = one_request_flags(run, Path(engine), spec, Path("outputs.json"))
        infer = (
            f"s=$(date +%s.%N); {_trt(trtexec, one)} > infer.log 2>&1 || "
            f"{{ grep '\\[E\\]' infer.log | head -3; exit 1; }}; "
            f'e=$(date +%s.%N); echo "infer $s $e"'
        )
    out = work.run(
        f"cd {cell_dir} && s=$(date +%s.%N); {_trt(trtexec, load)} > load.log 2>&1 || "
        f"{{ grep '\\[E\\]' load.log | head -3; exit 1; }}; "
        f'e=$(date +%s.%N); echo "load $s $e"; {infer}',
        deadline,
        "loading the engine with trtexec",
        "load",
    )
    stamps = _stamps(out)

    # 3. the timed run, tegrastats beside it
    warmup, measure = config.measure.warmup_rule(), config.measure.measurement_rule()
    streams = 1 if cell.scenario == "latency" else (config.suite.in_flight or 2)
    timed = replace(run, streams=streams)
    flags = [*_run_flags(version, engine, timed, warmup, measure), "--exportTimes=times.json"]
    out = work.run(
        _timed_script(work, cell_dir, trtexec, flags),
        deadline,
        "timing with trtexec",
        "timed loop",
    )
    local = work.scratch / "cells" / Path(cell_dir).name
    work.ssh.pull(
        cell_dir,
        ["layers.json", "outputs.json", "times.json", "timed.log", "power.log"],
        local,
        COPY_TIMEOUT_S,
    )
    return _tensorrt_figures(
        work,
        cell,
        model,
        config,
        local,
        stamps,
        build_s,
        hit,
        EngineFile(Path(engine), plan, str(version), "trtexec", gpu),
        run,
        warmup,
        measure,
        streams,
    )


def _timed_script(work: DeviceWork, cell_dir: str, trtexec: str, flags: list[str]) -> str:
    """The timed trtexec run, with tegrastats stamping its lines beside it (when the
    device has it and the suite measures power)."""
    lines = [STAMP, f"cd {cell_dir}", "rm -f times.json timed.log power.log rc"]
    tegrastats = work.device.tegrastats if work.power in ("auto", "tegrastats") else None
    interval = work.host.power_interval_ms
    if tegrastats:
        lines += [
            f"( {shlex.quote(tegrastats)} --interval {interval} & echo $! > tegrastats.pid;"
            " wait ) 2>/dev/null | stamp > power.log &",
            "n=0; while [ ! -s power.log ] && [ $n -lt 100 ]; do sleep 0.05; n=$((n+1)); done",
        ]
    lines.append(
        f'( {_trt(trtexec, flags)}; echo "$?" > rc ) 2>&1 | stamp "{STARTING}" > timed.log'
    )
    if tegrastats:
        lines.append(f"sleep {2 * interval / 1000:.3f}; kill $(cat tegrastats.pid) 2>/dev/null")
    lines.append(
        'rc=$(cat rc); grep -q "FAILED" timed.log && rc=1; '
        '[ "$rc" -eq 0 ] || { grep "\\[E\\]" timed.log | head -3; exit 1; }'
    )
    return "\n".join(lines)


def _tensorrt_figures(
    work: DeviceWork,
    cell: Cell,
    model: PreparedModel,
    config: BenchConfig,
    local: Path,
    stamps: dict[str, tuple[float, float]],
    build_s: float,
    hit: bool,
    engine: EngineFile,
    run: RunSettings,
    warmup: StopRule,
    measure: StopRule,
    streams: int,
) -> Measured:
    """The cell's figures from the files copied back from the device."""
    try:
        entries = json.loads((local / "times.json").read_text())
        layers = layer_precisions(json.loads((local / "layers.json").read_text()))
    except (OSError, ValueError) as exc:
        raise CellFailed(f"trtexec's exports did not come back: {exc}", "timed loop") from None
    log = (local / "timed.log").read_text() if (local / "timed.log").is_file() else ""
    loop, splits = trace_record(entries, warmup.min_s * 1000, measure, streams)
    if loop.warmup_count == 0 and (reported := warmup_queries(log)) is not None:
        loop.warmup_count = reported
    executed = engine_executed(
        cell.target,
        layers,
        engine,
        run.cuda_graph,
        run.data_transfers,
        trtexec=work.device.trtexec,
        host=work.ssh.name,
        mode="tools",
    )
    outputs = {}
    if (local / "outputs.json").is_file():
        outputs = read_outputs(local / "outputs.json")
    reference = None
    if model.reference is not None and outputs:
        _, reference = load_reference(model.reference, cell.batch)
        outputs = _fit(outputs, reference)
    return Measured.timed(
        executed,
        loop,
        cell.batch,
        config.measure.cv_threshold,
        _power(work, log, local, entries, warmup, loop.completed, cell.batch),
        cold_start=ColdStart(
            build_s=build_s,
            build_cache_hit=hit,
            load_s=_span(stamps.get("load")),
            first_inference_ms=_span(stamps.get("infer"), 1e3),
            export_s=model.export_s,
            export_cache_hit=model.cache_hit,
        ),
        device_metrics=DeviceMetrics.of(split_summary(splits, "trtexec --exportTimes"), loop),
        accuracy=cell_accuracy(model, outputs, reference, cell.precision)
        if reference
        else cell_accuracy(
            replace(model, reference=None, no_reference="trtexec wrote no outputs"),
            {},
            None,
            cell.precision,
        ),
        notes=[*model.notes, f"run on {work.ssh.name} by its own trtexec (tools mode)"],
    )


def _power(
    work: DeviceWork,
    log: str,
    local: Path,
    entries: list[dict[str, float]],
    warmup: StopRule,
    requests: int,
    batch: int,
) -> dict[str, Any]:
    if work.power == "none":
        return {"source": "none", "unavailable": "suite.power is none"}
    if work.power not in ("auto", "tegrastats"):
        return {
            "source": work.power,
            "unavailable": f"{work.power} is read on this "
            "machine; on a device over SSH power comes from its tegrastats",
        }
    if not work.device.tegrastats:
        return {
            "source": "tegrastats",
            "unavailable": f"{work.ssh.name} has no tegrastats (it comes with JetPack)",
        }
    zero = next((line.split(" ", 1)[0] for line in log.splitlines() if STARTING in line), None)
    if zero is None:
        return {
            "source": "tegrastats",
            "unavailable": f"trtexec logged no '{STARTING}' "
            "line to place its trace on the device's clock",
        }
    power_log = (local / "power.log").read_text() if (local / "power.log").is_file() else ""
    source = TegrastatsLog(power_log, work.host.power_interval_ms, work.ssh.name)
    start_ms, end_ms = trace_window_ms(entries, warmup.min_s * 1000)
    zero_ns = round(float(zero) * 1e9)
    start, end = zero_ns + round(start_ms * 1e6), zero_ns + round(end_ms * 1e6)
    figures = window_figures(
        source, source.samples, start, end, requests, batch, 1e3 / work.host.power_interval_ms
    )
    figures.setdefault("notes", []).append(
        "window placed on the device's clock by trtexec's 'Starting inference' line"
    )
    return figures


def _trt(trtexec: str, flags: list[str]) -> str:
    return shlex.join([trtexec, *flags])


def _run_flags(
    version: TrtVersion, engine: str, run: RunSettings, warmup: StopRule, measure: StopRule
) -> list[str]:
    from runtimes.trtexec_driver import run_flags

    return run_flags(version, Path(engine), run, warmup, measure)


def _stamps(output: str) -> dict[str, tuple[float, float]]:
    """``NAME START END`` lines (device clock, seconds) by name."""
    found = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 3:
            try:
                found[parts[0]] = (float(parts[1]), float(parts[2]))
            except ValueError:
                continue
    return found


def _build_time(output: str) -> tuple[float, bool]:
    if "cached" in output.split():
        return 0.0, True
    span = _stamps(output).get("built")
    return (span[1] - span[0] if span else 0.0), False


def _span(span: tuple[float, float] | None, scale: float = 1.0) -> float | None:
    return (span[1] - span[0]) * scale if span else None


def _fit(outputs: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> dict[str, Any]:
    """trtexec's outputs shaped as the reference's (it writes them flat per dimension
    string; a name it does not know is left out)."""
    fitted = {}
    for name, want in reference.items():
        if name in outputs and outputs[name].size == want.size:
            fitted[name] = outputs[name].reshape(want.shape)
    return fitted
