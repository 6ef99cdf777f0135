"""``cli.py tune``: the configuration to ship for one model on one target, chosen by
measurement under constraints (bench.harness.tuner), and the artifact to ship.

Each configuration is measured as a one-cell run on the executor ``run`` would use (this
machine, a device over SSH, a Ray cluster), its folder under ``<time>-tune-<model>/runs/``: a
latency cell for one request in flight, a throughput cell for several, or with
``--target-qps`` a LoadGen Server cell at that rate. The decision, every rejected
configuration with its reason, the Pareto front and the artifact land in the tune folder.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from bench.commands.console import console as shown
from bench.commands.executors import get_executor
from bench.core.errors import UserError
from bench.core.record import CellRecord
from bench.harness.config import BenchConfig
from bench.harness.executor import Executor, Target
from bench.harness.overrides import overrides_from
from bench.harness.results import RunDir, file_name
from bench.harness.runner import run_suite
from bench.harness.start import RunRequest, Setup, new_run, settle
from bench.harness.tuner import (
    Configuration,
    Constraints,
    Decision,
    Trial,
    grid,
    optuna_search,
    space,
)

TUNE_FILE = "tune.json"
GRID_UP_TO = 48
"""A space of at most this many configurations is walked as a grid (with pruning);
a larger one is searched with Optuna within ``--budget`` measurements."""


def tune_verb(args: argparse.Namespace) -> int:
    """``cli.py tune``: 0 a configuration was chosen, 1 none met the constraints (the
    closest are listed), 2 bad input."""
    console = shown()
    limits = constraints_of(args)
    request = RunRequest(
        config_path=args.config,
        profile=args.profile,
        overrides=_overrides(args),
        onnx=args.onnx,
        factory=args.factory,
        shapes=args.shape,
        ranges=args.input_range,
        cache_dir=args.cache_dir,
        weights=args.weights,
    )
    setup = settle(request)
    if len(setup.models) != 1:
        raise UserError("tune chooses for one model: give one zoo model, --onnx or --model")
    if limits.latency_bound_ms is None:
        limits = replace(limits, latency_bound_ms=setup.config.loadgen.latency_bound_ms)
    limits = replace(limits, accuracy_budget=setup.config.dataset.accuracy_budget())
    suite = setup.config.suite
    configurations = space(
        suite.runtimes, suite.devices, suite.precisions, suite.batch_sizes, args.in_flight_values
    )
    target = Target(host=args.host, cluster=args.cluster, config_path=args.config)
    name = "ray" if (args.cluster or setup.config.cluster.address) else "local"
    if args.host:
        from bench.commands.edge import device_executor

        opened = device_executor(target, setup, console)  # a device over SSH
    else:
        executor_class = get_executor(name)
        executor_class.check_target(target, None)
        opened = executor_class.opened(target, setup.config, console)
    with opened as executor:  # connected: now the folder
        folder = _folder(Path(suite.results_dir), setup.models[0].name)
        console.print(f"tune folder: {escape(str(folder))}")
        console.print(_space_line(configurations, limits))
        measurer = Measurer(setup, executor, folder, limits, console)
        try:
            if len(configurations) <= GRID_UP_TO or args.search == "grid":
                decision = grid(configurations, measurer, limits)
            else:
                decision = optuna_search(configurations, measurer, limits, args.budget, suite.seed)
        except KeyboardInterrupt:
            console.print(
                f"tune interrupted: each configuration measured is kept in {folder / 'runs'}; "
                "tune itself does not resume: run it again to decide",
                soft_wrap=True,
            )
            return 130
    artifact = None
    if decision.chosen is not None and not args.no_artifact:
        artifact = ship(decision.chosen, measurer, folder, console)
    show_decision(write_decision(folder, decision, limits, setup, artifact), console)
    return 0 if decision.chosen is not None else 1


def constraints_of(args: argparse.Namespace) -> Constraints:
    """The constraints given, each checked: a bound, rate or limit that is not a positive
    finite number is bad input (UserError, exit 2) before anything is measured."""
    for flag, value in (
        ("--latency-bound", args.latency_bound),
        ("--target-qps", args.target_qps),
        ("--max-memory", args.max_memory),
        ("--max-watts", args.max_watts),
    ):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise UserError(f"{flag} must be a positive number, not {value:g}")
    if any(k < 1 for k in args.in_flight_values):
        raise UserError("--in-flight takes whole numbers of 1 or more, e.g. 1,2,4")
    if args.budget < 2:
        raise UserError("--budget must be 2 or more measurements")
    return Constraints(
        latency_bound_ms=args.latency_bound,
        target_qps=args.target_qps,
        accuracy=not args.ignore_accuracy,
        max_memory_mb=args.max_memory,
        max_watts=args.max_watts,
    )


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides = overrides_from(vars(args))
    if args.model:
        overrides.setdefault("suite", {})["models"] = [args.model]
    if args.node:
        if not args.cluster:
            raise UserError("--node names a node of a Ray cluster: give --cluster too")
        overrides["cluster"] = {"plan": "compare", "nodes": [args.node]}
    return overrides


def _folder(root: Path, model: str) -> Path:
    """``<root>/<time>-tune-<model>/`` with its ``runs/`` folder."""
    folder = RunDir.create(root, f"tune-{model}").path
    (folder / "runs").mkdir()
    return folder


def _space_line(configurations: list[Configuration], limits: Constraints) -> str:
    bound = (
        f"LoadGen Server VALID at {limits.target_qps:g} QPS under {limits.latency_bound_ms:g} ms"
        if limits.target_qps
        else f"p99 ≤ {limits.latency_bound_ms:g} ms"
    )
    extra = [
        f"peak memory ≤ {limits.max_memory_mb:g} MB" if limits.max_memory_mb else "",
        f"power ≤ {limits.max_watts:g} W" if limits.max_watts else "",
        "accuracy not failed" if limits.accuracy else "",
        f"task metric within {limits.accuracy_budget} of FP32"
        if limits.accuracy and limits.accuracy_budget
        else "",
    ]
    return f"{len(configurations)} configurations; constraints: " + ", ".join(
        [bound, *[e for e in extra if e]]
    )


class Measurer:
    """Measures one configuration as a one-cell run on ``executor`` (the scenario its
    requests in flight and the constraints call for) and returns the cell's record."""

    def __init__(
        self,
        setup: Setup,
        executor: Executor,
        folder: Path,
        limits: Constraints,
        console: Console,
    ) -> None:
        self.setup = setup
        self.executor = executor
        self.folder = folder
        self.limits = limits
        self.console = console

    def __call__(self, configuration: Configuration) -> CellRecord | None:
        config = self.config_for(configuration)
        setup = replace(self.setup, config=self.executor.adjust(config, self.setup.models))
        self.console.print(f"measuring {configuration.label} …")
        if self.executor.hands_over:
            path, _ = self.executor.hand_over(setup, self.console)
            records = RunDir(path).records() if path else []
        else:
            run = new_run(setup, self.executor.name)
            columns = run_suite(run, self.executor, Console(quiet=True), show_progress=False)
            if len(columns) > 1:
                names = ", ".join(str(column.name) for column in columns)
                raise UserError(f"tune measures on one node: give --node NAME (nodes: {names})")
            records = [r for column in columns for r in column.run_dir.records()]
        return records[0] if records else None

    def config_for(self, configuration: Configuration) -> BenchConfig:
        """The suite of one configuration's cell."""
        base = self.setup.config
        if self.limits.target_qps:
            scenario = "server"
        else:
            scenario = "latency" if configuration.in_flight == 1 else "throughput"
        suite = base.suite.model_copy(
            update={
                "runtimes": [configuration.runtime],
                "devices": [configuration.device],
                "precisions": [configuration.precision],
                "batch_sizes": [configuration.batch],
                "in_flight": configuration.in_flight,
                "scenarios": [scenario],
                "results_dir": str(self.folder / "runs"),
                "name": file_name(configuration.label),
                "repeat": 1,
            }
        )
        loadgen = base.loadgen.model_copy(
            update={
                "target_qps": self.limits.target_qps or 0.0,
                "latency_bound_ms": self.limits.latency_bound_ms,
            }
        )
        return base.model_copy(update={"suite": suite, "loadgen": loadgen})


