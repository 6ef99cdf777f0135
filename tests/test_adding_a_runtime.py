"""Adding a runtime takes one file and one registry entry (docs/contributing.md, "Adding a
runtime"): on a scratch copy of the code, tests/fixtures/onnx_reference_rt.py is dropped
into runtimes/ and registered, and nothing else is touched; the suite then accepts its
options table, plans, measures and checks its cells like any other."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures.scratch import registry_change, scratch_checkout

ROOT = Path(__file__).resolve().parent.parent
REGISTRY = "runtimes/__init__.py"


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the code with the ONNX reference evaluator added as a runtime."""
    folder = tmp_path_factory.mktemp("checkout")
    return scratch_checkout(
        folder,
        "onnx_reference_rt.py",
        "runtimes",
        REGISTRY,
        [
            (
                "from runtimes.openvino_rt import OpenVinoRuntime\n",
                "from runtimes.onnx_reference_rt import OnnxReferenceRuntime\n"
                "from runtimes.openvino_rt import OpenVinoRuntime\n",
            ),
            ("OpenVinoRuntime)", "OpenVinoRuntime, OnnxReferenceRuntime)"),
        ],
    )


def run(checkout: Path, suite: str, cache_dir: Path) -> subprocess.CompletedProcess[str]:
    config = checkout / "bench.toml"
    config.write_text(suite)
    command = [sys.executable, "cli.py", "run", "--config", str(config), "--no-progress"]
    return subprocess.run(
        [*command, "--cache-dir", str(cache_dir), "--results-dir", str(checkout / "results")],
        cwd=checkout,
        capture_output=True,
        text=True,
        timeout=300,
    )


SUITE = """
[suite]
models = ["mlp"]
runtimes = ["onnxruntime", "onnx_reference"]
precisions = ["fp32"]
[measure]
warmup_s = 0.05
warmup_min_iters = 2
min_duration_s = 0.1
min_iters = 5
[runtime.onnx_reference]
verbose = 0
"""


def test_the_registry_entry_is_the_only_change(checkout: Path) -> None:
    changed = registry_change(checkout, REGISTRY)
    assert changed == [
        "+from runtimes.onnx_reference_rt import OnnxReferenceRuntime",
        "-    for runtime in (PyTorchRuntime, OnnxRuntime, TensorRTRuntime, OpenVinoRuntime)",
        "+    for runtime in (PyTorchRuntime, OnnxRuntime, TensorRTRuntime, OpenVinoRuntime, "
        "OnnxReferenceRuntime)",
    ]


@pytest.mark.e2e
def test_a_new_runtime_runs_beside_the_others(checkout: Path, cache_dir: Path) -> None:
    proc = run(checkout, SUITE, cache_dir)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (run_dir,) = (checkout / "results").iterdir()
    records = {
        record["cell"]["runtime"]: record
        for record in map(json.loads, (run_dir / "results.jsonl").read_text().splitlines())
    }
    new = records["onnx_reference"]
    assert new["status"] == "ok", new["reason"]
    assert new["executed"]["provider"] == "onnx.reference"
    assert new["accuracy"]["verdict"] == "pass"  # against the PyTorch FP32 reference
    assert new["latency_ms"]["count"] >= 5 and new["throughput"]["samples_per_s"] > 0
    assert records["onnxruntime"]["status"] == "ok"
    run_config = json.loads((run_dir / "run.json").read_text())["config"]
    assert run_config["runtime"]["onnx_reference"] == {"verbose": 0}


def test_its_options_table_is_checked_like_the_others(checkout: Path, cache_dir: Path) -> None:
    proc = run(checkout, SUITE.replace("verbose = 0", "verbos = 1"), cache_dir)
    assert proc.returncode == 2
    (line,) = proc.stderr.splitlines()
    assert "[runtime.onnx_reference] unknown key 'verbos' (allowed: verbose)" in line
