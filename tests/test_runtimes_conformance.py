"""The runtime contract, checked the same way against every registered runtime.

A runtime that cannot serve CPU FP32 here (not installed) is skipped with its reason.
The GPU variant runs only where a CUDA device is present.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from bench.core.cell import Target
from bench.core.devices import cuda_device_count
from bench.core.spec import PreparedModel
from exporters.onnx_export import prepare_zoo_model
from exporters.reference import load_reference
from exporters.source import module_loader
from runtimes import RUNTIMES
from runtimes.base import LoadOptions, Runtime, Session

CPU = Target("cpu", "fp32")
BATCHES = [1, 2]


@pytest.fixture(scope="module")
def prepared(cache_dir: Path) -> PreparedModel:
    return prepare_zoo_model("lenet5", BATCHES, cache_dir)


@pytest.fixture(autouse=True)
def _keep_torch_threads() -> Iterator[None]:
    """The PyTorch session sets torch's global thread count: give it back afterwards."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _runtime(name: str, target: Target, source: str) -> type[Runtime]:
    runtime = RUNTIMES[name]
    reason = runtime.unavailable_reason(target, source)
    if reason is not None:
        pytest.skip(f"{name} cannot serve {target.device} {target.precision} here: {reason}")
    return runtime


def options(prepared: PreparedModel) -> LoadOptions:
    """Two requests in flight on one thread, with the model's module as the worker gives it."""
    module = module_loader(prepared.source, prepared.seed)
    return LoadOptions(threads=1, in_flight=2, module=module)


def _load(
    name: str, prepared: PreparedModel, target: Target, cache_dir: Path, options: LoadOptions
) -> Session:
    runtime = _runtime(name, target, prepared.source)()
    built = runtime.build(prepared, target, options, cache_dir)
    assert built.build_s >= 0
    return runtime.load(built, prepared, target, options)


def _check_outputs(
    session: Session, prepared: PreparedModel, batch: int, atol: float, rtol: float
) -> None:
    inputs, reference = load_reference(prepared.reference, batch)
    outputs = session.infer(inputs)
    assert set(outputs) == {spec.name for spec in prepared.outputs}
    for name, expected in reference.items():
        got = np.asarray(outputs[name])
        assert got.shape == expected.shape, name
        np.testing.assert_allclose(got, expected, atol=atol, rtol=rtol, err_msg=name)


@pytest.mark.parametrize("name", sorted(RUNTIMES))
def test_cpu_session_honours_the_contract(
    name: str, prepared: PreparedModel, cache_dir: Path
) -> None:
    session = _load(name, prepared, CPU, cache_dir, options(prepared))
    assert session.inputs == prepared.inputs
    assert session.outputs == prepared.outputs

    executed = session.executed
    assert executed.precision == "fp32"
    assert executed.device == "cpu"
    assert isinstance(executed.threads, int) and executed.threads >= 1
    assert executed.provider

    for batch in BATCHES:
        _check_outputs(session, prepared, batch, atol=1e-4, rtol=1e-3)

    feeds, _ = load_reference(prepared.reference, 1)
    session.stage(feeds)
    for _ in range(3):
        session.launch()
        session.synchronize()

    slots = session.request_slots(feeds, 2)
    assert len(slots) == 2
    for slot in slots:
        assert callable(slot)
        slot()
    session.close()


@pytest.mark.parametrize("name", sorted(RUNTIMES))
def test_unavailable_reason_is_none_or_one_line(name: str) -> None:
    runtime = RUNTIMES[name]
    if not runtime.installed():
        reason = runtime.unavailable_reason(CPU, "zoo:mlp")
        assert reason is not None and "\n" not in reason and runtime.install_hint in reason
        return
    cpu_reason = runtime.unavailable_reason(CPU, "zoo:mlp")
    if "cpu" in runtime.device_forms:
        assert cpu_reason is None
    else:  # a GPU-only runtime (tensorrt) says so in one line
        assert isinstance(cpu_reason, str) and "cpu" in cpu_reason and "\n" not in cpu_reason
    if cuda_device_count() <= 7:
        reason = runtime.unavailable_reason(Target("cuda:7", "fp32"), "zoo:mlp")
        assert isinstance(reason, str) and reason and "\n" not in reason
    served = "cpu" if "cpu" in runtime.device_forms else next(iter(runtime.device_forms))
    for precision in sorted({"fp32", "fp16", "bf16", "int8"} - set(runtime.precisions)):
        reason = runtime.unavailable_reason(Target(served, precision), "zoo:mlp")
        assert isinstance(reason, str) and precision in reason and "\n" not in reason


@pytest.mark.parametrize("name", sorted(RUNTIMES))
def test_runtime_identity(name: str) -> None:
    runtime = RUNTIMES[name]
    assert runtime.name == name
    assert runtime.package and runtime.install_hint
    assert "fp32" in runtime.precisions


@pytest.mark.gpu
@pytest.mark.parametrize("name", sorted(RUNTIMES))
def test_cuda_session_honours_the_contract(
    name: str, prepared: PreparedModel, cache_dir: Path
) -> None:
    if cuda_device_count() == 0:
        pytest.skip("no CUDA device")
    target = Target("cuda:0", "fp32")
    session = _load(name, prepared, target, cache_dir, options(prepared))
    assert session.executed.device == "cuda:0"
    assert session.executed.precision == "fp32"
    # GPU convolutions may use TF32 or other algorithms: compare loosely
    for batch in BATCHES:
        _check_outputs(session, prepared, batch, atol=1e-2, rtol=1e-2)
    feeds, _ = load_reference(prepared.reference, 2)
    session.stage(feeds)
    session.launch()
    session.synchronize()
    for slot in session.request_slots(feeds, 2):
        slot()
    session.close()
