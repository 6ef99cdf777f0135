"""End to end: ``python cli.py ...`` in a subprocess, as a user runs it.

Tiny measure settings and tiny models keep each run to seconds; one export cache is shared
by the session, and every run lands in a temporary results directory.
"""

from __future__ import annotations

import json
import os
import platform
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fixtures.onnx_models import dynamic_relu, embedding_model, two_input_model
from fixtures.processes import start_cli

from bench.core.devices import cuda_device_count
from bench.harness.config import BenchConfig
from exporters.zoo import ZOO
from runtimes import RUNTIMES

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"

TINY_MEASURE = {
    "warmup_s": 0.05,
    "warmup_min_iters": 2,
    "min_duration_s": 0.1,
    "min_iters": 5,
    "max_duration_s": 10.0,
}
COLD_START_FIELDS = {
    "worker_start_s",
    "import_s",
    "export_s",
    "export_cache_hit",
    "build_s",
    "load_s",
    "first_inference_ms",
}


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)


def write_suite(path: Path, measure: dict[str, Any] | None = None, **suite: Any) -> Path:
    """A bench.toml with one thread, two requests in flight and tiny measure settings."""
    suite = {"name": "t", "threads": 1, "in_flight": 2, "cell_timeout_s": 120, **suite}
    lines = ["[suite]", *(f"{k} = {_toml_value(v)}" for k, v in suite.items())]
    lines += ["[measure]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in {**TINY_MEASURE, **(measure or {})}.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def _env(cache_dir: Path, pythonpath: Path | None = None) -> dict[str, str]:
    env = {**os.environ, "DEPLOYBENCH_CACHE_DIR": str(cache_dir), "PYTHONUNBUFFERED": "1"}
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), env.get("PYTHONPATH")]))
    return env


def cli(
    *args: str | Path, cache_dir: Path, pythonpath: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "cli.py", *map(str, args)],
        cwd=REPO_ROOT,
        env=_env(cache_dir, pythonpath),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_dirs(results: Path) -> list[Path]:
    return sorted(p for p in results.iterdir() if p.is_dir()) if results.is_dir() else []


def only_run_dir(results: Path) -> Path:
    dirs = run_dirs(results)
    assert len(dirs) == 1, dirs
    return dirs[0]


