"""TensorRT cells in tools mode: the device's own ``trtexec``, driven over SSH.

A cell is three guarded commands on the device, then one copy back:

1. build the engine with ``trtexec`` (flags for the device's version, from its banner),
   unless the device's engine cache has it;
2. one run that writes the engine's layers (``--exportLayerInfo``: what precision and
   device each layer runs) and one request on the bundle's seeded inputs
   (``--loadInputs``/``--exportOutput``), whose outputs are compared here with the
   reference;
3. the timed run (``--exportTimes``), with tegrastats beside it (bench.remote.stamped).
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from bench.core.cell import Cell
from bench.core.errors import Unavailable
from bench.core.record import Accuracy, ColdStart, DeviceMetrics, Measured
from bench.core.spec import PreparedModel
from bench.core.timing import StopRule
from bench.harness.accuracy import cell_accuracy
from bench.harness.config import BenchConfig, HostConfig
from bench.remote.boards import board_of
from bench.remote.bundle import MODEL_FILE, Bundle
from bench.remote.device import COPY_TIMEOUT_S, CellFailed, Device, DeviceWork
from bench.remote.device_tool import DeviceTool
from bench.remote.stamped import LOG, POWER_LOG, TRACE, power_figures, timed_script
from exporters.reference import load_reference
from runtimes.tensorrt.build import (
    BuildPlan,
    EngineFile,
    TrtVersion,
    TypingSupport,
    engine_path,
    profile_shapes,
    resolve_typing,
)
from runtimes.tensorrt.inspector import layer_precisions
from runtimes.tensorrt.runtime import TensorRTOptions, TensorRTRuntime
from runtimes.tensorrt.session import engine_executed, split_summary
from runtimes.tensorrt.trtexec_driver import (
    JETPACK_TRTEXEC,
    RunSettings,
    build_flags,
    layer_info_flags,
    max_onnx_opset,
    one_request_flags,
    parse_banner,
    read_outputs,
    run_flags,
    trace_record,
    warmup_queries,
)

LAYERS, OUTPUTS = "layers.json", "outputs.json"


@dataclass(frozen=True)
class EngineCell:
    """One TensorRT cell on the device: what it builds and where its files go."""

    trtexec: str
    version: TrtVersion
    engine: EngineFile  # its path: on the device
    bundle: Bundle
    bundle_dir: str  # on the device
    cell_dir: str  # on the device
    run: RunSettings
    timing_cache: str | None

    def command(self, flags: list[str]) -> str:
        return shlex.join([self.trtexec, *flags])


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
    """Build, check and time ``cell`` with the device's trtexec."""
    settings: TensorRTOptions = config.runtime.of("tensorrt")  # type: ignore[assignment]
    engine = _engine_cell(work, cell, model, config, settings, cache_dir, run_id, repetition)
    build_s, hit = _build(work, engine, settings, deadline)
    stamps = _load_and_infer(work, engine, cell.batch, deadline)
    warmup, measure = config.measure.warmup_rule(), config.measure.measurement_rule()
    streams = 1 if cell.scenario == "latency" else (config.suite.in_flight or 2)
    flags = run_flags(
        engine.version,
        engine.engine.path,
        replace(engine.run, streams=streams),
        warmup,
        measure,
    )
    script = timed_script(work, engine.cell_dir, engine.command([*flags, f"--exportTimes={TRACE}"]))
    work.run(script, deadline, "timing with trtexec", "timed loop")
    local = work.scratch / "cells" / Path(engine.cell_dir).name
    names = [LAYERS, OUTPUTS, TRACE, LOG, POWER_LOG]
    work.ssh.pull(engine.cell_dir, names, local, COPY_TIMEOUT_S)
    try:
        entries = json.loads((local / TRACE).read_text())
        layers = layer_precisions(json.loads((local / LAYERS).read_text()))
        loop, splits = trace_record(entries, warmup.min_s * 1000, measure, streams)
    except (OSError, ValueError, RuntimeError) as exc:
        raise CellFailed(f"trtexec's exports are not usable: {exc}", "timed loop") from None
    log = (local / LOG).read_text() if (local / LOG).is_file() else ""
    if loop.warmup_count == 0 and (reported := warmup_queries(log)) is not None:
        loop.warmup_count = reported  # the trace left its warm-up requests out
    executed = engine_executed(
        cell.target,
        layers,
        engine.engine,
        engine.run.cuda_graph,
        engine.run.data_transfers,
        trtexec=engine.trtexec,
        host=work.ssh.name,
        mode="tools",
    )
    power = power_figures(work, local, entries, warmup.min_s * 1000, loop.completed, cell.batch)
    return Measured.timed(
        executed,
        loop,
        cell.batch,
        config.measure.cv_threshold,
        power,
        cold_start=ColdStart(
            build_s=build_s,
            build_cache_hit=hit,
            load_s=_span(stamps.get("load")),
            first_inference_ms=_span(stamps.get("infer"), 1e3),
            export_s=model.export_s,
            export_cache_hit=model.cache_hit,
        ),
        device_metrics=DeviceMetrics.of(split_summary(splits, "trtexec --exportTimes"), loop),
        accuracy=_accuracy(model, cell, local / OUTPUTS),
        notes=[*model.notes, f"run on {work.ssh.name} by its own trtexec (tools mode)"],
    )


