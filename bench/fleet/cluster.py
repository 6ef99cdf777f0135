"""Joining a Ray cluster and reading its nodes: the only module that calls ``ray.init``.

Ray is an optional extra (``pip install 'deploybench[fleet]'``): it is imported here, when
a fleet run starts, and nowhere at import time.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.core.errors import UserError

INSTALL = "pip install 'deploybench[fleet]'"


def ray_module() -> Any:
    """The ``ray`` module; UserError naming the extra when it is not installed."""
    try:
        import ray
    except ImportError:
        raise UserError(f"Ray is not installed: {INSTALL} (on every node too)") from None
    return ray


@dataclass(frozen=True)
class Node:
    """A live node of the cluster: its Ray id, a name for columns and messages (``ray
    start --node-name``, else its address), and what it offers Ray."""

    id: str
    name: str
    address: str
    cpus: float
    gpus: float

    def stamp(self) -> dict[str, Any]:
        """What a record keeps of the node that measured it."""
        return {"name": self.name, "id": self.id, "address": self.address}


def join(address: str, timeout_s: float) -> None:
    """Connect this process to the cluster at ``address`` (``auto``, ``HOST:PORT`` or
    ``ray://HOST:PORT``) as a driver. UserError, in one line, when nothing answers there
    (checked first with a plain TCP connection: Ray itself retries for minutes)."""
    ray = ray_module()
    if address != "auto":
        _check_reachable(address, timeout_s)
    elsewhere = (
        ""
        if address == "auto" or address.startswith("ray://")
        else "; from a machine outside the cluster, run on a node of it (ray start --address "
        f"{address} first) or give ray://HEAD:10001 (Ray Client)"
    )
    try:
        ray.init(
            address=address,
            log_to_driver=False,
            logging_level=logging.ERROR,
            include_dashboard=False,
        )
    except ConnectionError as exc:
        hint = "start one with: ray start --head" if address == "auto" else "check the address"
        raise UserError(
            f"no Ray cluster at {address} ({first_line(exc)}): {hint}{elsewhere}"
        ) from None
    except (RuntimeError, ValueError) as exc:  # Ray's own checks: versions, this machine's IP
        raise UserError(
            f"cannot join the Ray cluster at {address} ({first_line(exc)}): install the "
            f"cluster's Ray and Python versions here{elsewhere}"
        ) from None


def first_line(exc: BaseException) -> str:
    """An exception's first line (its type's name when it says nothing)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def pinned(function: Callable[..., Any], node: Node, **resources: float) -> Any:
    """``function`` as a Ray task that runs on ``node`` and nowhere else, asking it for
    ``resources`` (none by default: a probe that measures nothing); never retried, so a
    cell is measured once."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    options: dict[str, Any] = {"num_cpus": 0, **resources, "max_retries": 0}
    strategy = NodeAffinitySchedulingStrategy(node.id, soft=False)
    return ray_module().remote(function).options(scheduling_strategy=strategy, **options)


def leave() -> None:
    """Disconnect from the cluster (the nodes and their processes stay)."""
    ray = ray_module()
    if ray.is_initialized():
        ray.shutdown()


def _check_reachable(address: str, timeout_s: float) -> None:
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise UserError(
            f"--cluster {address} is not an address: give HOST:PORT (the head's GCS port, "
            "6379 by default), ray://HOST:PORT, or auto"
        )
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else exc.strerror or str(exc)
        raise UserError(
            f"no Ray cluster answers at {address} ({reason}): start it with ray start --head "
            "there, or check the address and port"
        ) from None


def live_nodes() -> list[Node]:
    """The cluster's live nodes, named uniquely (a name two nodes share gets each one's
    id prefix)."""
    ray = ray_module()
    found = [n for n in ray.nodes() if n.get("Alive")]
    names = [str(n.get("NodeName") or n.get("NodeManagerAddress")) for n in found]
    nodes = []
    for info, name in zip(found, names, strict=True):
        node_id = str(info["NodeID"])
        resources = info.get("Resources") or {}
        nodes.append(
            Node(
                id=node_id,
                name=name if names.count(name) == 1 else f"{name}-{node_id[:6]}",
                address=str(info.get("NodeManagerAddress")),
                cpus=float(resources.get("CPU", 0)),
                gpus=float(resources.get("GPU", 0)),
            )
        )
    return nodes


def chosen_nodes(nodes: list[Node], wanted: list[str], address: str) -> list[Node]:
    """The nodes named in ``wanted`` (by name, address or id prefix; all when empty) that
    offer Ray a CPU: a head started with ``--num-cpus 0`` takes no work, as Ray means it.
    UserError for a name no node has, or when no node is left."""
    chosen = nodes
    if wanted:
        chosen = []
        for want in wanted:
            hits = [n for n in nodes if want in (n.name, n.address)]
            hits = hits or [n for n in nodes if n.id.startswith(want)]
            if not hits:
                names = ", ".join(n.name for n in nodes)
                raise UserError(f"no node of the cluster at {address} is '{want}' (nodes: {names})")
            chosen += [n for n in hits if n not in chosen]
    working = [n for n in chosen if n.cpus > 0]
    if not working:
        raise UserError(
            f"no node of the cluster at {address} offers Ray a CPU to measure on: start "
            "worker nodes (ray start --address ...) or choose others with --nodes"
        )
    return working
