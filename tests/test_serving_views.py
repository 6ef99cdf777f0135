"""How LoadGen's cells are shown and compared: the LoadGen scenarios table (terminal,
report.md, report.html) with each scenario's MLPerf metric and LoadGen's verdict, the
Server's latency-vs-load chart, the speedup table leaving them out, and the compared
metrics (``loadgen_qps``, ``loadgen_latency_ms``) that an INVALID run gives no value.
Records are built directly (no measuring) but for one run of cli.py at tiny settings."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fixtures.onnx_models import dynamic_relu
from fixtures.records import cell, ended, timed
from rich.console import Console

from bench.compare.gate import compare
from bench.compare.sides import side_from_records
from bench.compare.significance import REGRESSED
from bench.compare.thresholds import Thresholds
from bench.core.errors import UserError
from bench.core.metrics import METRICS, read_metrics
from bench.core.record import CellRecord, Serving
from bench.harness.results import read_records
from bench.views.html.run_page import run_page, scaling_series
from bench.views.serving import invalid_reasons, serving_markdown, serving_rows, serving_table
from bench.views.speedup import speedups

REPO_ROOT = Path(__file__).resolve().parent.parent
TIMES = [0.05 + 0.001 * (i % 5) for i in range(40)]
BOUND_WHY = "the 99th percentile latency is above the 10 ms bound (331 queries over it)"
MIN_DURATION_WHY = "the minimum duration was not met"


def serving(scenario: str, valid: bool = True, **figures: Any) -> Serving:
    """A ``loadgen`` section as bench.harness.serving writes it."""
    percentile = {"SingleStream": 0.9}.get(scenario, 0.99)
    return Serving(
        scenario=scenario,
        valid=valid,
        why=[] if valid else [BOUND_WHY if scenario == "Server" else MIN_DURATION_WHY, "more"],
        target_percentile=percentile,
        **figures,
    )


SINGLE = serving(
    "SingleStream",
    completed_qps=15588.7,
    latency_ms={"p50": 0.044156, "p90": 0.070855, "p99": 0.126839},
    early_stopping_ms=0.071967,
)
MULTI = serving(
    "MultiStream",
    latency_ms={"p50": 0.24, "p99": 0.49},
    query_latency_ms={"p50": 0.367893, "p99": 0.570866},
    early_stopping_ms=0.612989,
    samples_per_query=8,
)
SERVER = serving(
    "Server",
    target_qps=200.0,
    completed_qps=199.6,
    latency_ms={"p50": 0.29, "p99": 2.002824},
    target_latency_ms=10.0,
)
OFFLINE = serving("Offline", target_qps=41338.3, completed_qps=29407.1, latency_ms={"p50": 805.4})
PROBES = [  # (target QPS, p50, p99, VALID): a bisection that found 9,293 QPS
    (17782.3, 366.9, 491.2, False),
    (9531.6, 0.68, 10.93, False),
    (7625.3, 0.41, 1.51, True),
    (8578.4, 0.44, 1.71, True),
    (9293.3, 0.47, 1.59, True),
]


def search(method: str = "bisect", peak: float | None = 9293.3) -> dict[str, Any]:
    probes = [
        {
            "target_qps": qps,
            "completed_qps": min(qps, 11914.5),
            "p50_ms": p50,
            "p99_ms": p99,
            "valid": valid,
            "why": [] if valid else [BOUND_WHY],
            "duration_s": 1.0,
        }
        for qps, p50, p99, valid in PROBES
    ]
    note = "7 LoadGen runs" if method == "loadgen" else ""
    return {
        "method": method,
        "probes": probes if method == "bisect" else [],
        "peak_qps": peak,
        "precision": 0.05,
        "seconds": 6.0,
        "note": note,
    }


SEARCHED = serving(
    "Server",
    target_qps=9293.3,
    completed_qps=9377.95,
    latency_ms={"p50": 0.474, "p99": 1.587305},
    target_latency_ms=10.0,
    search=search(),
)


def loadgen_cell(
    scenario: str,
    figures: Serving | None,
    runtime: str = "onnxruntime",
    precision: str = "fp32",
    model: str = "lenet5",
    repetition: int = 0,
) -> CellRecord:
    """An ``ok`` LoadGen cell of two slots (one in SingleStream) with these figures."""
    flight = 1 if scenario == "single_stream" else 2
    sections = {"loadgen": figures} if figures is not None else {}
    of = cell(model, runtime, precision=precision, scenario=scenario)
    return timed(of, TIMES, in_flight=flight, repetition=repetition, **sections)


def a_run() -> list[CellRecord]:
    """Every scenario VALID, each INVALID, a searched Server, a latency cell beside them and
    a failed LoadGen cell (no row)."""
    return [
        timed(cell("lenet5"), TIMES),
        loadgen_cell("single_stream", SINGLE),
        loadgen_cell("multi_stream", MULTI),
        loadgen_cell("server", SERVER),
        loadgen_cell("offline", OFFLINE),
        loadgen_cell(
            "single_stream", serving("SingleStream", False, **_figures(SINGLE)), "openvino"
        ),
        loadgen_cell("multi_stream", serving("MultiStream", False, **_figures(MULTI)), "openvino"),
        loadgen_cell("server", serving("Server", False, **_figures(SERVER)), "openvino"),
        loadgen_cell("offline", serving("Offline", False, **_figures(OFFLINE)), "openvino"),
        loadgen_cell("server", SEARCHED, "onnxruntime", "fp16"),
        ended(cell("lenet5", "pytorch", scenario="server"), "failed", "worker crashed"),
    ]


def _figures(figures: Serving) -> dict[str, Any]:
    data = figures.to_dict()
    return {
        k: v for k, v in data.items() if k not in ("scenario", "valid", "why", "target_percentile")
    }


EXPECTED = [
    ["onnxruntime", "single_stream b1", "1", "p90 0.0709 ms; estimate 0.0720 ms", "VALID"],
    ["onnxruntime", "multi_stream b1", "2", "p99 0.571 ms/query; estimate 0.613 ms", "VALID"],
    [
        "onnxruntime",
        "server b1",
        "2",
        "target 200 QPS; completed 200 QPS; p99 2.00 ≤ 10 ms",
        "VALID",
    ],
    ["onnxruntime", "offline b1", "2", "29,407 samples/s", "VALID"],
    ["openvino", "single_stream b1", "1", "p90 0.0709 ms; estimate 0.0720 ms", "INVALID"],
    ["openvino", "multi_stream b1", "2", "p99 0.571 ms/query; estimate 0.613 ms", "INVALID"],
    [
        "openvino",
        "server b1",
        "2",
        "target 200 QPS; completed 200 QPS; p99 2.00 ≤ 10 ms",
        "INVALID",
    ],
    ["openvino", "offline b1", "2", "29,407 samples/s", "INVALID"],
    [
        "onnxruntime",
        "server b1",
        "2",
        "peak 9,293 QPS; completed 9,378 QPS; p99 1.59 ≤ 10 ms",
        "VALID",
    ],
]


def test_one_row_per_ok_loadgen_cell_with_its_scenarios_metric() -> None:
    rows = serving_rows(a_run())
    assert [row[0] for row in rows] == ["lenet5"] * len(EXPECTED)
    assert [[row[1], *row[3:]] for row in rows] == EXPECTED
    assert rows[-1][2] == "cpu fp16"  # the target: device and precision


def test_an_invalid_run_is_marked_with_loadgens_first_reason() -> None:
    records = a_run()
    rows = serving_rows(records)
    invalid = [row for row in rows if row[-1] != "VALID"]
    assert {row[-1] for row in invalid} == {"INVALID"} and len(invalid) == 4
    reasons = invalid_reasons(records)
    assert reasons[2] == f"lenet5 openvino cpu fp32 server b1: {BOUND_WHY}"
    assert all("more" not in reason for reason in reasons)  # only the first reason
    markdown = serving_markdown(records)
    assert markdown.startswith("\n## LoadGen scenarios\n")
    assert f"- lenet5 openvino cpu fp32 server b1: {BOUND_WHY}" in markdown
    assert "| INVALID |" in markdown
    over = serving("Server", False, **{**_figures(SERVER), "latency_ms": {"p99": 12.5}})
    (row,) = serving_rows([loadgen_cell("server", over)])
    assert row[-2].endswith("p99 12.5 > 10 ms") and row[-1] == "INVALID"


def test_a_search_that_found_no_valid_rate_says_so() -> None:
    figures = serving("Server", False, **{**_figures(SEARCHED), "search": search(peak=None)})
    (row,) = serving_rows([loadgen_cell("server", figures)])
    assert row[-2].startswith("no VALID rate; at 9,293 QPS") and row[-1] == "INVALID"


def test_the_terminal_table_reads_at_100_columns() -> None:
    console = Console(width=100, record=True)
    console.print(serving_table(a_run()))
    text = console.export_text()
    lines = text.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 100
    assert "…" not in text  # nothing cropped
    assert "│ completed 9,378 QPS" in text  # the metric one phrase a line
    assert f"INVALID: lenet5 openvino cpu fp32 server b1: {BOUND_WHY[:40]}" in " ".join(lines)
    assert serving_table([timed(cell("lenet5"), TIMES)]) is None


def marks(page: str, chart: str) -> list[str]:
    return re.findall(rf'id="(mark-{chart}-\d+)"', page)


def test_the_page_has_the_table_and_a_load_curve_per_model() -> None:
    records = [
        *a_run(),
        loadgen_cell("server", SEARCHED, "openvino", "bf16"),
        loadgen_cell(
            "server",
            serving("Server", **{**_figures(SEARCHED), "search": search("loadgen")}),
            "pytorch",
        ),
        loadgen_cell("server", SEARCHED, model="resnet18"),
    ]
    page = run_page("run", records, speedups(records), {}, [], [])
    table = page[
        page.index('id="loadgen-table"') : page.index("</table>", page.index('id="loadgen-table"'))
    ]
    assert table.count("<tr") == 1 + 12
    assert table.count('<tr class="failed">') == 4
    assert BOUND_WHY in page  # the reasons, listed below the table
    # lenet5: two bisected cells on one chart, every probe a mark; resnet18 its own
    lenet, resnet = marks(page, "loadcurve-0"), marks(page, "loadcurve-1")
    assert len(lenet) == 2 * len(PROBES) and len(resnet) == len(PROBES)
    fills = {}
    for ident in lenet:
        group = page[page.index(f'<g id="{ident}">') :]
        tip = re.search(r"<title>(.*?)</title>", group).group(1)
        fills[tip] = re.search(r'<use [^>]*style="fill: (#[0-9a-f]+)', group).group(1)
    hollow = {tip for tip, fill in fills.items() if fill == "#ffffff"}
    assert len(hollow) == 4 and all(tip.endswith(")") and "INVALID" in tip for tip in hollow)
    assert all(tip.endswith("VALID") for tip in set(fills) - hollow)
    assert "onnxruntime cpu fp16 b1: 9,531.6 QPS offered" in " ".join(fills)
    caption = page[page.index('id="figure-loadcurve-0"') :]
    caption = caption[caption.index("<figcaption>") : caption.index("</figcaption>")]
    assert "bisection over LoadGen runs" in caption
    assert "FindPeakPerformance" in caption and "no curve to draw" in caption
    assert "peak 9,293.3 QPS to within 5% in 5 LoadGen runs" in caption
    assert "mark-loadcurve-2" not in page


def test_speedups_and_scaling_leave_loadgen_cells_out() -> None:
    records = [
        timed(cell("lenet5"), TIMES),
        timed(cell("lenet5", precision="fp16"), [t / 2 for t in TIMES]),
        loadgen_cell("server", SERVER),
        loadgen_cell("server", SEARCHED, precision="fp16"),
        loadgen_cell("offline", OFFLINE),
        loadgen_cell("offline", OFFLINE, precision="fp16"),
    ]
    rows = speedups(records)
    assert [(row.scenario, row.precision) for row in rows] == [("latency", "fp16")]
    assert scaling_series(records, "in_flight") == []


def test_the_metrics_read_the_valid_runs_metric_only() -> None:
    expected = {
        "single_stream": ("loadgen_latency_ms", 0.070855),
        "multi_stream": ("loadgen_latency_ms", 0.570866),
        "server": ("loadgen_qps", 199.6),
        "offline": ("loadgen_qps", 29407.1),
    }
    records = a_run()
    for record in records[1:5] + records[9:10]:
        values = read_metrics(record)
        name, value = expected[record.cell.scenario]
        if record.cell.precision == "fp16":  # SEARCHED
            value = 9377.95  # the completed rate of the peak's run
        assert values[name] == value
        other = ({"loadgen_qps", "loadgen_latency_ms"} - {name}).pop()
        assert other not in values and "throughput" not in values
    for record in records[5:9]:  # INVALID: no value
        assert not {"loadgen_qps", "loadgen_latency_ms"} & set(read_metrics(record))
        assert all(
            METRICS[name].read(record) is None for name in ("loadgen_qps", "loadgen_latency_ms")
        )
    assert not {"loadgen_qps", "loadgen_latency_ms"} & set(read_metrics(records[0]))
    assert METRICS["loadgen_qps"].applies_to("server") and not METRICS["loadgen_qps"].applies_to(
        "latency"
    )


def test_compare_sees_a_loadgen_regression_under_a_threshold_by_name() -> None:
    rng = np.random.default_rng(0)

    def runs(rate: float, latency: float) -> list[CellRecord]:
        records = []
        for repetition in range(6):
            noise = 1 + 0.005 * rng.standard_normal()
            offline = serving("Offline", completed_qps=rate * noise)
            single = serving("SingleStream", latency_ms={"p90": latency * noise})
            records.append(loadgen_cell("offline", offline, repetition=repetition))
            records.append(loadgen_cell("single_stream", single, repetition=repetition))
        return records

    thresholds = Thresholds().with_specs(["loadgen_qps=5%", "loadgen_latency_ms=5%"])
    environment = {"cpu": {"model": "Example CPU 9000", "usable_cores": 8}, "gpus": []}
    base = side_from_records("base", "base", environment, runs(29000.0, 0.07))
    current = side_from_records("now", "now", environment, runs(25000.0, 0.08))
    comparison = compare(base, current, thresholds)
    changes = {c.cell["scenario"]: c.changes for c in comparison.cells}
    offline = next(c for c in changes["offline"] if c.metric == "loadgen_qps")
    single = next(c for c in changes["single_stream"] if c.metric == "loadgen_latency_ms")
    assert offline.verdict == single.verdict == REGRESSED and comparison.failed
    with pytest.raises(UserError, match="unknown metric 'loadgen_rate'"):
        Thresholds().with_specs(["loadgen_rate=5%"])


def test_compare_fails_a_loadgen_run_that_turns_invalid() -> None:
    """An INVALID run has no figure to compare: the verdict itself is compared."""
    from bench.compare.output import rows

    def runs(valid: bool) -> list[CellRecord]:
        figures = serving("Server", valid=valid)
        return [loadgen_cell("server", figures, repetition=r) for r in range(3)]

    environment = {"cpu": {"model": "Example CPU 9000", "usable_cores": 8}, "gpus": []}
    base = side_from_records("base", "base", environment, runs(True))
    current = side_from_records("now", "now", environment, runs(False))
    comparison = compare(base, current, Thresholds())
    (cell,) = comparison.cells
    assert cell.verdict == REGRESSED and comparison.failed
    assert "now INVALID (was VALID)" in cell.decisive.note
    assert any("LoadGen validity" in " ".join(row) for row in rows(comparison))
    back = compare(current, base, Thresholds()).cells[0]
    assert "now VALID" in back.decisive.note


@pytest.mark.slow
@pytest.mark.e2e
def test_a_real_runs_folder_shows_its_loadgen_cells(tmp_path: Path, cache_dir: Path) -> None:
    """One searched Server cell of a one-layer ONNX file at tiny settings (about 5 s)."""
    config = tmp_path / "bench.toml"
    config.write_text(
        '[suite]\nname = "t"\nthreads = 1\nin_flight = 2\n'
        "[measure]\nwarmup_s = 0.1\nwarmup_min_iters = 2\n"
        "[loadgen]\nmin_duration_s = 0.3\nmin_query_count = 50\nsearch_runs = 2\n"
        "sample_count = 64\nlatency_bound_ms = 50.0\n"
    )
    model = dynamic_relu(tmp_path / "relu.onnx")
    results = tmp_path / "results"
    args = ["run", "--config", config, "--onnx", model, "--shape", "x=1x16"]
    args += ["--runtimes", "onnxruntime", "--scenarios", "server", "--results-dir", results]
    environment = {**os.environ, "DEPLOYBENCH_CACHE_DIR": str(cache_dir), "COLUMNS": "100"}
    proc = subprocess.run(
        [sys.executable, "cli.py", *map(str, args), "--no-progress"],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (run_dir,) = results.iterdir()
    (record,) = read_records(run_dir / "results.jsonl")
    figures = record.loadgen
    assert figures is not None and figures.search is not None
    probes = figures.search["probes"]
    (row,) = serving_rows([record])
    verdict = "VALID" if figures.valid else "INVALID"
    assert row[3:5] == ["server b1", "2"] and row[-1] == verdict
    table = proc.stdout[proc.stdout.index("LoadGen scenarios") :]
    assert f"│ {verdict}" in table
    assert max(len(line) for line in table.splitlines()) <= 100
    assert "## LoadGen scenarios" in (run_dir / "report.md").read_text()
    page = (run_dir / "report.html").read_text()
    assert len(marks(page, "loadcurve-0")) == len(probes) >= 2
    assert json.loads((run_dir / "speedups.json").read_text()) == []