def _engine_cell(
    work: DeviceWork,
    cell: Cell,
    model: PreparedModel,
    config: BenchConfig,
    settings: TensorRTOptions,
    cache_dir: Path,
    run_id: str,
    repetition: int,
) -> EngineCell:
    """The cell's plan, its bundle copied to the device, and its places there."""
    device = work.device
    trtexec = device.programs.get("trtexec")
    if trtexec is None or device.tensorrt is None:
        raise Unavailable(
            f"no trtexec on {work.ssh.name} (JetPack puts it in /usr/src/tensorrt/bin)"
        )
    version = TrtVersion.parse(device.tensorrt)
    target = cell.target
    support = TypingSupport.of_version(version)
    typing = resolve_typing(support, version, settings.typing, target.precision)
    graph, kind = None, "fp32"
    if target.precision == "int8":  # explicit quantization: the QDQ copy's layers
        graph, kind = TensorRTRuntime.quantized(model, target, settings).path, "int8 qdq"
    elif typing == "strong" and target.precision == "fp16":
        from runtimes.fp16_graph import fp16_graph

        graph = fp16_graph(model.onnx_path, cache_dir, model.precision == "fp16").path
        kind = "fp16"
    bundle = work.bundle(model, config, graph, kind, version)
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
    gpu = device.jetson["model"] if device.jetson else work.ssh.name
    # named as the engine cache names engines here: by the graph's content and the plan
    name = engine_path(Path("."), bundle.path / MODEL_FILE, f"{version}-trtexec", gpu, plan).name
    engines = work.folders.engines
    timing = f"{engines}/timing-{version}.cache" if settings.timing_cache else None
    run = RunSettings(
        shapes={tensor: triple[1] for tensor, triple in plan.shapes.items()},
        cuda_graph=settings.cuda_graph,
        data_transfers=settings.data_transfers,
        dla_core=dla,
    )
    engine = EngineFile(Path(f"{engines}/{name}"), plan, str(version), "trtexec", gpu)
    bundle_dir = work.folders.model(bundle)
    cell_dir = work.folders.cell(run_id, cell, repetition)
    return EngineCell(trtexec, version, engine, bundle, bundle_dir, cell_dir, run, timing)


def _build(
    work: DeviceWork, cell: EngineCell, settings: TensorRTOptions, deadline: float
) -> tuple[float, bool]:
    """Build the engine on the device unless its cache has it: (seconds, cache hit)."""
    engine = str(cell.engine.path)
    partial = f"{engine}.partial"
    onnx = Path(f"{cell.bundle_dir}/{MODEL_FILE}")
    timing = Path(cell.timing_cache) if cell.timing_cache else None
    flags = build_flags(cell.version, onnx, Path(partial), cell.engine.plan, timing)
    quoted, folder = shlex.quote(engine), shlex.quote(cell.cell_dir)
    engines = shlex.quote(str(cell.engine.path.parent))
    keep = "" if settings.engine_cache else f"rm -f {quoted}; "
    out = work.run(
        f"mkdir -p {engines} {folder} && cd {folder} && {keep}"
        f"if [ -s {quoted} ]; then echo cached; exit 0; fi; "
        f"s=$(date +%s.%N); {cell.command(flags)} > build.log 2>&1; rc=$?; "
        f"e=$(date +%s.%N); grep -q 'FAILED' build.log && rc=1; "
        f'[ $rc -eq 0 ] || {{ grep "\\[E\\]" build.log | head -3; exit 1; }}; '
        f'mv {shlex.quote(partial)} {quoted} && echo "built $s $e"',
        deadline,
        "building the engine with trtexec",
        "build",
    )
    if "cached" in out.split():
        return 0.0, True
    return _span(_stamps(out).get("built")) or 0.0, False


def _load_and_infer(
    work: DeviceWork, cell: EngineCell, batch: int, deadline: float
) -> dict[str, tuple[float, float]]:
    """Write the engine's layers, and run one request on the bundle's inputs for
    ``batch`` (when it has them); the device-clock spans of both, by name."""
    path = cell.engine.path
    load = [
        *run_flags(cell.version, path, cell.run, StopRule(0, 1), StopRule(0, 1)),
        *layer_info_flags(Path(LAYERS)),
    ]
    infer = ""
    inputs = cell.bundle.load_inputs(batch, cell.bundle_dir)
    if inputs:
        one = one_request_flags(cell.run, path, inputs, Path(OUTPUTS))
        infer = (
            f"s=$(date +%s.%N); {cell.command(one)} > infer.log 2>&1 || "
            f"{{ grep '\\[E\\]' infer.log | head -3; exit 1; }}; "
            f'e=$(date +%s.%N); echo "infer $s $e"'
        )
    out = work.run(
        f"cd {shlex.quote(cell.cell_dir)} && rm -f {LAYERS} {OUTPUTS} && "
        f"s=$(date +%s.%N); {cell.command(load)} > load.log 2>&1 || "
        f"{{ grep '\\[E\\]' load.log | head -3; exit 1; }}; "
        f'e=$(date +%s.%N); echo "load $s $e"; {infer}',
        deadline,
        "loading the engine with trtexec",
        "load",
    )
    return _stamps(out)


