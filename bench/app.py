"""What the command line's verbs do: start or resume a run (with its roofline), and
``report``, the machines side by side."""

from __future__ import annotations

import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from rich.console import Console

from bench.config import BenchConfig, load_config
from bench.core.errors import UserError
from bench.environment import fingerprint
from bench.machines import Machine, load_machines, machine_rows, machines_markdown, machines_table
from bench.plan import ModelRequest, PlannedCell, expand
from bench.power import record_end_state
from bench.repetitions import merged
from bench.report import (
    markdown_text,
    speedup_markdown,
    speedup_table,
    summary_markdown,
    summary_table,
)
from bench.results import (
    ENVIRONMENT_FILE,
    RESULTS_FILE,
    RUN_FILE,
    SPEEDUP_FILE,
    SUITE_FILE,
    RunDir,
    read_json_object,
    read_records,
)
from bench.roofline import find_hw, roofline_markdown, roofline_rows, roofline_table
from bench.runner import run_suite
from bench.speedup import speedups
from exporters.cache import default_cache_dir
from exporters.onnx_file import (
    inspect_onnx,
    load_inputs_file,
    parse_range_args,
    parse_shape_args,
)
from exporters.zoo import get_entry
from runtimes import RUNTIMES


@dataclass
class RunRequest:
    """A ``run`` as the user asked for it (paths unresolved, overrides not yet applied)."""

    config_path: Path
    profile: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    onnx: Path | None = None
    factory: str | None = None
    shapes: list[str] = field(default_factory=list)
    ranges: list[str] = field(default_factory=list)
    inputs: Path | None = None
    cache_dir: Path | None = None


@dataclass
class Run:
    """A run ready to execute: its directory, its resolved suite and its cells."""

    run_dir: RunDir
    config: BenchConfig
    models: list[ModelRequest]
    planned: list[PlannedCell]
    cache_dir: Path
    resumed: bool = False


def new_run(request: RunRequest) -> Run:
    """Validate everything the user gave, then create the run directory and its files."""
    overrides = {key: dict(value) for key, value in request.overrides.items()}
    shapes = parse_shape_args(request.shapes)
    ranges = parse_range_args(request.ranges)
    _check_user_model_flags(request, overrides, bool(shapes), bool(ranges))
    if request.onnx:
        if "batch_sizes" in overrides.get("suite", {}):
            raise UserError(
                "--batch-sizes does not apply to --onnx: the batch is the first input's "
                "leading size, given with --shape"
            )
        data = load_inputs_file(request.inputs) if request.inputs else None
        model = ModelRequest.user_onnx(request.onnx, shapes, ranges, request.inputs)
        overrides.setdefault("suite", {}).update(_onnx_suite(request.onnx, model, data))
    elif request.factory:
        model = ModelRequest.user_factory(request.factory, shapes, ranges)
        overrides.setdefault("suite", {}).setdefault("name", model.name)
    config = load_config(request.config_path, request.profile, overrides)
    if request.onnx or request.factory:
        models = [model]
    else:
        models = [ModelRequest(get_entry(name).name, "zoo", name) for name in config.suite.models]
    cache_dir = usable_cache_dir(
        request.cache_dir or Path(config.suite.cache_dir or default_cache_dir())
    )
    planned = expand(config, models)

    run_dir = RunDir.create(Path(config.suite.results_dir), config.suite.name)
    run_dir.write_json(
        RUN_FILE,
        {
            "run_id": run_dir.run_id,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "argv": sys.argv,
            "profile": request.profile,
            "config": config.model_dump(),
            "models": [m.to_dict() for m in models],
            "cache_dir": str(cache_dir),
        },
    )
    if request.config_path.is_file():
        shutil.copyfile(request.config_path, run_dir.path / SUITE_FILE)
    run_dir.write_json(ENVIRONMENT_FILE, fingerprint())
    return Run(run_dir, config, models, planned, cache_dir)


