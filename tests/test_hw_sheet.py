"""``hw`` that finishes: each size projected before it runs, capped sizes recorded with
the projected time; the GPU sheet's rows from hw records beside P100 / V100."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import bench.hw.matmul as matmul
from bench.hw.caches import cache_records
from bench.hw.matmul import MIN_REPEAT_S, MatmulLadder, figure_seconds
from bench.hw.records import HwRecord
from bench.hw.sheet import SHEET_ROWS, published_sheet, sheet_figure, sheet_rows
from bench.hw.stream import measure_device_copy
from bench.hw.suite import _peers
from bench.published import GPU_SHEET, U39KUN, read_table, source

REPO_ROOT = Path(__file__).resolve().parent.parent
CPU = torch.device("cpu")


def test_a_figure_costs_a_warm_up_a_sizing_call_and_its_repeats() -> None:
    assert figure_seconds(1.0, 5) == pytest.approx(7.0)  # one call fills a repeat
    calls = int(MIN_REPEAT_S / 0.01)
    assert figure_seconds(0.01, 3) == pytest.approx(0.01 * (2 + 3 * calls))


def _ladder_with_probe(monkeypatch: pytest.MonkeyPatch, probe_s: float) -> list[int]:
    """A ladder whose probe says a 512³ product takes ``probe_s``; the repeats each
    measured size was given are collected instead of measuring."""
    given: list[int] = []

    def fake_measure(
        torch_: object, device: object, dtype: str, size: int, repeats: int, max_s: float
    ) -> HwRecord:
        given.append(repeats)
        return HwRecord("matmul", "cpu", dtype, size, "TFLOP/s", best=1e-3, median=1e-3)

    monkeypatch.setattr(matmul, "measure_matmul", fake_measure)
    monkeypatch.setattr(MatmulLadder, "_probe", lambda self, size: (512, probe_s, "a probe"))
    return given


def test_repeats_drop_to_fit_the_cap_and_a_size_that_cannot_fit_is_never_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    given = _ladder_with_probe(monkeypatch, probe_s=1.0)
    ladder = MatmulLadder(torch, CPU, "fp32", repeats=5, max_s=6.0, fix="--max-s")
    assert ladder.measure(512).status == "ok" and given == [4]  # 1 s x (2 + 4) fits 6 s
    given.clear()
    tight = MatmulLadder(torch, CPU, "fp32", repeats=5, max_s=4.5, fix="--max-s")
    capped = tight.measure(512)  # 3 repeats, the least, still need 5 s
    assert given == [] and capped.status == "capped"
    assert capped.details["projected_s"] == pytest.approx(5.0)
    assert "projected 5 s" in capped.reason and "--max-s" in capped.reason


def test_the_next_size_is_projected_from_the_last_measured_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    given = _ladder_with_probe(monkeypatch, probe_s=1e-3)
    ladder = MatmulLadder(torch, CPU, "fp16", repeats=5, max_s=60.0, fix="--max-s")
    first = ladder.measure(1024)  # the fake figure: 1 GFLOP/s, so 2.1 s per 1024³ product
    assert first.status == "ok" and "projected_s" in first.details
    second = ladder.measure(2048)  # 17 s per product: 2 + 3 repeats = 86 s > 60 s
    assert second.status == "capped" and given == [5]
    assert "from the 1024³ figure" in second.reason and "1 GFLOP/s" in second.reason
    assert second.details["projected_s"] == pytest.approx(5 * 2 * 2048**3 / 1e9, abs=1e-2)


def test_a_real_cpu_ladder_measures_a_small_size_and_caps_a_huge_one() -> None:
    ladder = MatmulLadder(torch, CPU, "fp32", repeats=3, max_s=3.0, fix="--max-s")
    small, huge = ladder.measure(64), ladder.measure(16384)
    assert small.status == "ok" and small.best and small.best > 0
    assert huge.status == "capped" and huge.details["projected_s"] > 3.0


def _record(kind: str, device: str, name: str, best: float | None, **kw: object) -> HwRecord:
    status = "ok" if best is not None else "unavailable"
    return HwRecord(kind, device, name, 1024, "x", status, kw.pop("reason", None), best=best, **kw)


GPU_RECORDS = [
    _record("matmul", "cuda:0", "fp64", 50.0),
    _record("matmul", "cuda:0", "fp32", 51.0),
    _record("matmul", "cuda:0", "fp16", 700.0),
    _record("matmul", "cuda:0", "bf16", 720.0),
    _record("matmul", "cuda:0", "int8", 1400.0),
    _record("transfer", "cuda:0", "d2d", 3900.0),
    _record("stream", "cuda:0", "triad", 3600.0),
    _record("transfer", "cuda:0", "p2p", None, reason="peer-to-peer needs two GPUs (1 here)"),
    _record("cache", "cuda:0", "L2", 50.0, details={"source": "CUDA device properties"}),
    _record("cache", "cuda:0", "L1", None, reason="CUDA does not report the L1 size"),
    _record("matmul", "cpu", "fp32", 0.15),
    _record("stream", "cpu", "triad", 38.0),
]


def test_the_sheet_rows_take_the_best_record_and_say_why_one_is_missing() -> None:
    rows = {row.row: row for row in SHEET_ROWS}
    assert set(published_sheet()) <= set(rows)  # every published row has its answer
    training = sheet_figure(GPU_RECORDS, rows["DL training (TFLOPS)"], "cuda:0")
    assert training.value == 720.0 and training.note == "bf16 1024³"
    inference = sheet_figure(GPU_RECORDS, rows["DL inferencing (TFLOPS)"], "cuda:0")
    assert inference.value == 720.0  # fp16 rates, as the sheet's: int8 has its own row
    assert sheet_figure(GPU_RECORDS, rows["INT8 (TOPS)"], "cuda:0").value == 1400.0
    nvlink = sheet_figure(GPU_RECORDS, rows["NVLink bandwidth (GB/s)"], "cuda:0")
    assert nvlink.value is None and "needs two GPUs" in nvlink.note
    hbm_cpu = sheet_figure(GPU_RECORDS, rows["HBM2 bandwidth (GB/s)"], "cpu")
    assert hbm_cpu.value is None and "not on a CPU" in hbm_cpu.note
    fp64_cpu = sheet_figure(GPU_RECORDS, rows["FP64 (TFLOPS)"], "cpu")
    assert fp64_cpu.value is None and "not measured" in fp64_cpu.note


def test_the_sheet_table_sets_ours_beside_the_published_p100_and_v100() -> None:
    columns, rows = sheet_rows(GPU_RECORDS)
    assert columns[:5] == ("row", "P100", "V100", "cuda:0", "cpu")  # GPUs first
    by_row = {row[0]: row for row in rows}
    assert by_row["FP64 (TFLOPS)"][1:4] == ["5", "7.5", "50 (6.7x V100)"]
    assert by_row["STREAM triad (GB/s)"][4] == "38 (0.044x V100)"
    assert by_row["HBM2 bandwidth (GB/s)"][3] == "3,900 (4.3x V100)"
    assert by_row["L1 caches (MB)"][3] == "-"
    assert by_row["INT8 (TOPS)"][1:4] == ["-", "-", "1,400"]  # nothing published to divide by
    assert "cuda:0: L1 unavailable: CUDA does not report" in by_row["L1 caches (MB)"][-1]


def test_published_files_name_their_source() -> None:
    assert "seed lecture" in source(GPU_SHEET)
    assert "u39kun/deep-learning-benchmark" in source(U39KUN)
    rows = read_table(U39KUN)
    assert len(rows) == 30 and {r["model"] for r in rows} == {"vgg16", "resnet152", "densenet161"}


@pytest.mark.e2e
def test_cli_hw_in_a_pipe_prints_a_line_per_figure_and_records_a_capped_size(
    tmp_path: Path,
) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "cli.py",
            "hw",
            "--devices",
            "cpu",
            "--dtypes",
            "fp32",
            "--sizes",
            "64,16384",
            "--quick",
            "--stream-mib",
            "1",
            "--results-dir",
            str(tmp_path),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("[")]
    assert [line.split("]")[0] for line in lines] == ["[1/4", "[2/4", "[3/4", "[4/4"]
    assert "cpu fp32 matmul 16384: capped: projected" in lines[1]
    assert "The GPU sheet beside ours" in proc.stdout
    (run_dir,) = tmp_path.iterdir()
    records = json.loads((run_dir / "hw.json").read_text())["records"]
    capped = [r for r in records if r["status"] == "capped"]
    assert [r["size"] for r in capped] == [16384] and capped[0]["details"]["projected_s"] > 5
    assert {r["name"] for r in records if r["kind"] == "cache"} == {"L1", "L2"}


class _FakeCuda:
    """Enough of ``torch.cuda`` for the copy and cache paths: every timed span takes 1 ms,
    and the device each event is made under is noted."""

    def __init__(self, devices: int) -> None:
        self.devices, self.current, self.event_devices = devices, 0, []

    def device_count(self) -> int:
        return self.devices

    @contextlib.contextmanager
    def device(self, device: SimpleNamespace):
        before, self.current = self.current, device.index
        try:
            yield
        finally:
            self.current = before

    def Event(self, enable_timing: bool) -> SimpleNamespace:  # noqa: N802 (torch's name)
        self.event_devices.append(self.current)
        return SimpleNamespace(
            record=lambda: None, synchronize=lambda: None, elapsed_time=lambda other: 1.0
        )

    def synchronize(self, device: object = None) -> None:
        pass

    def can_device_access_peer(self, a: int, b: int) -> bool:
        return True

    def empty_cache(self) -> None:
        pass

    def get_device_properties(self, device: object) -> SimpleNamespace:
        return SimpleNamespace(
            multi_processor_count=132,
            L2_cache_size=50 * 2**20,
            shared_memory_per_multiprocessor=228 * 1024,
        )


def _fake_torch(devices: int) -> SimpleNamespace:
    buffer = SimpleNamespace(copy_=lambda other, non_blocking=False: None)
    return SimpleNamespace(
        cuda=_FakeCuda(devices),
        uint8="uint8",
        ones=lambda *a, **k: buffer,
        empty=lambda *a, **k: buffer,
        empty_like=lambda other: buffer,
        device=lambda kind, index: SimpleNamespace(type=kind, index=index),
    )


class _Gpu(SimpleNamespace):
    def __str__(self) -> str:
        return f"cuda:{self.index}"


def test_a_device_copy_counts_read_and_write_and_times_on_its_own_gpu() -> None:
    fake = _fake_torch(2)
    record = measure_device_copy(fake, _Gpu(type="cuda", index=1), 10**6, repeats=3)
    assert record.name == "d2d" and record.work == 2 * 10**6
    assert record.best == pytest.approx(2.0)  # 2 MB in 1 ms
    assert set(fake.cuda.event_devices) == {1}  # events on cuda:1's stream, not cuda:0's


def test_peer_copies_need_two_gpus_and_are_one_way() -> None:
    (alone,) = _peers(_fake_torch(1), _Gpu(type="cuda", index=0), 10**6, 3)
    assert alone.status == "unavailable" and "needs two GPUs (1 here)" in alone.reason
    fake = _fake_torch(3)
    fake.device = lambda kind, index: _Gpu(type=kind, index=index)
    records = _peers(fake, _Gpu(type="cuda", index=1), 10**6, 3)
    assert [r.name for r in records] == ["p2p cuda:1->cuda:0", "p2p cuda:1->cuda:2"]
    assert all(r.best == pytest.approx(1.0) and r.details["peer_access"] for r in records)


def test_gpu_caches_report_l2_and_say_why_l1_is_missing() -> None:
    l1, l2 = cache_records(_fake_torch(1), _Gpu(type="cuda", index=0))
    assert l2.status == "ok" and l2.best == 50.0
    assert l1.status == "unavailable" and "228 KiB per SM x 132 SMs" in l1.reason
