"""``run --cluster``: one suite on a Ray cluster's nodes, written as one results folder
(the ``ray`` executor).

The driver (this process) joins the cluster, probes each node (its fingerprint, its
deploybench, which cells its runtimes serve), refuses a node that runs another
deploybench, exports each model once and puts its files in Ray's object store, then hands
cells to nodes (bench.fleet.dispatch); the one loop (bench.harness.runner) appends each
record as it comes back.

The folder: ``fleet.json`` (address, plan, nodes, columns), ``controller.json`` (this
machine), ``nodes/<node>/environment.json`` (each node as probed), and one ordinary run
folder per machine column (``--fleet compare``: one per node; ``--fleet shard``: one for
the whole group), which ``report``, ``compare`` and ``baseline save`` read as any run.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.core.errors import UserError
from bench.core.record import CellRecord
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
from bench.fleet.dispatch import NODE_LOST, Dispatch, Machine, Pending, on_one_gpu, run_again
from bench.fleet.shipping import ship
from bench.harness.config import BenchConfig, ClusterConfig
from bench.harness.environment import fingerprint, machine_id, machine_label
from bench.harness.executor import Column, Executor, Target, Todo
from bench.harness.plan import ModelRequest, PlannedCell
from bench.harness.progress import Progress
from bench.harness.results import (
    ENVIRONMENT_FILE,
    FLEET_FILE,
    HTML_REPORT_FILE,
    REPORT_FILE,
    RESULTS_FILE,
    RUN_FILE,
    RunDir,
    file_name,
    fleet_columns,
)
from bench.harness.runner import repetition_label
from bench.harness.start import Run
from bench.views.machines_report import machines_report

PROBE_TIMEOUT_S = 300.0
"""How long a node may take to answer its probe (its first Ray worker starts and
imports deploybench)."""
CONTROLLER_FILE = "controller.json"


class RayExecutor(Executor):
    """A Ray cluster's nodes, one machine column each (``--fleet compare``) or one
    column of nodes alike (``--fleet shard``), many cells at once."""

    name = "ray"
    stops = "the cells in flight were stopped on their nodes"

    def __init__(self, target: Target, config: BenchConfig, console: Console) -> None:
        self.given = target  # what --resume joins: only what the user gives again
        self.address = target.cluster or config.cluster.address
        self.wanted = list(target.nodes) or config.cluster.nodes
        self.console = console
        self.cluster = config.cluster
        self.joined = False
        self.machines: list[Machine] = []
        self.runners: dict[tuple[str | None, str], frozenset[str]] = {}
        self.lost: set[str] = set()
        self.nodes: list[Node] = []
        self.per_gpu = config.cluster.per_gpu

    @classmethod
    def check_target(cls, target: Target, resumed: Path | None) -> None:
        if target.host:
            raise UserError("--host runs on one device over SSH: drop the --cluster flags")

    @classmethod
    @contextmanager
    def opened(
        cls, target: Target, config: BenchConfig | None, console: Console
    ) -> Iterator[Executor]:
        """The cluster at ``--cluster`` (else the suite's ``[cluster] address``), joined
        once there are cells to measure, and left at the end."""
        assert config is not None
        executor = cls(target, config, console)
        try:
            yield executor
        finally:
            if executor.joined:
                leave()

    def _join(self) -> list[Node]:
        if not self.address:
            raise UserError("the ray executor needs a cluster: give --cluster ADDRESS")
        if not self.joined:  # once, however many runs it measures (tune: one each)
            join(str(self.address), self.cluster.connect_timeout_s)
            self.joined = True
        return chosen_nodes(live_nodes(), self.wanted, str(self.address))

    def adjust(self, config: BenchConfig, models: list[ModelRequest]) -> BenchConfig:
        """Join the cluster and choose its nodes before the run's folder is made."""
        self.nodes = self._join()
        return config

    def columns(self, run: Run, console: Console) -> list[Column]:
        if run.resumed:
            return self._resumed_columns(run, console)
        nodes = self.nodes
        started = time.monotonic()
        reports = probe(nodes, run.config, run.models)
        console.print(
            f"{self.address}: {len(nodes)} nodes probed in {time.monotonic() - started:.1f} s, "
            f"deploybench {reports[0].version}; {self.cluster.plan} plan: "
            + ", ".join(_describe(n, r) for n, r in zip(nodes, reports, strict=True))
        )
        lineups = _lineups(
            self.cluster, nodes, reports, len(run.planned), str(self.address), console
        )
        _check_per_gpu(self.cluster, run, lineups)
        folders = _write_folders(run, self.cluster, lineups)
        return [
            self._seat(run, lineup, folder) for lineup, folder in zip(lineups, folders, strict=True)
        ]

    def _seat(self, run: Run, lineup: Lineup, folder: RunDir) -> Column:
        """The column ``lineup``'s nodes measure, planned as they can."""
        planned = [
            PlannedCell(p.cell, lineup.skip_reason(index)) for index, p in enumerate(run.planned)
        ]
        column = Column(folder, planned, lineup.name)
        for index, p in enumerate(run.planned):
            self.runners[(lineup.name, p.cell.key)] = lineup.runners(index)
        self.machines.append(Machine(lineup.name, column, lineup.nodes))
        return column

    def _resumed_columns(self, run: Run, console: Console) -> list[Column]:
        """Each column's missing cells (and those whose node or Ray worker was lost) go to
        live nodes of the same machine: the node of the same name where it is back, else
        one of the same hardware fingerprint (any of them, for a shard). Like every
        resume, it joins no cluster the folder names: ``--cluster`` is given again."""
        folders = fleet_columns(run.run_dir.path)
        fleet = run.run_dir.read_json(FLEET_FILE)
        self.address, self.wanted = self.given.cluster, list(self.given.nodes)
        self.per_gpu = bool(fleet.get("per_gpu"))
        specs = list(fleet["columns"])
        unfinished = {f: _unfinished(run, RunDir.existing(f).records()) for f in folders}
        if not any(unfinished.values()):  # nothing to measure: the reports again
            self.address = self.address or fleet.get("address")
            return [
                Column(RunDir.existing(f), run.planned, str(spec.get("name")))
                for spec, f in zip(specs, folders, strict=True)
            ]
        if not self.address:
            raise UserError(
                f"{run.run_dir.path} was run on the Ray cluster at {fleet.get('address')}: "
                f"resume joins no cluster a results folder names; add --cluster "
                f"{fleet.get('address')}"
            )
        nodes = self._join()
        probed = probe(nodes, run.config, run.models)
        reports = {n.id: report for n, report in zip(nodes, probed, strict=True)}
        seats = _seats(fleet, specs, folders, unfinished, nodes, reports)
        columns = []
        for spec, folder in zip(specs, folders, strict=True):
            seated = seats.get(folder)
            if seated is None:
                if unfinished[folder]:
                    console.print(
                        f"{spec.get('name')}: no node of that machine is in the cluster now; "
                        "its missing cells stay missing"
                    )
                continue
            column_dir = RunDir.existing(folder)
            column_dir.drop({(r.key, r.repetition) for r in column_dir.records() if run_again(r)})
            lineup = Lineup(str(spec.get("name")), seated, [reports[n.id] for n in seated])
            columns.append(self._seat(run, lineup, column_dir))
        if not columns:
            raise UserError(
                f"no node of the cluster at {self.address} is a machine of {run.run_dir.path} "
                "with cells to run: start those nodes, then resume"
            )
        return columns

    def measure(
        self, run: Run, ready: Iterator[Todo], progress: Progress
    ) -> Iterator[tuple[Column, CellRecord]]:
        """Every ready cell first (each model exported once, here), then the models
        their cells need shipped to the object store, then the cells dispatched to the
        nodes, each record yielded as its cell ends."""
        by_column = {id(m.column): m for m in self.machines}
        for todo in ready:
            runners = self.runners[(todo.column.name, todo.cell.key)]
            machine = by_column[id(todo.column)]
            machine.todo.append(Pending(todo.cell, todo.repetition, runners, todo.model))
        needed = {p.cell.model: p.model for m in self.machines for p in m.todo}
        units = {name: ship(model, ray_module().put) for name, model in needed.items()}
        repeat = run.config.suite.repeat

        def submit(pending: Pending, node: Node, asked: dict[str, float]) -> Any:
            threads = run.config.suite.threads
            if self.per_gpu and asked["num_gpus"] < node.gpus and not threads:
                threads = max(1, int(asked["num_cpus"]))
            shipped = units[pending.cell.model]
            work = on_node.CellTask(
                pending.cell,
                pending.repetition,
                pending.model,
                [replace(unit, ref=None) for unit in shipped],
                run.config,
                run.run_dir.run_id,
                node.stamp(),
                threads,
            )
            return pinned(on_node.run_cell, node, **asked).remote(work, *(u.ref for u in shipped))

        def started(machine: Machine, pending: Pending, node: Node) -> None:
            label = repetition_label(pending.cell, pending.repetition, repeat)
            progress.started(machine.name, label, node.name)

        def lost(node: Node) -> None:
            self.console.print(
                f"{node.name} left the cluster: its cell in flight is recorded as crashed "
                f"({NODE_LOST}); the other nodes go on"
            )

        dispatch = Dispatch(run.run_dir.run_id, self.machines, submit, self.per_gpu, started, lost)
        try:
            yield from dispatch.records()
        finally:
            self.lost |= dispatch.lost

    def end_state(self, column: Column) -> tuple[list[str], list[str]]:
        """The column's machine's power state and load at the end, read on its first live
        node and written into its environment.json."""
        machine = next((m for m in self.machines if m.column is column), None)
        live = [n for n in machine.nodes if n.id not in self.lost] if machine else []
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

    def resume_hint(self, path: Path) -> str:
        quoted = shlex.quote(str(path))
        return f"python cli.py run --resume {quoted} --cluster {self.address}"

    def conclude(self, run: Run, codes: list[int], console: Console) -> int:
        return _whole_fleet(run, console, str(self.address))


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


def _write_folders(run: Run, cluster: ClusterConfig, lineups: list[Lineup]) -> list[RunDir]:
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
        columns.append(column_dir)
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
    slug = file_name(name).strip("-.") or "node"
    folder, suffix = parent / slug, 1
    while folder.exists() or folder.name == "nodes":
        suffix += 1
        folder = parent / f"{slug}-{suffix}"
    return folder


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