def _check_user_model_flags(
    request: RunRequest, overrides: dict[str, Any], shapes: bool, ranges: bool
) -> None:
    """The flags of a user model go with one of --onnx and --model, never with --models."""
    if request.onnx and request.factory:
        raise UserError("give either --onnx or --model, not both")
    user_model = "--onnx" if request.onnx else "--model" if request.factory else None
    if user_model and "models" in overrides.get("suite", {}):
        raise UserError(f"give either --models or {user_model}, not both")
    if request.inputs and not request.onnx:
        raise UserError("--inputs applies to --onnx only: give the ONNX file with --onnx")
    if not user_model and (shapes or ranges):
        flag = "--shape" if shapes else "--input-range"
        raise UserError(f"{flag} applies to --onnx or --model only")


def usable_cache_dir(path: Path) -> Path:
    """``path``, made if missing; UserError when it is a file or cannot be written."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        writable = os.access(path, os.W_OK | os.X_OK)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UserError(
            f"cannot use {path} as the cache ({reason}): pass a writable folder with --cache-dir"
        ) from None
    if not writable:
        raise UserError(
            f"cannot write to the cache {path}: pass a writable folder with --cache-dir"
        )
    return path


@dataclass
class ResumeRequest:
    """``run --resume``: the run folder, and what the user gives again on the command line."""

    path: Path
    onnx: Path | None = None
    factory: str | None = None
    cache_dir: Path | None = None


def resumed_run(request: ResumeRequest) -> Run:
    """The run in ``request.path``, to finish the cells it has no result for.

    A results folder is data, maybe someone else's: resuming imports no factory and reads
    no ONNX file that its ``run.json`` names unless the user names the same one again
    (``--model``, ``--onnx``), runs no program its options name, and writes only to the
    run folder and the current cache (``--cache-dir``, else the default; never the stored
    one)."""
    path = request.path
    run_dir = RunDir.existing(path)
    try:
        stored = run_dir.read_json(RUN_FILE)
        config = BenchConfig.model_validate(stored["config"])
        models = [ModelRequest.from_dict(m) for m in stored["models"]]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:  # pydantic: ValueError
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"{path / RUN_FILE} is unreadable ({reason}): start a new run") from None
    for model in models:
        _check_named_again(model, request, path / RUN_FILE)
    for name in config.suite.runtimes:
        options = config.runtime.of(name) if name in RUNTIMES else None
        for option in options.program_fields if options else ():
            if getattr(options, option) is not None:
                raise UserError(
                    f"{path / RUN_FILE} sets runtime.{name}.{option}: resume runs no program "
                    "a results folder names; start a new run from your suite file"
                )
    cache_dir = usable_cache_dir(request.cache_dir or default_cache_dir())
    return Run(run_dir, config, models, expand(config, models), cache_dir, resumed=True)


def _check_named_again(model: ModelRequest, request: ResumeRequest, source: Path) -> None:
    """UserError unless the user model ``model`` is the one given again on the command
    line; zoo models are the project's own and need nothing."""
    if model.kind == "factory" and request.factory != model.ref:
        raise UserError(
            f"{source} names the factory {model.ref}: resume imports no code a results "
            f"folder names; if you trust it, add --model {model.ref}"
        )
    if model.kind == "onnx":
        given = request.onnx.resolve() if request.onnx else None
        if given is None or str(given) != model.ref:
            raise UserError(
                f"{source} names the ONNX file {model.ref}: resume reads no file a results "
                f"folder names; add --onnx {model.ref}"
            )
    if model.kind not in ("zoo", "factory", "onnx"):
        raise UserError(f"{source} names a model of unknown kind '{model.kind}': start a new run")


