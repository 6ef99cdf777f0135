"""scripts/noise_floor.py (the A/A noise floor in docs/ci.md) runs end to end at tiny
settings, so that it cannot rot when the gate or the suite changes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixtures.scripts import run_script

pytestmark = pytest.mark.e2e


def test_the_script_compares_runs_of_one_build(tmp_path: Path, cache_dir: Path) -> None:
    out = tmp_path / "floor.json"
    argv = ["--pairs", "1", "--repeat", "2", "--models", "mlp", "--runtimes", "onnxruntime"]
    argv += ["--scenarios", "latency", "--min-duration", "0.05", "--out", str(out)]
    done = run_script("noise_floor", argv, cache_dir)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "A/A noise floor: 1 pairs, 2 repetitions per run" in done.stdout
    figures = json.loads(out.read_text())
    median = figures["metrics"]["latency_median"]
    assert median["comparisons"] == 1  # one cell, one pair
    assert 0 <= median["median_abs_change"] < 1
    assert set(figures["false_alarms"]["latency_median"]) == {"3%", "5%", "10%", "15%", "25%"}
