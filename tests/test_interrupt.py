"""A signal at any moment of a worker's start ends a run cleanly: Ctrl-C (to the whole
foreground job, as a terminal sends it), SIGINT or SIGTERM to the run alone, SIGTERM to
the job (a cancelled CI job), or the run killed outright. No process of the run prints a
traceback; the run says its one line and exits 130 (143 for SIGTERM).

The window is made wide on purpose, not met by luck: the workers start 0.7 s late
(fixtures/slow_start), their job is larger than a pipe holds (so the parent is still
handing it over), and the signal lands at points across that start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fixtures.onnx_models import dynamic_relu
from fixtures.processes import start_cli
from test_cli import _env, write_suite

TESTS = Path(__file__).resolve().parent
REPO_ROOT = TESTS.parent
SLOW_START_S = 0.7
DELAYS_S = (0.0, 0.15, 0.3, 0.45, 0.6, 0.9)  # after the run says a worker is starting
MODES = {  # name: (signal, to the whole process group, the run's exit code)
    "ctrl-c": (signal.SIGINT, True, 130),
    "sigint": (signal.SIGINT, False, 130),
    "sigterm": (signal.SIGTERM, False, 143),
    "sigterm-job": (signal.SIGTERM, True, 143),
    "kill": (signal.SIGKILL, False, -signal.SIGKILL),
}

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="POSIX signals"),
]


def _start_run() -> subprocess.Popen:
    """The miniature run in a session of its own (a terminal's foreground job), SIGINT at
    its default so that Python turns it into KeyboardInterrupt."""
    paths = [TESTS / "fixtures" / "slow_start", TESTS, REPO_ROOT]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(map(str, paths)),
        "PYTHONUNBUFFERED": "1",
        "DEPLOYBENCH_TEST_SLOW_START": str(SLOW_START_S),
    }
    return subprocess.Popen(
        [sys.executable, str(TESTS / "fixtures" / "interrupted_run.py")],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _signalled(run: subprocess.Popen, mode: str, delay: float) -> tuple[str, str, str]:
    """Send ``run`` the signal of ``mode`` ``delay`` s after its first line; that line,
    then the rest of its output and its error output, which end only when every process
    holding its pipes (each worker) is gone."""
    signum, to_group, _ = MODES[mode]
    try:
        assert run.stdout is not None
        first = run.stdout.readline()
        time.sleep(delay)
        if to_group:
            os.killpg(run.pid, signum)
        else:
            run.send_signal(signum)
        stdout, stderr = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
    return first, stdout, stderr


@pytest.mark.parametrize("mode", MODES)
def test_a_signal_while_a_worker_starts_leaves_no_traceback(mode: str) -> None:
    code = MODES[mode][2]
    for delay in DELAYS_S:
        run = _start_run()
        first, stdout, stderr = _signalled(run, mode, delay)
        assert first == "starting\n"
        assert stderr == "", f"{mode} at {delay} s into a worker's start:\n{stderr}"
        assert run.returncode == code, f"{mode} at {delay} s: {run.returncode}\n{stdout}"
        if code > 0:
            assert stdout.endswith("interrupted: every finished cell is kept\n")


@pytest.mark.parametrize("mode", ["ctrl-c", "sigterm"])
def test_a_run_signalled_while_its_first_cell_starts_says_how_to_resume(
    mode: str, tmp_path: Path
) -> None:
    """``cli.py run`` itself, signalled as its first cell's worker starts (the run
    directory is named just before): its one line with the resume command, no traceback."""
    model = dynamic_relu(tmp_path / "relu.onnx")
    config = write_suite(tmp_path / "bench.toml", runtimes=["onnxruntime"])
    results = tmp_path / "results"
    argv = ["run", "--config", config, "--results-dir", results, "--no-progress"]
    argv += ["--onnx", model, "--shape", "x=1x16"]
    env = {
        **_env(tmp_path / "cache", TESTS / "fixtures" / "slow_start"),
        "DEPLOYBENCH_TEST_SLOW_START": str(SLOW_START_S),
    }
    for delay in (0.0, SLOW_START_S / 2):
        run = start_cli(argv, env, start_new_session=True)
        first, stdout, stderr = _signalled(run, mode, delay)
        assert first.startswith("run directory: "), first
        assert "Traceback" not in stderr, f"{mode} at {delay} s:\n{stderr}"
        assert run.returncode == MODES[mode][2], f"{mode} at {delay} s: {run.returncode}\n{stderr}"
        run_dir = first.removeprefix("run directory: ").strip()
        assert f"--resume {run_dir}" in " ".join(stdout.split()), stdout
