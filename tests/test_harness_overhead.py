"""scripts/harness_overhead.py (the "within 3%" figure of docs/measured.md) at tiny
settings, so that it keeps running as the code and the default suite change."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "harness_overhead.py"


def test_the_script_prints_both_ratios(cache_dir: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--model", "mlp", "--batch", "1", "--rounds", "2"]
        + ["--measure-s", "0.05"],
        env={**os.environ, "DEPLOYBENCH_CACHE_DIR": str(cache_dir)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    in_process = re.search(r"in-process: median ratio harness/bare = (\d+\.\d+)", proc.stdout)
    whole = re.search(r"whole path: cli.py worker median (\d+\.\d+) ms", proc.stdout)
    assert in_process and whole, proc.stdout
    assert 0.2 < float(in_process.group(1)) < 5  # the same loop on the same session
    assert float(whole.group(1)) > 0