def records_of(run_dir: Path) -> list[dict[str, Any]]:
    lines = (run_dir / "results.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def by_key(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    keys = [r["key"] for r in records]
    assert len(keys) == len(set(keys)), f"duplicate keys: {keys}"
    return {r["key"]: r for r in records}


def explain(proc: subprocess.CompletedProcess[str]) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"


# --- (a) a full run of mlp on both runtimes, both scenarios ---------------------------


@pytest.fixture(scope="module")
def mlp_run(
    tmp_path_factory: pytest.TempPathFactory, cache_dir: Path
) -> tuple[subprocess.CompletedProcess[str], Path, Path]:
    root = tmp_path_factory.mktemp("mlp-run")
    config = write_suite(
        root / "bench.toml",
        models=["mlp"],
        runtimes=["pytorch", "onnxruntime"],
        scenarios=["latency", "throughput"],
    )
    results = root / "results"
    proc = cli(
        "run",
        "--config",
        config,
        "--results-dir",
        results,
        "--cache-dir",
        cache_dir,
        "--no-progress",
        cache_dir=cache_dir,
    )
    return proc, only_run_dir(results), config


def test_run_measures_every_cell(mlp_run) -> None:
    proc, run_dir, _ = mlp_run
    assert proc.returncode == 0, explain(proc)
    records = by_key(records_of(run_dir))
    expected = {
        f"mlp/{runtime}/cpu/fp32/b1/{scenario}"
        for runtime in ("pytorch", "onnxruntime")
        for scenario in ("latency", "throughput")
    }
    assert set(records) == expected
    for key, record in records.items():
        assert record["status"] == "ok", (key, record.get("reason"))
        assert record["schema_version"] == 1
        latency = record["latency_ms"]
        assert latency["count"] >= TINY_MEASURE["min_iters"]
        assert 0 < latency["min"] <= latency["median"] <= latency["p99"] <= latency["max"]
        assert len(record["raw_times_ms"]) == latency["count"]
        assert min(record["raw_times_ms"]) == pytest.approx(latency["min"])
        throughput = record["throughput"]
        assert throughput["samples_per_s"] > 0
        assert throughput["requests"] == latency["count"]
        assert throughput["window_s"] >= TINY_MEASURE["min_duration_s"]
        assert throughput["warmup_requests"] >= TINY_MEASURE["warmup_min_iters"]
        window = record["window"]  # how it ended: tiny windows meet the fixed rule first
        assert (window["stop"], window["warmup_stop"]) == ("window", "window")
        assert window["target"] == 0.01
        throughput_scenario = record["cell"]["scenario"] == "throughput"
        assert window["figure"] == ("rate" if throughput_scenario else "median")
        assert window["half_width"] is None or window["half_width"] >= 0
        assert 0 < window["warmup_s"] < throughput["window_s"] + 1
        executed = record["executed"]
        assert executed["precision"] == "fp32"
        assert executed["device"] == "cpu"
        assert executed["threads"] == 1
        assert executed["in_flight"] == (2 if record["cell"]["scenario"] == "throughput" else 1)
        cold = record["cold_start"]
        assert set(cold) >= COLD_START_FIELDS
        assert isinstance(cold["export_cache_hit"], bool)
        assert cold["first_inference_ms"] > 0
        assert all(cold[f] >= 0 for f in COLD_START_FIELDS - {"export_cache_hit"})
        assert record["memory"]["peak_rss_mb"] > 0
        accuracy = record["accuracy"]  # compared with the PyTorch FP32 reference outputs
        assert accuracy is not None
        assert accuracy["max_abs_error"] < 1e-3
        assert accuracy["cosine_similarity"] > 0.9999


def test_run_writes_its_files(mlp_run) -> None:
    proc, run_dir, config = mlp_run
    assert proc.returncode == 0, explain(proc)
    for name in ("environment.json", "run.json", "suite.toml", "report.md", "results.jsonl"):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "suite.toml").read_text() == config.read_text()
    environment = json.loads((run_dir / "environment.json").read_text())
    assert {"cpu", "python", "libraries"} <= set(environment)
    run = json.loads((run_dir / "run.json").read_text())
    assert run["run_id"] == run_dir.name
    assert [m["name"] for m in run["models"]] == ["mlp"]
    assert run["config"]["suite"]["models"] == ["mlp"]
    report = (run_dir / "report.md").read_text()
    assert "median ms" in report
    assert len([line for line in report.splitlines() if line.startswith("| mlp ")]) == 4


def test_run_prints_the_summary_table(mlp_run) -> None:
    proc, run_dir, _ = mlp_run
    assert proc.returncode == 0, explain(proc)
    for text in ("median ms", "p99 ms", "samples/s", "pytorch", "onnxruntime", "throughput b1"):
        assert text in proc.stdout, text
    assert str(run_dir) in proc.stdout
    assert "Traceback" not in proc.stderr


# --- (b) the export cache ----------------------------------------------------------------


def test_a_second_run_hits_the_export_cache(mlp_run, tmp_path: Path, cache_dir: Path) -> None:
    first_proc, first_dir, _ = mlp_run
    assert first_proc.returncode == 0, explain(first_proc)
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
        cache_dir=cache_dir,
    )
    assert proc.returncode == 0, explain(proc)
    [record] = records_of(only_run_dir(results))
    assert record["status"] == "ok"
    assert record["cold_start"]["export_cache_hit"] is True
    assert record["cold_start"]["export_s"] == 0
    first = by_key(records_of(first_dir))["mlp/onnxruntime/cpu/fp32/b1/latency"]
    assert record["model"]["onnx"] == first["model"]["onnx"]  # the same cached file


# --- (c) Ctrl-C, then --resume --------------------------------------------------------


