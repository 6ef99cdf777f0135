"""``history`` on fabricated series of runs: change points at the right run, none where
nothing changed, the exit code when the newest run starts a regression, the Markdown,
HTML and JSON outputs, runs ordered by start time, bad input, and the measurement script
that chose the detector (scripts/change_points.py) at tiny settings."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fixtures.records import cell, timed
from fixtures.scripts import run_script

import cli as command_line
from bench.compare.history import history, load_runs, segments
from bench.compare.sides import baseline_document, load_side
from bench.compare.thresholds import Thresholds

REPO_ROOT = Path(__file__).resolve().parent.parent
ENV = {
    "cpu": {"model": "Example CPU 9000", "usable_cores": 8},
    "gpus": [],
    "python": "3.11.7",
    "os": "Linux",
}
STEP_AT = 10
"""The run where the fabricated series step up by 20%."""


def latencies(count: int, step_at: int | None, newest: float = 1.0, seed: int = 0) -> list[float]:
    """``count`` per-run latencies (ms) around 1 with 2% noise, 20% higher from run
    ``step_at`` on, and the newest run ``newest`` times its level."""
    rng = np.random.default_rng(seed)
    levels = [1.2 if step_at is not None and i >= step_at else 1.0 for i in range(count)]
    levels[-1] *= newest
    return [level * float(np.exp(0.02 * rng.standard_normal())) for level in levels]


def write_runs(
    root: Path, values: list[float], env: dict | None = None, models: tuple[str, str] = ("m", "t")
) -> list[Path]:
    """One results directory per value: runs named by their start time (as RunDir.create
    names them), each with two repetitions of a latency cell (``models[0]``) at that
    value and of a throughput cell (``models[1]``) that does not change."""
    paths = []
    for index, value in enumerate(values):
        run_id = f"20261201-{index // 60:02d}{index % 60:02d}00-smoke"
        records = [
            timed(cell(models[0]), [value] * 4, repetition=rep, run_id=run_id) for rep in range(2)
        ] + [
            timed(cell(models[1], scenario="throughput"), [2.0] * 4, repetition=rep, run_id=run_id)
            for rep in range(2)
        ]
        path = root / run_id
        path.mkdir(parents=True)
        (path / "results.jsonl").write_text(
            "".join(json.dumps(r.to_dict()) + "\n" for r in records)
        )
        (path / "environment.json").write_text(json.dumps(env or ENV))
        (path / "run.json").write_text(json.dumps({"run_id": run_id}))
        paths.append(path)
    return paths


def main(*args: str | Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``cli.py ARGS`` in this process: exit code, stdout, stderr."""
    try:
        code = command_line.main([str(a) for a in args])
    except SystemExit as exit_:  # argparse's own errors
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_step_is_found_at_its_run_and_a_flat_series_has_none() -> None:
    for seed in range(3):
        assert segments(latencies(24, STEP_AT, seed=seed)) == [STEP_AT]
        assert segments(latencies(24, None, seed=seed)) == []


def test_the_newest_run_can_start_a_segment_of_its_own() -> None:
    values = latencies(20, None, newest=1.3)
    assert segments(values) == [19]
    assert segments(values[:-1]) == []  # one run earlier, nothing had changed
    two_back = latencies(20, None)
    two_back[-2:] = [v * 1.3 for v in two_back[-2:]]
    assert segments(two_back) == [18]  # the step began a run before the newest


def test_history_reports_each_change_point_with_its_segments(tmp_path: Path) -> None:
    runs = [load_side(p) for p in write_runs(tmp_path, latencies(20, STEP_AT, newest=1.3))]
    found = history(runs, Thresholds())
    latency = [c for c in found.change_points if c.metric == "latency_median"]
    assert [(c.index, c.run_id) for c in latency] == [
        (19, runs[19].run_id),
        (STEP_AT, runs[STEP_AT].run_id),
    ]
    newest, step = latency
    assert newest.fails and newest.newest and newest.regression
    assert newest.change == pytest.approx(0.3, abs=0.05)
    assert step.regression and not step.newest and not step.fails
    assert step.before == pytest.approx(1.0, abs=0.03)
    assert step.after == pytest.approx(1.2, abs=0.03)
    throughput = [c for c in found.change_points if c.cell.endswith("/throughput")]
    assert throughput == []  # the throughput cell never changed


@pytest.mark.parametrize(
    ("newest", "flags", "code"),
    [
        (1.3, [], 1),  # the newest run is 30% slower: a regression starts there
        (1.0, [], 0),  # the step lies in the past: reported, not failing
        (0.75, [], 0),  # faster: an improvement
        (1.3, ["--threshold", "latency_median=50%"], 0),  # within its threshold
    ],
    ids=["regression", "old-step", "improvement", "within-threshold"],
)
def test_exit_code_is_1_only_when_the_newest_run_starts_a_regression(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], newest: float, flags: list[str], code: int
) -> None:
    write_runs(tmp_path / "runs", latencies(16, STEP_AT, newest=newest))
    out = tmp_path / "history.json"
    exit_code, stdout, _ = main("history", tmp_path / "runs", *flags, "--json", out, capsys=capsys)
    assert exit_code == code, stdout
    document = json.loads(out.read_text())
    assert document["gate"] == ("fail" if code else "pass")
    step = [c for c in document["change_points"] if c["index"] == STEP_AT]
    assert {c["metric"] for c in step} >= {"latency_median", "latency_p99"}


