"""Shipping a configuration: the worker job that writes the artifact to deploy.

Once a configuration is chosen (runtime, device, precision, batch, threads, requests in
flight, runtime options), ``ship_artifact`` builds and loads it exactly as a measured
cell's worker does (``bench.harness.worker.measure_cell``), has the runtime write the file
its session loaded and a run.py that loads it the same way (``Runtime.ship``), checks that
run.py's own ``load`` and ``infer`` give the session's outputs on the same inputs, and
writes manifest.json beside them: what ran (read back from the session), the settings,
the measured figures, the environment and a SHA-256 digest of every shipped file.

It imports the cell's framework: run it in a worker process, as every cell is
(``run_in_worker(ship_artifact, job, timeout_s)``).
"""

from __future__ import annotations

import hashlib
import json
import runpy
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.core.cell import Cell
from bench.core.errors import UserError
from bench.core.settings import RuntimeSettings
from bench.core.spec import PreparedModel, make_inputs
from bench.harness.environment import git_state
from bench.harness.isolation import enter_phase
from bench.harness.worker import load_options
from runtimes import get_runtime
from runtimes.shipping import request_sizes

MANIFEST = "manifest.json"
SNIPPET = "run.py"
TOLERANCE = 1e-3
"""How far run.py's outputs may be from the session's, relative to the largest magnitude
of the session's output: the same runtime on the same file with the same settings gives
the same numbers, but a torch.export program may order a few operations otherwise."""


@dataclass(frozen=True)
class ShipJob:
    """A configuration to ship: the cell and prepared model (with its QDQ copy for an int8
    cell), the threads and requests in flight it was measured with, the suite's batch
    sizes (a TensorRT profile spans them), the runtime's options, the cache to build in,
    the folder to write (absent or empty), and what goes into the manifest as given: the
    measured ``figures`` and the ``environment`` fingerprint
    (``bench.harness.environment.fingerprint()``)."""

    cell: Cell
    model: PreparedModel
    threads: int
    in_flight: int
    batch_sizes: tuple[int, ...]
    options: RuntimeSettings
    cache_dir: Path
    out_dir: Path
    figures: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ShipManifest:
    """manifest.json: the cell shipped, the model's tensors, the runtime (its version, and
    the provider its session read back), what ran as read back, how it was loaded
    (``load``: the harness's view; ``settings``: the runtime's, as run.py applies them),
    each shipped file's SHA-256, how closely run.py matched the session (``check``), the
    figures and environment given, the deploybench commit (None outside git) and notes."""

    cell: dict[str, Any]
    model: dict[str, Any]
    runtime: dict[str, Any]
    executed: dict[str, Any]
    load: dict[str, Any]
    settings: dict[str, Any]
    files: dict[str, str]
    check: dict[str, Any]
    figures: dict[str, Any]
    environment: dict[str, Any]
    deploybench: dict[str, Any] | None
    notes: tuple[str, ...]
    schema: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "notes": list(self.notes)}


