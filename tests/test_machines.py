"""The machine table and the roofline on recorded results of two machines (fixtures in
tests/fixtures/machines: illustrative figures, not measurements)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.core.errors import UserError
from bench.core.record import CellRecord
from bench.harness.environment import machine_id
from bench.harness.results import read_records
from bench.hw.records import read_hw
from bench.views.machines import ABSENT, load_machines, machine_rows, machines_table
from bench.views.roofline import find_hw, roofline_rows

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "machines"
H100_HW = FIXTURES / "h100-server" / "20261101-120000-hw"
H100_RUN = FIXTURES / "h100-server" / "20261101-130000-train"
XEON_HW = FIXTURES / "xeon-dev" / "20261101-120000-hw"
XEON_RUN = FIXTURES / "xeon-dev" / "20261101-130000-train"
TRAIN_FP32 = "resnet18 pytorch b8 training fp32 samples/s"


def _best(hw_dir: Path, device: str, names: tuple[str, ...]) -> float:
    records = json.loads((hw_dir / "hw.json").read_text())["records"]
    return max(
        r["best"] for r in records if r["device"] == device and r["name"] in names and r["best"]
    )


def _cell(run_dir: Path, key: str) -> CellRecord:
    return next(r for r in read_records(run_dir / "results.jsonl") if r.key == key)


@pytest.fixture(scope="module")
def rows() -> dict:
    machines = load_machines([H100_RUN, H100_HW, XEON_RUN, XEON_HW])
    return {row.label: row for row in machine_rows(machines)}


def test_directories_of_one_machine_merge_by_hardware_fingerprint() -> None:
    machines = load_machines([H100_RUN, XEON_HW, H100_HW, XEON_RUN])
    assert [m.label for m in machines] == ["NVIDIA H100 80GB HBM3", "Intel(R) Xeon(R) Processor"]
    assert [len(m.sources) for m in machines] == [2, 2]
    assert [m.primary for m in machines] == ["cuda:0", "cpu"]


def test_the_fingerprint_is_the_hardware_not_the_software() -> None:
    env = json.loads((XEON_RUN / "environment.json").read_text())
    newer = {**env, "libraries": {"torch": "9.9"}, "python": "3.14.0"}
    assert machine_id(newer) == machine_id(env)
    with_gpu = {**env, "gpus": [{"name": "NVIDIA L4"}]}
    assert machine_id(with_gpu) != machine_id(env)


def test_seed_sheet_rows_come_from_each_machines_hw_figures(rows: dict) -> None:
    training = rows["training TFLOPS (best fp16/bf16 matrix multiply)"]
    h100 = _best(H100_HW, "cuda:0", ("fp16", "bf16"))
    xeon = _best(XEON_HW, "cpu", ("fp16", "bf16"))
    assert training.values == [h100, xeon]
    assert training.texts[0].endswith("(bf16)")
    assert training.ratio() == f"{xeon / h100:.3g}x"
    fp64 = rows["FP64 TFLOPS (matrix multiply)"]
    assert fp64.values == [_best(H100_HW, "cuda:0", ("fp64",)), _best(XEON_HW, "cpu", ("fp64",))]
    triad = rows["STREAM triad GB/s"]
    assert triad.values == [_best(H100_HW, "cuda:0", ("triad",)), _best(XEON_HW, "cpu", ("triad",))]
    host = rows["host CPU STREAM triad GB/s"]
    assert host.values == [_best(H100_HW, "cpu", ("triad",)), _best(XEON_HW, "cpu", ("triad",))]


def test_absent_figures_show_a_dash_or_unavailable_and_no_ratio(rows: dict) -> None:
    h2d = rows["host→device GB/s (pinned)"]
    assert h2d.texts[1] == ABSENT and h2d.ratio() == ABSENT
    assert rows["TF32 TFLOPS (matrix multiply)"].texts[1] == "unavailable"


def test_no_ratio_between_figures_of_different_dtypes(rows: dict) -> None:
    inference = rows["inference TFLOPS (best fp16/bf16; int8 in TOPS)"]
    assert inference.kinds == ["int8", "bf16"]  # the H100's int8 TOPS, the Xeon's bf16 TFLOPS
    assert inference.ratio() == f"{ABSENT} (bf16 vs int8)"


def test_model_rows_hold_each_machines_throughput_and_speedups(rows: dict) -> None:
    h100 = _cell(H100_RUN, "resnet18/pytorch/cuda:0/fp32/b8/train")
    xeon = _cell(XEON_RUN, "resnet18/pytorch/cpu/fp32/b8/train")
    expected = [r.samples_per_s for r in (h100, xeon)]
    assert rows[TRAIN_FP32].values == expected
    assert rows[TRAIN_FP32].ratio() == f"{expected[1] / expected[0]:.3g}x"
    fp16 = _cell(H100_RUN, "resnet18/pytorch/cuda:0/fp16/b8/train")
    speedup = np.median(h100.raw_times_ms) / np.median(fp16.raw_times_ms)
    train_gain = rows["resnet18 pytorch b8 training fp16 speedup over fp32"]
    assert train_gain.values[0] == pytest.approx(speedup)
    assert train_gain.texts[1] == ABSENT  # the Xeon trained in bf16, not fp16
    infer_gain = rows["resnet18 pytorch b8 inference (latency) fp16 speedup over fp32"]
    assert infer_gain.values[0] > train_gain.values[0]  # the fixture's V100-like pattern


def test_energy_is_shown_where_measured_and_a_dash_elsewhere(rows: dict) -> None:
    energy = rows["resnet18 pytorch b8 inference (latency) fp16 J/inference"]
    cell = _cell(H100_RUN, "resnet18/pytorch/cuda:0/fp16/b8/latency")
    assert energy.values == [cell.j_per_sample, None]
    assert energy.texts[1] == ABSENT


def test_the_ratio_column_appears_only_for_two_machines() -> None:
    two = load_machines([H100_HW, XEON_HW])
    one = load_machines([XEON_HW])
    assert len(machines_table(two, machine_rows(two)).columns) == 4
    assert len(machines_table(one, machine_rows(one)).columns) == 2


def test_roofline_share_is_achieved_flops_over_the_measured_peak() -> None:
    environment = json.loads((H100_RUN / "environment.json").read_text())
    hw = find_hw(H100_RUN, environment, [])  # found beside the run, same fingerprint
    assert hw and all(r.to_dict() in [x.to_dict() for x in read_hw(H100_HW)] for r in hw)
    rows = {
        (r.scenario, r.precision): r
        for r in roofline_rows(read_records(H100_RUN / "results.jsonl"), hw)
    }
    cell = _cell(H100_RUN, "resnet18/pytorch/cuda:0/fp16/b8/train")
    assert cell.model is not None and cell.model.flops_per_sample and cell.samples_per_s
    achieved = cell.model.flops_per_sample * 3 * cell.samples_per_s / 1e12
    train = rows[("train", "fp16")]
    assert train.achieved_tflops == pytest.approx(achieved)
    assert train.share == pytest.approx(achieved / _best(H100_HW, "cuda:0", ("fp16",)))
    assert rows[("latency", "fp16")].flop_factor == 1


def test_roofline_without_a_matching_hw_result_has_no_peak(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(XEON_RUN, run)
    shutil.copytree(H100_HW, tmp_path / "hw")  # another machine's hw result: not used
    environment = json.loads((run / "environment.json").read_text())
    assert find_hw(run, environment, []) == []
    (row, *_) = roofline_rows(read_records(run / "results.jsonl"), [])
    assert row.peak_tflops is None and row.share is None and row.peak_note == "no hw result"
    with pytest.raises(UserError, match="has no hw.json"):
        find_hw(run, environment, [run])


def _report(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "cli.py", "report", *map(str, args)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_report_prints_and_writes_markdown(tmp_path: Path) -> None:
    markdown = tmp_path / "machines.md"
    proc = _report(H100_RUN, XEON_RUN, "--hw", XEON_HW, "--markdown", markdown)
    assert proc.returncode == 0, proc.stderr
    text = markdown.read_text()
    header = text.splitlines()[0]
    assert "NVIDIA H100 80GB HBM3" in header and "Intel(R) Xeon(R) Processor /" in header
    assert "| STREAM triad GB/s |" in text and "## Roofline: NVIDIA H100 80GB HBM3" in text
    assert "Roofline" in proc.stdout


def test_cli_report_rejects_what_is_not_a_result_directory(tmp_path: Path) -> None:
    proc = _report(tmp_path / "missing")
    assert proc.returncode == 2 and proc.stderr.startswith("error: ")
    assert len(proc.stderr.strip().splitlines()) == 1
    proc = _report(tmp_path)
    assert proc.returncode == 2 and "has no environment.json" in proc.stderr


@pytest.mark.parametrize(
    "name, text", [("environment.json", "{x"), ("environment.json", "[]"), ("hw.json", "{}")]
)
def test_an_unreadable_directory_is_a_user_error(tmp_path: Path, name: str, text: str) -> None:
    broken = tmp_path / "hw"
    shutil.copytree(XEON_HW, broken)
    (broken / name).write_text(text)
    with pytest.raises(UserError, match=f"{name} (is not JSON|holds a JSON list)|unreadable"):
        load_machines([broken])


def test_a_damaged_hw_neighbour_is_skipped_when_looking_for_peaks(tmp_path: Path) -> None:
    run = tmp_path / "20261101-130000-train"
    shutil.copytree(XEON_RUN, run)
    shutil.copytree(XEON_HW, tmp_path / "20261101-120000-hw")
    damaged = tmp_path / "20261102-120000-hw"  # newer, so looked at first
    shutil.copytree(XEON_HW, damaged)
    (damaged / "environment.json").write_text("{x")
    environment = json.loads((run / "environment.json").read_text())
    assert find_hw(run, environment, []) == read_hw(XEON_HW)