def ship(
    chosen: Trial, measurer: Measurer, folder: Path, console: Console
) -> dict[str, Any] | None:
    """The chosen configuration's artifact, built and checked on this machine in a worker
    (bench.harness.ship) with the settings it was measured with: what was written, or why
    there is none (a runtime this machine lacks, say, when it was measured elsewhere)."""
    from bench.core.cell import Cell
    from bench.harness.environment import fingerprint
    from bench.harness.isolation import run_in_worker
    from bench.harness.runner import ExportFailed, prepare, quantized_for, workload
    from bench.harness.ship import ShipJob, ship_artifact

    setup, configuration = measurer.setup, chosen.configuration
    config = measurer.config_for(configuration)
    model = setup.models[0]
    cell = Cell(
        model.name,
        configuration.runtime,
        configuration.device,
        configuration.precision,
        configuration.batch,
        config.suite.scenarios[0],
    )
    out = folder / "artifact"
    try:
        prepared = prepare(model, config, setup.cache_dir)
    except ExportFailed as failure:
        return {"unavailable": f"preparing the model {failure.status}: {failure.reason}"}
    if cell.precision == "int8":
        why = quantized_for(prepared, cell, config, setup.cache_dir)
        if why:
            return {"unavailable": f"no QDQ copy here: {why}"}
    load = workload(config, cell)
    job = ShipJob(
        cell=cell,
        model=prepared,
        threads=load.threads,
        in_flight=load.in_flight,
        batch_sizes=(configuration.batch,),
        options=config.runtime.of(cell.runtime),
        cache_dir=setup.cache_dir,
        out_dir=out,
        figures=chosen.to_dict(),
        environment=fingerprint(),
    )
    console.print(f"writing the artifact of {configuration.label} …")
    outcome = run_in_worker(ship_artifact, job, config.suite.cell_timeout_s)
    if outcome.status != "ok":
        return {"unavailable": f"{outcome.status}: {outcome.reason}"}
    return {"folder": str(out), "files": sorted(p.name for p in out.iterdir())}


