"""scripts/process_curve.py (the operating curve in docs/ci.md) runs end to end at tiny
settings, so that it cannot rot when the gate or the suite changes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fixtures.scripts import run_script

pytestmark = pytest.mark.e2e


def test_the_script_measures_pools_and_prints_the_curve(tmp_path: Path, cache_dir: Path) -> None:
    out = tmp_path / "curve.json"
    argv = ["--rounds", "1", "--repeat", "3", "--sizes", "3", "--draws", "5"]
    argv += ["--slowdowns", "3", "--model", "mlp", "--min-duration", "0.05", "--out", str(out)]
    done = run_script("process_curve", argv, cache_dir)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "share of pairs called regressed" in done.stdout
    figures = json.loads(out.read_text())
    assert set(figures["pools_ms"]) == {"A", "A'", "+300%"}
    assert all(len(pool) == 3 for pool in figures["pools_ms"].values())
    # 4x each request's time: clear of a loaded VM's noise on 50-microsecond requests
    slowed, same = (np.median(figures["pools_ms"][name]) for name in ("+300%", "A"))
    assert slowed > 1.5 * same, (slowed, same)  # the injected cost is inside the request
    assert {row["repetitions"] for row in figures["rows"]} == {3}
