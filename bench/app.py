"""What the command line's verbs do: start or resume a run (with its roofline), and
``report``, the machines side by side."""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.config import BenchConfig, load_config
from bench.core.errors import UserError
from bench.environment import fingerprint
from bench.machines import Machine, load_machines, machine_rows, machines_markdown, machines_table
from bench.plan import ModelRequest, PlannedCell, expand
from bench.power import record_end_state
from bench.repetitions import merged
from bench.report import speedup_markdown, speedup_table, summary_markdown, summary_table
from bench.results import (
    ENVIRONMENT_FILE,
    RESULTS_FILE,
    RUN_FILE,
    SPEEDUP_FILE,
    SUITE_FILE,
    RunDir,
    read_records,
)
from bench.roofline import find_hw, roofline_markdown, roofline_rows, roofline_table
from bench.runner import run_suite
from bench.speedup import speedups
from exporters.cache import default_cache_dir
from exporters.onnx_file import inspect_onnx, parse_shape_args
from exporters.zoo import get_entry


@dataclass
class RunRequest:
    """A ``run`` as the user asked for it (paths unresolved, overrides not yet applied)."""

    config_path: Path
    profile: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    onnx: Path | None = None
    factory: str | None = None
    shapes: list[str] = field(default_factory=list)
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
    if request.onnx and request.factory:
        raise UserError("give either --onnx or --model, not both")
    if request.onnx:
        if "batch_sizes" in overrides.get("suite", {}):
            raise UserError(
                "--batch-sizes does not apply to --onnx: the batch is the first input's "
                "leading size, given with --shape"
            )
        model = ModelRequest.user_onnx(request.onnx, shapes)
        overrides.setdefault("suite", {}).update(_onnx_suite(request.onnx, shapes))
    elif request.factory:
        model = ModelRequest.user_factory(request.factory, shapes)
        overrides.setdefault("suite", {}).setdefault("name", model.name)
    elif shapes:
        raise UserError("--shape applies to --onnx or --model only")
    config = load_config(request.config_path, request.profile, overrides)
    if request.onnx or request.factory:
        models = [model]
    else:
        models = [ModelRequest(get_entry(name).name, "zoo", name) for name in config.suite.models]
    cache_dir = request.cache_dir or Path(config.suite.cache_dir or default_cache_dir())
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


def resumed_run(path: Path) -> Run:
    """The run in ``path``, to finish the cells it has no result for."""
    run_dir = RunDir.existing(path)
    try:
        stored = run_dir.read_json(RUN_FILE)
        config = BenchConfig.model_validate(stored["config"])
        models = [ModelRequest.from_dict(m) for m in stored["models"]]
        cache_dir = Path(stored["cache_dir"])
    except (ValueError, KeyError, TypeError) as exc:  # JSON and pydantic errors are ValueErrors
        reason = str(exc).splitlines()[0]
        raise UserError(f"{path / RUN_FILE} is unreadable ({reason}): start a new run") from None
    return Run(run_dir, config, models, expand(config, models), cache_dir, resumed=True)


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
    report = f"# {run.config.suite.name} ({run.run_dir.run_id})\n\n{summary_markdown(records)}"
    if rows:
        report += f"\n## Low-precision speedup over fp32\n\n{speedup_markdown(rows)}"
    if power_changes:
        report += "\nPower state changed during the run: " + "; ".join(power_changes) + "\n"
    (run.run_dir.path / "report.md").write_text(report)
    console.print(summary_table(records, f"{run.config.suite.name}: {run.run_dir.path}"))
    if rows:
        console.print(speedup_table(rows))
    if power_changes:
        console.print("power state changed during the run: " + "; ".join(power_changes))
    return 1 if any(r.failed for r in all_records) else 0


def _onnx_suite(path: Path, shapes: dict[str, tuple[int, ...]]) -> dict[str, Any]:
    """Suite settings for a user ONNX file: every dynamic size must be given, and the
    batch of its cells is the first input's leading dimension."""
    prepared = inspect_onnx(path, shapes)
    for spec in prepared.inputs:  # the --shape error now, before the run starts
        spec.concrete_shape({})
    leading = prepared.inputs[0].shape[0] if prepared.inputs and prepared.inputs[0].shape else 1
    return {"name": prepared.name, "batch_sizes": [int(leading)]}


def show_roofline(run_dir: Path, hw_dirs: list[Path], console: Console) -> None:
    """Print the roofline table of a run's cells when there are peaks for it: from
    ``hw_dirs``, or a matching ``hw`` result beside the run (nothing printed without)."""
    records = merged(read_records(run_dir / RESULTS_FILE))
    environment = json.loads((run_dir / ENVIRONMENT_FILE).read_text())
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
            text += f"\n## Roofline: {machine.label}\n\n{roofline_markdown(roofline)}"
    if markdown is not None:
        try:
            markdown.write_text(text)
        except OSError as exc:
            raise UserError(f"cannot write {markdown} ({exc.strerror})") from None
        console.print(f"written: {markdown}")
    return 0


def _machine_roofline(machine: Machine) -> list:
    return roofline_rows(list(machine.cells.values()), machine.hw)
