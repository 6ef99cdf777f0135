"""What a run survives, end to end: a hang in any phase (export included) ends as a
timeout naming the phase; a killed run leaves no worker behind; a record torn by a power
cut is re-run on resume, which writes nowhere a results folder names; user ONNX files get
an accuracy verdict against ONNX Runtime on the CPU, with real or ranged inputs; a cell
that ran on another device than asked is a failure; one cache serves concurrent runs."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from fixtures.onnx_models import embedding_model, fp16_model
from test_cli import (
    FIXTURES,
    REPO_ROOT,
    _env,
    _factory_run,
    by_key,
    cli,
    explain,
    only_run_dir,
    records_of,
    write_suite,
)

from bench.core.cell import Cell
from bench.core.record import Executed, Measured
from bench.core.spec import PreparedModel
from bench.core.timing import LoopRecord
from bench.harness.config import config_from_dict
from bench.harness.isolation import WorkerOutcome

pytestmark = pytest.mark.e2e


def test_a_hanging_export_ends_at_the_export_timeout(tmp_path: Path, cache_dir: Path) -> None:
    start = time.monotonic()
    args = ("--cell-timeout", "600", "--export-timeout", "5")
    proc, records = _factory_run(tmp_path, cache_dir, "crashy:build_hanging_export", *args)
    assert proc.returncode == 1, explain(proc)
    assert time.monotonic() - start < 90
    assert len(records) == 2  # pytorch and onnxruntime: each cell of the model
    for record in records.values():
        assert record["status"] == "timeout"
        assert record["phase"] == "export"
        assert record["reason"] == "stopped in export: the worker did not finish within 5 s"


def _workers(root: psutil.Process) -> list[psutil.Process]:
    try:
        return root.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _is_worker(process: psutil.Process) -> bool:
    """Whether ``process`` is a worker of the run; not one that has just ended (a zombie
    has no command line) or gone."""
    try:
        return "serve_job" in " ".join(process.cmdline())
    except psutil.Error:
        return False


def test_no_worker_outlives_a_killed_run(tmp_path: Path, cache_dir: Path) -> None:
    """kill -9 of the run while its cell hangs: its worker goes too."""
    config = write_suite(tmp_path / "bench.toml", runtimes=["pytorch"], cell_timeout_s=600)
    argv = ["run", "--config", config, "--results-dir", tmp_path / "results", "--no-progress"]
    argv += ["--model", "crashy:build_hanging", "--shape", "input=1x8"]
    run = subprocess.Popen(
        [sys.executable, "cli.py", *map(str, argv)],
        cwd=REPO_ROOT,
        env=_env(cache_dir, FIXTURES),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        root = psutil.Process(run.pid)
        seen: dict[int, float] = {}  # worker pid -> first seen
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # the export's worker, then the cell's, hanging
            for child in _workers(root):
                if _is_worker(child):
                    seen.setdefault(child.pid, time.monotonic())
            cell_worker = sorted(seen, key=seen.get)[1:2]
            if cell_worker and time.monotonic() - seen[cell_worker[0]] > 8:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the cell's worker never started")
        descendants = _workers(root)
        assert [p.pid for p in descendants] == cell_worker
    finally:  # the run is killed whatever happened above; a hung one would stay
        os.kill(run.pid, signal.SIGKILL)
        run.wait()
    _, alive = psutil.wait_procs(descendants, timeout=15)
    assert alive == [], [p.cmdline() for p in alive]


def test_a_torn_record_is_run_again_on_resume_and_resume_writes_only_here(
    tmp_path: Path, cache_dir: Path
) -> None:
    config = write_suite(tmp_path / "bench.toml", models=["mlp"], runtimes=["onnxruntime"])
    results = tmp_path / "results"
    argv = ["--results-dir", results, "--no-progress", "--cache-dir", cache_dir]
    proc = cli("run", "--config", config, *argv, cache_dir=cache_dir)
    assert proc.returncode == 0, explain(proc)
    run_dir = only_run_dir(results)
    content = (run_dir / "results.jsonl").read_bytes()
    (run_dir / "results.jsonl").write_bytes(content[: len(content) // 2])  # power cut
    stored = json.loads((run_dir / "run.json").read_text())
    theirs = tmp_path / "their-cache"
    stored["cache_dir"] = str(theirs)
    stored["config"]["suite"]["cache_dir"] = str(theirs)
    (run_dir / "run.json").write_text(json.dumps(stored))

    proc = cli("run", "--resume", run_dir, "--no-progress", cache_dir=cache_dir)
    assert proc.returncode == 0, explain(proc)
    assert "line 1 is a record cut short" in proc.stderr
    lines = (run_dir / "results.jsonl").read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[1])["status"] == "ok"
    assert not theirs.exists()  # the cache a results folder names is never written


def _onnx_run(
    tmp_path: Path, cache_dir: Path, model: Path, *extra: str | Path, precisions: str = "fp32"
) -> dict[str, dict]:
    tmp_path.mkdir(exist_ok=True)
    config = write_suite(tmp_path / "bench.toml", runtimes=["onnxruntime", "openvino"])
    proc = cli(
        "run",
        "--config",
        config,
        "--results-dir",
        tmp_path / "results",
        "--no-progress",
        "--precisions",
        precisions,
        "--onnx",
        model,
        *extra,
        cache_dir=cache_dir,
    )
    assert proc.returncode == 0, explain(proc)
    return by_key(records_of(only_run_dir(tmp_path / "results")))


def test_indices_stay_within_the_table_and_onnx_cells_get_a_verdict(
    tmp_path: Path, cache_dir: Path
) -> None:
    """A 10-row embedding: ids in [0, 100) would be out of range; one --shape sizes both
    inputs (they share 'seq'); ONNX Runtime on the CPU is the reference."""
    model = embedding_model(tmp_path / "embedding.onnx", vocabulary=10)
    records = _onnx_run(tmp_path, cache_dir, model, "--shape", "ids=2x6", precisions="fp32,fp16")
    for key, record in records.items():
        if record["status"] == "skipped":  # OpenVINO's CPU has no fp16 on some machines
            continue
        assert record["status"] == "ok", (key, record.get("reason"))
        accuracy = record["accuracy"]
        assert accuracy["verdict"] in ("pass", "warn"), (key, accuracy)
        assert accuracy["reference"].startswith("onnxruntime ")
        ids, mask = record["model"]["inputs"]
        assert ids["shape"] == [2, 6] and mask["shape"] == [2, 6]
        assert ids["values"] == "integers in [0, 10) (the model: 10 rows of Gather table 'table')"


def test_inputs_from_a_file_and_a_given_range(tmp_path: Path, cache_dir: Path) -> None:
    model = embedding_model(tmp_path / "embedding.onnx", vocabulary=10)
    data = tmp_path / "inputs.npz"
    rng = np.random.default_rng(1)
    np.savez(data, ids=rng.integers(0, 10, (2, 3)), mask=np.ones((2, 3), np.float32))
    records = _onnx_run(tmp_path, cache_dir, model, "--inputs", data)
    record = records["embedding/onnxruntime/cpu/fp32/b2/latency"]
    assert record["accuracy"]["verdict"] == "pass"
    assert [i["shape"] for i in record["model"]["inputs"]] == [[2, 3], [2, 3]]
    assert record["model"]["inputs"][0]["values"].endswith("(--inputs)")

    ranged = _onnx_run(
        tmp_path / "ranged", cache_dir, model, "--shape", "ids=2x4", "--input-range", "ids=0:3"
    )
    inputs = ranged["embedding/onnxruntime/cpu/fp32/b2/latency"]["model"]["inputs"]
    assert inputs[0]["values"] == "integers in [0, 3) (--input-range)"


def test_a_file_already_in_fp16_runs_as_given(tmp_path: Path, cache_dir: Path) -> None:
    records = _onnx_run(tmp_path, cache_dir, fp16_model(tmp_path / "half.onnx"), precisions="fp16")
    record = records["half/onnxruntime/cpu/fp16/b2/latency"]
    assert record["status"] == "ok", record.get("reason")
    assert "the file is already fp16: run as given" in record["notes"]
    assert record["accuracy"]["tolerance"] == "fp16"


def test_a_cell_that_ran_on_another_device_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    """ONNX Runtime falls back to its CPU provider when CUDA's fails to load."""
    from bench.harness import runner

    ran = Executed("fp32", "cpu", provider="CPUExecutionProvider")
    loop = LoopRecord([1_000_000] * 5, 5_000_000, 5, 2)
    measured = Measured.timed(ran, loop, 1, 0.1, {"source": "none"})
    monkeypatch.setattr(runner, "run_in_worker", lambda *a: WorkerOutcome("ok", measured))
    config = config_from_dict({"suite": {"devices": ["cuda:0"]}})
    model = PreparedModel("m", Path("m.onnx"), (), (), "unknown", "")
    asked = Cell("m", "onnxruntime", "cuda:0", "fp32", 1, "latency")
    record = runner.measure(asked, model, config, Path("cache"), "run")
    assert record.status == "failed"
    assert record.reason == "asked for cuda:0 but ran on cpu: the runtime fell back"
    assert record.phase is None  # it ended; what ran was elsewhere
    on_cpu = Cell("m", "onnxruntime", "cpu", "fp32", 1, "latency")
    assert runner.measure(on_cpu, model, config, Path("cache"), "run").status == "ok"


def _prepare_lenet(cache_dir: str) -> bool:
    from exporters.onnx_export import prepare_zoo_model

    return prepare_zoo_model("lenet5", [1], Path(cache_dir)).cache_hit


def test_two_runs_on_a_cold_cache_export_once(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        hits = pool.map(_prepare_lenet, [str(cache), str(cache)])
    assert sorted(hits) == [False, True]  # one exported, the other waited and found it
    (entry,) = [p for p in (cache / "onnx").iterdir() if p.suffix != ".lock"]
    assert entry.name.startswith("lenet5-")

    stale = entry.parent / f".{entry.name}-x1y2z3"  # the scratch of an export killed mid-way
    stale.mkdir()
    (stale / "model.onnx").write_bytes(b"half a file")
    assert _prepare_lenet(str(cache))
    assert not stale.exists()
