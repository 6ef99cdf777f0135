"""The HTML reports as a person sees them: real runs rendered in headless Chromium with
the network off. Nothing logs an error or asks for the network, each chart draws one mark
per record (counted against the results files), the table sorts, the page prints, and a
model named like an HTML tag runs nothing. tests/test_html_report.py covers the rest
without a browser."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from types import ModuleType

import pytest
from fixtures.browser import SCRIPT, require_browser
from fixtures.onnx_models import dynamic_relu

import cli
from bench.harness.repetitions import merged
from bench.harness.results import read_records
from bench.views.speedup import speedups

pytestmark = pytest.mark.e2e

HOSTILE = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def browser() -> ModuleType:
    return require_browser()


def write_suite(path: Path, **suite: object) -> Path:
    lines = ["[suite]", 'name = "html"', "threads = 1", "in_flight = 2"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in suite.items()]
    lines += ["[measure]", "warmup_s = 0.02", "warmup_min_iters = 2", "min_duration_s = 0.05"]
    lines += ["min_iters = 20", "max_duration_s = 5.0"]
    path.write_text("\n".join(lines) + "\n")
    return path


def one_run(results: Path) -> Path:
    (run_dir,) = [p for p in results.iterdir() if p.is_dir()]
    return run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> dict[str, Path]:
    """A real run (lenet5 on ONNX Runtime: fp32 and fp16, batch 1 and 2, latency and
    throughput) and a real run of an ONNX file named like an HTML tag."""
    root = tmp_path_factory.mktemp("html-runs")
    config = write_suite(
        root / "bench.toml",
        models=["lenet5"],
        runtimes=["onnxruntime"],
        precisions=["fp32", "fp16"],
        batch_sizes=[1, 2],
        scenarios=["latency", "throughput"],
    )
    common = ["--cache-dir", str(cache_dir), "--no-progress"]
    assert (
        cli.main(["run", "--config", str(config), "--results-dir", str(root / "a"), *common]) == 0
    )
    hostile = dynamic_relu(root / f"{HOSTILE}.onnx")
    plain = write_suite(root / "one.toml", runtimes=["onnxruntime"], scenarios=["latency"])
    argv = ["run", "--config", str(plain), "--onnx", str(hostile), "--shape", "x=1x16"]
    assert cli.main([*argv, "--results-dir", str(root / "b"), *common]) == 0
    return {"zoo": one_run(root / "a"), "hostile": one_run(root / "b"), "root": root}


def expected_marks(run_dir: Path) -> dict[str, int]:
    """What the run page should draw, from the results file itself."""
    records = merged(read_records(run_dir / "results.jsonl"))
    ok = [r for r in records if r.ok]
    flights: dict[tuple, set] = defaultdict(set)
    batches: dict[tuple, set] = defaultdict(set)
    for r in ok:
        c = r.cell
        flights[(c.model, c.runtime, c.precision, c.batch)].add(r.executed.in_flight)
        batches[(c.model, c.runtime, c.precision, c.scenario)].add(c.batch)
    return {
        "latency": sum(bool(r.raw_times_ms) for r in ok),
        "speedup": sum(row.speedup is not None for row in speedups(records)),
        "scaling-inflight": sum(len(v) for v in flights.values() if len(v) > 1),
        "scaling-batch": sum(len(v) for v in batches.values() if len(v) > 1),
    }


def counted(visit) -> dict[str, int]:  # noqa: ANN001 - the script's Visit
    counts: dict[str, int] = defaultdict(int)
    for chart, figures in visit.marks().items():
        assert figures["drawn"] == figures["marks"], f"{chart}: a mark with no size"
        name = chart.removeprefix("mark-")
        counts["latency" if name.startswith("latency-") else name] += figures["marks"]
    return dict(counts)


def test_a_run_report_draws_each_record_and_nothing_goes_wrong(browser, runs) -> None:
    report = runs["zoo"] / "report.html"
    expected = expected_marks(runs["zoo"])
    assert expected["latency"] == 8 and expected["speedup"] == 4
    with browser.offline_page(report) as visit:
        counts = counted(visit)
        rows = visit.page.locator("#summary-table tbody tr").count()
        pdf = visit.page.pdf()
        assert visit.problems() == []
    assert {k: counts.get(k, 0) for k in expected} == expected
    assert rows == 8
    assert pdf.startswith(b"%PDF") and len(pdf) > 10_000


def test_the_summary_table_sorts_by_a_figure(browser, runs) -> None:
    read = "cells => cells.map(c => Number(c.dataset.value))"
    with browser.offline_page(runs["zoo"] / "report.html") as visit:
        table = visit.page.locator("#summary-table")
        column = [h.strip() for h in table.locator("th").all_inner_texts()].index("median ms")
        cells = f"#summary-table tbody tr td:nth-child({column + 1})"
        heading = table.locator("th", has_text="median ms")
        heading.click()
        ascending = visit.page.eval_on_selector_all(cells, read)
        heading.click()
        descending = visit.page.eval_on_selector_all(cells, read)
        assert visit.problems() == []  # the policy let the page's own script run
    assert len(ascending) == 8 and all(v > 0 for v in ascending)
    assert ascending == sorted(ascending) and descending == sorted(ascending, reverse=True)


def test_every_table_of_a_page_sorts(browser, runs) -> None:
    """Each table sorts by its own columns (the speedup table is the page's second)."""
    with browser.offline_page(runs["zoo"] / "report.html") as visit:
        table = visit.page.locator("#speedup-table")
        heading = table.locator("th", has_text="fp32 ms")
        column = [h.strip() for h in table.locator("th").all_inner_texts()].index("fp32 ms")
        heading.click()
        texts = visit.page.eval_on_selector_all(
            f"#speedup-table tbody tr td:nth-child({column + 1})",
            "cells => cells.map(c => c.textContent)",
        )
        assert visit.problems() == []
    assert texts == sorted(texts, key=float) and len(texts) == 4


def test_a_model_named_like_a_tag_runs_nothing(browser, runs, tmp_path) -> None:
    run = runs["hostile"]
    assert cli.main(["compare", str(run), str(run), "--html", str(tmp_path / "c.html")]) == 0
    assert cli.main(["report", str(run), "--html", str(tmp_path / "m.html")]) == 0
    for page in (run / "report.html", tmp_path / "c.html", tmp_path / "m.html"):
        with browser.offline_page(page) as visit:
            shown = visit.page.inner_text("body")
            images = visit.page.locator("img").count()
            assert visit.problems() == [], page  # no dialog, error or request
        assert HOSTILE in shown, page
        assert images == 0, page


def test_compare_and_machines_pages_draw_their_data(browser, runs, tmp_path) -> None:
    zoo, hostile = runs["zoo"], runs["hostile"]
    summary = tmp_path / "compare.json"
    argv = ["compare", str(zoo), str(zoo), "--html", str(tmp_path / "c.html")]
    assert cli.main([*argv, "--json", str(summary)]) == 0
    changes = [
        c
        for cell in json.loads(summary.read_text())["cells"]
        for c in cell["changes"]
        if c["ratio"] is not None and c["ratio"] > 0
    ]
    assert cli.main(["report", str(zoo), str(hostile), "--html", str(tmp_path / "m.html")]) == 0
    ok = [r for d in (zoo, hostile) for r in merged(read_records(d / "results.jsonl")) if r.ok]
    with browser.offline_page(tmp_path / "c.html") as visit:
        compared = counted(visit)
        assert visit.problems() == []
    with browser.offline_page(tmp_path / "m.html") as visit:
        machines = counted(visit)
        assert visit.problems() == []
    assert sum(n for chart, n in compared.items() if chart.startswith("compare-")) == len(changes)
    assert machines["machines-samples"] == len(ok)  # one machine: a bar per measured cell


def test_the_screenshot_script_passes_on_a_real_report(browser, runs, tmp_path) -> None:
    shot = tmp_path / "report.png"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(runs["zoo"] / "report.html"), str(shot)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 50_000
    assert "mark-speedup: 4 marks, 4 drawn" in proc.stdout