def _accuracy(model: PreparedModel, cell: Cell, outputs_file: Path) -> Accuracy:
    """trtexec's outputs on the seeded inputs against the reference; unavailable where
    there is no reference or trtexec wrote none; CellFailed for an output that does not
    match the reference's names or sizes."""
    if model.reference is None or not outputs_file.is_file():
        why = model.no_reference or "trtexec wrote no outputs for this batch"
        return cell_accuracy(replace(model, no_reference=why), {}, None, cell.precision)
    _, reference = load_reference(model.reference, cell.batch)
    try:
        outputs = read_outputs(outputs_file)
    except (OSError, ValueError, KeyError) as exc:
        raise CellFailed(f"trtexec's --exportOutput is not usable: {exc}", "accuracy") from None
    return cell_accuracy(model, _fit(outputs, reference), reference, cell.precision)


def _fit(outputs: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """trtexec's outputs (written flat, with a dimension string) in the reference's
    shapes; CellFailed naming an output that is missing or of another size."""
    fitted = {}
    for name, want in reference.items():
        got = outputs.get(name)
        if got is None or got.size != want.size:
            what = "missing" if got is None else f"{got.size} values, not {want.size}"
            raise CellFailed(f"trtexec's output {name} is {what}", "accuracy")
        fitted[name] = got.reshape(want.shape)
    return fitted


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


def _span(span: tuple[float, float] | None, scale: float = 1.0) -> float | None:
    return (span[1] - span[0]) * scale if span else None


class Trtexec(DeviceTool):
    """TensorRT cells on a Jetson's GPU and DLA cores, by JetPack's trtexec."""

    name = "trtexec"
    runtime = "tensorrt"
    device_kinds = ("cuda", "dla")

    @classmethod
    def probe_section(cls, host: HostConfig) -> str:
        """trtexec as ``[hosts]`` names it, else on PATH, else where JetPack puts it; its
        help's banner line (the TensorRT version)."""
        return (
            f"section trtexec; T={shlex.quote(host.trtexec or '')}\n"
            f'[ -n "$T" ] || T=$(command -v trtexec || {{ [ -x "$R{JETPACK_TRTEXEC}" ] && '
            f'echo "$R{JETPACK_TRTEXEC}"; }})\n'
            '[ -n "$T" ] && { echo "$T"; "$T" --help 2>&1 | grep -m1 \'TensorRT.trtexec\'; }\n'
        )

    @classmethod
    def read_probe(
        cls, parts: dict[str, str]
    ) -> tuple[dict[str, str | None], dict[str, str | None]]:
        lines = parts.get("trtexec", "").splitlines()
        path = lines[0].strip() if lines else None
        try:
            version = str(parse_banner(parts["trtexec"])) if lines else None
        except ValueError:  # a binary that printed no banner
            version = None
        return {"trtexec": path}, {"tensorrt": version}

    @classmethod
    def max_opset(cls, device: Device) -> int | None:
        return max_onnx_opset(TrtVersion.parse(device.tensorrt)) if device.tensorrt else None

    @classmethod
    def found(cls, device: Device) -> str | None:
        return f"TensorRT {device.tensorrt}" if device.tensorrt else None

    @classmethod
    def skip_reason(cls, cell: Cell, device: Device) -> str | None:
        target = cell.target
        if device.programs.get("trtexec") is None:
            return f"no trtexec on {device.name} (JetPack puts it in /usr/src/tensorrt/bin)"
        if device.tensorrt is None:
            return f"trtexec on {device.name} printed no version banner"
        board = board_of(device.jetson["model"], device.compatible) if device.jetson else None
        if target.device_kind == "cuda" and target.device_index != 0:
            return f"{device.name} has one GPU (cuda:0)"
        if target.device_kind == "dla":
            cores = board.dla_cores if board else 0
            if target.device_index >= cores:
                return f"{device.name} has {cores} DLA cores" + (
                    "" if cores else " (DLA: AGX Xavier, Xavier NX, AGX Orin, Orin NX)"
                )
            if target.precision not in ("fp16", "int8"):
                return f"a DLA core runs fp16 and int8, not {target.precision}"
        if target.precision == "int8" and board is not None and not board.int8:
            return f"{device.jetson['model'] if device.jetson else device.name} has no fast INT8"
        if target.precision == "bf16" and TrtVersion.parse(device.tensorrt) < TrtVersion(9, 0):
            return f"TensorRT {device.tensorrt} has no bf16 (9.0 and newer)"
        return None

    measure = staticmethod(measure_tensorrt)