def write_decision(
    folder: Path,
    decision: Decision,
    limits: Constraints,
    setup: Setup,
    artifact: dict[str, Any] | None,
) -> dict[str, Any]:
    """``tune.json`` (everything), ``tune.md`` (the decision, readable) and
    ``report.html`` (with the Pareto chart) in the tune folder; what tune.json holds."""
    from bench.views.tune_report import tune_html, tune_markdown

    data = {
        "model": setup.models[0].to_dict(),
        "constraints": {
            **limits.__dict__,
            "accuracy_budget": str(limits.accuracy_budget) if limits.accuracy_budget else None,
        },
        "method": decision.method,
        "measurements": decision.measurements,
        "chosen": decision.chosen.to_dict() if decision.chosen else None,
        "why": decision.why,
        "front": [t.configuration.label for t in decision.front],
        "closest": [t.to_dict() for t in decision.closest],
        "trials": [t.to_dict() for t in decision.trials],
        "artifact": artifact,
    }
    (folder / TUNE_FILE).write_text(json.dumps(data, indent=2, default=str))
    (folder / "tune.md").write_text(tune_markdown(data))
    (folder / "report.html").write_text(tune_html(data))
    return data


def show_decision(data: dict[str, Any], console: Console) -> None:
    """Every configuration with its fate, then the choice and why (or the closest), as
    tune.md and report.html say them."""
    from bench.views.tune_report import decision_lines, tune_table

    console.print(tune_table(data))
    for line in decision_lines(data):
        console.print(escape(line), soft_wrap=True)
