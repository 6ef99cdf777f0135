"""End to end on this machine: ``cli.py run`` records each cell's power (or why not),
``cli.py env`` lists the sources; and the summary table's power columns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixtures.records import cell, timed
from test_cli import cli, explain, only_run_dir, records_of, write_suite

from bench.core.record import CellRecord
from bench.power import available_sources
from bench.views.report import summary_markdown

pytestmark = pytest.mark.e2e

HERE = available_sources()


def run_mlp(tmp_path: Path, cache_dir: Path, *flags: str) -> tuple[str, Path]:
    config = write_suite(
        tmp_path / "bench.toml", models=["mlp"], runtimes=["onnxruntime"], scenarios=["latency"]
    )
    results = tmp_path / "results"
    proc = cli(
        "run",
        "--config",
        config,
        "--results-dir",
        results,
        "--cache-dir",
        cache_dir,
        "--no-progress",
        *flags,
        cache_dir=cache_dir,
    )
    assert proc.returncode == 0, explain(proc)
    return proc.stdout, only_run_dir(results)


def test_auto_records_what_this_machine_can_measure(tmp_path: Path, cache_dir: Path) -> None:
    stdout, run_dir = run_mlp(tmp_path, cache_dir)
    [record] = records_of(run_dir)
    assert record["status"] == "ok", record.get("reason")
    power = record["power"]
    report = (run_dir / "report.md").read_text()
    if HERE["rapl"].startswith("available"):
        assert power["source"] == "rapl" and power["avg_w"] > 0, power
        assert power["window_s"] == pytest.approx(record["throughput"]["window_s"])
        assert "J/sample" in report
    else:  # as on the development machine: no powercap, no GPU, not a Jetson
        assert power["source"] == "none"
        assert "rapl: no RAPL counters" in power["unavailable"]
        assert "avg W" not in report and "avg W" not in stdout
    environment = json.loads((run_dir / "environment.json").read_text())
    assert set(environment["power"]["sources"]) == {"nvml", "rapl", "jetson", "tegrastats"}
    assert "end" in environment["power"]
    assert environment["power"]["changes"] == []


@pytest.mark.skipif(HERE["rapl"].startswith("available"), reason="RAPL is readable here")
def test_an_unavailable_requested_source_is_recorded_and_the_cell_runs(
    tmp_path: Path, cache_dir: Path
) -> None:
    _, run_dir = run_mlp(tmp_path, cache_dir, "--power", "rapl")
    [record] = records_of(run_dir)
    assert record["status"] == "ok"
    assert record["latency_ms"]["count"] > 0
    assert record["power"]["source"] == "rapl"
    assert record["power"]["unavailable"] == HERE["rapl"].removeprefix("unavailable: ")


def test_an_unknown_power_source_is_a_one_line_error(tmp_path: Path, cache_dir: Path) -> None:
    config = write_suite(tmp_path / "bench.toml", models=["mlp"])
    proc = cli("run", "--config", config, "--power", "watts", cache_dir=cache_dir)
    assert proc.returncode == 2
    [line] = proc.stderr.splitlines()
    assert line.startswith("error: ") and "power" in line and "'rapl'" in line
    assert not (tmp_path / "results").exists()


def test_env_lists_every_power_source(cache_dir: Path) -> None:
    proc = cli("env", cache_dir=cache_dir)
    assert proc.returncode == 0, explain(proc)
    sources = json.loads(proc.stdout)["power"]["sources"]
    assert sources == HERE
    assert all(v.startswith(("available: ", "unavailable: ")) for v in sources.values())


def _record(model: str, power: dict | None) -> CellRecord:
    record = timed(cell(model, batch=8), [1.0, 1.0, 2.0], power=power)
    return record if power is not None else record.model_copy(update={"power": None})


def test_the_summary_gains_power_columns_only_when_a_cell_has_power() -> None:
    none = {"source": "none", "unavailable": "no counter"}
    assert "avg W" not in summary_markdown([_record("a", none), _record("b", None)])
    measured = {"source": "rapl", "avg_w": 41.5, "j_per_sample": 0.00519}
    lines = summary_markdown([_record("a", measured), _record("b", none)]).splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header[-3:] == ["avg W", "J/sample", "status"]
    first = [c.strip() for c in lines[2].strip("|").split("|")]
    second = [c.strip() for c in lines[3].strip("|").split("|")]
    assert first[-3:] == ["41.5", "0.00519", "ok"]
    assert second[-3:] == ["-", "-", "ok"]
