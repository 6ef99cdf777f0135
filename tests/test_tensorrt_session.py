"""The TensorRT Python session against doubles of cuda-python and tensorrt's runtime:
host→device→host copies through pinned buffers, the tensor addresses bound, another batch
within the profile, the event split of the measured requests, CUDA graph capture, one
execution context per request slot, and every allocation freed on close."""

from __future__ import annotations

import sys
import threading
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from bench.core.cell import Target
from bench.core.errors import Unavailable
from bench.core.spec import PreparedModel
from bench.core.timing import StopRule
from exporters.onnx_export import prepare_zoo_model
from exporters.reference import load_reference
from runtimes.tensorrt import cuda as tensorrt_cuda
from runtimes.tensorrt.build import BuildPlan, EngineFile
from runtimes.tensorrt.session import TensorRTSession
from tests.fixtures.tensorrt.fake_runtime import FakeCudart, make_runtime_tensorrt

FIXTURES = Path(__file__).parent / "fixtures" / "tensorrt"
SHORT = StopRule(0.01, 3), StopRule(0.02, 10)


@pytest.fixture(scope="module")
def lenet(cache_dir: Path) -> PreparedModel:
    return prepare_zoo_model("lenet5", [1, 2], cache_dir)


@pytest.fixture
def cudart(monkeypatch: pytest.MonkeyPatch) -> FakeCudart:
    fake = FakeCudart()
    monkeypatch.setattr(tensorrt_cuda, "cudart", lambda: fake)
    monkeypatch.setattr(tensorrt_cuda, "cuda_unavailable_reason", lambda index: None)  # 2 GPUs
    return fake


