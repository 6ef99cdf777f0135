"""The HTML reports without a browser: what each chart draws for the records, that a
failed speedup is never a bar, that every user string stays text, and the page's policy.
tests/test_html_browser.py opens real reports in Chromium."""

from __future__ import annotations

import base64
import hashlib
import html
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from fixtures.records import cell, ended, timed

import cli
from bench.compare.gate import compare
from bench.compare.html import comparison_page
from bench.compare.sides import side_from_records
from bench.core.record import CellRecord, ModelInfo
from bench.hw.records import HwRecord
from bench.views.html.machines_page import machines_page
from bench.views.html.run_page import run_page, scaling_series
from bench.views.machines import Machine, Row
from bench.views.speedup import speedups

HOSTILE = (
    "<img src=x onerror=alert(1)>",
    "</script><script>alert(2)</script>",
    "$\\frac{1}{0}$ _x_ &amp;",
)
SVG = "{http://www.w3.org/2000/svg}"
TIMES = [1.0 + 0.01 * (i % 7) for i in range(60)]


def marks(page: str, chart: str) -> list[str]:
    return re.findall(rf'id="(mark-{chart}-\d+)"', page)


def svg_group(page: str, ident: str) -> ET.Element:
    """The SVG group of one mark, parsed."""
    start = page.index(f'<g id="{ident}">')
    depth, position = 0, start
    for tag in re.finditer(r"<(/?)g\b[^>]*?(/?)>", page[start:]):
        if tag.group(2):
            continue
        depth += -1 if tag.group(1) else 1
        if depth == 0:
            position = start + tag.end()
            break
    fragment = page[start:position]
    return ET.fromstring(
        f'<svg xmlns="http://www.w3.org/2000/svg" '
        f'xmlns:xlink="http://www.w3.org/1999/xlink">{fragment}</svg>'
    )


def a_run() -> list[CellRecord]:
    """Two models: fp32, an fp16 that passed, a bf16 whose accuracy failed, a throughput
    cell (4 in flight), a failed cell and a skipped one."""
    info = ModelInfo(params=1_000_000, flops_per_sample=2_000_000_000)
    return [
        timed(cell("resnet18"), TIMES, model=info),
        timed(
            cell("resnet18", precision="fp16"),
            [t / 1.5 for t in TIMES],
            accuracy={"verdict": "pass"},
        ),
        timed(
            cell("resnet18", precision="bf16"), [t / 2 for t in TIMES], accuracy={"verdict": "fail"}
        ),
        timed(
            cell("resnet18", scenario="throughput"), TIMES, window_s=0.02, in_flight=4, model=info
        ),
        timed(cell("mlp", "pytorch"), TIMES),
        ended(cell("mlp", "tensorrt", "cuda:0"), "failed", "engine build failed"),
        ended(cell("mlp", "openvino", precision="fp16"), "skipped", "no fp16 path"),
    ]


def test_a_run_page_draws_each_measured_cell_once() -> None:
    records = a_run()
    page = run_page("run", records, speedups(records), {}, [], [])
    latency = re.findall(r'id="(mark-latency-[\d-]+)"', page)
    assert len(latency) == sum(r.ok for r in records) == 5
    body = page[page.index("<tbody>") : page.index("</tbody>")]
    assert body.count("<tr") == len(records)
    assert body.count('class="failed"') == 1 and body.count('class="skipped"') == 1
    assert "engine build failed" in body and "no fp16 path" in body
    assert len(marks(page, "speedup")) == 2  # fp16 and bf16 over the fp32 latency twin
    assert len(marks(page, "scaling-inflight")) == 2  # latency (1) and throughput (4)
    assert "Power was not measured" in page


def test_an_accuracy_failure_is_a_cross_never_a_bar() -> None:
    records = a_run()
    rows = speedups(records)
    assert [r.verdict for r in rows] == ["faster", "accuracy failed"]
    page = run_page("run", records, rows, {}, [], [])
    win, failed = (svg_group(page, ident) for ident in marks(page, "speedup"))
    assert not list(win.iter(f"{SVG}use")), "the faster row is a bar, not a marker"
    assert list(failed.iter(f"{SVG}use")), "the failed row is a marker (a cross)"
    tip = failed.find(f".//{SVG}title").text
    assert "accuracy failed" in tip and "no win" in tip


def test_scaling_needs_two_points_of_one_cell() -> None:
    records = a_run()
    series = scaling_series(records, "in_flight")
    assert [len(s.points) for s in series] == [2]
    assert sorted(p[0] for p in series[0].points) == [1, 4]
    assert scaling_series(records, "batch") == []
    batches = [timed(cell("mlp", batch=b), TIMES, model=None) for b in (1, 8, 32)]
    (by_batch,) = scaling_series(batches, "batch")
    assert [p[0] for p in sorted(by_batch.points)] == [1, 8, 32]


def test_the_roofline_draws_cells_under_the_measured_peaks() -> None:
    records = a_run()
    hw = [
        HwRecord("matmul", "cpu", "fp32", 1024, "TFLOP/s", best=1.0),
        HwRecord("stream", "cpu", "triad", 1 << 28, "GB/s", best=20.0),
    ]
    page = run_page("run", records, speedups(records), {}, hw, [])
    assert len(marks(page, "roofline")) == 2  # the resnet18 cells with a FLOP count
    assert "fp32 peak 1 TFLOP/s" in page and "STREAM triad 20 GB/s" in page
    without = run_page("run", records, speedups(records), {}, [], [])
    assert not marks(without, "roofline") and "run python cli.py hw" in without


