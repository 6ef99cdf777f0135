"""Each side of a comparison, read from a results directory or a baseline file: its
environment fingerprint and, per cell, its status and one set of metrics per repetition.

A baseline file (``baseline save``) holds exactly this and nothing more (no raw times), so
it is small enough to commit to a repository.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.core.errors import UserError
from bench.core.metrics import read_metrics
from bench.core.record import CellRecord
from bench.harness.environment import check_environment, read_environment
from bench.harness.repetitions import by_key, status_of
from bench.harness.results import (
    ENVIRONMENT_FILE,
    RESULTS_FILE,
    RUN_FILE,
    RunDir,
    fleet_columns,
    read_json,
    read_json_object,
)

BASELINE_FORMAT = "deploybench-baseline"
BASELINE_VERSION = 1


@dataclass
class CellRuns:
    """One cell on one side. ``status`` is ``ok`` only when every repetition ran; else the
    first other status, and ``reason`` says how many repetitions had it. ``repetitions``
    holds the metrics of each repetition that ran."""

    key: str
    cell: dict[str, Any]
    status: str
    reason: str | None
    repetitions: list[dict[str, float]]
    accuracy: dict[str, Any] | None = None
    executed: dict[str, Any] = field(default_factory=dict)
    valid: list[bool] | None = None
    """A LoadGen cell's verdict per repetition that ran (VALID: true); None for others."""


@dataclass
class Side:
    """A results directory or a baseline file, as the gate sees it."""

    label: str
    run_id: str
    environment: dict[str, Any]
    cells: dict[str, CellRuns]
    settings: dict[str, Any] = field(default_factory=dict)
    """How the run measured (the suite's [measure] table, threads, requests in flight)."""


def load_side(path: Path) -> Side:
    """The side at ``path``: a results directory (with results.jsonl) or a baseline file."""
    if path.is_dir():
        columns = fleet_columns(path)
        if len(columns) > 1:
            raise UserError(
                f"{path} is a fleet run of {len(columns)} machines: give one machine's folder "
                f"(e.g. {columns[0]})"
            )
        return _from_run_dir(columns[0])
    if path.is_file():
        return _from_baseline(path)
    raise UserError(f"{path} does not exist: give a results directory or a baseline file")


def side_from_records(
    label: str, run_id: str, environment: dict[str, Any], records: list[CellRecord]
) -> Side:
    """A side built from results.jsonl records (several per cell when repeated)."""
    cells = {key: _cell_runs(key, group) for key, group in by_key(records).items()}
    return Side(label, run_id, environment, cells)


def baseline_document(side: Side, source: str) -> dict[str, Any]:
    """What ``baseline save`` writes: the environment, and per cell its status and the
    metrics of each repetition."""
    return {
        "format": BASELINE_FORMAT,
        "version": BASELINE_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "source": source,
        "run_id": side.run_id,
        "environment": side.environment,
        "settings": side.settings,
        "cells": [asdict(cell) for cell in side.cells.values()],
    }


def _from_run_dir(path: Path) -> Side:
    if not (path / RESULTS_FILE).is_file():
        raise UserError(f"{path} holds no {RESULTS_FILE}: give a run's results directory")
    run_dir = RunDir(path)
    records = run_dir.records()
    if not records:
        raise UserError(f"{path / RESULTS_FILE} has no results yet: finish the run first")
    fix = "give a run's results directory"
    environment_file, run_file = path / ENVIRONMENT_FILE, path / RUN_FILE
    environment = read_environment(environment_file, fix) if environment_file.is_file() else {}
    run = read_json_object(run_file, fix) if run_file.is_file() else {}
    side = side_from_records(str(path), run.get("run_id", path.name), environment, records)
    config = run.get("config")
    side.settings = measure_settings(config if isinstance(config, dict) else {})
    return side


def measure_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The settings that change what a number means, flattened: ``measure.min_duration_s``,
    ``suite.threads``, ``suite.in_flight``."""
    suite, measure = (config.get(table) for table in ("suite", "measure"))
    settings = {f"measure.{k}": v for k, v in measure.items()} if isinstance(measure, dict) else {}
    if isinstance(suite, dict):
        settings.update({f"suite.{k}": suite[k] for k in ("threads", "in_flight") if k in suite})
    return settings


def _from_baseline(path: Path) -> Side:
    document = _read_json(path)
    if not isinstance(document, dict) or document.get("format") != BASELINE_FORMAT:
        raise UserError(
            f"{path} is not a deploybench baseline: make one with "
            "python cli.py baseline save RUN_DIR FILE"
        )
    if document.get("version") != BASELINE_VERSION:
        raise UserError(
            f"{path} is baseline version {document.get('version')}, this deploybench reads "
            f"version {BASELINE_VERSION}: save the baseline again"
        )
    try:
        cells = {c["key"]: _baseline_cell(c) for c in document["cells"]}
        environment = check_environment(
            document["environment"], f"{path} (a baseline)", "save it again"
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{path} is a damaged baseline ({exc}): save it again") from None
    return Side(
        str(path),
        document.get("run_id", path.stem),
        environment,
        cells,
        document.get("settings") or {},
    )


def _baseline_cell(data: dict[str, Any]) -> CellRuns:
    """One cell of a baseline file; TypeError or ValueError when it is not as saved."""
    cell = CellRuns(**data)
    if not isinstance(cell.cell, dict) or not isinstance(cell.status, str):
        raise TypeError(f"cell {cell.key!r} has no cell description or status")
    if not isinstance(cell.repetitions, list) or not all(
        isinstance(r, dict)
        and all(isinstance(v, (int, float)) and math.isfinite(v) for v in r.values())
        for r in cell.repetitions
    ):
        raise ValueError(f"cell {cell.key!r} has repetitions that are not tables of finite figures")
    if cell.status == "ok" and not cell.repetitions:
        raise ValueError(f"cell {cell.key!r} ran but has no repetition")
    return cell


def _cell_runs(key: str, records: list[CellRecord]) -> CellRuns:
    ran = [r for r in records if r.ok]
    first = (ran or records)[0]
    status, reason = status_of(records)
    accuracy = first.accuracy
    return CellRuns(
        key=key,
        cell=asdict(first.cell),
        status=status,
        reason=reason,
        repetitions=[read_metrics(r) for r in ran],
        accuracy={
            "verdict": accuracy.verdict,
            "scaled_error": accuracy.scaled_error,
            "tolerance": accuracy.tolerance,
            **({"dataset": accuracy.dataset.to_dict()} if accuracy.dataset else {}),
        }
        if accuracy
        else None,
        executed=first.executed.to_dict() if first.executed else {},
        valid=[bool(r.loadgen.valid) for r in ran] if ran and ran[0].loadgen else None,
    )


def _read_json(path: Path) -> Any:
    return read_json(path, "give a results directory or a baseline file")
