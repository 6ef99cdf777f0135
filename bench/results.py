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

from pydantic import ValidationError

from bench.core.errors import UserError
from bench.core.record import CellRecord

RESULTS_FILE = "results.jsonl"
RUN_FILE = "run.json"
ENVIRONMENT_FILE = "environment.json"
SUITE_FILE = "suite.toml"
SPEEDUP_FILE = "speedups.json"


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

    def append(self, record: CellRecord) -> None:
        """Append one record durably: write, flush, fsync. A torn last line (a crash
        mid-write) is ended first, so that this record stays a line of its own."""
        path = self.path / RESULTS_FILE
        torn = path.is_file() and path.stat().st_size > 0 and not _ends_with_newline(path)
        line = json.dumps(record.to_dict(), default=str)
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(("\n" if torn else "") + line + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def records(self) -> list[CellRecord]:
        """Every complete record; a torn last line (a crash mid-write) is left out."""
        return read_records(self.path / RESULTS_FILE)


def read_records(path: Path) -> list[CellRecord]:
    """The records of a results.jsonl file, skipping lines that are not JSON (a torn
    write); UserError naming the line when one is JSON but no cell record."""
    if not path.is_file():
        return []
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            continue
        try:
            records.append(CellRecord.from_dict(data))
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(part) for part in problem["loc"]) or "record"
            raise UserError(
                f"{path} line {number} is not a deploybench result ({where}: {problem['msg']}): "
                "give a run's results directory"
            ) from None
    return records


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"
