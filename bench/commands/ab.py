"""The ``ab`` verb: the paired regression gate between two models, or two settings of one
runtime, measured side by side in the same workers (see bench.compare.ab).

A side is an ONNX file, a zoo model, or a factory ``package.module:function``; the two
sides share every other setting of the suite, except the runtime options each may be
given (``--base-option``/``--new-option``). Two deploybench checkouts cannot share a
process: they are measured in interleaved runs instead (bench.commands.ab_runs)."""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.commands.ab_request import AbRequest
from bench.commands.ab_runs import is_checkout, run_checkouts
from bench.commands.console import console as shown
from bench.compare import ab_output
from bench.compare.ab import SKIPPED, AbCell, Measurer, window_rules
from bench.compare.ab_output import PAIRED, AbResult
from bench.compare.thresholds import parse_fraction
from bench.core.cell import Target
from bench.core.errors import UserError
from bench.core.spec import PreparedModel
from bench.harness.config import AbConfig
from bench.harness.environment import fingerprint
from bench.harness.overrides import overrides_from
from bench.harness.pairs import PairJob
from bench.harness.plan import expand
from bench.harness.results import check_output_folders, write_output
from bench.harness.runner import ExportFailed, prepare, workload
from bench.harness.start import RunRequest, Setup, settle
from exporters.zoo import ZOO
from runtimes import RUNTIMES


@dataclass
class Pairing:
    """Both sides checked and prepared, the settings, and the cells to measure: all that
    comes before the first worker."""

    setups: list[Setup]
    models: list[PreparedModel]
    settings: AbConfig
    cells: list[AbCell]

    def job(self, cell: AbCell, seed: int) -> PairJob:
        """The job of ``cell``'s next paired worker."""
        config = self.setups[0].config
        warmup, window = window_rules(self.settings)
        return PairJob(
            cell.cell,
            (self.models[0], self.models[1]),
            tuple(setup.config.runtime.of(cell.cell.runtime) for setup in self.setups),
            warmup,
            window,
            self.settings.max_pairs,
            workload(config, cell.cell).threads,
            tuple(config.suite.batch_sizes),
            self.setups[0].cache_dir,
            seed,
            cell.new_precision,
        )


def pairing(request: AbRequest, console: Console) -> Pairing:
    """Check both sides (one-line errors, before any measurement), prepare them and plan
    the cells."""
    setups = [
        settle(_side_request(request, text, options, name))
        for name, text, options in (
            ("base", request.base, request.base_options),
            ("new", request.new, request.new_options),
        )
    ]
    config = setups[0].config
    scenarios = config.suite.scenarios
    if "latency" not in scenarios:
        raise UserError(
            f"ab pairs requests one at a time (latency); the suite asks for "
            f"{', '.join(scenarios)}: add --scenarios latency"
        )
    sides = ("base", "new")
    models = [_prepared(setup, side, console) for setup, side in zip(setups, sides, strict=True)]
    _check_pairable(models, request)
    if request.new_precision == "int8":
        raise UserError("--new-precision int8 is not paired: each side needs its calibration")
    cells = _cells(setups, models, request.new_precision)
    if not any(cell.status == "ok" for cell in cells):
        reasons = "; ".join(sorted({cell.reason or "" for cell in cells}))
        raise UserError(f"no cell of this suite can run both sides here: {reasons}")
    settings = config.ab.model_copy(update=request.settings)
    return Pairing(setups, models, settings, cells)


def run_ab(request: AbRequest, console: Console) -> int:
    """Check both sides, prepare them, measure every cell paired, print and write the
    verdicts; 1 when a cell regressed (confirmed) or failed."""
    check_output_folders(request.markdown, request.json, request.junit)
    if is_checkout(request.base) or is_checkout(request.new):
        return run_checkouts(request, console)
    paired = pairing(request, console)
    config = paired.setups[0].config
    results = Path(config.suite.results_dir) / f"ab-{time.strftime('%Y%m%d-%H%M%S')}"
    results.mkdir(parents=True, exist_ok=True)
    (results / "environment.json").write_text(json.dumps(fingerprint(), indent=1) + "\n")
    console.print(f"results: {results}", markup=False)

    def say(line: str) -> None:
        if request.show_progress or not line.startswith(" "):
            console.print(line, markup=False, soft_wrap=True)

    measurer = Measurer(
        paired.settings, paired.job, config.suite.cell_timeout_s, results / "workers.jsonl", say
    )
    try:
        measurer.gate(paired.cells)
    except KeyboardInterrupt:
        console.print(
            f"\ninterrupted: every finished worker's pairs are kept in {results / 'workers.jsonl'}",
            markup=False,
            soft_wrap=True,
        )
        raise
    result = AbResult(
        request.base,
        request.new,
        PAIRED,
        "both sides loaded in each worker, requests alternated in random order",
        paired.settings.model_dump(),
        paired.cells,
        str(results),
    )
    _write(result, request, console)
    (results / "ab.json").write_text(json.dumps(result.to_dict(), indent=1) + "\n")
    return 1 if result.failed else 0


def _write(result: AbResult, request: AbRequest, console: Console) -> None:
    console.print(ab_output.terminal(result))
    if request.markdown:
        write_output(request.markdown, ab_output.markdown(result))
    if request.json:
        write_output(request.json, json.dumps(result.to_dict(), indent=2) + "\n")
    if request.junit:
        write_output(request.junit, ab_output.junit(result))