def ship_artifact(job: ShipJob) -> ShipManifest:
    """Write the artifact of ``job.cell`` into ``job.out_dir``: the runtime's files,
    run.py and manifest.json (see the module's docstring). UserError for a train cell or
    a folder that holds files; RuntimeError when run.py does not reproduce the session."""
    cell, model, out_dir = job.cell, job.model, job.out_dir
    if cell.scenario == "train":
        raise UserError(f"{cell.key} trains: ship its latency or throughput cell")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        raise UserError(f"{out_dir} holds files already: ship into a new or empty folder")
    options = load_options(cell, model, job.threads, job.in_flight, job.options, job.batch_sizes)
    runtime_class = get_runtime(cell.runtime)
    enter_phase("import")
    runtime_class.import_framework()
    runtime = runtime_class()
    enter_phase("build")
    built = runtime.build(model, cell.target, options, job.cache_dir)
    enter_phase("load")
    session = runtime.load(built, model, cell.target, options)
    feeds = make_inputs(model.inputs, request_sizes(model, cell.batch), model.seed)
    enter_phase("first inference")
    expected = session.infer(feeds)
    executed = session.executed
    enter_phase("ship")
    out_dir.mkdir(parents=True, exist_ok=True)
    shipped = runtime.ship(built, model, cell.target, options, out_dir)
    session.close()
    (out_dir / SNIPPET).write_text(shipped.snippet)
    enter_phase("check")
    check = _check(out_dir / SNIPPET, feeds, expected)
    notes = [*built.notes, *shipped.notes]
    if job.in_flight != 1:
        kept = job.in_flight or "the runtime's own number of"
        notes.append(f"measured with {kept} requests in flight; run.py sends one at a time")
    manifest = ShipManifest(
        cell={**asdict(cell), "key": cell.key},
        model={
            "name": model.name,
            "source": model.source,
            "task": model.task,
            "seed": model.seed,
            "inputs": [spec.to_dict() for spec in model.inputs],
            "outputs": [spec.to_dict() for spec in model.outputs],
        },
        runtime={"name": cell.runtime, "version": shipped.version, "provider": executed.provider},
        executed={
            "precision": executed.precision,
            "device": executed.device,
            "threads": executed.threads,
            "in_flight": job.in_flight,
            "details": executed.details,
        },
        load={
            "threads": job.threads,
            "in_flight": job.in_flight,
            "scenario": cell.scenario,
            "batch": cell.batch,
            "batch_sizes": list(job.batch_sizes),
            "options": job.options.model_dump(mode="json"),
        },
        settings=shipped.settings,
        files={name: sha256(out_dir / name) for name in (*shipped.files, SNIPPET)},
        check=check,
        figures=job.figures,
        environment=job.environment,
        deploybench=job.environment.get("git") or git_state(),
        notes=tuple(notes),
    )
    text = json.dumps(manifest.to_dict(), indent=2, default=str)
    (out_dir / MANIFEST).write_text(text + "\n")
    return manifest


def _check(
    script: Path, feeds: dict[str, np.ndarray], expected: dict[str, np.ndarray]
) -> dict[str, Any]:
    """run.py's own ``load`` and ``infer`` (imported, not run as a script) on ``feeds``:
    every output of the session, in its shape, within ``TOLERANCE`` of it; what was
    compared and the largest relative difference. RuntimeError naming the output where
    not."""
    snippet = runpy.run_path(str(script))
    outputs = snippet["infer"](snippet["load"](), feeds)
    worst = 0.0
    for name, value in expected.items():
        if name not in outputs:
            given = ", ".join(outputs)
            raise RuntimeError(f"run.py gives no output '{name}' (it gives {given})")
        reference = np.asarray(value, np.float64)
        got = np.asarray(outputs[name], np.float64)
        if got.shape != reference.shape:
            raise RuntimeError(f"run.py's '{name}' is {got.shape}, the session's {reference.shape}")
        difference = np.abs(got - reference)
        difference[np.isnan(got) & np.isnan(reference)] = 0.0
        scale = max(1.0, float(np.abs(reference[np.isfinite(reference)]).max(initial=0.0)))
        relative = float(np.nan_to_num(difference, nan=np.inf).max(initial=0.0)) / scale
        if relative > TOLERANCE:
            raise RuntimeError(
                f"run.py's '{name}' differs from the session's by {relative:.3g} of its "
                f"largest value (allowed: {TOLERANCE:g})"
            )
        worst = max(worst, relative)
    return {
        "inputs": {name: list(value.shape) for name, value in feeds.items()},
        "outputs": {name: list(np.shape(value)) for name, value in expected.items()},
        "max_difference": worst,
        "tolerance": TOLERANCE,
    }


def sha256(path: Path) -> str:
    """The SHA-256 of the file's content as hex, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
