"""Adding an executor takes one file and one registry line (docs/contributing.md, "Adding an
executor"): on a scratch copy of the code, tests/fixtures/pair_executor.py is dropped into
bench/harness/ and registered, and nothing else is touched; ``run --executor pair`` then
measures the suite through the one loop, and ``--resume`` comes back to it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures.scratch import registry_change, scratch_checkout

ROOT = Path(__file__).resolve().parent.parent
REGISTRY = "bench/commands/executors.py"

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the code with the pair executor added."""
    folder = tmp_path_factory.mktemp("checkout")
    return scratch_checkout(
        folder,
        "pair_executor.py",
        "bench/harness",
        REGISTRY,
        [
            (
                "from bench.harness.local import LocalExecutor\n",
                "from bench.harness.local import LocalExecutor\n"
                "from bench.harness.pair_executor import PairExecutor\n",
            ),
            ("RayExecutor)", "RayExecutor, PairExecutor)"),
        ],
    )


def run(checkout: Path, cache_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "cli.py", "run", "--no-progress", "--cache-dir", str(cache_dir)]
    return subprocess.run(
        [*command, *args], cwd=checkout, capture_output=True, text=True, timeout=300
    )


SUITE = """
[suite]
models = ["mlp"]
runtimes = ["onnxruntime"]
precisions = ["fp32"]
scenarios = ["latency"]
batch_sizes = [1, 4]
repeat = 2
[measure]
warmup_s = 0.05
warmup_min_iters = 2
min_duration_s = 0.1
min_iters = 5
"""


def test_the_registry_entry_is_the_only_change(checkout: Path) -> None:
    changed = registry_change(checkout, REGISTRY)
    assert changed == [
        "+from bench.harness.pair_executor import PairExecutor",
        "-    for executor in (LocalExecutor, ToolsExecutor, AgentExecutor, RayExecutor)",
        "+    for executor in (LocalExecutor, ToolsExecutor, AgentExecutor, RayExecutor, "
        "PairExecutor)",
    ]


def test_a_new_executor_runs_the_suite_and_resumes_it(checkout: Path, cache_dir: Path) -> None:
    (checkout / "bench.toml").write_text(SUITE)
    results = checkout / "results"
    done = run(checkout, cache_dir, "--executor", "pair", "--results-dir", str(results))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "pair: measuring 4 cells, two at a time" in done.stdout
    (folder,) = results.iterdir()
    assert json.loads((folder / "run.json").read_text())["executor"] == "pair"
    lines = (folder / "results.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 4 and all(r["status"] == "ok" for r in records)
    assert {(r["key"], r["repetition"]) for r in records} == {
        (f"mlp/onnxruntime/cpu/fp32/b{b}/latency", rep) for b in (1, 4) for rep in (0, 1)
    }
    assert (folder / "report.md").is_file() and (folder / "report.html").is_file()

    # two cells lost: --resume finds the executor in run.json and measures just those
    (folder / "results.jsonl").write_text("\n".join(lines[:2]) + "\n")
    resumed = run(checkout, cache_dir, "--resume", str(folder))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "pair: measuring 2 cells, two at a time" in resumed.stdout
    again = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
    assert {(r["key"], r["repetition"]) for r in again} == {
        (r["key"], r["repetition"]) for r in records
    }


def test_an_unknown_executor_is_one_line(checkout: Path, cache_dir: Path) -> None:
    (checkout / "bench.toml").write_text(SUITE)
    done = run(checkout, cache_dir, "--executor", "k8s")
    assert done.returncode == 2
    assert done.stderr == (
        "error: unknown executor 'k8s': choose one of local, ssh-tools, ssh-agent, ray, pair\n"
    )
