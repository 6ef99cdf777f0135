"""Worker isolation: each outcome of a spawned job becomes a status, never a crash here."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from fixtures import workers

from bench.harness.isolation import run_in_worker


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


def test_the_job_and_its_tools_read_an_empty_stdin() -> None:
    """The job came through the worker's stdin; what it runs reads /dev/null there."""
    outcome = run_in_worker(workers.read_stdin, {}, timeout_s=60)
    assert outcome.status == "ok", outcome
    assert outcome.payload == {"job": "", "tool": ""}


def test_a_failed_worker_does_not_affect_the_next() -> None:
    assert run_in_worker(workers.abort, {}, timeout_s=60).status == "crashed"
    assert run_in_worker(workers.echo, {"value": 1}, timeout_s=60).payload["doubled"] == 2


def test_a_timeout_names_the_phase_the_worker_was_in() -> None:
    outcome = run_in_worker(workers.hang_in_build, {}, timeout_s=2)
    assert outcome.status == "timeout"
    assert outcome.phase == "build"
    assert outcome.reason == "stopped in build: the worker did not finish within 2 s"


def test_a_crash_names_the_phase_the_worker_was_in() -> None:
    outcome = run_in_worker(workers.abort_in_load, {}, timeout_s=60)
    assert outcome.status == "crashed"
    assert outcome.phase == "load"
    assert outcome.reason == "worker killed by SIGABRT in load"


def test_a_worker_that_names_no_phase_is_in_worker_start() -> None:
    outcome = run_in_worker(workers.sleep_forever, {"pid_file": os.devnull}, timeout_s=1)
    assert outcome.phase == "worker start"
    assert outcome.reason == "stopped in worker start: the worker did not finish within 1 s"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_tool_started_by_a_worker_dies_with_the_worker(tmp_path: Path) -> None:
    """trtexec or tegrastats, started with ``tool_options``, ends when a timeout kills the
    worker that started it."""
    pid_file = tmp_path / "tool.pid"
    starter = (
        "import subprocess, sys\n"
        "from bench.core.lifetime import tool_options\n"
        "tool = subprocess.Popen(['sleep', '600'], **tool_options())\n"
        f"open({str(pid_file)!r}, 'w').write(str(tool.pid))\n"
        "tool.wait()\n"
    )
    worker = subprocess.Popen([sys.executable, "-c", starter], cwd=Path(__file__).parent.parent)
    deadline = time.monotonic() + 60
    while not pid_file.is_file() or not pid_file.read_text():
        assert time.monotonic() < deadline, "the tool never started"
        time.sleep(0.1)
    tool = psutil.Process(int(pid_file.read_text()))
    worker.kill()
    worker.wait()
    tool.wait(timeout=10)  # psutil.TimeoutExpired if the tool lived on
    assert not tool.is_running()
