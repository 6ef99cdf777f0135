"""Worker isolation: each outcome of a spawned job becomes a status, never a crash here."""

from __future__ import annotations

import os
import time
from pathlib import Path

import psutil
import pytest
from fixtures import workers

from bench.isolation import run_in_worker


def test_ok_returns_the_payload_from_another_process() -> None:
    outcome = run_in_worker(workers.echo, {"value": 21}, timeout_s=60)
    assert outcome.status == "ok"
    assert outcome.reason is None
    assert outcome.payload is not None
    assert outcome.payload["doubled"] == 42
    assert outcome.payload["pid"] != os.getpid()


def test_user_error_is_an_error_with_its_message() -> None:
    outcome = run_in_worker(workers.user_error, {}, timeout_s=60)
    assert outcome.status == "error"
    assert outcome.reason == "bad input: give --shape input=1x8"


def test_exception_is_a_failure_with_one_line_and_the_traceback() -> None:
    outcome = run_in_worker(workers.value_error, {}, timeout_s=60)
    assert outcome.status == "failed"
    assert outcome.reason == "ValueError: the value is wrong"
    assert outcome.payload is None
    traceback = outcome.traceback or ""
    assert "Traceback" in traceback and "value_error" in traceback and "ValueError" in traceback


@pytest.mark.parametrize(
    ("func", "signal_name"), [(workers.abort, "SIGABRT"), (workers.segfault, "SIGSEGV")]
)
def test_death_by_signal_is_a_crash_naming_the_signal(func, signal_name: str) -> None:
    outcome = run_in_worker(func, {}, timeout_s=60)
    assert outcome.status == "crashed"
    assert outcome.reason is not None and signal_name in outcome.reason
    assert outcome.payload is None


def test_exit_without_a_result_is_a_crash_with_the_code() -> None:
    outcome = run_in_worker(workers.exit_3, {}, timeout_s=60)
    assert outcome.status == "crashed"
    assert outcome.reason is not None and "exited with code 3" in outcome.reason


def test_a_hung_worker_times_out_and_is_gone(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    start = time.monotonic()
    outcome = run_in_worker(workers.sleep_forever, {"pid_file": str(pid_file)}, timeout_s=2)
    elapsed = time.monotonic() - start
    assert outcome.status == "timeout"
    assert outcome.reason is not None and "2 s" in outcome.reason
    assert 2 <= elapsed < 30
    pid = int(pid_file.read_text())
    assert not psutil.pid_exists(pid)  # killed and reaped, not left running


def test_a_failed_worker_does_not_affect_the_next() -> None:
    assert run_in_worker(workers.abort, {}, timeout_s=60).status == "crashed"
    assert run_in_worker(workers.echo, {"value": 1}, timeout_s=60).payload["doubled"] == 2
