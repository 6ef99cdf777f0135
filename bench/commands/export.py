"""``cli.py export``: the bundle a device's own tools need, for copying by hand: per model,
the ONNX file at an opset the device's TensorRT parses, each batch's seeded inputs as
``--loadInputs`` files, the reference outputs, a manifest, and ``commands.sh`` with the
trtexec command lines (build, then time with the outputs and the trace exported) to run
on the device from the bundle's folder."""

from __future__ import annotations

import argparse
import json
import shlex
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from bench.commands.console import console
from bench.core.errors import Unavailable, UserError
from bench.core.spec import PreparedModel
from bench.harness.config import BenchConfig, load_config
from bench.harness.plan import ModelRequest
from bench.harness.runner import ExportFailed, prepare
from bench.harness.start import usable_cache_dir
from bench.remote.bundle import MANIFEST, MODEL_FILE, Bundle, write_bundle
from exporters.cache import default_cache_dir
from exporters.zoo import get_entry
from runtimes.tensorrt.build import (
    BuildPlan,
    TrtVersion,
    TypingSupport,
    profile_shapes,
    resolve_typing,
)
from runtimes.tensorrt.runtime import TensorRTOptions
from runtimes.tensorrt.trtexec_driver import (
    JETPACK_TRTEXEC,
    RunSettings,
    build_flags,
    max_onnx_opset,
    one_request_flags,
    run_flags,
)

COMMANDS = "commands.sh"


@dataclass
class ExportRequest:
    """``cli.py export`` as asked: the suite (its models, precisions, batch sizes), the
    device's TensorRT version, an opset (None: the highest that version parses), and
    where to write."""

    config_path: Path
    profile: str | None
    models: list[str] | None
    precisions: list[str] | None
    batch_sizes: list[int] | None
    tensorrt: str
    opset: int | None
    out: Path
    trtexec: str = str(JETPACK_TRTEXEC)
    cache_dir: Path | None = None


def export_command(request: ExportRequest, console: Console) -> int:
    """Write one bundle per model of the suite under ``request.out``; 0 when all were
    written, 1 when a model could not be exported (said per model)."""
    try:
        version = TrtVersion.parse(request.tensorrt)
    except ValueError:
        raise UserError(
            f"--tensorrt {request.tensorrt} is not a version: give the device's, e.g. 8.2.1 "
            "(its trtexec banner says [TensorRT v8201])"
        ) from None
    highest = max_onnx_opset(version)
    if highest is None:
        raise UserError(f"TensorRT {version} is older than 8.0, which this project supports")
    opset = request.opset or highest
    if opset > highest:
        raise UserError(
            f"TensorRT {version}'s ONNX parser takes opsets up to {highest}, not {opset}: "
            f"give --opset {highest} or lower"
        )
    config = _config(request, opset)
    request.out.mkdir(parents=True, exist_ok=True)
    cache_dir = usable_cache_dir(request.cache_dir or Path(default_cache_dir()))
    code = 0
    for name in config.suite.models:
        entry = get_entry(name)
        try:
            model = prepare(ModelRequest(entry.name, "zoo", name), config, cache_dir)
        except ExportFailed as failure:
            console.print(f"{name}: not exported at opset {opset}: {failure.reason}", markup=False)
            code = 1
            continue
        folder = request.out / name
        bundle = write_bundle(model, config.suite.batch_sizes, version, folder, None, "fp32", opset)
        (folder / COMMANDS).write_text(commands(model, config, version, request.trtexec, bundle))
        console.print(f"{name}: {folder} (opset {opset}, TensorRT {version})", markup=False)
    return code


def _config(request: ExportRequest, opset: int) -> BenchConfig:
    suite: dict = {"opset": opset}
    for key, value in (
        ("models", request.models),
        ("precisions", request.precisions),
        ("batch_sizes", request.batch_sizes),
    ):
        if value:
            suite[key] = value
    return load_config(request.config_path, request.profile, {"suite": suite})


def commands(
    model: PreparedModel, config: BenchConfig, version: TrtVersion, trtexec: str, bundle: Bundle
) -> str:
    """The shell script of trtexec commands for every precision and batch of ``config``,
    built as tools mode builds them (``[runtime.tensorrt]``'s typing and workspace), with
    relative paths: run it from the bundle's folder on the device."""
    manifest = json.loads((bundle.path / MANIFEST).read_text())
    measure = config.measure
    settings: TensorRTOptions = config.runtime.of("tensorrt")  # type: ignore[assignment]
    lines = [
        "#!/bin/sh",
        f"# {model.name}: exported at opset {manifest['opset']} for TensorRT {version}.",
        "# Run from this folder on the device. For each precision and batch: build the",
        "# engine, time it (times-*.json: --exportTimes), then run one request on the",
        "# seeded inputs (outputs-*.json: compare them with bN/reference.npz).",
        "set -e",
    ]
    for precision in config.suite.precisions:
        try:
            support = TypingSupport.of_version(version)
            typing = resolve_typing(support, version, settings.typing, precision)
        except Unavailable as exc:
            lines.append(f"# {precision}: not written ({exc})")
            continue
        if precision == "int8" or (precision == "bf16" and not support.bf16):
            lines.append(f"# {precision}: not written (int8 needs a QDQ copy; bf16: 9.0 to 10.x)")
            continue
        if typing == "strong" and precision != "fp32":
            lines.append(f"# {precision}: not written (a strongly typed engine needs its graph)")
            continue
        for batch in config.suite.batch_sizes:
            tag = f"{precision}-b{batch}"
            engine = Path(f"model-{tag}.engine")
            plan = BuildPlan(
                precision=precision,
                typing=typing,
                workspace_mb=settings.workspace_mb,
                shapes=profile_shapes(model.inputs, [batch], batch),
                tf32=settings.tf32,
                optimization_level=settings.builder_optimization_level,
            )
            run = RunSettings(shapes={n: s[1] for n, s in plan.shapes.items()})
            load = bundle.load_inputs(batch, ".")
            timed = run_flags(
                version, engine, run, measure.warmup_rule(), measure.measurement_rule()
            )
            lines += [
                "",
                f"# {tag}",
                shlex.join([trtexec, *build_flags(version, Path(MODEL_FILE), engine, plan, None)]),
                shlex.join([trtexec, *timed, f"--exportTimes=times-{tag}.json"]),
            ]
            if load:
                one = one_request_flags(run, engine, load, Path(f"outputs-{tag}.json"))
                lines.append(shlex.join([trtexec, *one]))
    return "\n".join(lines) + "\n"


def export_verb(args: argparse.Namespace) -> int:
    request = ExportRequest(
        args.config,
        args.profile,
        args.models,
        args.precisions,
        args.batch_sizes,
        args.tensorrt,
        args.opset,
        args.out,
        args.trtexec,
        args.cache_dir,
    )
    return export_command(request, console())