def test_markdown_html_and_json_hold_the_change_point(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = write_runs(tmp_path / "runs", latencies(16, STEP_AT, newest=1.3))
    files = {kind: tmp_path / f"history.{kind}" for kind in ("md", "html", "json")}
    code, stdout, _ = main(
        "history",
        *paths,
        "--markdown",
        files["md"],
        "--html",
        files["html"],
        "--json",
        files["json"],
        capsys=capsys,
    )
    assert code == 1
    step_run, newest_run = paths[STEP_AT].name, paths[-1].name
    assert "REGRESSION starts at the newest run" in stdout
    assert step_run in stdout
    markdown = files["md"].read_text()
    assert f"| {newest_run} (newest) |" in markdown
    assert re.search(rf"\| {step_run} \| 1\.\d+ ms \| 1\.\d+ ms \| \+[12]\d\.\d% \|", markdown)
    html = files["html"].read_text()
    assert 'id="gate" class="verdict-fail"' in html
    assert html.count("<svg") >= 2  # a trend per cell and metric shown
    assert f"{step_run}: 1." in html  # the change point's tip on its trend
    assert "<script" in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    document = json.loads(files["json"].read_text())
    latency = [c for c in document["change_points"] if c["metric"] == "latency_median"]
    assert [(c["run_id"], c["kind"], c["fails"]) for c in latency] == [
        (newest_run, "regression", True),
        (step_run, "regression", False),
    ]
    assert document["detector"]["library"] == "ruptures"
    assert len(document["runs"]) == 16


def test_a_folder_is_taken_oldest_first_and_baseline_files_read_like_their_runs(
    tmp_path: Path,
) -> None:
    paths = write_runs(tmp_path / "runs", latencies(12, 6))
    folder = tmp_path / "baselines"
    folder.mkdir()
    for number, path in enumerate(reversed(paths)):  # names sorting against their time
        document = baseline_document(load_side(path), str(path))
        (folder / f"{number:02d}.json").write_text(json.dumps(document))
    from_files = load_runs([folder])
    assert [side.run_id for side in from_files] == [path.name for path in paths]
    from_dirs = history(load_runs([tmp_path / "runs"]), Thresholds())
    assert (
        history(from_files, Thresholds()).to_dict()["change_points"]
        == (from_dirs.to_dict()["change_points"])
    )
    assert [c.index for c in from_dirs.change_points if c.metric == "latency_median"] == [6]


FIRST = "20261201-000000-smoke"
BAD_INPUTS = [
    ("missing", lambda d: [d / "nowhere"], r"nowhere does not exist: give a results directory"),
    ("damaged", lambda d: [d / "runs", d / "bad.json"], r"bad\.json is not JSON \(.*\): give a"),
    ("one-run", lambda d: [d / "runs" / FIRST], r"at least 2 runs, got 1"),
    ("other-hardware", lambda d: [d / "runs", d / "other"], r"different hardware \(CPU"),
    ("empty-folder", lambda d: [d / "empty"], r"holds no results directory"),
    ("no-common-cell", lambda d: [d / "runs" / FIRST, d / "renamed"], r"share no cell that ran"),
    ("no-start-time", lambda d: [d / "unstamped"], r"records no start time: give the runs"),
]


@pytest.mark.parametrize(
    ("args", "expected"), [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS]
)
def test_bad_input_is_one_line_and_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args, expected: str
) -> None:
    write_runs(tmp_path / "runs", latencies(4, None))
    (tmp_path / "bad.json").write_text("{not json")
    other = {**ENV, "cpu": {"model": "Another CPU", "usable_cores": 8}}
    write_runs(tmp_path / "other-root", latencies(2, None), other)[1].rename(tmp_path / "other")
    (tmp_path / "empty").mkdir()
    renamed = write_runs(tmp_path / "renamed-root", latencies(1, None), models=("k", "u"))[0]
    renamed.rename(tmp_path / "renamed")
    for name, run in zip(
        ("a", "b"), write_runs(tmp_path / "plain", latencies(2, None)), strict=True
    ):
        (run / "run.json").write_text(json.dumps({"run_id": name}))
        run.rename(tmp_path / "plain" / name)
    (tmp_path / "plain").rename(tmp_path / "unstamped")
    code, stdout, stderr = main("history", *args(tmp_path), capsys=capsys)
    assert code == 2, stdout + stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert re.search(expected, lines[0]), lines[0]


@pytest.mark.e2e
def test_the_command_line_process_says_it_in_one_line(tmp_path: Path) -> None:
    def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, str(REPO_ROOT / "cli.py"), "history", *map(str, args)]
        return subprocess.run(argv, capture_output=True, text=True, timeout=120)

    paths = write_runs(tmp_path / "runs", latencies(12, None, newest=1.3))
    failing = cli(*paths)
    assert failing.returncode == 1, failing.stdout + failing.stderr
    assert "FAIL" in failing.stdout
    missing = cli(tmp_path / "nowhere", paths[0])
    assert missing.returncode == 2
    assert missing.stderr.count("\n") == 1 and "Traceback" not in missing.stderr


@pytest.mark.e2e
def test_the_measurement_script_runs_at_tiny_settings(tmp_path: Path, cache_dir: Path) -> None:
    out = tmp_path / "change_points.json"
    argv = ["--series", "3", "--only", "ruptures-pelt-l1,ruptures-binseg-l1", "--json", str(out)]
    done = run_script("change_points", argv, cache_dir)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"ruptures-pelt-l1 +one step +\d+%", done.stdout), done.stdout
    figures = json.loads(out.read_text())
    assert set(figures["detectors"]) == {"ruptures-pelt-l1", "ruptures-binseg-l1"}
    assert figures["detectors"]["ruptures-pelt-l1"]["one step"]["series"] == 3
    assert set(figures["newest_rule"]) == {"newest", "no change", "outliers"}
