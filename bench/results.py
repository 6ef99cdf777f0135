"""Run directories and ``results.jsonl``: one schema-versioned line per cell, appended,
flushed and fsynced as each cell ends, so an interrupted run keeps all it measured."""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import UserError
from bench.plan import Cell

SCHEMA_VERSION = 1
RESULTS_FILE = "results.jsonl"
RUN_FILE = "run.json"
ENVIRONMENT_FILE = "environment.json"
SUITE_FILE = "suite.toml"
SPEEDUP_FILE = "speedups.json"


def cell_result(
    run_id: str,
    cell: Cell,
    status: str,
    reason: str | None = None,
    measured: dict[str, Any] | None = None,
    model_info: dict[str, Any] | None = None,
    started_at: float | None = None,
) -> dict[str, Any]:
    """One results.jsonl record. ``status`` is ok, skipped, failed, crashed or timeout."""
    finished_at = time.time()
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "key": cell.key,
        "cell": cell.to_dict(),
        "status": status,
        "reason": reason,
        "requested": {"precision": cell.precision, "device": cell.device},
        "model": model_info,
        **(measured or {}),
        "started_at": started_at or finished_at,
        "finished_at": finished_at,
    }


@dataclass(frozen=True)
class RunDir:
    """``results/<run-id>/`` and the files in it."""

    path: Path

    @property
    def run_id(self) -> str:
        return self.path.name

    @classmethod
    def create(cls, root: Path, suite_name: str) -> RunDir:
        """A new, empty run directory named by the time and the suite."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", suite_name).strip("-") or "run"
        path = root / f"{stamp}-{slug}"
        suffix = 1
        while path.exists():
            suffix += 1
            path = root / f"{stamp}-{slug}-{suffix}"
        try:
            path.mkdir(parents=True)
        except OSError as exc:
            raise UserError(
                f"cannot create a run directory under {root} ({exc.strerror}): "
                "pass a writable folder with --results-dir"
            ) from None
        return cls(path)

    @classmethod
    def existing(cls, path: Path) -> RunDir:
        """An earlier run directory (for --resume); UserError when it is not one."""
        if not (path / RUN_FILE).is_file():
            raise UserError(
                f"{path} is not a run directory (no {RUN_FILE}): pass a results/<run-id> folder"
            )
        return cls(path)

    def write_json(self, name: str, data: Any) -> None:
        (self.path / name).write_text(json.dumps(data, indent=2, default=str) + "\n")

    def read_json(self, name: str) -> Any:
        return json.loads((self.path / name).read_text())

    def append(self, record: dict[str, Any]) -> None:
        """Append one record durably: write, flush, fsync. A torn last line (a crash
        mid-write) is ended first, so that this record stays a line of its own."""
        path = self.path / RESULTS_FILE
        torn = path.is_file() and path.stat().st_size > 0 and not _ends_with_newline(path)
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(("\n" if torn else "") + json.dumps(record, default=str) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def records(self) -> list[dict[str, Any]]:
        """Every complete record; a torn last line (a crash mid-write) is left out."""
        return read_records(self.path / RESULTS_FILE)


def read_records(path: Path) -> list[dict[str, Any]]:
    """The records of a results.jsonl file, skipping lines that do not parse."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"
