"""scripts/gate_curve.py (the paired gate's operating curve in docs/ci.md) runs end to end
at tiny settings, so that it cannot rot when the gate or the suite changes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixtures.scripts import run_script

pytestmark = pytest.mark.e2e


def test_the_script_measures_paired_pools_and_replays_the_gate(
    tmp_path: Path, cache_dir: Path
) -> None:
    out = tmp_path / "curve.json"
    argv = ["--model", "lenet5", "--rounds", "2", "--trials", "5", "--slowdowns", "3"]
    argv += ["--worker-s", "0.1", "--max-s", "5", "--out", str(out)]
    done = run_script("gate_curve", argv, cache_dir)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1st alert" in done.stdout
    figures = json.loads(out.read_text())
    assert set(figures["workers"]) == {"A/A", "+300%"}
    assert all(len(pool) == 2 for pool in figures["workers"].values())
    # the injected cost is inside the new side's requests only: 4x its time
    slowed = [w["ratio"] for w in figures["workers"]["+300%"]]
    same = [w["ratio"] for w in figures["workers"]["A/A"]]
    assert min(slowed) > 2.5 and max(abs(r - 1) for r in same) < 0.5, (slowed, same)
    assert figures["figures"]["+300%"]["first_stage_alerts"] == 1.0
    assert figures["figures"]["A/A"]["regressed"] == 0.0
