"""``run --cluster``: one suite on a Ray cluster's nodes, written as one results folder.

The driver (this process) joins the cluster, probes each node (its fingerprint, its
deploybench, which cells its runtimes serve), refuses a node that runs another
deploybench, exports each model once and puts its files in Ray's object store, then hands
cells to nodes (bench.fleet.dispatch) and appends each record as it comes back.

The folder: ``fleet.json`` (address, plan, nodes, columns), ``controller.json`` (this
machine), ``nodes/<node>/environment.json`` (each node as probed), and one ordinary run
folder per machine column (``--fleet compare``: one per node; ``--fleet shard``: one for
the whole group), which ``report``, ``compare`` and ``baseline save`` read as any run.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.core.errors import UserError
from bench.core.record import CellRecord
from bench.core.spec import PreparedModel
from bench.fleet import node as on_node
from bench.fleet.cluster import (
    Node,
    chosen_nodes,
    first_line,
    join,
    leave,
    live_nodes,
    pinned,
    ray_module,
)
from bench.fleet.dispatch import NODE_LOST, Column, Dispatch, Pending, on_one_gpu, run_again
from bench.fleet.progress import fleet_progress
from bench.fleet.shipping import Unit, ship
from bench.harness.config import BenchConfig, ClusterConfig, load_config
from bench.harness.environment import fingerprint, machine_id, machine_label
from bench.harness.plan import ModelRequest, PlannedCell
from bench.harness.results import (
    ENVIRONMENT_FILE,
    FLEET_FILE,
    HTML_REPORT_FILE,
    REPORT_FILE,
    RESULTS_FILE,
    RUN_FILE,
    RunDir,
    fleet_columns,
)
from bench.harness.runner import ExportFailed, ended_early, prepare, repetition_label
from bench.harness.start import ResumeRequest, Run, RunRequest, new_run, resumed_run
from bench.views.machines_report import machines_report
from bench.views.run_report import finish

PROBE_TIMEOUT_S = 300.0
"""How long a node may take to answer its probe (its first Ray worker starts and
imports deploybench)."""
CONTROLLER_FILE = "controller.json"


@dataclass
class FleetRequest:
    """``run --cluster`` (or a suite file's ``[cluster]``): the run as asked."""

    run: RunRequest
    show_progress: bool = True
    hw_dirs: tuple[Path, ...] = ()


def cluster_settings(request: RunRequest) -> ClusterConfig:
    """The ``[cluster]`` settings of the run, with the command line's over the file's."""
    return load_config(request.config_path, request.profile, request.overrides).cluster


def is_fleet_run(path: Path) -> bool:
    """Whether ``path`` is a fleet run's folder (``--resume`` goes back to its cluster)."""
    return (path / FLEET_FILE).is_file()


@dataclass
class Lineup:
    """A machine column before it runs: its name, its nodes and what each node's probe
    said."""

    name: str
    nodes: list[Node]
    reports: list[on_node.NodeReport]

    def skip_reason(self, index: int) -> str | None:
        """Why the column skips planned cell ``index``: None when a node can run it."""
        reasons = [r.skip_reasons[index] for r in self.reports]
        return None if None in reasons else reasons[0]

    def runners(self, index: int) -> frozenset[str]:
        return frozenset(
            n.id for n, r in zip(self.nodes, self.reports, strict=True) if not r.skip_reasons[index]
        )


def fleet_run(request: FleetRequest, console: Console) -> int:
    """Run the suite on the cluster; the exit code (0: no cell failed, 1: some did)."""
    cluster = cluster_settings(request.run)
    address = str(cluster.address)
    join(address, cluster.connect_timeout_s)
    try:
        nodes = chosen_nodes(live_nodes(), cluster.nodes, address)
        run = new_run(request.run)
        try:
            started = time.monotonic()
            reports = probe(nodes, run.config, run.models)
            console.print(
                f"{address}: {len(nodes)} nodes probed in {time.monotonic() - started:.1f} s, "
                f"deploybench {reports[0].version}; {cluster.plan} plan: "
                + ", ".join(_describe(n, r) for n, r in zip(nodes, reports, strict=True))
            )
            lineups = _lineups(cluster, nodes, reports, len(run.planned), address, console)
            _check_per_gpu(cluster, run, lineups)
            columns = _write_folders(run, cluster, lineups)
        except BaseException:
            shutil.rmtree(run.run_dir.path)  # nothing was measured: leave no folder behind
            raise
        console.print(f"fleet run directory: {run.run_dir.path}")
        try:
            with _interrupt_hint(run, address, console):
                return _measure(
                    run, columns, lineups, cluster.per_gpu, console, request.show_progress,
                    request.hw_dirs, address,
                )  # fmt: skip
        except UserError:  # a model that cannot be made: before any cell, as a local run
            if not any(column.run_dir.records() for column in columns):
                shutil.rmtree(run.run_dir.path)
            raise
    finally:
        leave()


@contextmanager
def _interrupt_hint(run: Run, address: str, console: Console) -> Iterator[None]:
    """On Ctrl-C (after the cells in flight were cancelled), say what is kept and how
    to finish; the interrupt goes on (cli.py exits 130)."""
    try:
        yield
    except KeyboardInterrupt:
        console.print(
            f"\ninterrupted: the cells in flight were stopped on their nodes; every finished "
            f"cell is kept in {run.run_dir.path}; finish with: python cli.py run --resume "
            f"{run.run_dir.path} --cluster {address}",
            soft_wrap=True,
        )
        raise


def probe(
    nodes: list[Node], config: BenchConfig, models: list[ModelRequest]
) -> list[on_node.NodeReport]:
    """Each node's report, probed at once on every node; UserError naming a node that
    does not answer, fails, runs another deploybench than this machine, or cannot import
    a user factory of the suite."""
    ray = ray_module()
    refs = [pinned(on_node.probe, node).remote(config, models) for node in nodes]
    _, late = ray.wait(refs, num_returns=len(refs), timeout=PROBE_TIMEOUT_S)
    mine = on_node.NodeReport(fingerprint(), on_node.source_digest(), [], []).version
    reports = []
    for node, ref in zip(nodes, refs, strict=True):
        leave_out = "or leave it out with --nodes"
        if ref in late:
            ray.cancel(ref, force=True)
            raise UserError(
                f"node {node.name} did not answer within {PROBE_TIMEOUT_S:.0f} s: check it "
                f"(ray status), {leave_out}"
            )
        try:
            report = ray.get(ref)
        except ray.exceptions.RayError as exc:
            cause = getattr(exc, "cause", None) or exc
            raise UserError(
                f"cannot probe node {node.name} ({type(cause).__name__}: {first_line(cause)}): "
                f"install deploybench there as here, {leave_out}"
            ) from None
        if report.version != mine:
            raise UserError(
                f"node {node.name} runs deploybench {report.version}, this machine {mine}: "
                f"install the same deploybench on every node, {leave_out}"
            )
        if report.missing_factories:
            raise UserError(
                f"node {node.name} cannot import {report.missing_factories[0]} (the --model "
                f"factory): install it on every node, {leave_out}"
            )
        reports.append(report)
    return reports


def _describe(node: Node, report: on_node.NodeReport) -> str:
    gpus = f", {node.gpus:g} GPUs" if node.gpus else ""
    return f"{node.name} ({machine_label(report.environment)}; {node.cpus:g} CPUs{gpus})"


def _lineups(
    cluster: ClusterConfig,
    nodes: list[Node],
    reports: list[on_node.NodeReport],
    cells: int,
    address: str,
    console: Console,
) -> list[Lineup]:
    """The machine columns of the plan: a node each (compare), or every node in one
    (shard, which refuses nodes of different hardware). A node with no cell to run is
    left out, saying why; UserError when no node has one."""
    if cluster.plan == "shard":
        groups: dict[str, list[int]] = {}
        for index, report in enumerate(reports):
            groups.setdefault(machine_id(report.environment), []).append(index)
        if len(groups) > 1:
            kinds = "; ".join(
                f"{', '.join(nodes[i].name for i in group)} "
                f"({machine_label(reports[group[0]].environment)})"
                for group in groups.values()
            )
            raise UserError(
                f"--fleet shard spreads one machine's cells, and these nodes differ in hardware "
                f"({kinds}): choose nodes of one kind with --nodes, or use --fleet compare"
            )
        lineups = [Lineup("shard", nodes, reports)]
    else:
        lineups = [Lineup(n.name, [n], [r]) for n, r in zip(nodes, reports, strict=True)]
    kept = [
        lineup for lineup in lineups if any(lineup.skip_reason(i) is None for i in range(cells))
    ]
    if not kept:
        reasons: dict[str, list[str]] = {}
        for node, report in zip(nodes, reports, strict=True):
            reasons.setdefault(str(report.skip_reasons[0]), []).append(node.name)
        why = "; ".join(f"{', '.join(names)}: {reason}" for reason, names in reasons.items())
        raise UserError(
            f"no node of the cluster at {address} can run a cell of this suite ({why}): "
            "choose devices and runtimes its nodes have"
        )
    for lineup in lineups:
        if lineup not in kept:
            console.print(f"{lineup.name}: nothing to run ({lineup.skip_reason(0)}); left out")
    return kept


def _check_per_gpu(cluster: ClusterConfig, run: Run, lineups: list[Lineup]) -> None:
    if not cluster.per_gpu:
        return
    for index, planned in enumerate(run.planned):
        cell = planned.cell
        runs = any(lineup.skip_reason(index) is None for lineup in lineups)
        if runs and cell.device.startswith("cuda") and not on_one_gpu(cell):
            raise UserError(
                f"--per-gpu gives each CUDA cell the one GPU Ray chooses, and {cell.key} asks "
                f"for {cell.device}: ask for device cuda"
            )


def _write_folders(run: Run, cluster: ClusterConfig, lineups: list[Lineup]) -> list[Column]:
    """fleet.json, controller.json, each node's environment.json, and a run folder per
    column (its run.json, its machine's environment.json, an empty results.jsonl)."""
    root = run.run_dir
    (root.path / ENVIRONMENT_FILE).rename(root.path / CONTROLLER_FILE)
    stored = root.read_json(RUN_FILE)
    columns, described = [], []
    for lineup in lineups:
        column_dir = RunDir(_free_folder(root.path, lineup.name))
        column_dir.path.mkdir()
        column_dir.write_json(RUN_FILE, {**stored, "fleet": {"root": "..", "column": lineup.name}})
        environment = dict(lineup.reports[0].environment)
        environment["fleet"] = {
            "cluster": cluster.address,
            "plan": cluster.plan,
            "nodes": [n.name for n in lineup.nodes],
            **({"node": lineup.nodes[0].name} if cluster.plan == "compare" else {}),
        }
        column_dir.write_json(ENVIRONMENT_FILE, environment)
        (column_dir.path / RESULTS_FILE).touch()
        for node, report in zip(lineup.nodes, lineup.reports, strict=True):
            node_dir = _free_folder(root.path / "nodes", node.name)
            node_dir.mkdir(parents=True)
            (node_dir / ENVIRONMENT_FILE).write_text(json.dumps(report.environment, indent=2))
        columns.append(Column(lineup.name, column_dir, lineup.nodes))
        described.append(
            {
                "name": lineup.name,
                "folder": column_dir.path.name,
                "machine_id": machine_id(environment),
                "nodes": [n.name for n in lineup.nodes],
            }
        )
    root.write_json(
        FLEET_FILE,
        {
            "address": cluster.address,
            "plan": cluster.plan,
            "per_gpu": cluster.per_gpu,
            "columns": described,
            "nodes": [
                {**n.stamp(), "cpus": n.cpus, "gpus": n.gpus, "deploybench": r.version}
                for lineup in lineups
                for n, r in zip(lineup.nodes, lineup.reports, strict=True)
            ],
        },
    )
    return columns


def _free_folder(parent: Path, name: str) -> Path:
    """A path in ``parent`` named after ``name`` that nothing there holds yet."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "node"
    folder, suffix = parent / slug, 1
    while folder.exists() or folder.name == "nodes":
        suffix += 1
        folder = parent / f"{slug}-{suffix}"
    return folder


def _measure(
    run: Run,
    columns: list[Column],
    lineups: list[Lineup],
    per_gpu: bool,
    console: Console,
    show_progress: bool,
    hw_dirs: tuple[Path, ...],
    address: str,
) -> int:
    """Prepare and ship the models its missing cells need, record what ends before
    measuring, dispatch the rest, then write each column's report and the machines side
    by side."""
    config, repeat = run.config, run.config.suite.repeat
    missing = {id(c): _missing(run, c, lineup) for c, lineup in zip(columns, lineups, strict=True)}
    wanted = {
        item.cell.model
        for todo in missing.values()
        for _, item, _ in todo
        if item.skip_reason is None
    }
    models = _prepared(run, wanted)
    made: dict[tuple[str, str], Any] = {}  # each int8 copy as first made, with its cost
    for column in columns:
        costed: set[tuple[str, str]] = set()  # each machine's first int8 cell carries it
        for rep, item, runners in missing[id(column)]:
            model = models.get(item.cell.model)
            before = dict(model.quantized) if isinstance(model, PreparedModel) else {}
            record = ended_early(item, model, rep, config, run.cache_dir, run.run_dir.run_id)
            if record is not None:
                column.run_dir.append(record)
                continue
            own = None
            for scheme, copy in model.quantized.items():
                if before.get(scheme) is copy:
                    continue  # not this cell's copy
                key = (model.name, scheme)
                made.setdefault(key, copy)
                if key not in costed:
                    costed.add(key)
                    own = replace(model, quantized={**model.quantized, scheme: made[key]})
            column.todo.append(Pending(item.cell, rep, runners, own))
    units = {
        name: ship(model, ray_module().put)
        for name, model in models.items()
        if isinstance(model, PreparedModel)
        and any(p.cell.model == name for c in columns for p in c.todo)
    }
    submit = _submitter(run, models, units, per_gpu)
    totals = {column.name: len(column.todo) for column in columns}
    with fleet_progress(console, totals, show_progress) as progress:

        def started(column: Column, pending: Pending, node: Node) -> None:
            if progress:
                label = repetition_label(pending.cell, pending.repetition, repeat)
                progress.started(column.name, label, node.name)

        def ended(column: Column, record: CellRecord) -> None:
            column.run_dir.append(record)
            if progress:
                shared = record.node and len(column.nodes) > 1
                where = f" on {record.node['name']}" if shared else ""
                label = repetition_label(record.cell, record.repetition, repeat)
                progress.ended(column.name, label + where, record.status)

        def lost(node: Node) -> None:
            console.print(
                f"{node.name} left the cluster: its cell in flight is recorded as crashed "
                f"({NODE_LOST}); the other nodes go on"
            )

        dispatch = Dispatch(run.run_dir.run_id, columns, submit, per_gpu, started, ended, lost)
        dispatch.run()
    return _report(run, columns, dispatch, console, hw_dirs, address)


def _missing(run: Run, column: Column, lineup: Lineup) -> list[tuple[int, PlannedCell, frozenset]]:
    """The column's cells with no record yet, each repetition, in the order a local run
    takes them, with the reason the column skips it (if so) and the nodes that can run it."""
    done = {(r.key, r.repetition) for r in column.run_dir.records()}
    missing = []
    for rep in range(run.config.suite.repeat):
        for index, planned in enumerate(run.planned):
            reason = lineup.skip_reason(index)
            if (planned.cell.key, rep) in done or (reason is not None and rep > 0):
                continue
            missing.append((rep, PlannedCell(planned.cell, reason), lineup.runners(index)))
    return missing


def _prepared(run: Run, wanted: set[str]) -> dict[str, PreparedModel | ExportFailed]:
    """Each model in ``wanted``, exported once here (or why it failed)."""
    prepared: dict[str, PreparedModel | ExportFailed] = {}
    for request in run.models:
        if request.name in wanted:
            try:
                prepared[request.name] = prepare(request, run.config, run.cache_dir)
            except ExportFailed as failure:
                prepared[request.name] = failure
    return prepared


def _submitter(run: Run, models: dict[str, Any], units: dict[str, list[Unit]], per_gpu: bool):  # noqa: ANN202
    """Start a cell on a node: its task asks for the resources the dispatch chose and
    takes the model's files as arguments (fetched before it starts)."""

    def submit(pending: Pending, column: Column, node: Node, asked: dict[str, float]) -> Any:
        threads = run.config.suite.threads
        if per_gpu and asked["num_gpus"] < node.gpus and not threads:
            threads = max(1, int(asked["num_cpus"]))
        shipped = units[pending.cell.model]
        work = on_node.CellTask(
            pending.cell,
            pending.repetition,
            pending.model or models[pending.cell.model],
            [replace(unit, ref=None) for unit in shipped],
            run.config,
            run.run_dir.run_id,
            node.stamp(),
            threads,
        )
        return pinned(on_node.run_cell, node, **asked).remote(work, *(u.ref for u in shipped))

    return submit


def _report(
    run: Run,
    columns: list[Column],
    dispatch: Dispatch,
    console: Console,
    hw_dirs: tuple,
    address: str,
) -> int:
    """Each measured column's end state, report.md and report.html, then the whole
    fleet's (``_whole_fleet``). The exit code."""
    for column in columns:
        changes, noise = _end_state(column, dispatch.lost)
        column_run = Run(column.run_dir, run.config, run.models, run.planned, run.cache_dir)
        finish(column_run, console, hw_dirs, changes, noise, len(columns) == 1)
    return _whole_fleet(run, console, address)


def _whole_fleet(run: Run, console: Console, address: str) -> int:
    """The machines side by side (a fleet of several), what is left to run in every
    column, and the exit code over every column: 1 when a cell failed or is left."""
    root = run.run_dir.path
    folders = fleet_columns(root)
    if len(folders) > 1:
        machines_report([root], [], root / REPORT_FILE, console, root / HTML_REPORT_FILE)
    each = [RunDir(folder).records() for folder in folders]
    records = [r for column in each for r in column]
    again = sum(run_again(r) for r in records)
    left = sum(_unfinished(run, column) for column in each)
    if left:
        console.print(
            f"{left} of {len(folders)} machines have cells to run ({again} lost their node or "
            f"Ray worker): finish with: python cli.py run --resume {root} --cluster {address}",
            soft_wrap=True,
        )
    return 1 if left or any(r.failed for r in records) else 0


def _end_state(column: Column, lost: set[str]) -> tuple[list[str], list[str]]:
    """The column's machine's power state and load at the end, read on its first live
    node and written into its environment.json; how the state changed, and the noise."""
    live = [n for n in column.nodes if n.id not in lost]
    if not live:
        return [], []
    ray = ray_module()
    environment = column.run_dir.read_json(ENVIRONMENT_FILE)
    try:
        updated, changes, noise = ray.get(
            pinned(on_node.end_state, live[0]).remote(environment), timeout=60
        )
    except (ray.exceptions.RayError, TimeoutError):
        return [], []
    column.run_dir.write_json(ENVIRONMENT_FILE, updated)
    return changes, noise


def fleet_resume(
    request: ResumeRequest,
    address: str | None,
    wanted: list[str],
    console: Console,
    show_progress: bool = True,
    hw_dirs: tuple[Path, ...] = (),
) -> int:
    """Finish a fleet run: each column's missing cells (and those whose node or Ray
    worker was lost) on live nodes of the same machine: the node of the same name where
    it is back, else one of the same hardware fingerprint (any of them, for a shard).
    Like every resume, it joins no cluster the folder names: ``address`` is given again."""
    run = resumed_run(request)
    folders = fleet_columns(run.run_dir.path)
    fleet = run.run_dir.read_json(FLEET_FILE)
    stored = fleet.get("address")
    unfinished = {folder: _unfinished(run, RunDir.existing(folder).records()) for folder in folders}
    if not any(unfinished.values()):
        for folder in folders:  # nothing to measure: the reports again, as a local resume
            column = Run(
                RunDir.existing(folder), run.config, run.models, run.planned, run.cache_dir
            )
            finish(column, console, hw_dirs, show=len(folders) == 1)
        return _whole_fleet(run, console, str(address or stored))
    if not address:
        raise UserError(
            f"{run.run_dir.path} was run on the Ray cluster at {stored}: resume joins no cluster "
            f"a results folder names; add --cluster {stored}"
        )
    specs = list(fleet["columns"])
    join(address, run.config.cluster.connect_timeout_s)
    try:
        nodes = chosen_nodes(live_nodes(), wanted, address)
        probed = probe(nodes, run.config, run.models)
        reports = {n.id: report for n, report in zip(nodes, probed, strict=True)}
        seats = _seats(fleet, specs, folders, unfinished, nodes, reports)
        columns, lineups = [], []
        for spec, folder in zip(specs, folders, strict=True):
            column_dir = RunDir.existing(folder)
            seated = seats.get(folder)
            if seated is None:
                if unfinished[folder]:
                    console.print(
                        f"{spec.get('name')}: no node of that machine is in the cluster now; "
                        "its missing cells stay missing"
                    )
                continue
            column_dir.drop({(r.key, r.repetition) for r in column_dir.records() if run_again(r)})
            columns.append(Column(str(spec.get("name")), column_dir, seated))
            lineups.append(Lineup(str(spec.get("name")), seated, [reports[n.id] for n in seated]))
        if not columns:
            raise UserError(
                f"no node of the cluster at {address} is a machine of {run.run_dir.path} with "
                "cells to run: start those nodes, then resume"
            )
        with _interrupt_hint(run, address, console):
            per_gpu = bool(fleet.get("per_gpu"))
            return _measure(
                run, columns, lineups, per_gpu, console, show_progress, hw_dirs, address
            )
    finally:
        leave()


def _seats(
    fleet: dict[str, Any],
    specs: list[dict],
    folders: list[Path],
    unfinished: dict[Path, bool],
    nodes: list[Node],
    reports: dict[str, on_node.NodeReport],
) -> dict[Path, list[Node]]:
    """The live nodes that finish each unfinished column: first every column's node of
    the same name and hardware, then, for columns still without one, any free node of
    the same hardware (every such node, for a shard)."""
    hardware = {n.id: machine_id(reports[n.id].environment) for n in nodes}
    open_columns = [
        (spec, folder) for spec, folder in zip(specs, folders, strict=True) if unfinished[folder]
    ]
    seats: dict[Path, list[Node]] = {}
    used: set[str] = set()
    for exact in (True, False):
        for spec, folder in open_columns:
            if folder in seats and (exact or fleet.get("plan") != "shard"):
                continue
            same = [
                n
                for n in nodes
                if n.id not in used
                and hardware[n.id] == spec.get("machine_id")
                and (not exact or n.name in spec.get("nodes", []))
            ]
            if fleet.get("plan") != "shard":
                same = same[:1]
            if same:
                seats[folder] = seats.get(folder, []) + same
                used.update(n.id for n in same)
    return seats


def _unfinished(run: Run, records: list[CellRecord]) -> bool:
    """Whether a column with these records has cells to run: missing, or lost with their
    node."""
    done = {(r.key, r.repetition) for r in records if not run_again(r)}
    # a skip the probe foresaw is recorded here once (no node), not per repetition
    skipped = {r.key for r in records if r.status == "skipped" and r.node is None}
    repeats = range(run.config.suite.repeat)
    return any(
        (p.cell.key, rep) not in done
        for p in run.planned
        for rep in repeats
        if rep == 0 or p.cell.key not in skipped
    )