def _wait_for_lines(results: Path, proc: subprocess.Popen, count: int, timeout: float) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for run_dir in run_dirs(results):
            path = run_dir / "results.jsonl"
            if path.is_file() and path.read_text().count("\n") >= count:
                return run_dir
        if proc.poll() is not None:
            pytest.fail(f"the run ended (exit {proc.returncode}) before writing a result")
        time.sleep(0.05)
    pytest.fail(f"no result line within {timeout} s")


def test_interrupt_keeps_finished_cells_and_resume_finishes(
    tmp_path: Path, cache_dir: Path
) -> None:
    config = write_suite(
        tmp_path / "bench.toml",
        measure={"min_duration_s": 0.7},
        models=["mlp", "lenet5"],
        runtimes=["onnxruntime"],
        scenarios=["latency", "throughput"],
    )
    results = tmp_path / "results"
    args = ["run", "--config", config, "--results-dir", results, "--cache-dir", cache_dir]
    proc = start_cli([*args, "--no-progress"], _env(cache_dir))
    try:
        run_dir = _wait_for_lines(results, proc, 1, timeout=120)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, f"{stdout}\n{stderr}"
    assert "Traceback" not in stderr
    output = " ".join((stdout + stderr).split())  # undo the console's line wrapping
    assert f"--resume {run_dir}" in output

    kept = records_of(run_dir)
    assert 1 <= len(kept) < 4
    assert all(r["status"] == "ok" for r in kept)  # the interrupted cell left no line

    resumed = cli("run", "--resume", run_dir, "--no-progress", cache_dir=cache_dir)
    assert resumed.returncode == 0, explain(resumed)
    records = by_key(records_of(run_dir))
    assert set(records) == {
        f"{model}/onnxruntime/cpu/fp32/b1/{scenario}"
        for model in ("mlp", "lenet5")
        for scenario in ("latency", "throughput")
    }
    assert all(r["status"] == "ok" for r in records.values())
    for record in kept:  # what was measured before the interrupt is kept as it was
        assert records[record["key"]] == record
    assert (run_dir / "report.md").is_file()

    again = cli("run", "--resume", run_dir, "--no-progress", cache_dir=cache_dir)
    assert again.returncode == 0, explain(again)
    assert len(records_of(run_dir)) == 4  # nothing left to run, nothing appended


@pytest.mark.skipif(cuda_device_count() > 7, reason="this machine has a cuda:7")
def test_cells_that_cannot_run_here_are_skipped_with_the_reason(
    tmp_path: Path, cache_dir: Path
) -> None:
    config = write_suite(tmp_path / "bench.toml", models=["mlp"], devices=["cuda:7"])
    results = tmp_path / "results"
    proc = cli(
        "run",
        "--config",
        config,
        "--results-dir",
        results,
        "--no-progress",
        "--runtimes",
        "pytorch,onnxruntime",
        cache_dir=cache_dir,
    )
    assert proc.returncode == 0, explain(proc)  # skipped for a stated reason is not a failure
    records = records_of(only_run_dir(results))
    assert {r["cell"]["runtime"] for r in records} == {"pytorch", "onnxruntime"}
    for record in records:
        assert record["status"] == "skipped"
        assert "CUDA" in record["reason"]
    assert "skipped" in proc.stdout


@pytest.mark.gpu
def test_run_on_cuda(tmp_path: Path, cache_dir: Path) -> None:
    if cuda_device_count() == 0:
        pytest.skip("no CUDA device")
    config = write_suite(
        tmp_path / "bench.toml",
        models=["mlp"],
        runtimes=["pytorch", "onnxruntime"],
        devices=["cuda"],
        scenarios=["latency", "throughput"],
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
        cache_dir=cache_dir,
    )
    assert proc.returncode == 0, explain(proc)
    records = by_key(records_of(only_run_dir(results)))
    assert len(records) == 4
    for key, record in records.items():
        if record["cell"]["runtime"] == "onnxruntime" and record["status"] == "skipped":
            assert "CUDA" in record["reason"]  # a CPU-only onnxruntime package
            continue
        assert record["status"] == "ok", (key, record.get("reason"))
        assert record["executed"]["device"] == "cuda:0"
        assert record["executed"]["precision"] == "fp32"
        assert record["latency_ms"]["count"] >= TINY_MEASURE["min_iters"]
        assert record["accuracy"]["max_abs_error"] < 1e-2


