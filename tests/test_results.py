"""Run directories and results.jsonl: naming, durable appends, torn lines, resumption."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from fixtures.records import ended, timed

from bench.core.cell import Cell
from bench.core.errors import UserError
from bench.core.record import SCHEMA_VERSION, CellRecord
from bench.harness.results import RESULTS_FILE, RUN_FILE, RunDir, read_records

CELL = Cell("mlp", "onnxruntime", "cpu", "fp32", 1, "latency")


def test_create_names_the_run_by_time_and_suite(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path / "results", "my suite/v2")
    assert run.path.is_dir()
    assert run.path.parent == tmp_path / "results"
    assert re.fullmatch(r"\d{8}-\d{6}-my-suite-v2", run.run_id), run.run_id
    assert list(run.path.iterdir()) == []


def test_create_never_reuses_a_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "strftime", lambda fmt, *args: "20260101-120000")
    first = RunDir.create(tmp_path, "smoke")
    second = RunDir.create(tmp_path, "smoke")
    third = RunDir.create(tmp_path, "smoke")
    assert first.run_id == "20260101-120000-smoke"
    assert second.run_id == "20260101-120000-smoke-2"
    assert third.run_id == "20260101-120000-smoke-3"
    assert all(run.path.is_dir() for run in (first, second, third))


def test_a_suite_name_of_symbols_still_names_the_run(tmp_path: Path) -> None:
    assert RunDir.create(tmp_path, "///").run_id.endswith("-run")


def test_append_writes_one_json_line_per_record(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, "t")
    other = Cell("mlp", "pytorch", "cpu", "fp32", 1, "throughput")
    run.append(timed(CELL, [1.0, 1.5, 2.0], run_id=run.run_id))
    run.append(ended(other, "skipped", "no reason at all", run_id=run.run_id))
    lines = (run.path / RESULTS_FILE).read_text().splitlines()
    assert len(lines) == 2
    records = [json.loads(line) for line in lines]
    assert [r["schema_version"] for r in records] == [SCHEMA_VERSION, SCHEMA_VERSION]
    assert [r["key"] for r in records] == [CELL.key, other.key]
    assert records[0]["status"] == "ok" and records[0]["latency_ms"]["median"] == 1.5
    assert records[0]["raw_times_ms"] == [1.0, 1.5, 2.0]
    assert records[0]["run_id"] == run.run_id
    assert records[0]["requested"] == {"precision": "fp32", "device": "cpu"}
    assert records[1]["reason"] == "no reason at all"
    assert "latency_ms" not in records[1]  # a cell that did not run has no figures
    assert [r.to_dict() for r in run.records()] == records


def test_a_stored_record_reads_back_key_for_key(tmp_path: Path) -> None:
    """An older writer's line, unknown keys and nulls included, round-trips unchanged."""
    stored = {
        "schema_version": 1,
        "run_id": "old",
        "key": CELL.key,
        "cell": CELL.to_dict(),
        "status": "ok",
        "reason": None,
        "requested": {"precision": "fp32", "device": "cpu"},
        "model": None,
        "executed": {"precision": "fp32", "device": "cpu", "provider": None, "io_binding": False},
        "throughput": {"samples_per_s": None, "window_s": 0.0},
        "accuracy": {"verdict": "pass", "top1_agreement": None},
        "a_later_figure": {"kept": True},
        "started_at": 1.0,
        "finished_at": 2.0,
    }
    record = CellRecord.from_dict(stored)
    assert record.to_dict() == stored
    assert record.executed is not None and record.executed.model_extra == {"io_binding": False}
    assert record.verdict == "pass" and record.samples_per_s is None


@pytest.mark.parametrize(
    "line",
    ['{"key": "x", "status": "ok"}', "17", '{"key": "x", "cell": {"model": "m"}, "status": "ok"}'],
)
def test_a_line_that_is_no_record_is_a_one_line_error(tmp_path: Path, line: str) -> None:
    path = tmp_path / RESULTS_FILE
    path.write_text(line + "\n")
    with pytest.raises(UserError) as caught:
        read_records(path)
    message = str(caught.value)
    assert "\n" not in message and re.search(
        r"line 1 is (not a deploybench result|a JSON int)", message
    )


def test_a_new_record_is_timed_when_it_ends() -> None:
    before = time.time()
    record = CellRecord.new("r", CELL, "failed", "boom", started_at=before - 5)
    assert record.started_at == before - 5
    assert record.finished_at is not None and record.finished_at >= before
    assert record.to_dict()["cell"] == CELL.to_dict()


def test_records_skip_a_torn_last_line(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, "t")
    run.append(timed(CELL, [1.0]))
    with open(run.path / RESULTS_FILE, "a") as handle:
        handle.write('{"schema_version": 1, "key": "mlp/pytorch/cp')  # a crash mid-write
    records = run.records()
    assert [r.key for r in records] == [CELL.key]


def test_a_record_appended_after_a_torn_line_is_kept(tmp_path: Path) -> None:
    """Resuming after a crash mid-write must not glue the next record onto the torn line."""
    run = RunDir.create(tmp_path, "t")
    run.append(timed(CELL, [1.0]))
    with open(run.path / RESULTS_FILE, "a") as handle:
        handle.write('{"schema_version": 1, "key": "mlp/pytorch/cp')
    other = Cell("mlp", "pytorch", "cpu", "fp32", 1, "latency")
    run.append(timed(other, [1.0]))
    assert [r.key for r in run.records()] == [CELL.key, other.key]


def test_records_of_a_run_without_results(tmp_path: Path) -> None:
    assert RunDir.create(tmp_path, "t").records() == []
    assert read_records(tmp_path / "missing.jsonl") == []


def test_json_files_round_trip(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, "t")
    run.write_json(RUN_FILE, {"path": Path("/x"), "n": [1, 2]})
    assert run.read_json(RUN_FILE) == {"path": "/x", "n": [1, 2]}


def test_existing_accepts_a_run_directory(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, "t")
    run.write_json(RUN_FILE, {})
    assert RunDir.existing(run.path) == run


@pytest.mark.parametrize("make", [lambda p: p.mkdir(), lambda p: None])
def test_existing_refuses_what_is_not_a_run_directory(tmp_path: Path, make) -> None:
    path = tmp_path / "not-a-run"
    make(path)
    with pytest.raises(UserError) as caught:
        RunDir.existing(path)
    message = str(caught.value)
    assert "\n" not in message
    assert str(path) in message and "not a run directory" in message