@pytest.fixture
def trt(cudart: FakeCudart, monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = make_runtime_tensorrt(cudart, FIXTURES / "inspector_lenet5_fp16_b2.json")
    monkeypatch.setitem(sys.modules, "tensorrt", module)
    return module


def session(
    tmp_path: Path, lenet: PreparedModel, device: str = "cuda:0", **extra: object
) -> TensorRTSession:
    engine = tmp_path / "lenet.engine"
    engine.write_bytes(b"engine")
    shapes = {"input": ((1, 1, 32, 32), (2, 1, 32, 32), (2, 1, 32, 32))}
    plan = BuildPlan("fp16", "weak", 1024, shapes)
    engine_file = EngineFile(engine, plan, "10.3.0", "python", "NVIDIA H100")
    return TensorRTSession(engine_file, lenet, Target(device, "fp16"), **extra)


def expected(feeds: dict[str, np.ndarray]) -> np.ndarray:
    batch = feeds["input"].shape[0]
    return 2 * feeds["input"].reshape(batch, -1)[:, :10]


def test_infer_copies_in_computes_and_copies_out(
    trt: types.ModuleType, cudart: FakeCudart, lenet: PreparedModel, tmp_path: Path
) -> None:
    runner = session(tmp_path, lenet)
    assert runner.executed.precision == "fp16" and runner.executed.device == "cuda:0"
    assert runner.executed.provider == "tensorrt 10.3.0 (python)"
    assert runner.executed.details["layer_precisions"] == {"fp16": 7, "fp32": 3}
    for batch in (2, 1):  # the cell's batch, then another one the profile allows
        feeds, _ = load_reference(lenet.reference, batch)
        outputs = runner.infer(feeds)
        np.testing.assert_array_equal(outputs["logits"], expected(feeds))
    assert cudart.copies == ["H2D", "D2H", "H2D", "D2H"]
    runner.close()
    assert cudart.memory == {}


def test_latency_split_keeps_the_measured_requests(
    trt: types.ModuleType, cudart: FakeCudart, lenet: PreparedModel, tmp_path: Path
) -> None:
    runner = session(tmp_path, lenet, data_transfers=True)
    feeds, _ = load_reference(lenet.reference, 2)
    record = runner.run_latency(feeds, *SHORT)
    metrics = runner.device_metrics()
    assert metrics["split_count"] == record.completed and record.warmup_count >= 3
    assert metrics["split_source"] == "cuda events" and metrics["engine_device_memory_mb"] == 3
    assert 0 <= metrics["compute_ms"] <= metrics["latency_ms"]
    assert (
        cudart.copies.count("H2D")
        == cudart.copies.count("D2H")
        == 1 + record.warmup_count + record.completed
    )
    runner.close()


def test_compute_only_timing_moves_no_data(
    trt: types.ModuleType, cudart: FakeCudart, lenet: PreparedModel, tmp_path: Path
) -> None:
    runner = session(tmp_path, lenet)  # the default: inputs and outputs stay on the device
    feeds, _ = load_reference(lenet.reference, 2)
    runner.stage(feeds)
    staged = len(cudart.copies)
    for _ in range(5):
        runner.launch()
        runner.synchronize()
    assert len(cudart.copies) == staged == 2  # the staging round trip only
    assert runner.device_metrics()["split_count"] == 5


def test_cuda_graph_replays_the_captured_compute(
    trt: types.ModuleType, cudart: FakeCudart, lenet: PreparedModel, tmp_path: Path
) -> None:
    runner = session(tmp_path, lenet, cuda_graph=True)
    feeds, _ = load_reference(lenet.reference, 2)
    runner.stage(feeds)
    before = len(trt.executions)
    runner.launch()
    runner.synchronize()
    assert len(trt.executions) == before + 1  # the graph ran the engine's work
    assert runner._slot.graph is not None and runner.executed.details["cuda_graph"]


def test_each_request_slot_has_its_own_context(
    trt: types.ModuleType, cudart: FakeCudart, lenet: PreparedModel, tmp_path: Path
) -> None:
    runner = session(tmp_path, lenet)
    feeds, _ = load_reference(lenet.reference, 2)
    slots = runner.request_slots(feeds, 3)
    del trt.executions[:]
    for slot in slots:
        slot()
    assert len({id(context) for context in trt.executions}) == 3
    assert runner.device_metrics()["contexts"] == 4
    record = runner.run_throughput(feeds, 2, *SHORT)
    assert record.in_flight == 2 and record.completed >= 10
    runner.close()
    assert cudart.memory == {}


def test_no_tensorrt_object_is_made_without_a_cuda_device(
    trt: types.ModuleType, lenet: PreparedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reason = "no CUDA device (no NVIDIA driver or GPU found)"
    monkeypatch.setattr(tensorrt_cuda, "cuda_unavailable_reason", lambda index: reason)
    with pytest.raises(Unavailable, match="no CUDA device .*: TensorRT cannot start"):
        session(tmp_path, lenet)
    assert trt.runtimes == []  # trt.Runtime would have crashed the worker on its next call


def test_each_slot_thread_makes_the_cell_s_device_current(
    trt: types.ModuleType, cudart: FakeCudart, lenet: PreparedModel, tmp_path: Path
) -> None:
    runner = session(tmp_path, lenet, device="cuda:1")
    feeds, _ = load_reference(lenet.reference, 2)
    slots = runner.request_slots(feeds, 2)
    del cudart.devices[:]
    both_alive = threading.Barrier(2)  # so that the two threads' idents differ

    def requests(slot: Callable[[], None]) -> None:
        both_alive.wait()
        slot()
        slot()

    threads = [threading.Thread(target=requests, args=(slot,)) for slot in slots]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [device for _, device in cudart.devices] == [1, 1]  # once per slot thread
    assert len({thread for thread, _ in cudart.devices}) == 2
    runner.close()


def test_close_destroys_every_event_and_graph(
    trt: types.ModuleType, cudart: FakeCudart, lenet: PreparedModel, tmp_path: Path
) -> None:
    runner = session(tmp_path, lenet, cuda_graph=True)
    feeds, _ = load_reference(lenet.reference, 2)
    runner.stage(feeds)
    runner.request_slots(feeds, 2)
    assert len(cudart.events) == 12 and len(cudart.graphs) == 3  # three slots
    runner.close()
    assert cudart.events == set() and cudart.graphs == set() and cudart.memory == {}


def test_a_refused_tensor_address_fails_the_load(
    trt: types.ModuleType, cudart: FakeCudart, lenet: PreparedModel, tmp_path: Path
) -> None:
    trt.refused_addresses.add("logits")
    with pytest.raises(RuntimeError, match="refused the device address of 'logits'"):
        session(tmp_path, lenet)