# --- (d) a crashing and a hanging cell ------------------------------------------------


def _factory_run(
    tmp_path: Path, cache_dir: Path, factory: str, *extra: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, dict[str, Any]]]:
    config = write_suite(
        tmp_path / "bench.toml", runtimes=["pytorch", "onnxruntime"], scenarios=["latency"]
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
        "--model",
        factory,
        "--shape",
        "input=1x8",
        *extra,
        cache_dir=cache_dir,
        pythonpath=FIXTURES,
    )
    return proc, by_key(records_of(only_run_dir(results)))


def test_a_crashing_cell_is_recorded_and_the_run_goes_on(tmp_path: Path, cache_dir: Path) -> None:
    proc, records = _factory_run(tmp_path, cache_dir, "crashy:build")
    assert proc.returncode == 1, explain(proc)
    crashed = records["build/pytorch/cpu/fp32/b1/latency"]
    assert crashed["status"] == "crashed", crashed
    assert "SIGABRT" in crashed["reason"]
    ok = records["build/onnxruntime/cpu/fp32/b1/latency"]
    assert ok["status"] == "ok", ok.get("reason")
    assert ok["latency_ms"]["count"] >= TINY_MEASURE["min_iters"]
    assert "crashed" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_a_hanging_cell_times_out(tmp_path: Path, cache_dir: Path) -> None:
    proc, records = _factory_run(tmp_path, cache_dir, "crashy:build_hanging", "--cell-timeout", "5")
    assert proc.returncode == 1, explain(proc)
    hung = records["build_hanging/pytorch/cpu/fp32/b1/latency"]
    assert hung["status"] == "timeout", hung
    assert "5 s" in hung["reason"]
    assert hung["finished_at"] - hung["started_at"] < 60
    assert records["build_hanging/onnxruntime/cpu/fp32/b1/latency"]["status"] == "ok"


# --- (e) bad input: one line, exit code 2 ---------------------------------------------


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad-input")
    corrupt = root / "corrupt.onnx"
    corrupt.write_bytes(bytes(range(256)) * 7 + b"\xff" * 100)
    return {
        "good": write_suite(root / "good.toml", models=["mlp"], runtimes=["onnxruntime"]),
        "malformed": _text(root / "malformed.toml", '[suite]\nname = "x"\nmodels = mlp\n'),
        "unknown_key": _text(root / "unknown.toml", '[suite]\nmodles = ["mlp"]\n'),
        "profile_not_table": _text(root / "profile.toml", '[profiles]\nsmoke = "fast"\n'),
        "corrupt": corrupt,
        "dynamic": dynamic_relu(root / "dynamic.onnx"),
        "not_a_run": _mkdir(root / "not-a-run"),
        "not_utf8": _bytes(root / "latin1.toml", b'[suite]\nname = "caf\xe9"\n'),
        "damaged_run": _damaged_run(root / "damaged-run"),
        "negative_seed": write_suite(root / "seed.toml", models=["mlp"], seed=-1),
        "batch_true": _text(root / "batch.toml", "[suite]\nbatch_sizes = [true]\n"),
        "endless_warmup": _text(root / "warmup.toml", "[measure]\nwarmup_s = inf\n"),
        "opset_99": write_suite(root / "opset.toml", models=["mlp"], opset=99),
        "a_file": _text(root / "a-file", "not a folder"),
        "two_inputs": two_input_model(root / "two_inputs.onnx"),
        "embedding": embedding_model(root / "embedding.onnx"),
        "inputs_float64": _npz(
            root / "f64.npz", ids=np.zeros((2, 5)), mask=np.ones((2, 5), np.float32)
        ),
        "inputs_partial": _npz(root / "partial.npz", ids=np.zeros((2, 5), np.int64)),
        "inputs_corrupt": _bytes(root / "corrupt.npz", b"PK\x03\x04 not a zip"),
        "factory_run": _foreign_run(root / "factory-run", "factory", "evil_module:build"),
        "onnx_run": _foreign_run(root / "onnx-run", "onnx", str(root / "theirs.onnx")),
        "theirs": root / "theirs.onnx",
        "onnx_inputs_run": _foreign_run(
            root / "onnx-inputs-run", "onnx", str(root / "theirs.onnx"), inputs="/etc/x.npz"
        ),
        "linked_run": _linked(_foreign_run(root / "linked-run", "zoo", "mlp"), root / "victim"),
        "trtexec_run": _foreign_run(
            root / "trtexec-run", "zoo", "mlp", {"tensorrt": {"trtexec_path": "/tmp/x"}}
        ),
    }


