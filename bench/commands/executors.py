"""The executors a run can be measured by, by the name run.json keeps
(docs/contributing.md, "Adding an executor"): this machine, a device over SSH by its own
tools or by deploybench there, a Ray cluster."""

from __future__ import annotations

from bench.core.errors import UserError
from bench.fleet.driver import RayExecutor
from bench.harness.executor import Executor
from bench.harness.local import LocalExecutor
from bench.remote.agent import AgentExecutor
from bench.remote.tools import ToolsExecutor

EXECUTORS: dict[str, type[Executor]] = {
    executor.name: executor
    for executor in (LocalExecutor, ToolsExecutor, AgentExecutor, RayExecutor)
}


def get_executor(name: str) -> type[Executor]:
    """The executor registered as ``name``; a UserError lists the valid names."""
    try:
        return EXECUTORS[name]
    except KeyError:
        raise UserError(
            f"unknown executor '{name}': choose one of {', '.join(EXECUTORS)}"
        ) from None
