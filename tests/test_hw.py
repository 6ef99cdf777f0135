"""``cli.py hw``: FLOP and byte accounting, cache sizing, tiny measurements, absent
devices and dtypes, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench.core.devices import cuda_device_count
from bench.core.errors import UserError
from bench.hw import matmul
from bench.hw.matmul import measure_matmul, unavailable_reason
from bench.hw.records import STREAM_ARRAYS, matmul_flops, rates, stream_bytes
from bench.hw.stream import array_bytes, llc_bytes, measure_stream, parse_cache_size
from bench.hw.suite import hw_options

REPO_ROOT = Path(__file__).resolve().parent.parent
CPU = torch.device("cpu")


def test_a_matrix_product_counts_a_multiply_and_an_add_per_term() -> None:
    a, b = torch.ones(3, 5, dtype=torch.float64), torch.ones(5, 7, dtype=torch.float64)
    terms = int((a @ b).sum())  # each output element sums K products: M*N*K terms
    assert matmul_flops(3, 7, 5) == 2 * terms == 210


def test_stream_counts_arrays_as_stream_does() -> None:
    assert stream_bytes("copy", 1000) == stream_bytes("scale", 1000) == 2 * 8 * 1000
    assert stream_bytes("add", 1000) == stream_bytes("triad", 1000) == 3 * 8 * 1000
    assert set(STREAM_ARRAYS) == {"copy", "scale", "add", "triad"}


def test_rates_take_the_fastest_repeat_as_best_and_the_slowest_as_min() -> None:
    figures = rates(2e12, [1.0, 2.0, 4.0], 1e12)
    assert figures == {"best": 2.0, "median": 1.0, "min": 0.5, "max": 2.0}


def test_a_tiny_cpu_matrix_multiply_reports_its_spread() -> None:
    record = measure_matmul(torch, CPU, "fp32", 64, repeats=3, max_s=5.0)
    assert record.status == "ok" and record.unit == "TFLOP/s"
    assert record.work == 2 * 64**3 and record.repeats == 3
    assert record.min <= record.median <= record.best == record.max
    assert record.details["threads"] == torch.get_num_threads()


def test_tf32_and_int8_without_a_path_are_unavailable_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tf32 = measure_matmul(torch, CPU, "tf32", 64, repeats=1, max_s=1.0)
    assert tf32.status == "unavailable" and "not a CPU path" in tf32.reason
    monkeypatch.setattr(matmul, "cpu_flags", lambda: {"avx2", "fma"})
    assert "no int8 dot-product instructions" in unavailable_reason(torch, CPU, "int8")
    monkeypatch.setattr(matmul, "cpu_flags", lambda: {"avx512_vnni"})
    assert unavailable_reason(torch, CPU, "int8") is None
    record = measure_matmul(torch, CPU, "int8", 64, repeats=1, max_s=1.0)
    assert record.status == "ok" and record.unit == "TOP/s"


def test_stream_on_tiny_arrays_counts_every_kernel() -> None:
    plan = {"array_bytes": 2**20, "cache_bytes": 2**22, "cache_source": "test", "notes": []}
    records = measure_stream(torch, CPU, plan, ntimes=2)
    assert [r.name for r in records] == ["copy", "scale", "add", "triad"]
    for record in records:
        assert record.work == STREAM_ARRAYS[record.name] * 2**20
        assert record.repeats == 2 and record.best > 0 and record.unit == "GB/s"


def test_cache_sizes_parse_in_sysfs_and_lscpu_forms() -> None:
    assert parse_cache_size("491520K") == 491520 * 1024
    assert parse_cache_size("48 MiB") == 48 * 2**20
    assert parse_cache_size("2097152") == 2097152
    assert parse_cache_size("unknown") is None


def _cache(root: Path, cpu: int, index: int, level: int, size: str, shared: str) -> None:
    folder = root / f"cpu{cpu}" / "cache" / f"index{index}"
    folder.mkdir(parents=True)
    kind = "Data" if level == 1 else "Unified"
    for name, value in (("level", level), ("type", kind), ("size", size)):
        (folder / name).write_text(f"{value}\n")
    (folder / "shared_cpu_list").write_text(shared + "\n")


def test_the_last_level_cache_counts_each_shared_cache_once(tmp_path: Path) -> None:
    for cpu in range(4):  # two sockets, two CPUs each: two L3s of 32 MiB
        _cache(tmp_path, cpu, 0, 1, "48K", str(cpu))
        _cache(tmp_path, cpu, 3, 3, "32768K", "0-1" if cpu < 2 else "2-3")
    assert llc_bytes(tmp_path) == (64 * 2**20, "sysfs L3")


def test_stream_arrays_are_four_times_the_cache_unless_memory_or_the_user_says_less() -> None:
    size, notes = array_bytes(100 * 2**20, 2**40, 2**20)
    assert size == 400 * 2**20 and notes == []
    size, notes = array_bytes(100 * 2**20, 2**40, 2**20, requested=2**20)
    assert size == 2**20 and any("caches inflate" in n for n in notes)
    size, notes = array_bytes(100 * 2**20, 600 * 2**20, 2**20)
    assert size * 3 <= 600 * 2**20 * 0.4 and "arrays limited by free memory" in notes


def test_options_reject_unknown_devices_dtypes_and_sizes() -> None:
    with pytest.raises(UserError, match="unknown dtype 'fp8'"):
        hw_options(None, ["fp8"], None)
    with pytest.raises(UserError, match="unknown device 'tpu'"):
        hw_options(["tpu"], None, None)
    with pytest.raises(UserError, match="positive matrix sizes"):
        hw_options(None, None, [0])
    with pytest.raises(UserError, match="--max-s takes a positive number"):
        hw_options(None, None, None, max_s=0)
    with pytest.raises(UserError, match="--max-s takes a positive number"):
        hw_options(None, None, None, max_s=float("nan"))
    assert hw_options(None, None, [2048, 64, 2048]).sizes == (64, 2048)  # smallest first
    options = hw_options(["CPU", "cpu"], ["bf16"], [64], "quick", 1)
    assert options.devices == ("cpu",) and options.dtypes == ("bf16",)


def _hw(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "cli.py", "hw", *map(str, args)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.e2e
def test_cli_hw_writes_a_results_directory(tmp_path: Path) -> None:
    proc = _hw(
        "--devices",
        "cpu",
        "--dtypes",
        "fp32,tf32",
        "--sizes",
        "64",
        "--quick",
        "--stream-mib",
        "1",
        "--results-dir",
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = tmp_path.iterdir()
    assert {"environment.json", "run.json", "hw.json"} <= {p.name for p in run_dir.iterdir()}
    records = json.loads((run_dir / "hw.json").read_text())["records"]
    status = {(r["kind"], r["name"]): r["status"] for r in records}
    assert status[("matmul", "fp32")] == "ok" and status[("matmul", "tf32")] == "unavailable"
    assert all(status[("stream", k)] == "ok" for k in STREAM_ARRAYS)
    assert "STREAM" in proc.stdout and "TF32 is an NVIDIA" in proc.stdout


@pytest.mark.e2e
@pytest.mark.skipif(cuda_device_count() > 0, reason="this machine has a CUDA device")
def test_cli_hw_on_an_absent_gpu_says_so_and_does_not_fail(tmp_path: Path) -> None:
    proc = _hw("--devices", "cuda", "--results-dir", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "unavailable: no CUDA device" in proc.stdout
    (run_dir,) = tmp_path.iterdir()
    (record,) = json.loads((run_dir / "hw.json").read_text())["records"]
    assert record["status"] == "unavailable" and record["device"] == "cuda"


def test_cli_hw_unknown_dtype_is_a_one_line_error(tmp_path: Path) -> None:
    proc = _hw("--dtypes", "fp8", "--results-dir", tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: unknown dtype 'fp8': choose from fp64, fp32, tf32, fp16, bf16, int8"
    ]
    assert not tmp_path.exists() or not any(tmp_path.iterdir())