def _embedding(files: dict[str, Path], *extra: str | Path) -> list[str | Path]:
    return ["--config", files["good"], "--onnx", files["embedding"], *extra]


def _linked(run_dir: Path, victim: Path) -> Path:
    """A run folder whose report.md is a link to a file of the user's, for resume to write."""
    victim.write_text("the user's own file")
    (run_dir / "report.md").symlink_to(victim)
    return run_dir


def _npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def _foreign_run(
    path: Path, kind: str, ref: str, runtime: dict[str, Any] | None = None, inputs: str = ""
) -> Path:
    """A run folder from someone else, naming a factory, an ONNX file or a program."""
    path.mkdir()
    runtimes = ["tensorrt"] if runtime else ["onnxruntime"]
    config = BenchConfig.model_validate(
        {"suite": {"models": ["mlp"], "runtimes": runtimes}, "runtime": runtime or {}}
    )
    run = {
        "config": config.model_dump(),
        "models": [{"name": "m", "kind": kind, "ref": ref, "inputs_file": inputs or None}],
        "cache_dir": str(path / "their-cache"),
    }
    (path / "run.json").write_text(json.dumps(run))
    return path


def _bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _damaged_run(path: Path) -> Path:
    path.mkdir()
    (path / "run.json").write_text("{not json")
    return path


def _text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


