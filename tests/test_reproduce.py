"""Our u39kun and Lambda-style cells beside the published rows: matching, ratios, what
differs, and the tables after a run and in ``report``."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from bench.harness.config import load_config
from bench.harness.results import ENVIRONMENT_FILE, RESULTS_FILE
from bench.hw.records import HW_FILE, HwRecord
from bench.views.machines_report import machines_report
from bench.views.reproduce import lambda_rows, u39kun_differences, u39kun_rows
from tests.fixtures.records import cell, timed

REPO_ROOT = Path(__file__).resolve().parent.parent


def _cells() -> list:
    """ResNet-152 at batch 16 on the CPU: eval fp32 2000 ms, bf16 1000 ms; train fp32 6000
    ms; and a batch-1 eval cell that must not match."""
    records = []
    for precision, scenario, ms in (
        ("fp32", "latency", 2000.0),
        ("bf16", "latency", 1000.0),
        ("fp32", "train", 6000.0),
    ):
        of = cell("resnet152", "pytorch", "cpu", precision, 16, scenario)
        record = timed(of, [ms * 0.9, ms, ms * 1.1])
        record.executed.provider = "torch 2.11.0 eager"
        records.append(record)
    records.append(timed(cell("resnet152", "pytorch", "cpu", "fp32", 1), [5.0, 5.0]))
    return records


def test_u39kun_rows_put_our_mean_beside_each_published_machine() -> None:
    rows = u39kun_rows(_cells())
    eval_rows = [r for r in rows if r.pass_ == "eval"]
    ours, *published = eval_rows
    assert ours.who == "ours (cpu, bf16)" and ours.fp32_ms == 2000.0 and ours.half_ms == 1000.0
    assert ours.speedup == 2.0
    v100 = next(r for r in published if r.who.startswith("Tesla V100"))
    assert (v100.fp32_ms, v100.half_ms) == (38.7, 21.7)  # the published ResNet-152 eval row
    cells = v100.cells()
    assert cells[6] == f"{2000 / 38.7:.2f}x" and cells[7] == f"{1000 / 21.7:.2f}x"
    assert len(published) == 5  # four GPUs, the 2080 Ti under two PyTorch versions
    train = [r for r in rows if r.pass_ == "train"]
    assert train[0].fp32_ms == 6000.0 and train[0].half_ms is None
    assert {r.model for r in rows} == {"resnet152"}  # only what ran


def test_each_device_gets_its_own_row_of_ours() -> None:
    gpu = timed(cell("resnet152", "pytorch", "cuda:0", "fp32", 16), [40.0, 40.0])
    rows = u39kun_rows([*_cells(), gpu])
    ours = [r for r in rows if r.pass_ == "eval" and r.who.startswith("ours")]
    assert [(r.who, r.fp32_ms) for r in ours] == [
        ("ours (cpu, bf16)", 2000.0),
        ("ours (cuda:0)", 40.0),
    ]


def test_u39kun_differences_say_what_ran_and_how_theirs_did() -> None:
    lines = u39kun_differences(_cells())
    text = "\n".join(lines)
    assert "ours torch 2.11.0 eager (CPU)" in text and "pytorch 0.3.0 (CUDA 9.0.176" in text
    assert "the mean of 3 passes" in text and "the mean of 20 passes after 20" in text
    assert "no optimizer step" in text and "ours ran on a CPU" in text


def test_lambda_rows_show_images_per_second_and_the_mixed_precision_speedup() -> None:
    records = []
    for precision, ms in (("fp32", 800.0), ("bf16", 400.0)):
        of = cell("resnet50", "pytorch", "cpu", precision, 8, "train")
        records.append(timed(of, [ms] * 4, training=None))
    (row,) = lambda_rows(records)
    assert row == ["resnet50", "8", "cpu", "10.0", "20.0", "bf16 autocast", "2.00x"]


def test_report_shows_the_reproduction_rows_and_the_gpu_sheet(tmp_path: Path) -> None:
    environment = {"cpu": {"model": "Test CPU"}, "os": "Linux", "libraries": {}}
    run, hw = tmp_path / "run", tmp_path / "hw"
    for folder in (run, hw):
        folder.mkdir()
        (folder / ENVIRONMENT_FILE).write_text(json.dumps(environment))
    lines = [record.model_dump_json() for record in _cells()]
    (run / RESULTS_FILE).write_text("\n".join(lines) + "\n")
    triad = HwRecord("stream", "cpu", "triad", 2**27, "GB/s", best=38.0, median=37.0)
    (hw / HW_FILE).write_text(json.dumps({"schema_version": 1, "records": [triad.to_dict()]}))
    console = Console(record=True, width=250)
    markdown, html = tmp_path / "report.md", tmp_path / "report.html"
    assert machines_report([run, hw], [], markdown, console, html) == 0
    shown = console.export_text()
    assert "u39kun: per-batch mean ms at batch 16: Test CPU" in shown
    assert "The GPU sheet beside ours: Test CPU" in shown
    text = markdown.read_text()
    assert "| resnet152 | eval | Titan V (pytorch 0.3.0) | 48.9 | 26.1 | 1.87x |" in text
    assert "| STREAM triad (GB/s) | 557 | 855 | 38 (0.044x V100) |" in text
    page = html.read_text()
    assert 'id="u39kun-0"' in page and 'id="gpu-sheet-0"' in page
    assert "<td>Tesla V100 (AWS p3) (pytorch 0.3.0)</td>" in page and "ours ran on a CPU" in page


def test_a_run_without_those_cells_has_no_reproduction_rows() -> None:
    other = [timed(cell("resnet18", "pytorch", "cpu", "fp32", 16), [1.0, 1.0])]
    assert u39kun_rows(other) == [] and lambda_rows(other) == []
    assert u39kun_differences(other) == []


def test_the_u39kun_profile_follows_its_rules() -> None:
    config = load_config(REPO_ROOT / "bench.toml", "u39kun")
    suite, measure = config.suite, config.measure
    assert suite.models == ["vgg16", "resnet152", "densenet161"] and suite.batch_sizes == [16]
    assert set(suite.scenarios) == {"latency", "train"} and suite.precisions == ["fp32", "fp16"]
    assert (measure.warmup_min_iters, measure.min_iters) == (20, 20)
    assert measure.warmup_s == measure.min_duration_s == 0.0  # counts, not durations
    assert config.runtime.of("pytorch").cudnn_benchmark
