"""Run directories and ``results.jsonl``: one schema-versioned line per cell, appended,
flushed and fsynced as each cell ends, so an interrupted run keeps all it measured."""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
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
REPORT_FILE = "report.md"
HTML_REPORT_FILE = "report.html"
FLEET_FILE = "fleet.json"
"""A fleet run's folder holds this instead of results: its plan, its nodes, and its
columns, each an ordinary run folder inside it (see ``fleet_columns``)."""
WRITTEN_FILES = (
    RESULTS_FILE,
    RUN_FILE,
    ENVIRONMENT_FILE,
    SUITE_FILE,
    SPEEDUP_FILE,
    REPORT_FILE,
    HTML_REPORT_FILE,
)
"""The files of a run directory that a run writes."""
log = logging.getLogger(__name__)


def file_name(text: str) -> str:
    """``text`` as a file name: every run of other characters than letters, digits,
    ``_``, ``.`` and ``-`` made one ``-``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text)


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
        slug = file_name(suite_name).strip("-") or "run"
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
        """An earlier run directory (for --resume); UserError when it is not one, or when
        a file resuming writes is a link or no plain file (a results folder from someone
        else must not make a run write elsewhere)."""
        if not (path / RUN_FILE).is_file():
            raise UserError(
                f"{path} is not a run directory (no {RUN_FILE}): pass a results/<run-id> folder"
            )
        for name in WRITTEN_FILES:
            file = path / name
            if file.is_symlink() or (file.exists() and not file.is_file()):
                raise UserError(
                    f"{file} is a link or no plain file: resume writes only the run's own "
                    "files; start a new run"
                )
        return cls(path)

    def write_json(self, name: str, data: Any) -> None:
        (self.path / name).write_text(json.dumps(data, indent=2, default=str) + "\n")

    def read_json(self, name: str) -> dict[str, Any]:
        """One of the run's JSON files, which must hold an object (UserError otherwise)."""
        return read_json_object(self.path / name, "start a new run")

    def append(self, record: CellRecord) -> None:
        """Append one record durably: write, flush, fsync. A torn last line (a crash
        mid-write) is ended first, so that this record stays a line of its own."""
        path = self.path / RESULTS_FILE
        torn = path.is_file() and path.stat().st_size > 0 and not _ends_with_newline(path)
        data = record.to_dict()
        attached = data.pop("attached", None)
        if attached:
            data["files"] = self.attach(record, attached)
        line = json.dumps(data, default=str)
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(("\n" if torn else "") + line + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def attach(self, record: CellRecord, files: dict[str, str]) -> list[str]:
        """Write a record's files under ``cells/<cell>/`` (a repetition's under its own
        folder); their paths relative to the run folder."""
        name = file_name(record.key)
        if record.repetition:
            name += f"-run{record.repetition + 1}"
        written = []
        for relative, text in files.items():
            if Path(relative).is_absolute() or ".." in Path(relative).parts:
                continue  # a record names files inside its own folder only
            target = self.path / "cells" / name / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            written.append(str(target.relative_to(self.path)))
        return written

    def records(self) -> list[CellRecord]:
        """Every complete record; a torn last line (a crash mid-write) is left out."""
        return read_records(self.path / RESULTS_FILE)

    def drop(self, keys: set[tuple[str, int]]) -> None:
        """Remove the records of these (cell key, repetition) pairs, rewriting
        results.jsonl whole (a copy moved into place), so that they run again."""
        records = self.records()
        kept = [r for r in records if (r.key, r.repetition) not in keys]
        if len(kept) == len(records):
            return
        handle, fresh = tempfile.mkstemp(prefix=f".{RESULTS_FILE}-", dir=self.path)
        with open(handle, "w", encoding="utf-8") as file:
            file.writelines(json.dumps(r.to_dict(), default=str) + "\n" for r in kept)
            file.flush()
            os.fsync(file.fileno())
        os.replace(fresh, self.path / RESULTS_FILE)


def fleet_columns(path: Path) -> list[Path]:
    """The run folders of a fleet run (one per machine column), or ``[path]`` for any
    other folder. UserError when its fleet.json is damaged or names a folder outside."""
    file = path / FLEET_FILE
    if not file.is_file():
        return [path]
    fleet = read_json_object(file, "give a run's results directory")
    columns = fleet.get("columns")
    if not isinstance(columns, list) or not all(
        isinstance(c, dict) and isinstance(c.get("folder"), str) for c in columns
    ):
        raise UserError(f"{file} lists no columns: give a run's results directory")
    folders = []
    for column in columns:
        folder = path / column["folder"]
        if folder.parent != path or folder.name in ("", ".", "..") or folder.is_symlink():
            raise UserError(f"{file} names a folder outside the run: start a new run")
        folders.append(folder)
    return folders


def read_records(path: Path) -> list[CellRecord]:
    """The records of a results.jsonl file. A line cut short by a crash or a power cut
    (the start of a record, or the zeros some file systems leave) is skipped with a
    warning (once per process), and its cell runs again on ``--resume``; any other line
    that is no cell record is a UserError naming the line."""
    if not path.is_file():
        return []
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {path} ({exc.strerror})") from None
    records = []
    fix = "give a run's results directory, or remove the line"
    for number, line in enumerate(content.split(b"\n"), 1):
        where = f"{path} line {number}"
        if not line.strip():
            continue
        torn = not line.strip(b"\0")  # the zeros a file system leaves after a crash
        if not torn:
            try:
                data = _parse(line, where, fix)
            except UserError:
                if not _record_start(line):
                    raise
                torn = True  # a record whose end was never written
        if torn:
            if where not in _warned:
                _warned.add(where)
                log.warning(
                    f"{where} is a record cut short (a crash mid-write): skipped; "
                    "--resume runs its cell again"
                )
            continue
        if not isinstance(data, dict):
            raise UserError(f"{where} is a JSON {type(data).__name__}, not a cell record: {fix}")
        try:
            records.append(CellRecord.from_dict(data))
        except ValidationError as exc:
            problem = exc.errors()[0]
            field = ".".join(str(part) for part in problem["loc"]) or "record"
            raise UserError(
                f"{where} is not a deploybench result ({field}: {problem['msg']}): {fix}"
            ) from None
    return records


_warned: set[str] = set()


def _record_start(line: bytes) -> bool:
    """Whether ``line`` can be the start of a record (every record is ASCII and starts
    ``{"``), so that a line of it that does not parse is a write cut short."""
    return line.isascii() and (line.startswith(b'{"') or b'{"'.startswith(line))


def _parse(raw: bytes, where: str, fix: str) -> Any:
    """The JSON document in ``raw``; a one-line UserError naming ``where`` otherwise."""
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise UserError(f"{where} is not UTF-8 text: {fix}") from None
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
        raise UserError(f"{where} is not JSON ({reason}): {fix}") from None


def read_json(path: Path, fix: str) -> Any:
    """The JSON document at ``path``; a one-line UserError ending in ``fix`` when it cannot
    be read, is not UTF-8 or is not JSON."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {path} ({exc.strerror}): {fix}") from None
    return _parse(raw, str(path), fix)


def read_json_object(path: Path, fix: str) -> dict[str, Any]:
    """``read_json`` of a file that must hold a JSON object."""
    data = read_json(path, fix)
    if not isinstance(data, dict):
        raise UserError(f"{path} holds a JSON {type(data).__name__}, not an object: {fix}")
    return data


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


def check_output_folders(*paths: Path | None) -> None:
    """UserError naming the first of ``paths`` (None: not asked for) whose folder does not
    exist: checked before the work, so that nothing is computed for a file never written."""
    for path in paths:
        if path is not None and not path.parent.is_dir():
            raise UserError(f"cannot write {path}: folder {path.parent} does not exist")


def write_output(path: Path, text: str) -> None:
    """Write a report or summary file; UserError naming the fix when it cannot be."""
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot write {path} ({exc.strerror}): choose another path") from None