def _side_request(request: AbRequest, text: str, options: list[str], side: str) -> RunRequest:
    """The run request of one side: its model, the suite's flags, its runtime options."""
    overrides = {table: dict(keys) for table, keys in request.overrides.items()}
    if options:
        overrides["runtime"] = _runtime_options(options, side)
    common = dict(
        config_path=request.config_path,
        profile=request.profile,
        overrides=overrides,
        cache_dir=request.cache_dir,
    )
    path = Path(text)
    if text.endswith(".onnx"):
        if not path.is_file():
            raise UserError(f"{side} side {text}: no such ONNX file: give an existing path")
        return RunRequest(**common, onnx=path, shapes=request.shapes, ranges=request.ranges)
    if text in ZOO:
        if request.shapes or request.ranges:
            raise UserError("--shape and --input-range apply to ONNX files and factories only")
        overrides.setdefault("suite", {})["models"] = [text]
        return RunRequest(**common)
    if ":" in text and not path.exists():
        module, _, function = text.rpartition(":")
        if module.endswith(".py"):  # a factory by its file: the same from any folder
            text = f"{Path(module).resolve()}:{function}"
        return RunRequest(**common, factory=text, shapes=request.shapes, ranges=request.ranges)
    raise UserError(
        f"{side} side '{text}' is not an ONNX file, a zoo model (python cli.py list) or a "
        "factory package.module:function or file.py:function: give one of those"
    )


def _runtime_options(options: list[str], side: str) -> dict[str, dict[str, Any]]:
    """``RUNTIME.KEY=VALUE`` options as a ``[runtime]`` table (values read as JSON: true,
    4, 0.5; else as text)."""
    table: dict[str, dict[str, Any]] = {}
    for option in options:
        name, sep, value = option.partition("=")
        runtime, dot, key = name.partition(".")
        if not sep or not dot or runtime not in RUNTIMES:
            raise UserError(
                f"--{side}-option {option}: expected RUNTIME.KEY=VALUE, e.g. "
                "onnxruntime.graph_optimization=basic"
            )
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = value
        table.setdefault(runtime, {})[key] = parsed
    return table


def _prepared(setup: Setup, side: str, console: Console) -> PreparedModel:
    """The side's model exported (or found in the cache), as a run prepares it."""
    request = setup.models[0]
    console.print(f"preparing {side}: {request.ref}", markup=False)
    try:
        return prepare(request, setup.config, setup.cache_dir)
    except ExportFailed as exc:
        raise UserError(
            f"the {side} side ({request.ref}) could not be prepared: {exc.status} in "
            f"{exc.phase}: {exc.reason}"
        ) from None


def _check_pairable(models: list[PreparedModel], request: AbRequest) -> None:
    """Both sides must take the same inputs: one set of arrays feeds both."""
    signatures = [
        [(spec.name, spec.dtype, tuple(spec.shape)) for spec in model.inputs] for model in models
    ]
    if signatures[0] != signatures[1]:

        def shown(signature: list) -> str:
            return ", ".join(f"{n} {d}{list(s)}" for n, d, s in signature)

        raise UserError(
            f"the sides cannot be paired: {request.base} takes {shown(signatures[0])}, "
            f"{request.new} takes {shown(signatures[1])}; pair models with the same inputs"
        )


def _cells(
    setups: list[Setup], models: list[PreparedModel], new_precision: str | None
) -> list[AbCell]:
    """The suite's latency cells for the base, each skipped where either side cannot run
    it here (the new side in ``new_precision`` where given); int8 cells are left out (each
    side would need its own calibration), and so are the cells already in
    ``new_precision``."""
    cells = []
    new_model = models[1].name
    for planned in expand(setups[0].config, setups[0].models):
        cell = planned.cell
        if cell.scenario != "latency" or "int8" in (cell.precision, new_precision):
            continue
        if new_precision == cell.precision:
            continue
        runtime = RUNTIMES[cell.runtime]
        target = Target(cell.device, new_precision) if new_precision else cell.target
        reason = planned.skip_reason or runtime.unavailable_reason(target, models[1].source)
        cell = replace(cell, model=models[0].name)
        status = SKIPPED if reason else "ok"
        cells.append(AbCell(cell, new_model, status, reason, new_precision=new_precision))
    return cells


def ab_verb(args: argparse.Namespace) -> int:
    settings: dict[str, Any] = {}
    if args.threshold is not None:
        settings["threshold"] = parse_fraction(args.threshold, args.threshold)
    if args.half_width is not None:
        settings["half_width"] = parse_fraction(args.half_width, args.half_width, "--half-width")
    if args.max_time is not None:
        if not args.max_time > 0:
            raise UserError(f"--max-time {args.max_time}: give seconds above 0, e.g. 120")
        settings["max_s"] = args.max_time
    if args.no_confirm:
        settings["confirm"] = False
    request = AbRequest(
        base=args.base,
        new=args.new,
        config_path=args.config,
        profile=args.profile,
        overrides=overrides_from(vars(args)),
        base_options=args.base_option,
        new_options=args.new_option,
        new_precision=args.new_precision,
        shapes=args.shape,
        ranges=args.input_range,
        cache_dir=args.cache_dir,
        settings=settings,
        markdown=args.markdown,
        json=args.json,
        junit=args.junit,
        show_progress=not args.no_progress,
    )
    return run_ab(request, shown())
