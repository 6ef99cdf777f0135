"""The ``train`` scenario: a real training step, targets matched to the task, the plan's
skip reasons, and a train cell run end to end through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench.core.cell import Cell, Target
from bench.core.errors import Unavailable
from bench.core.spec import PreparedModel
from bench.harness.config import config_from_dict
from bench.harness.plan import ModelRequest, expand
from bench.harness.runner import workload
from exporters.source import build_module
from exporters.zoo import ZOO
from runtimes.pytorch_train import TrainSession, make_targets

REPO_ROOT = Path(__file__).resolve().parent.parent
XEON_HW = REPO_ROOT / "tests" / "fixtures" / "machines" / "xeon-dev" / "20261101-120000-hw"


def prepared(name: str) -> PreparedModel:
    """A zoo model as the worker sees it (the ONNX file is not needed to train)."""
    entry = ZOO[name]
    return PreparedModel(name, Path("unused.onnx"), entry.inputs, (), entry.task, f"zoo:{name}")


def train_session(name: str, target: Target, batch: int, threads: int) -> TrainSession:
    """The train session of zoo model ``name``, its module built as the worker builds it."""
    model = prepared(name)
    module, _ = build_module(model.source, model.seed)
    return TrainSession(module, model, target, batch, threads)


def test_training_steps_lower_the_loss_on_a_fixed_batch() -> None:
    session = train_session("lenet5", Target("cpu", "fp32"), batch=16, threads=1)
    weights = [p.detach().clone() for p in session.module.parameters()]
    for _ in range(20):
        session.step()
    assert session.steps == 20 and session.executed.precision == "fp32"
    assert session.last_loss < 0.97 * session.first_loss
    moved = [
        not torch.equal(w, p) for w, p in zip(weights, session.module.parameters(), strict=True)
    ]
    assert all(moved)  # every parameter was updated: a backward pass and optimizer step ran


def test_bf16_mixed_precision_runs_bf16_with_fp32_weights() -> None:
    session = train_session("mlp", Target("cpu", "bf16"), batch=16, threads=1)
    for _ in range(10):
        session.step()
    assert session.executed.precision == "bf16"
    assert session.executed.details["mixed_precision"] == "autocast bf16"
    assert next(session.module.parameters()).dtype == torch.float32
    assert session.last_loss < session.first_loss


def test_fp16_on_the_cpu_runs_with_a_grad_scaler_or_says_why_not() -> None:
    try:
        session = train_session("mlp", Target("cpu", "fp16"), batch=8, threads=1)
    except Unavailable as exc:
        assert "CPU autocast does not run fp16" in str(exc)
        return
    session.step()
    assert session.executed.precision == "fp16"
    assert session.executed.details["mixed_precision"] == "autocast fp16 + GradScaler"


def test_targets_follow_the_task() -> None:
    name, _, labels = make_targets(torch, "classification", torch.zeros(4, 10), seed=0)
    assert name == "cross_entropy" and labels.shape == (4,) and labels.dtype == torch.int64
    assert int(labels.min()) >= 0 and int(labels.max()) < 10
    name, _, pixels = make_targets(torch, "segmentation", torch.zeros(2, 3, 8, 8), seed=0)
    assert name == "cross_entropy" and pixels.shape == (2, 8, 8) and int(pixels.max()) < 3
    name, loss, values = make_targets(torch, "regression", torch.zeros(4, 5), seed=0)
    assert name == "mse" and values.shape == (4, 5) and values.is_floating_point()
    assert float(loss(values, values)) == 0.0


def test_a_segmentation_model_trains_on_per_pixel_targets() -> None:
    session = train_session("unet_small", Target("cpu", "fp32"), batch=1, threads=1)
    session.step()
    assert session.loss_name == "cross_entropy" and session.first_loss > 0


def test_the_plan_skips_train_cells_other_runtimes_and_precisions_cannot_run() -> None:
    config = config_from_dict(
        {
            "suite": {
                "models": ["mlp"],
                "runtimes": ["pytorch", "onnxruntime"],
                "scenarios": ["train"],
                "precisions": ["fp32", "int8"],
            }
        }
    )
    planned = {
        p.cell.key: p.skip_reason for p in expand(config, [ModelRequest("mlp", "zoo", "mlp")])
    }
    assert planned["mlp/pytorch/cpu/fp32/b1/train"] is None
    assert "runs on pytorch only" in planned["mlp/onnxruntime/cpu/fp32/b1/train"]
    assert "no int8 training path" in planned["mlp/pytorch/cpu/int8/b1/train"]


def test_a_train_cell_takes_one_step_at_a_time_with_every_thread() -> None:
    config = config_from_dict({"suite": {"threads": 4, "in_flight": 2}})
    load = workload(config, Cell("mlp", "pytorch", "cpu", "fp32", 8, "train"))
    assert (load.threads, load.in_flight) == (4, 1)


@pytest.mark.e2e
def test_cli_runs_a_lenet5_train_cell(tmp_path: Path, cache_dir: Path) -> None:
    suite = tmp_path / "suite.toml"
    suite.write_text(
        '[suite]\nname = "train"\nmodels = ["lenet5"]\nruntimes = ["pytorch"]\n'
        'scenarios = ["train"]\nbatch_sizes = [4]\nthreads = 1\ncell_timeout_s = 120\n'
        f'results_dir = "{tmp_path / "results"}"\n'
        "[measure]\nwarmup_s = 0.05\nwarmup_min_iters = 2\nmin_duration_s = 0.1\n"
        "min_iters = 5\nmax_duration_s = 10.0\n"
    )
    env = {**os.environ, "DEPLOYBENCH_CACHE_DIR": str(cache_dir)}
    proc = subprocess.run(
        [sys.executable, "cli.py", "run", "--config", str(suite), "--no-progress", "--hw", XEON_HW],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (run_dir,) = (tmp_path / "results").iterdir()
    (record,) = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert record["key"] == "lenet5/pytorch/cpu/fp32/b4/train" and record["status"] == "ok"
    assert record["throughput"]["samples_per_s"] > 0
    assert record["latency_ms"]["count"] >= 5 and record["accuracy"] is None
    training = record["training"]
    assert training["steps"] >= 1 + 2 + 5 and training["flop_factor"] == 3
    assert training["loss_first"] > 0 and training["loss_last"] > 0
    assert "loss " in proc.stdout  # the summary shows the loss in place of accuracy
    assert "Roofline" in proc.stdout and "% of peak" in proc.stdout  # peaks from --hw


def test_cli_run_with_a_missing_hw_directory_fails_before_running(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "cli.py", "run", "--hw", str(tmp_path), "--results-dir", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "has no hw.json" in proc.stderr
    assert list(tmp_path.iterdir()) == []