def hostile_records() -> list[CellRecord]:
    return [
        timed(cell(HOSTILE[0]), TIMES),
        timed(cell(HOSTILE[0], precision="fp16"), TIMES, accuracy={"verdict": "fail"}),
        timed(cell(HOSTILE[2], "pytorch"), TIMES),
        ended(cell(HOSTILE[1]), "failed", HOSTILE[1]),
    ]


def assert_inert(page: str) -> None:
    """Our one script, no tag from user text, and each hostile string shown as written."""
    assert page.count("<script") == 1 and page.count("</script>") == 1
    assert "<img" not in page
    shown = html.unescape(re.sub(r"<[^>]+>", "", page))
    for text in HOSTILE:
        assert text in shown, text


def test_user_strings_stay_text_in_every_page() -> None:
    records = hostile_records()
    environment = {"cpu": {"model": HOSTILE[1]}, "libraries": {HOSTILE[0]: "1"}}
    assert_inert(run_page(HOSTILE[2], records, speedups(records), environment, [], HOSTILE))
    side = side_from_records(HOSTILE[0], "a", environment, records)
    assert_inert(comparison_page(compare(side, side_from_records("b", "b", {}, records))))
    machines = [Machine("a", environment, [Path(HOSTILE[2])], label=HOSTILE[1])]
    rows = [Row(f"{HOSTILE[0]} samples/s", ["1"], [1.0]), Row(HOSTILE[2], ["x"], [None])]
    assert_inert(machines_page(machines, rows))


def test_the_policy_allows_only_the_page_s_own_script() -> None:
    page = run_page("run", a_run(), [], {}, [], [])
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page).group(1)
    script = re.search(r"<script>(.*?)</script>", page, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in policy
    assert "default-src 'none'" in policy and "unsafe-eval" not in policy
    assert "http" not in page.replace("http-equiv", "").replace("http://www.w3.org", "")


def test_the_compare_page_draws_every_metric_worst_first() -> None:
    base = [timed(cell(m), TIMES, repetition=r) for m in ("a", "b") for r in range(5)]
    slower = [
        timed(cell("a"), [t * (1.5 + 0.01 * r) for t in TIMES], repetition=r) for r in range(5)
    ]
    same = [timed(cell("b"), [t * (1 + 0.001 * r) for t in TIMES], repetition=r) for r in range(5)]
    comparison = compare(
        side_from_records("base", "1", {}, base), side_from_records("new", "2", {}, slower + same)
    )
    page = comparison_page(comparison)
    assert 'class="verdict-fail"' in page and "gate: FAIL" in page
    changes = [c for cell_ in comparison.cells for c in cell_.changes]
    charted = re.findall(r'id="(mark-compare-\d+-\d+)"', page)
    assert len(charted) == len(changes)
    first = svg_group(page, "mark-compare-0-0").find(f".//{SVG}title").text
    assert first.startswith("a/") and "regressed" in first


def test_the_machines_page_draws_a_bar_per_measured_value() -> None:
    machines = [Machine("a", {}, [], label="H100"), Machine("b", {}, [], label="EPYC")]
    rows = [
        Row("FP32 TFLOPS (matrix multiply)", ["50", "1"], [50.0, 1.0]),
        Row("mlp onnxruntime b1 inference (latency) fp32 samples/s", ["9", "—"], [9.0, None]),
        Row("host CPU", ["x", "y"], [None, None]),
    ]
    page = machines_page(machines, rows)
    assert len(marks(page, "machines-tflops")) == 2
    assert len(marks(page, "machines-samples")) == 1
    assert "EPYC / H100" in page and "0.02x" in page  # the ratio column


@pytest.mark.parametrize("verb", ["report", "compare"])
def test_an_html_path_in_a_missing_folder_is_one_line(verb, tmp_path, capsys) -> None:
    run = tmp_path / "run"
    run.mkdir()
    args = [verb, str(run)] + ([str(run)] if verb == "compare" else [])
    code = cli.main([*args, "--html", str(tmp_path / "no" / "report.html")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "does not exist" in err, err


def test_power_is_drawn_where_measured_and_its_absence_explained() -> None:
    watts = {"source": "rapl", "avg_w": 30.0, "j_per_sample": 0.03, "samples_per_j": 33.3}
    records = [
        timed(cell("mlp"), TIMES, power=watts),
        timed(cell("mlp", precision="fp16"), TIMES, power={"source": "rapl", "avg_w": 25.0}),
        timed(cell("lenet5"), TIMES, power={"source": "none", "unavailable": "no counter"}),
    ]
    page = run_page("run", records, [], {}, [], [])
    assert len(marks(page, "power")) == 2 and len(marks(page, "efficiency")) == 1
    assert "avg W" in page and "J/sample" in page  # the summary's power columns
    unmeasured = run_page("run", records[2:], [], {}, [], [])
    assert not marks(unmeasured, "power") and "no counter" in unmeasured


def test_no_two_elements_share_an_id() -> None:
    records = a_run()
    hw = [HwRecord("matmul", "cpu", "fp32", 1024, "TFLOP/s", best=1.0)]
    page = run_page("run", records, speedups(records), {}, hw, [])
    ids = re.findall(r'\sid="([^"]+)"', page)
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


def test_an_infinite_interval_draws_no_whisker_and_no_text_is_rewritten() -> None:
    from bench.views.html import charts

    label = 'm id="x" url(#y)'
    marks = [
        charts.Mark(label, 1.5, 1.2, float("inf"), "regressed", "tip"),
        charts.Mark("b", 0.8, float("nan"), 0.9, "improved", "tip"),
    ]
    svg = charts.interval_chart(marks, "chart", "ratio")
    assert len(re.findall(r'id="(mark-chart-\d+)"', svg)) == 2
    shown = html.unescape(re.sub(r"<[^>]+>", "", svg))
    assert label in shown  # the ids were scoped inside tags only