def execute(run: Run, console: Console, show_progress: bool = True) -> int:
    """Run the missing cells, write report.md, print the summary. Exit code: 0 when no
    cell failed, crashed or timed out, else 1."""
    console.print(f"run directory: {run.run_dir.path}")
    try:
        run_suite(
            run.config, run.models, run.planned, run.run_dir, run.cache_dir, console, show_progress
        )
    except UserError:
        if not run.resumed and not run.run_dir.records():  # leave no empty new run behind
            shutil.rmtree(run.run_dir.path)
        raise
    power_changes = record_end_state(run.run_dir.path / ENVIRONMENT_FILE)
    all_records = run.run_dir.records()
    records = merged(all_records)
    rows = speedups(records, seed=run.config.suite.seed)
    run.run_dir.write_json(SPEEDUP_FILE, [row.to_dict() for row in rows])
    heading = markdown_text(f"{run.config.suite.name} ({run.run_dir.run_id})")
    report = f"# {heading}\n\n{summary_markdown(records)}"
    if rows:
        report += f"\n## Low-precision speedup over fp32\n\n{speedup_markdown(rows)}"
    if power_changes:
        changes = markdown_text("; ".join(power_changes))
        report += f"\nPower state changed during the run: {changes}\n"
    (run.run_dir.path / "report.md").write_text(report)
    console.print(summary_table(records, f"{run.config.suite.name}: {run.run_dir.path}"))
    if rows:
        console.print(speedup_table(rows))
    if power_changes:
        console.print("power state changed during the run: " + "; ".join(power_changes))
    return 1 if any(r.failed for r in all_records) else 0


def _onnx_suite(
    path: Path, model: ModelRequest, data: dict[str, np.ndarray] | None
) -> dict[str, Any]:
    """Suite settings for a user ONNX file: every dynamic size must be given, the inputs
    must fit in memory, and the batch of its cells is the first input's leading size."""
    prepared = inspect_onnx(path, model.shapes, model.ranges, data)
    total = 0
    for spec in prepared.inputs:  # the --shape error now, before the run starts
        shape = spec.concrete_shape({})
        total += math.prod(shape) * np.dtype(spec.dtype).itemsize
    memory = psutil.virtual_memory().total
    if total > memory:
        raise UserError(
            f"the inputs of {path.name} at these shapes take {total / 2**30:,.1f} GiB, more "
            f"than this machine's {memory / 2**30:,.1f} GiB: give smaller sizes with --shape"
        )
    leading = prepared.inputs[0].shape[0] if prepared.inputs and prepared.inputs[0].shape else 1
    return {"name": prepared.name, "batch_sizes": [int(leading)]}


def show_roofline(run_dir: Path, hw_dirs: list[Path], console: Console) -> None:
    """Print the roofline table of a run's cells when there are peaks for it: from
    ``hw_dirs``, or a matching ``hw`` result beside the run (nothing printed without)."""
    records = merged(read_records(run_dir / RESULTS_FILE))
    environment = read_json_object(run_dir / ENVIRONMENT_FILE, "start a new run")
    hw = find_hw(run_dir, environment, hw_dirs)
    rows = roofline_rows(records, hw)
    if hw and rows:
        console.print(roofline_table(rows, f"Roofline: {run_dir}"))


def report_command(
    dirs: list[Path], hw_dirs: list[Path], markdown: Path | None, console: Console
) -> int:
    """The machines side by side, then each machine's roofline. A machine with no ``hw``
    figures among ``dirs`` + ``hw_dirs`` takes a matching one found beside its runs."""
    for path in [*dirs, *hw_dirs]:
        if not path.is_dir():
            raise UserError(f"{path} is not a directory: pass run or hw result directories")
    machines = load_machines([*dirs, *hw_dirs])
    for machine in machines:
        if not machine.hw and machine.cells:
            machine.hw = find_hw(machine.sources[0], machine.environment, [])
    rows = machine_rows(machines)
    console.print(machines_table(machines, rows))
    text = machines_markdown(machines, rows)
    for machine in machines:
        roofline = _machine_roofline(machine)
        if roofline:
            console.print(roofline_table(roofline, f"Roofline: {machine.label}"))
            text += (
                f"\n## Roofline: {markdown_text(machine.label)}\n\n{roofline_markdown(roofline)}"
            )
    if markdown is not None:
        try:
            markdown.write_text(text)
        except OSError as exc:
            raise UserError(f"cannot write {markdown} ({exc.strerror})") from None
        console.print(f"written: {markdown}")
    return 0


def _machine_roofline(machine: Machine) -> list:
    return roofline_rows(list(machine.cells.values()), machine.hw)
