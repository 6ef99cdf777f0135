"""Handing a fleet run's cells to its nodes, and taking their records back as each ends.

Exclusivity is Ray's: a cell asks its node for every CPU and GPU it offers Ray, so no
other cell (of this run, of another fleet run, or any Ray work asking for CPUs) shares the
node while it measures. With ``per_gpu``, a cell on one CUDA device of a multi-GPU node
asks for one GPU and that GPU's share of the CPUs instead: one such cell per GPU, and the
cells that take the whole node wait for them. The driver keeps at most what fits on each
node in flight, pulling the next cell for a node as one ends there, so a node that is
slower, or lost, holds no queue of cells.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from bench.core.cell import Cell
from bench.core.record import CellRecord
from bench.fleet.cluster import Node, first_line, ray_module
from bench.harness.executor import Column

NODE_LOST = "node lost"
"""How a cell whose node left the cluster mid-cell begins its reason."""
WORKER_DIED = "the Ray worker died"
"""How a cell whose Ray worker died (its node stayed) begins its reason."""
DEATH_NOTICE_S = 30.0
"""How long the cluster may take to call a node dead once its worker is gone (Ray's
health checks: a few seconds apart, several misses)."""


def run_again(record: CellRecord) -> bool:
    """Whether ``--resume`` measures the cell again: it crashed because its node or its
    Ray worker went away, not because of the cell."""
    return record.status == "crashed" and (record.reason or "").startswith((NODE_LOST, WORKER_DIED))


@dataclass
class Pending:
    """A cell (one repetition) still to measure, and the ids of the column's nodes that
    can run it (a node whose runtimes cannot serve it skips it)."""

    cell: Cell
    repetition: int
    nodes: frozenset[str]
    model: Any = None
    """The prepared model as this cell must see it (bench.harness.executor.Todo)."""


@dataclass
class Machine:
    """One machine column of the fleet run: its column (a run folder of its own), the
    nodes that measure its cells, and the cells left."""

    name: str
    column: Column
    nodes: list[Node]
    todo: list[Pending] = field(default_factory=list)


@dataclass
class Flight:
    """A cell handed to a node, not ended yet."""

    machine: Machine
    node: Node
    pending: Pending
    whole_node: bool


def on_one_gpu(cell: Cell) -> bool:
    """Whether the cell runs on a single CUDA device that Ray may choose (``cuda`` or
    ``cuda:0``, which is the GPU Ray gives the task)."""
    return cell.device in ("cuda", "cuda:0")


def resources(node: Node, cell: Cell, per_gpu: bool) -> dict[str, float]:
    """The Ray resources a cell asks of its node: all its CPUs and GPUs, or, with
    ``per_gpu`` on a node of two GPUs or more, one GPU and its share of the CPUs."""
    if per_gpu and node.gpus >= 2 and on_one_gpu(cell):
        return {"num_cpus": node.cpus / node.gpus, "num_gpus": 1}
    return {"num_cpus": node.cpus, "num_gpus": node.gpus}


Submit = Callable[[Pending, Node, dict[str, float]], Any]
"""Start a cell on a node with these resources; its ObjectRef (of a record dict)."""


class Dispatch:
    """Keep each node busy with its machine's next cell, yield each record as it ends
    (``records``), and say when a node is lost (``on_lost``)."""

    def __init__(
        self,
        run_id: str,
        machines: list[Machine],
        submit: Submit,
        per_gpu: bool,
        on_start: Callable[[Machine, Pending, Node], None],
        on_lost: Callable[[Node], None],
    ) -> None:
        self.run_id = run_id
        self.machines = machines
        self.submit = submit
        self.per_gpu = per_gpu
        self.on_start = on_start
        self.on_lost = on_lost
        self.lost: set[str] = set()

    def records(self) -> Iterator[tuple[Column, CellRecord]]:
        """Each cell's column and record as it ends, until every cell has ended or has no
        live node left to run it. On KeyboardInterrupt every cell in flight is cancelled
        (its Ray worker killed, and with it the cell's own worker process) before the
        interrupt goes on."""
        ray = ray_module()
        flights: dict[Any, Flight] = {}
        try:
            while True:
                self._fill(flights)
                if not flights:
                    return
                ready, _ = ray.wait(list(flights), num_returns=1)
                flight = flights.pop(ready[0])
                yield flight.machine.column, self._outcome(ready[0], flight)
        except KeyboardInterrupt:
            for ref in flights:
                ray.cancel(ref, force=True)
            raise

    def _fill(self, flights: dict[Any, Flight]) -> None:
        for machine in self.machines:
            for node in machine.nodes:
                while node.id not in self.lost and (pick := self._next(machine, node, flights)):
                    pending, asked, whole = pick
                    machine.todo.remove(pending)
                    self.on_start(machine, pending, node)
                    ref = self.submit(pending, node, asked)
                    flights[ref] = Flight(machine, node, pending, whole)

    def _next(
        self, machine: Machine, node: Node, flights: dict[Any, Flight]
    ) -> tuple[Pending, dict[str, float], bool] | None:
        """The machine's first cell this node can run and has room for now, the resources
        it asks, and whether they are the whole node."""
        here = [f for f in flights.values() if f.node.id == node.id]
        if any(f.whole_node for f in here):
            return None
        for pending in machine.todo:
            if node.id not in pending.nodes:
                continue
            asked = resources(node, pending.cell, self.per_gpu)
            whole = asked["num_gpus"] == node.gpus
            if (whole and not here) or (not whole and len(here) < int(node.gpus)):
                return pending, asked, whole
        return None

    def _outcome(self, ref: Any, flight: Flight) -> CellRecord:
        """The record the node sent back, or the record of how the cell was lost."""
        from ray import exceptions

        node, pending = flight.node, flight.pending
        try:
            return CellRecord.from_dict(ray_module().get(ref))
        except (exceptions.NodeDiedError, exceptions.TaskUnschedulableError):
            status, reason = "crashed", _lost_reason(node)
            self._lose(node)
        except exceptions.WorkerCrashedError:
            status, reason = "crashed", f"{WORKER_DIED} on {node.name} mid-cell"
            if _died(node):
                reason = _lost_reason(node)
                self._lose(node)
        except exceptions.RayTaskError as exc:
            cause = exc.cause if exc.cause is not None else exc
            status = "failed"
            reason = f"on {node.name}: {type(cause).__name__}: {first_line(cause)}"
        except exceptions.RayError as exc:
            status, reason = "crashed", f"on {node.name}: {type(exc).__name__}: {first_line(exc)}"
        record = CellRecord.new(
            self.run_id,
            pending.cell,
            status,
            reason,
            repetition=pending.repetition,
        )
        record.node = node.stamp()
        return record

    def _lose(self, node: Node) -> None:
        if node.id not in self.lost:
            self.lost.add(node.id)
            self.on_lost(node)


def _lost_reason(node: Node) -> str:
    return f"{NODE_LOST}: {node.name} ({node.address}) left the cluster mid-cell"


def _died(node: Node) -> bool:
    """Whether the cluster calls ``node`` dead within ``DEATH_NOTICE_S``."""
    deadline = time.monotonic() + DEATH_NOTICE_S
    while time.monotonic() < deadline:
        if not any(n["NodeID"] == node.id and n.get("Alive") for n in ray_module().nodes()):
            return True
        time.sleep(1.0)
    return False
