"""The gate on fabricated results: cell matching, fingerprints, accuracy, baselines, each
output format and the exit codes of ``compare`` and ``baseline save``."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fixtures.records import cell, ended, timed

from bench.compare import output
from bench.compare.gate import FAILED, FIXED, MISSING, NEW, SKIPPED, STILL_FAILING, compare
from bench.compare.sides import load_side, side_from_records
from bench.compare.significance import IMPROVED, INCONCLUSIVE, REGRESSED, UNCHANGED
from bench.core.errors import UserError
from bench.core.record import Accuracy, CellRecord, Memory

REPO_ROOT = Path(__file__).resolve().parent.parent
ENV = {
    "cpu": {"model": "Example CPU 9000", "usable_cores": 8},
    "gpus": [],
    "python": "3.11.7",
    "os": "Linux",
    "libraries": {"onnxruntime": "1.32.0", "numpy": "2.4.6"},
    "git": {"commit": "a" * 40, "dirty": False},
}


def record(
    model: str,
    median: float,
    rep: int = 0,
    status: str = "ok",
    accuracy: str = "pass",
    scenario: str = "latency",
    rate: float | None = None,
) -> CellRecord:
    """Repetition ``rep`` of ``model``'s cell: when it ran, four requests whose median is
    ``median`` ms and whose p99 is about 1.5 times it (``[m, m, m, 1.5·m]``), ``rate``
    samples/s (default 1000 / median) over its window, and the accuracy verdict."""
    of = cell(model, scenario=scenario)
    if status != "ok":
        return ended(of, status, repetition=rep)
    times = [median, median, median, median * 1.5]
    return timed(
        of,
        times,
        window_s=len(times) * of.batch / (rate or 1e3 / median),
        repetition=rep,
        memory=Memory(peak_rss_mb=120.0),
        accuracy=Accuracy(verdict=accuracy, scaled_error=1e-7 if accuracy == "pass" else 0.5),
    )


def repeated(model: str, center: float, n: int = 6, seed: int = 0, **kw: Any) -> list[CellRecord]:
    rng = np.random.default_rng(seed)
    return [record(model, center * (1 + 0.005 * rng.standard_normal()), i, **kw) for i in range(n)]


def side(records: list[CellRecord], env: dict | None = None, label: str = "run") -> Any:
    return side_from_records(label, label, env or ENV, records)


def test_cells_are_matched_by_key_and_classified() -> None:
    base = [
        *repeated("same", 1.0),
        *repeated("slower", 1.0),
        *repeated("faster", 1.0),
        *repeated("gone", 1.0),
        *repeated("breaks", 1.0),
        record("heals", 0, status="failed"),
        record("broken", 0, status="crashed"),
        record("absent", 0, status="skipped"),
    ]
    current = [
        *repeated("same", 1.0, seed=1),
        *repeated("slower", 1.2, seed=1),
        *repeated("faster", 0.8, seed=1),
        *repeated("fresh", 1.0),
        *[record("breaks", 1.0, i) for i in range(5)],
        record("breaks", 0, 5, status="timeout"),
        *repeated("heals", 1.0),
        record("broken", 0, status="failed"),
        record("absent", 0, status="skipped"),
    ]
    comparison = compare(side(base), side(current))
    verdicts = {c.cell["model"]: c.verdict for c in comparison.cells}
    assert verdicts == {
        "same": UNCHANGED,
        "slower": REGRESSED,
        "faster": IMPROVED,
        "gone": MISSING,
        "fresh": NEW,
        "breaks": FAILED,
        "heals": FIXED,
        "broken": STILL_FAILING,
        "absent": SKIPPED,
    }
    assert [c.verdict for c in comparison.cells][:2] == [FAILED, REGRESSED]  # worst first
    breaks = next(c for c in comparison.cells if c.cell["model"] == "breaks")
    assert "1/6 repetitions timeout" in breaks.note
    assert comparison.failed


def test_an_accuracy_failure_regresses_even_when_faster() -> None:
    current = repeated("m", 0.5, seed=1, accuracy="fail")
    comparison = compare(side(repeated("m", 1.0)), side(current))
    (cell,) = comparison.cells
    assert cell.verdict == REGRESSED
    assert cell.decisive.metric == "accuracy"
    assert "now fails" in cell.decisive.note
    assert any(c.metric == "latency_median" and c.verdict == IMPROVED for c in cell.changes)


def test_throughput_counts_only_where_it_is_measured_on_its_own() -> None:
    latency = compare(side(repeated("m", 1.0)), side(repeated("m", 1.0, seed=2)))
    assert "throughput" not in {c.metric for c in latency.cells[0].changes}
    base = repeated("m", 1.0, scenario="throughput", rate=1000.0)
    current = repeated("m", 1.0, seed=2, scenario="throughput", rate=800.0)
    cell = compare(side(base), side(current)).cells[0]
    assert next(c for c in cell.changes if c.metric == "throughput").verdict == REGRESSED


def test_different_hardware_needs_the_flag_and_is_then_reported() -> None:
    other = {**ENV, "cpu": {"model": "Other CPU 1", "usable_cores": 8}}
    with pytest.raises(UserError, match="--allow-different-hardware"):
        compare(side(repeated("m", 1.0)), side(repeated("m", 1.0), other))
    comparison = compare(
        side(repeated("m", 1.0)), side(repeated("m", 1.0), other), allow_different_hardware=True
    )
    assert comparison.different_hardware_allowed
    lines = output.context_lines(comparison)
    assert any("DIFFERENT HARDWARE" in line for line in lines)
    assert any("Example CPU 9000 → Other CPU 1" in line for line in lines)


def test_power_mode_is_hardware_and_a_flagged_run_is_reported() -> None:
    def board(mode: str, changes: list[str]) -> dict:
        jetson = {"model": "NVIDIA Jetson AGX Orin", "nvpmodel": {"name": mode, "id": 0}}
        return {**ENV, "power": {"state": {"jetson": jetson, "gpus": []}, "changes": changes}}

    base = side(repeated("m", 1.0), board("MAXN", []))
    with pytest.raises(UserError, match="power mode: MAXN vs 15W"):
        compare(base, side(repeated("m", 1.0), board("15W", [])))
    flagged = side(
        repeated("m", 1.0), board("MAXN", ["GPU 0 SM clock dropped from 1980 to 1410 MHz"])
    )
    lines = output.context_lines(compare(base, flagged))
    assert "current run flagged: GPU 0 SM clock dropped from 1980 to 1410 MHz" in lines


def test_software_differences_are_reported_but_allowed() -> None:
    newer = {**ENV, "libraries": {"onnxruntime": "1.33.0", "numpy": "2.4.6"}}
    comparison = compare(side(repeated("m", 1.0)), side(repeated("m", 1.0), newer))
    (difference,) = comparison.differences
    assert (difference.what, difference.baseline, difference.current) == (
        "onnxruntime",
        "1.32.0",
        "1.33.0",
    )
    assert not difference.hardware


def test_sides_without_a_common_cell_are_an_error() -> None:
    with pytest.raises(UserError, match="no cell in common"):
        compare(side(repeated("a", 1.0)), side(repeated("b", 1.0)))


def write_run(root: Path, records: list[CellRecord], env: dict | None = None) -> Path:
    root.mkdir(parents=True)
    (root / "results.jsonl").write_text("".join(json.dumps(r.to_dict()) + "\n" for r in records))
    (root / "environment.json").write_text(json.dumps(env or ENV))
    (root / "run.json").write_text(json.dumps({"run_id": root.name}))
    return root


def cli(*args: str | Path, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "cli.py"), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    return {
        "base": write_run(root / "base", repeated("m", 1.0) + repeated("n", 2.0)),
        "same": write_run(root / "same", repeated("m", 1.0, seed=3) + repeated("n", 2.0, seed=3)),
        "slow": write_run(root / "slow", repeated("m", 1.3, seed=4) + repeated("n", 2.0, seed=4)),
    }


def test_baseline_file_compares_like_its_run(runs: dict[str, Path], tmp_path: Path) -> None:
    baseline = tmp_path / "baselines" / "main.json"
    proc = cli("baseline", "save", runs["base"], baseline)
    assert proc.returncode == 0, proc.stderr
    assert "saved 2 cells (6 repetitions each)" in proc.stdout
    document = json.loads(baseline.read_text())
    assert "raw_times_ms" not in baseline.read_text()
    assert len(document["cells"][0]["repetitions"]) == 6
    from_file = compare(load_side(baseline), load_side(runs["slow"]))
    from_dir = compare(load_side(runs["base"]), load_side(runs["slow"]))
    assert [c.to_dict() for c in from_file.cells] == [c.to_dict() for c in from_dir.cells]


def test_compare_exit_codes_and_files(runs: dict[str, Path], tmp_path: Path) -> None:
    same = cli("compare", runs["base"], runs["same"])
    assert same.returncode == 0, same.stdout + same.stderr
    assert "gate: pass" in same.stdout
    files = {name: tmp_path / name for name in ("r.md", "r.json", "r.xml", "gh.json")}
    slow = cli(
        "compare",
        runs["base"],
        runs["slow"],
        "--markdown",
        files["r.md"],
        "--json",
        files["r.json"],
        "--junit",
        files["r.xml"],
        "--github-benchmark",
        files["gh.json"],
    )
    assert slow.returncode == 1, slow.stdout + slow.stderr
    assert "gate: FAIL (1 regressed, 1 unchanged)" in slow.stdout

    document = json.loads(files["r.json"].read_text())
    assert document["gate"] == "fail"
    assert [c["verdict"] for c in document["cells"]] == [REGRESSED, UNCHANGED]

    suite = ET.parse(files["r.xml"]).getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures")) == ("2", "1")
    failing = [case for case in suite.iter("testcase") if case.find("failure") is not None]
    assert [case.get("name") for case in failing] == ["m/onnxruntime/cpu/fp32/b1/latency"]

    table = [line for line in files["r.md"].read_text().splitlines() if line.startswith("|")]
    widths = {line.count("|") for line in table}
    assert len(widths) == 1 and len(table) >= 4  # one shape for header, rule and rows

    entries = json.loads(files["gh.json"].read_text())
    assert {"name", "unit", "value"} <= set(entries[0])
    median = next(
        e for e in entries if e["name"] == "m/onnxruntime/cpu/fp32/b1/latency latency median"
    )
    assert median["unit"] == "ms" and median["value"] == pytest.approx(1.3, rel=0.02)


def test_thresholds_come_from_the_suite_and_the_command_line(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    suite = tmp_path / "bench.toml"
    suite.write_text("[compare]\nthreshold = 0.5\n")
    assert cli("compare", runs["base"], runs["slow"], "--config", suite).returncode == 0
    loose = cli(
        "compare",
        runs["base"],
        runs["slow"],
        "--threshold",
        "latency_median=50%",
        "--threshold",
        "latency_p99=50%",
    )
    assert loose.returncode == 0, loose.stdout


@pytest.mark.parametrize(
    "args, fragment",
    [
        (("missing-dir", "{same}"), "does not exist"),
        (("{bad_json}", "{same}"), "is not JSON"),
        (("{not_baseline}", "{same}"), "is not a deploybench baseline"),
        (("{other_hw}", "{same}"), "--allow-different-hardware"),
        (("{base}", "{same}", "--threshold", "fast"), "is not a number"),
        (("{base}", "{same}", "--alpha", "2"), "--alpha"),
        (("{empty}", "{same}"), "holds no results.jsonl"),
        (("{not_results}", "{same}"), "line 1 is not a deploybench result"),
        (("{list_env}", "{same}"), "environment.json holds a JSON list, not an object"),
        (("{base}", "{same}", "--json", "{empty}"), "cannot write"),
    ],
)
def test_bad_input_is_a_one_line_error(
    runs: dict[str, Path], tmp_path: Path, args: tuple[str, ...], fragment: str
) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "other.json").write_text('{"format": "something else"}')
    (tmp_path / "empty").mkdir()
    other_hw = write_run(tmp_path / "hw", repeated("m", 1.0), {**ENV, "cpu": {"model": "X"}})
    not_results = write_run(tmp_path / "not_results", [])
    (not_results / "results.jsonl").write_text(json.dumps({"foo": 1}) + "\n")
    list_env = write_run(tmp_path / "list_env", repeated("m", 1.0))
    (list_env / "environment.json").write_text("[]")
    names = {
        **runs,
        "bad_json": tmp_path / "bad.json",
        "not_baseline": tmp_path / "other.json",
        "other_hw": other_hw,
        "empty": tmp_path / "empty",
        "not_results": not_results,
        "list_env": list_env,
    }
    proc = cli("compare", *(a.format(**names) for a in args), cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert fragment in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_measure_settings_that_differ_are_reported(tmp_path: Path) -> None:
    def run_with(name: str, min_duration: float) -> Path:
        path = write_run(tmp_path / name, repeated("m", 1.0))
        config = {"measure": {"min_duration_s": min_duration}, "suite": {"threads": 0}}
        (path / "run.json").write_text(json.dumps({"run_id": name, "config": config}))
        return path

    short, long = run_with("short", 0.3), run_with("long", 3.0)
    baseline = tmp_path / "short.json"
    assert cli("baseline", "save", short, baseline).returncode == 0
    comparison = compare(load_side(baseline), load_side(long))
    (difference,) = comparison.differences
    assert (difference.what, difference.baseline, difference.current) == (
        "measure.min_duration_s",
        "0.3",
        "3.0",
    )
    assert any(
        "measure.min_duration_s: 0.3 → 3.0" in line for line in output.context_lines(comparison)
    )


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d.pop("environment"),
        lambda d: d.update(environment=[]),
        lambda d: d["cells"][0].update(repetitions=[1, 2]),
        lambda d: d["cells"][0].update(repetitions=[]),
        lambda d: d["cells"][0].update(cell=None),
        lambda d: d["cells"][0]["repetitions"][0].update(latency_median="fast"),
    ],
)
def test_a_damaged_baseline_is_a_user_error(runs: dict[str, Path], tmp_path: Path, damage) -> None:
    baseline = tmp_path / "base.json"
    assert cli("baseline", "save", runs["base"], baseline).returncode == 0
    document = json.loads(baseline.read_text())
    damage(document)
    baseline.write_text(json.dumps(document))
    with pytest.raises(UserError, match="damaged"):
        load_side(baseline)


def test_a_cell_with_no_metric_on_both_sides_is_not_unchanged() -> None:
    bare = [
        r.model_copy(update={"latency_ms": None, "throughput": None, "memory": None})
        for r in repeated("m", 1.0)
    ]
    (cell,) = compare(side(repeated("m", 1.0)), side(bare)).cells
    assert cell.verdict == INCONCLUSIVE
    assert cell.note == "no metric measured on both sides"


def test_non_finite_figures_are_not_metrics() -> None:
    current = repeated("m", 1.0, seed=1)
    first, second = current[0].latency_ms, current[1].latency_ms
    assert first is not None and second is not None
    current[0].latency_ms = dataclasses.replace(first, median=float("nan"))
    current[1].latency_ms = dataclasses.replace(second, p99=float("inf"))
    (cell,) = compare(side(repeated("m", 1.0)), side(current)).cells
    by_metric = {c.metric: c for c in cell.changes}
    assert by_metric["latency_median"].n_current == 5
    assert by_metric["latency_p99"].n_current == 5
    assert cell.verdict == UNCHANGED


def test_github_benchmark_value_is_the_median_of_an_even_count() -> None:
    current = side([record("m", median, i) for i, median in enumerate((1.0, 2.0, 3.0, 10.0))])
    entries = {e["name"]: e for e in output.github_benchmark(current)}
    median = entries["m/onnxruntime/cpu/fp32/b1/latency latency median"]
    assert median["value"] == pytest.approx(2.5)  # as the gate's np.median, not the upper one
    assert median["range"] == "1–10"


def test_terminal_table_shows_reasons_as_text_not_markup() -> None:
    from rich.console import Console

    base = repeated("m", 1.0)
    current = [ended(cell("m"), "failed", reason="pip install 'x[openvino]' [/gpu]")]
    console = Console(width=300, record=True)
    console.print(output.terminal(compare(side(base), side(current))))
    assert "pip install 'x[openvino]' [/gpu]" in console.export_text()


def test_a_field_recorded_on_one_side_only_is_reported_not_refused() -> None:
    """A run from before the power fingerprint (no power state) against a GPU run with it."""
    gpu = {**ENV, "gpus": [{"name": "NVIDIA H100", "cuda_driver": "13.0"}]}
    newer = {**gpu, "power": {"state": {"gpus": [{"power_limit_w": 700.0}]}}}
    comparison = compare(side(repeated("m", 1.0), gpu), side(repeated("m", 1.0), newer))
    assert not comparison.different_hardware_allowed
    (difference,) = comparison.differences
    assert (difference.what, difference.baseline, difference.known) == (
        "GPU power limit (W)",
        "unknown",
        False,
    )
    line = "hardware (recorded on one side only) differs: GPU power limit (W): unknown → 700.0"
    assert line in output.context_lines(comparison)
    lower = {**gpu, "power": {"state": {"gpus": [{"power_limit_w": 300.0}]}}}
    with pytest.raises(UserError, match="GPU power limit"):
        compare(side(repeated("m", 1.0), lower), side(repeated("m", 1.0), newer))