BAD_INPUTS: list[tuple[str, Callable[[dict[str, Path]], list[str | Path]], str]] = [
    (
        "unknown model",
        lambda f: ["--config", f["good"], "--models", "mlp,nosuchnet"],
        "unknown model 'nosuchnet'",
    ),
    (
        "unknown runtime",
        lambda f: ["--config", f["good"], "--runtimes", "onnxruntime,tensorrtx"],
        "unknown runtime 'tensorrtx'",
    ),
    ("malformed toml", lambda f: ["--config", f["malformed"]], r"malformed TOML.*line 3, column"),
    ("unknown key", lambda f: ["--config", f["unknown_key"]], "unknown key 'modles'.*models"),
    ("missing config", lambda f: ["--config", f["good"].parent / "nope.toml"], "not found"),
    (
        "unknown profile",
        lambda f: ["--config", f["good"], "--profile", "nosuch"],
        "unknown profile 'nosuch'",
    ),
    (
        "profile not a table",
        lambda f: ["--config", f["profile_not_table"], "--profile", "smoke"],
        "smoke",
    ),
    ("bad device", lambda f: ["--config", f["good"], "--devices", "tpu"], "unknown device 'tpu'"),
    ("batch size 0", lambda f: ["--config", f["good"], "--batch-sizes", "0"], "batch_sizes"),
    (
        "missing onnx",
        lambda f: ["--config", f["good"], "--onnx", f["good"].parent / "none.onnx"],
        "not found",
    ),
    ("corrupt onnx", lambda f: ["--config", f["good"], "--onnx", f["corrupt"]], "not a valid ONNX"),
    (
        "dynamic onnx without --shape",
        lambda f: ["--config", f["good"], "--onnx", f["dynamic"]],
        "--shape x=",
    ),
    (
        "bad --shape",
        lambda f: ["--config", f["good"], "--onnx", f["dynamic"], "--shape", "x=4by16"],
        "--shape",
    ),
    (
        "--shape without a model",
        lambda f: ["--config", f["good"], "--shape", "input=1x8"],
        "--shape",
    ),
    ("resume a non-run dir", lambda f: ["--resume", f["not_a_run"]], "not a run directory"),
    ("unknown flag", lambda f: ["--config", f["good"], "--bogus"], "unrecognized arguments"),
    (
        "endless cell timeout",
        lambda f: ["--config", f["good"], "--cell-timeout", "inf"],
        "cell_timeout_s",
    ),
    ("config not UTF-8", lambda f: ["--config", f["not_utf8"]], "not UTF-8"),
    ("damaged run.json", lambda f: ["--resume", f["damaged_run"]], "run.json is not JSON"),
    (
        "--batch-sizes with --onnx",
        lambda f: [
            "--config",
            f["good"],
            "--onnx",
            f["dynamic"],
            "--shape",
            "x=2x16",
            "--batch-sizes",
            "4",
        ],
        "--batch-sizes does not apply",
    ),
    (
        "unimportable factory",
        lambda f: [
            "--config",
            f["good"],
            "--model",
            "no_such_module_xyz:build",
            "--shape",
            "input=1x8",
        ],
        "cannot import 'no_such_module_xyz'",
    ),
    (
        "a --shape name the factory lacks",  # found in the export's worker
        lambda f: [
            "--config",
            f["good"],
            "--model",
            "fixtures.factories:linear_with_example",
            "--shape",
            "tokens=1x8",
        ],
        "--shape names tokens but the factory's inputs are input",
    ),
    ("negative seed", lambda f: ["--config", f["negative_seed"]], "seed"),
    ("batch size true", lambda f: ["--config", f["batch_true"]], "batch_sizes.*integer"),
    ("endless warm-up", lambda f: ["--config", f["endless_warmup"]], "warmup_s.*finite"),
    ("opset beyond the exporter", lambda f: ["--config", f["opset_99"]], "opset"),
    (
        "endless export timeout",
        lambda f: ["--config", f["good"], "--export-timeout", "inf"],
        "export_timeout_s",
    ),
    (
        "cache dir is a file",
        lambda f: ["--config", f["good"], "--cache-dir", f["a_file"]],
        "--cache-dir",
    ),
    (
        "cache dir cannot be made",
        lambda f: ["--config", f["good"], "--cache-dir", f["a_file"] / "cache"],
        "--cache-dir",
    ),
    (
        "absurd dimension",
        lambda f: ["--config", f["good"], "--onnx", f["dynamic"], "--shape", "x=99999999999x16"],
        "no real size",
    ),
    (
        "inputs beyond memory",
        lambda f: ["--config", f["good"], "--onnx", f["dynamic"], "--shape", "x=2000000000x16"],
        "GiB",
    ),
    (
        "a zoo model's batch beyond memory",
        lambda f: ["--config", f["good"], "--models", "resnet50", "--batch-sizes", "500000"],
        "resnet50's inputs at this batch take .* GiB",
    ),
    (
        "a factory's --shape beyond memory",
        lambda f: ["--config", f["good"], "--model", "x:y", "--shape", "input=1x3x99999x99999"],
        "the --shape inputs at batch 1 take",
    ),
    (
        "a batch beyond reason",
        lambda f: ["--config", f["good"], "--batch-sizes", "9999999"],
        "1 to",
    ),
    (
        "--model with --models",
        lambda f: ["--config", f["good"], "--models", "mlp", "--model", "crashy:build"],
        "either --models or --model",
    ),
    (
        "--onnx with --models",
        lambda f: ["--config", f["good"], "--models", "mlp", "--onnx", f["embedding"]],
        "either --models or --onnx",
    ),
    (
        "--inputs without --onnx",
        lambda f: ["--config", f["good"], "--inputs", f["inputs_partial"]],
        "--inputs applies to --onnx",
    ),
    (
        "--inputs missing",
        lambda f: ["--config", f["good"], "--onnx", f["embedding"], "--inputs", f["a_file"] / "x"],
        "not found",
    ),
    (
        "--inputs not an npz",
        lambda f: [
            "--config",
            f["good"],
            "--onnx",
            f["embedding"],
            "--inputs",
            f["inputs_corrupt"],
        ],
        "not a readable .npz",
    ),
    (
        "--inputs lacks an input",
        lambda f: [
            "--config",
            f["good"],
            "--onnx",
            f["embedding"],
            "--inputs",
            f["inputs_partial"],
        ],
        "lacks mask",
    ),
    (
        "--inputs of the wrong dtype",
        lambda f: [
            "--config",
            f["good"],
            "--onnx",
            f["embedding"],
            "--inputs",
            f["inputs_float64"],
        ],
        "'ids' is float64 but the model takes int64",
    ),
    (
        "--input-range syntax",
        lambda f: ["--config", f["good"], "--onnx", f["embedding"], "--input-range", "ids=0-9"],
        "NAME=LO:HI",
    ),
    (
        "--input-range empty",
        lambda f: ["--config", f["good"], "--onnx", f["embedding"], "--input-range", "ids=5:5"],
        "LO must be below HI",
    ),
    (
        "--input-range names no input",
        lambda f: [
            "--config",
            f["good"],
            "--onnx",
            f["embedding"],
            "--shape",
            "ids=2x4",
            "--input-range",
            "tokens=0:9",
        ],
        "names tokens",
    ),
    (
        "--input-range without a model",
        lambda f: ["--config", f["good"], "--input-range", "ids=0:9"],
        "--input-range applies",
    ),
    (
        "one dimension given two sizes",
        lambda f: [
            "--config",
            f["good"],
            "--onnx",
            f["two_inputs"],
            "--shape",
            "x=2x4",
            "--shape",
            "ids=3x8",
        ],
        "dimension 'N' two sizes",
    ),
    (
        "resume imports no factory",
        lambda f: ["--resume", f["factory_run"]],
        "add --model evil_module:build",
    ),
    ("resume reads no ONNX file", lambda f: ["--resume", f["onnx_run"]], "add --onnx"),
    (
        "resume reads no inputs file",
        lambda f: ["--resume", f["onnx_inputs_run"], "--onnx", f["theirs"]],
        "add --inputs /etc/x.npz",
    ),
    (
        "resume with a flag that would change the run",
        lambda f: ["--resume", f["damaged_run"], "--runtimes", "openvino", "--profile", "smoke"],
        "drop --runtimes, --profile",
    ),
    ("resume writes through no link", lambda f: ["--resume", f["linked_run"]], "is a link"),
    (
        "resume runs no program",
        lambda f: ["--resume", f["trtexec_run"]],
        "runtime.tensorrt.trtexec_path",
    ),
]


