"""The scripts behind the figures of docs/measured.md run end to end at tiny settings, so that they
cannot rot when the code or the default suite changes. Each prints its figures and a
verdict against its target; only that they ran and printed them is checked here (the
figures of a loaded test machine say nothing)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fixtures.onnx_models import dynamic_relu
from fixtures.ray_cluster import require_ray
from fixtures.scripts import run_script

pytestmark = pytest.mark.e2e

TINY_SUITE = """[suite]
name = "tiny"
models = ["mlp"]
runtimes = ["onnxruntime"]
threads = 1
[measure]
warmup_s = 0.05
warmup_min_iters = 2
min_duration_s = 0.1
min_iters = 5
[profiles.smoke]
suite.name = "tiny-smoke"
"""

SCRIPTS = {
    "hw_targets": (["--tiny"], r"harness/plain"),
    "power_overhead": (
        ["--batch", "1", "--rounds", "1", "--measure-s", "0.2", "--power", "none"],
        r"median ratio with/alone",
    ),
    "ort_agreement": (["--model", "mlp"], r"ratio"),
    "openvino_vs_benchmark_app": (
        ["--onnx", "{relu}", "--shape", "x=1x16", "--duration", "1", "--rounds", "1"]
        + ["--precisions", "int8", "--scenarios", "latency"],  # the QDQ copy in both tools
        r"bench_app",
    ),
    "suite_time": (["--config", "{tiny}"], r"default suite, warm cache .* s"),
    "stop_rule": (["--config", "{tiny}", "--record-s", "4.5"], r"consecutive 2 s windows"),
    "edge_overhead": (  # a loopback sshd: the run over SSH and the transport's cost
        ["--config", "{tiny}", "--calls", "3"],
        r"s per cell \(1 cells\)(.|\n)*one guarded command over the master connection",
    ),
    "fleet_overhead": (  # local Ray clusters: the run on Ray, then sharded over 1 and 2 nodes
        ["--config", "{tiny}", "--nodes", "2"],
        r"s per cell \(1 cells\)(.|\n)*sharded over 2 nodes",
    ),
    "quantizer_choice": (
        ["--models", "lenet5", "--samples", "4", "--eval", "2", "--runs", "5"]
        + ["--quantizers", "onnxruntime"],
        r"lenet5 +onnxruntime +[\d.]+ +0\.9\d+ .* 5/5 .* 5/5",
    ),
}


RAY = pytest.mark.xdist_group("ray")  # one Ray test at a time under pytest -n


@pytest.mark.parametrize(
    "script", [pytest.param(s, marks=RAY) if s == "fleet_overhead" else s for s in SCRIPTS]
)
def test_a_figure_script_runs_at_tiny_settings(
    script: str, tmp_path: Path, cache_dir: Path
) -> None:
    if script == "fleet_overhead":
        require_ray()
    tiny = tmp_path / "tiny.toml"
    tiny.write_text(TINY_SUITE)
    files = {"tiny": tiny, "relu": dynamic_relu(tmp_path / "relu.onnx")}
    args, expected = SCRIPTS[script]
    done = run_script(script, [a.format(**files) for a in args], cache_dir)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(expected, done.stdout), done.stdout
