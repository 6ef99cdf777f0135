"""What runs on a node of the fleet, as Ray tasks: the probe (what the node is, which
deploybench it runs, which cells it can serve), one cell measured in its own worker as on
a local run, and the power state at the end. Each returns plain data."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.core.cell import Cell
from bench.core.spec import PreparedModel
from bench.fleet.shipping import Unit, materialize
from bench.harness.config import BenchConfig
from bench.harness.environment import fingerprint, local_end_state
from bench.harness.plan import ModelRequest, expand
from bench.harness.runner import measure
from exporters.cache import default_cache_dir

PACKAGES = ("bench", "exporters", "runtimes")


def source_digest() -> str:
    """A digest of this deploybench's Python sources (its packages and cli.py) as
    installed: a git checkout and a wheel of the same code agree, and an uncommitted
    change is a difference."""
    import bench

    root = Path(bench.__file__).resolve().parent.parent
    files = sorted(f for package in PACKAGES for f in (root / package).rglob("*.py"))
    files += [root / "cli.py"] if (root / "cli.py").is_file() else []
    digest = hashlib.sha256()
    for file in files:
        digest.update(str(file.relative_to(root)).encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()[:12]


@dataclass
class NodeReport:
    """A node as its probe found it: its fingerprint (environment.json), the deploybench
    it runs, why it would skip each planned cell (None: it can run it), in plan order, and
    the user factories it cannot import."""

    environment: dict[str, Any]
    source: str
    skip_reasons: list[str | None]
    missing_factories: list[str]

    @property
    def version(self) -> str:
        """``0.1.0, source 1a2b3c4d5e6f``: what must match across the fleet."""
        number = (self.environment.get("libraries") or {}).get("deploybench") or "unknown"
        return f"{number}, source {self.source}"


def probe(config: BenchConfig, models: list[ModelRequest]) -> NodeReport:
    """This node's fingerprint, its sources' digest, its skip reason for every cell of
    the suite, and the modules of user factories (``--model``) it cannot import."""
    missing = []
    for model in models:
        module = model.ref.split(":", 1)[0]
        if model.kind == "factory" and not _importable(module):
            missing.append(module)
    skips = [p.skip_reason for p in expand(config, models)]
    return NodeReport(fingerprint(), source_digest(), skips, missing)


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


@dataclass
class CellTask:
    """One cell to measure on a node: the model as prepared on the driver, with its files
    in Ray's object store, and where the record says it ran."""

    cell: Cell
    repetition: int
    model: PreparedModel
    units: list[Unit]
    config: BenchConfig
    run_id: str
    node: dict[str, Any]
    threads: int = 0
    """Host threads when the node measures one cell per GPU (0: the suite's choice)."""


def run_cell(task: CellTask, *contents: dict) -> dict[str, Any]:
    """Measure the cell here (in its own worker, bounded by the cell timeout, as a local
    run does); its record as a dict, stamped with this node and the GPUs Ray gave it.
    ``contents`` are the model's units, fetched by Ray before the task started."""
    import ray

    cache_dir = default_cache_dir()
    model = materialize(task.model, task.units, list(contents), cache_dir / "fleet")
    config = task.config
    if task.threads:
        suite = config.suite.model_copy(update={"threads": task.threads})
        config = config.model_copy(update={"suite": suite})
    record = measure(task.cell, model, config, cache_dir, task.run_id, task.repetition)
    record.node = {**task.node, "gpu_ids": [str(g) for g in ray.get_gpu_ids()]}
    return record.to_dict()


def end_state(environment: dict[str, Any]) -> tuple[dict[str, Any], list[str], list[str]]:
    """The node's environment.json with its power state and load at the end added, how
    its power state changed over the run, and why it was not quiet."""
    with tempfile.TemporaryDirectory(prefix="deploybench-fleet-") as scratch:
        file = Path(scratch) / "environment.json"
        file.write_text(json.dumps(environment, default=str))
        changes, noise = local_end_state(file)
        return json.loads(file.read_text()), changes, noise
