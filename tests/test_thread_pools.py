"""scripts/thread_pools.py (the thread-pool figures of docs/ci.md) runs at tiny settings,
so that it cannot rot."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fixtures.scripts import run_script

pytestmark = pytest.mark.e2e


def test_the_script_times_both_pool_designs(cache_dir: Path) -> None:
    argv = ["--model", "mlp", "--workers", "2", "--seconds", "0.1"]
    done = run_script("thread_pools", argv, cache_dir)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["idle, per session", "idle, shared"]
    for line in lines:  # two identical sessions: each worker's ratio near 1
        ratios = [float(r) for r in re.search(r"ratios \[([^]]*)\]", line).group(1).split(",")]
        assert len(ratios) == 2 and all(0.5 < r < 2 for r in ratios), line