@pytest.mark.parametrize(
    ("args", "expected"), [case[1:] for case in BAD_INPUTS], ids=[case[0] for case in BAD_INPUTS]
)
def test_bad_input_is_one_line_and_exit_code_2(
    args: Callable[[dict[str, Path]], list[str | Path]],
    expected: str,
    bad_files: dict[str, Path],
    tmp_path: Path,
    cache_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In this process (``cli.main``), so that the battery stays quick and an uncaught
    exception fails the test with its traceback; the CLI's own process is tested above."""
    import cli as command_line

    results = tmp_path / "results"
    monkeypatch.setenv("DEPLOYBENCH_CACHE_DIR", str(cache_dir))
    monkeypatch.chdir(REPO_ROOT)
    argv = ["run", *map(str, args(bad_files)), "--no-progress"]
    if "--resume" not in argv:
        argv += ["--results-dir", str(results)]
    try:
        code = command_line.main(argv)
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    captured = capsys.readouterr()
    assert code == 2, f"exit {code}\n{captured.out}\n{captured.err}"
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: ")
    assert re.search(expected, lines[0]), lines[0]
    assert run_dirs(results) == []  # bad input leaves no run directory behind
    assert "run directory" not in captured.out  # nor names one


# --- (f) a user ONNX file with two inputs --------------------------------------------


@pytest.mark.parametrize("batch", ["N", 2], ids=["dynamic", "fixed"])
def test_run_on_a_two_input_onnx_file(batch: str | int, tmp_path: Path, cache_dir: Path) -> None:
    model = two_input_model(tmp_path / "two_inputs.onnx", batch)
    config = write_suite(
        tmp_path / "bench.toml",
        models=["mlp"],
        runtimes=["pytorch", "onnxruntime"],
        scenarios=["latency", "throughput"],
    )
    results = tmp_path / "results"
    shapes = ["--shape", "x=2x4", "--shape", "ids=2x8"] if batch == "N" else []
    proc = cli(
        "run",
        "--config",
        config,
        "--results-dir",
        results,
        "--no-progress",
        "--onnx",
        model,
        *shapes,
        cache_dir=cache_dir,
    )
    assert proc.returncode == 0, explain(proc)
    records = by_key(records_of(only_run_dir(results)))
    assert len(records) == 4
    for record in records.values():
        assert record["cell"]["model"] == "two_inputs"
        assert record["cell"]["batch"] == 2  # the leading size of the first input
        if record["cell"]["runtime"] == "onnxruntime":
            assert record["status"] == "ok", record.get("reason")
            assert record["latency_ms"]["count"] >= TINY_MEASURE["min_iters"]
            assert record["throughput"]["samples_per_s"] > 0
            assert record["executed"]["precision"] == "fp32"
        else:
            assert record["status"] == "skipped"
            assert record["reason"] and "onnx" in record["reason"].lower()
            assert "latency_ms" not in record


# --- (g) list, env, help ----------------------------------------------------------------


def test_list_shows_every_model_and_runtime(cache_dir: Path) -> None:
    proc = cli("list", cache_dir=cache_dir)
    assert proc.returncode == 0, explain(proc)
    for name in [*ZOO, *RUNTIMES]:
        assert re.search(rf"\b{name}\b", proc.stdout), name


def test_env_prints_the_fingerprint_as_json(cache_dir: Path) -> None:
    proc = cli("env", cache_dir=cache_dir)
    assert proc.returncode == 0, explain(proc)
    data = json.loads(proc.stdout)
    assert {"cpu", "python", "libraries", "os", "memory_gib"} <= set(data)
    assert data["python"] == platform.python_version()
    assert data["cpu"]["logical_cores"] >= 1
    assert {"numpy", "onnx", "onnxruntime", "torch"} <= set(data["libraries"])


@pytest.mark.parametrize("command", [[], ["run"], ["list"], ["env"]])
def test_help(command: list[str], cache_dir: Path) -> None:
    proc = cli(*command, "--help", cache_dir=cache_dir)
    assert proc.returncode == 0, explain(proc)
    assert proc.stdout.startswith("usage: cli.py")
    assert proc.stderr == ""


def test_run_help_names_the_main_options(cache_dir: Path) -> None:
    proc = cli("run", "--help", cache_dir=cache_dir)
    for option in ("--config", "--profile", "--onnx", "--model", "--shape", "--resume"):
        assert option in proc.stdout


def test_no_command_is_an_error(cache_dir: Path) -> None:
    proc = cli(cache_dir=cache_dir)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error:")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_a_results_dir_that_is_a_file_is_one_line_and_exit_code_2(
    bad_files: dict[str, Path], tmp_path: Path, cache_dir: Path
) -> None:
    a_file = _text(tmp_path / "a-file", "not a folder\n")
    proc = cli("run", "--config", bad_files["good"], "--results-dir", a_file, cache_dir=cache_dir)
    assert proc.returncode == 2, explain(proc)
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.stderr.strip().startswith("error:") and "--results-dir" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_a_failing_resume_keeps_the_run_directory(tmp_path: Path, cache_dir: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config = BenchConfig.model_validate({"suite": {"runtimes": ["onnxruntime"]}}).model_dump()
    models = [
        {
            "name": "x",
            "kind": "factory",
            "ref": "no_such_module_q:build",
            "shapes": {"input": [1, 8]},
        }
    ]
    (run_dir / "run.json").write_text(
        json.dumps({"config": config, "models": models, "cache_dir": str(cache_dir)})
    )
    factory = ("--model", "no_such_module_q:build")  # named again: the user trusts it
    proc = cli("run", "--resume", run_dir, *factory, "--no-progress", cache_dir=cache_dir)
    assert proc.returncode == 2, explain(proc)
    assert "cannot import 'no_such_module_q'" in proc.stderr
    assert (run_dir / "run.json").is_file()
