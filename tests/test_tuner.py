"""The deployment decision (bench.harness.tuner, cli.py tune): on synthetic spaces whose
optimum is known, what pruning saves, Optuna within a budget, the choice and its reasons;
bad constraints; and a real small space end to end, its artifact run in a fresh process."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.core.cell import Cell
from bench.core.errors import UserError
from bench.core.record import CellRecord, Measured, Throughput
from bench.core.stats import Summary
from bench.harness.tuner import (
    Configuration,
    Constraints,
    decide,
    grid,
    judge,
    optuna_search,
)
from scripts.tune_search import SPACE, main, record_of

ROOT = Path(__file__).resolve().parents[1]
LIMITS = Constraints(latency_bound_ms=12.0, max_memory_mb=500)


def truth(limits: Constraints) -> Configuration:
    """The best configuration by brute force over the synthetic space."""
    trials = [judge(c, record_of(c), limits) for c in SPACE]
    return decide(trials, "all").chosen.configuration


def test_the_grid_finds_the_known_optimum_and_pruning_saves_measurements() -> None:
    measured: list[Configuration] = []

    def measure(c: Configuration) -> CellRecord:
        measured.append(c)
        return record_of(c)

    decision = grid(SPACE, measure, LIMITS)
    assert decision.chosen.configuration == truth(LIMITS)
    assert decision.measurements == len(measured) < len(SPACE) // 2
    for trial in decision.trials:  # nothing pruned could have met the constraints
        if trial.status == "pruned":
            assert (
                judge(trial.configuration, record_of(trial.configuration), LIMITS).status != "met"
            )
    failed = [t for t in decision.trials if t.configuration.path == ("openvino", "cpu", "bf16")]
    assert sum(t.status == "rejected" for t in failed) == 1  # one measured, the rest pruned
    assert all("failed accuracy" in t.reason for t in failed if t.status == "pruned")


def test_optuna_finds_the_optimum_of_a_large_space_within_its_budget() -> None:
    measured: list[Configuration] = []

    def measure(c: Configuration) -> CellRecord:
        measured.append(c)
        return record_of(c)

    decision = optuna_search(SPACE, measure, LIMITS, budget=40, seed=0)
    best = judge(truth(LIMITS), record_of(truth(LIMITS)), LIMITS)
    assert len(measured) <= 40 and len(set(measured)) == len(measured)
    assert decision.chosen is not None
    assert decision.chosen.samples_per_s >= 0.9 * best.samples_per_s


def test_the_search_figures_script_counts_each_search() -> None:
    (row,) = main(["--bounds", "12", "--seeds", "1"])
    assert row["best"] == truth(Constraints(latency_bound_ms=12, max_memory_mb=2000)).label
    assert row["grid_found_at"] <= row["grid_measured"] < row["exhaustive"] == len(SPACE)
    assert 1 <= row["optuna_found_at_median"] <= len(SPACE)


def test_nothing_meeting_the_constraints_lists_the_closest() -> None:
    limits = Constraints(latency_bound_ms=0.1)
    decision = grid(SPACE, record_of, limits)
    assert decision.chosen is None and decision.closest
    assert all("over the 0.1 ms bound" in t.reason for t in decision.closest)


def test_as_fast_configurations_are_decided_by_p99() -> None:
    def fixed(rate: float, p99: float) -> CellRecord:
        cell = Cell("m", "onnxruntime", "cpu", "fp32", 1, "throughput")
        latency = Summary(count=10, min=p99, mean=p99, median=p99, p99=p99)
        measured = Measured(latency_ms=latency, throughput=Throughput(samples_per_s=rate))
        return CellRecord.new("run", cell, "ok", measured=measured)

    limits = Constraints(latency_bound_ms=10)
    a = judge(Configuration("onnxruntime", "cpu", "fp16", 8, 2), fixed(1000, 4.0), limits)
    b = judge(Configuration("onnxruntime", "cpu", "fp32", 8, 1), fixed(985, 2.0), limits)
    c = judge(Configuration("onnxruntime", "cpu", "fp32", 1, 1), fixed(500, 0.5), limits)
    decision = decide([a, b, c], "grid")
    assert decision.chosen is b and "lowest p99" in decision.why
    assert [t.configuration.batch for t in decision.front] == [1, 8, 8]


def tune(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), "tune", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
    )


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--latency-bound", "-1"], "--latency-bound must be a positive number"),
        (["--latency-bound", "nan"], "--latency-bound must be a positive number"),
        (["--target-qps", "inf"], "--target-qps must be a positive number"),
        (["--max-memory", "0"], "--max-memory must be a positive number"),
        (["--in-flight", "0,2"], "--in-flight takes whole numbers of 1 or more"),
    ],
)
def test_bad_constraints_are_refused_before_measuring(flags: list[str], message: str) -> None:
    from bench.commands.tune import constraints_of
    from cli import build_parser

    args = build_parser().parse_args(["tune", "lenet5", *flags])
    with pytest.raises(UserError, match=re.escape(message)):
        constraints_of(args)


@pytest.mark.e2e
def test_bad_input_is_one_line_and_exit_2() -> None:
    done = tune("lenet5", "--latency-bound", "-1")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == "error: --latency-bound must be a positive number, not -1"


@pytest.mark.e2e
def test_a_real_small_space_ends_in_a_shipped_artifact(tmp_path: Path, cache_dir: Path) -> None:
    suite = tmp_path / "bench.toml"
    suite.write_text(
        "[measure]\nwarmup_s = 0.1\nwarmup_min_iters = 5\nmin_duration_s = 0.3\n"
        "min_iters = 20\nmax_duration_s = 1.0\n"
    )
    done = tune(
        "lenet5",
        "--config", str(suite),
        "--runtimes", "onnxruntime",
        "--precisions", "fp32",
        "--batch-sizes", "1",
        "--in-flight", "1,2",
        "--latency-bound", "50",
        "--results-dir", str(tmp_path / "results"),
        "--cache-dir", str(cache_dir),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    folder = next((tmp_path / "results").glob("*-tune-*"))
    data = json.loads((folder / "tune.json").read_text())
    assert data["chosen"]["status"] == "met" and data["measurements"] == 2
    assert "<svg" in (folder / "report.html").read_text()
    artifact = folder / "artifact"
    manifest = json.loads((artifact / "manifest.json").read_text())
    assert manifest["cell"]["batch"] == data["chosen"]["configuration"]["batch"]
    ran = subprocess.run(
        [sys.executable, "run.py"], cwd=artifact, capture_output=True, text=True, timeout=120
    )
    assert ran.returncode == 0, ran.stderr
    assert "logits" in ran.stdout


def test_an_invalid_server_run_at_the_target_rate_rejects_and_prunes() -> None:
    from bench.core.record import Serving
    from bench.harness.tuner import rules_out

    def served(valid: bool) -> CellRecord:
        cell = Cell("m", "onnxruntime", "cpu", "fp32", 2, "server")
        why = [] if valid else ["the 99th percentile latency is above the 10 ms bound"]
        figures = Serving(valid=valid, why=why, completed_qps=900.0, latency_ms={"p99": 12.0})
        latency = Summary(count=10, min=1, mean=1, median=1, p99=1)
        measured = Measured(latency_ms=latency, loadgen=figures)
        return CellRecord.new("run", cell, "ok", measured=measured)

    limits = Constraints(latency_bound_ms=10, target_qps=900)
    small = Configuration("onnxruntime", "cpu", "fp32", 2, 1)
    trial = judge(small, served(False), limits)
    assert trial.status == "rejected" and "INVALID at 900 QPS" in trial.reason
    assert trial.p99_ms == 12.0 and trial.samples_per_s == 900.0  # LoadGen's, not the loop's
    assert rules_out(trial)(Configuration("onnxruntime", "cpu", "fp32", 4, 2))
    assert rules_out(trial)(Configuration("onnxruntime", "cpu", "fp16", 4, 2)) is None
    assert judge(small, served(True), limits).status == "met"


@pytest.mark.slow
def test_ctrl_c_says_where_the_measured_configurations_are(tmp_path: Path, cache_dir: Path) -> None:
    import signal
    import time

    argv = [sys.executable, str(ROOT / "cli.py"), "tune", "lenet5", "--runtimes", "onnxruntime"]
    argv += ["--precisions", "fp32", "--batch-sizes", "1", "--in-flight", "1,2,4"]
    argv += ["--results-dir", str(tmp_path), "--cache-dir", str(cache_dir)]
    process = subprocess.Popen(
        argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob("*-tune-*/runs/*/results.jsonl")) and time.monotonic() < deadline:
        time.sleep(0.2)  # the first configuration has ended
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, out + err
    assert "tune interrupted: each configuration measured is kept in" in out
    assert "Traceback" not in err
