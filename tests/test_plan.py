"""Expanding a suite into cells: order, keys, skips with reasons, model requests."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from bench.core.cell import Cell
from bench.core.devices import cuda_device_count
from bench.core.errors import UserError
from bench.harness.config import config_from_dict
from bench.harness.plan import ModelRequest, expand


def _zoo(*names: str) -> list[ModelRequest]:
    return [ModelRequest(name, "zoo", name) for name in names]


def _config(**suite: object):
    return config_from_dict({"suite": suite})


def test_cross_product_count_and_order_grouped_by_model() -> None:
    config = _config(
        runtimes=["onnxruntime", "pytorch"],
        devices=["cpu"],
        precisions=["fp32"],
        batch_sizes=[1, 8],
        scenarios=["latency", "throughput"],
    )
    planned = expand(config, _zoo("mlp", "lenet5"))
    assert len(planned) == 2 * 2 * 1 * 1 * 2 * 2
    expected = [
        Cell(model, runtime, "cpu", "fp32", batch, scenario)
        for model, runtime, batch, scenario in itertools.product(
            ["mlp", "lenet5"], ["onnxruntime", "pytorch"], [1, 8], ["latency", "throughput"]
        )
    ]
    assert [p.cell for p in planned] == expected
    assert all(p.skip_reason is None for p in planned)
    assert len({p.cell.key for p in planned}) == len(planned)


def test_cell_key_and_dict() -> None:
    cell = Cell("resnet18", "onnxruntime", "cuda:0", "fp16", 8, "throughput")
    assert cell.key == "resnet18/onnxruntime/cuda:0/fp16/b8/throughput"
    assert cell.to_dict() == {
        "model": "resnet18",
        "runtime": "onnxruntime",
        "device": "cuda:0",
        "precision": "fp16",
        "batch": 8,
        "scenario": "throughput",
        "key": cell.key,
    }
    assert cell.target.device_kind == "cuda" and cell.target.device_index == 0


@pytest.mark.skipif(cuda_device_count() > 7, reason="this machine has a cuda:7")
def test_missing_cuda_device_is_skipped_with_a_reason() -> None:
    config = _config(runtimes=["pytorch", "onnxruntime"], devices=["cpu", "cuda:7"])
    planned = expand(config, _zoo("mlp"))
    assert len(planned) == 4
    for item in planned:
        if item.cell.device == "cpu":
            assert item.skip_reason is None
        else:
            assert item.skip_reason is not None
            assert "CUDA" in item.skip_reason
            assert "\n" not in item.skip_reason


def test_pytorch_cannot_run_an_onnx_file() -> None:
    model = ModelRequest.user_onnx(Path("/models/net.onnx"), {"x": (1, 4)})
    assert model.source == ""
    planned = expand(_config(runtimes=["pytorch", "onnxruntime"]), [model])
    reasons = {p.cell.runtime: p.skip_reason for p in planned}
    assert reasons["onnxruntime"] is None
    assert reasons["pytorch"] is not None
    assert "onnx" in reasons["pytorch"].lower()
    assert [p.cell.model for p in planned] == ["net", "net"]


@pytest.mark.parametrize(
    ("runtime", "precision"),
    [("onnxruntime", "bf16"), ("pytorch", "int8")],
)
def test_precisions_a_runtime_does_not_run_are_skipped(runtime: str, precision: str) -> None:
    config = _config(runtimes=[runtime], precisions=["fp32", precision])
    planned = expand(config, _zoo("mlp"))
    for item in planned:
        if item.cell.precision == "fp32":
            assert item.skip_reason is None
        else:
            assert item.skip_reason is not None
            assert precision in item.skip_reason
            assert item.cell.runtime in item.skip_reason


@pytest.mark.parametrize(
    ("runtime", "precision"), [("pytorch", "fp16"), ("pytorch", "bf16"), ("onnxruntime", "fp16")]
)
def test_precisions_a_runtime_runs_are_planned(runtime: str, precision: str) -> None:
    planned = expand(_config(runtimes=[runtime], precisions=[precision]), _zoo("mlp"))
    assert all(item.skip_reason is None for item in planned)


def test_unknown_runtime_lists_the_runtimes() -> None:
    config = _config(runtimes=["onnxruntime", "tensorrtx"])
    with pytest.raises(UserError) as caught:
        expand(config, _zoo("mlp"))
    message = str(caught.value)
    assert "'tensorrtx'" in message
    assert "pytorch" in message and "onnxruntime" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "request_",
    [
        ModelRequest("mlp", "zoo", "mlp"),
        ModelRequest.user_factory("pkg.models:build", {"input": (1, 3, 8, 8)}),
        ModelRequest.user_onnx(Path("model.onnx"), {"ids": (2, 128), "mask": (2, 128)}),
    ],
)
def test_model_request_round_trip(request_: ModelRequest) -> None:
    data = request_.to_dict()
    assert all(isinstance(dims, list) for dims in data["shapes"].values())  # plain JSON data
    assert ModelRequest.from_dict(data) == request_


def test_model_request_sources() -> None:
    factory = ModelRequest.user_factory("pkg.models:build", {})
    assert (factory.name, factory.source) == ("build", "factory:pkg.models:build")
    assert ModelRequest("mlp", "zoo", "mlp").source == "zoo:mlp"
    onnx = ModelRequest.user_onnx(Path("some/dir/net.onnx"), {})
    assert onnx.name == "net" and Path(onnx.ref).is_absolute()


@pytest.mark.parametrize(
    "suite",
    [
        {"models": ["mlp", "mlp"]},
        {"batch_sizes": [1, 1]},
        {"devices": ["cuda", "cuda:0"]},
        {"runtimes": ["onnxruntime", "onnxruntime"]},
    ],
    ids=["models", "batch_sizes", "devices", "runtimes"],
)
def test_a_repeated_suite_value_never_plans_a_cell_twice(suite: dict) -> None:
    """A cell key is the unit of results and resumption: one line per key. A repeated value
    in bench.toml or on the command line is either refused (one line) or planned once."""
    try:
        config = config_from_dict({"suite": suite})
    except UserError as exc:
        assert "\n" not in str(exc)
        return
    models = [ModelRequest(name, "zoo", name) for name in config.suite.models]
    keys = [p.cell.key for p in expand(config, models)]
    assert len(keys) == len(set(keys)), keys
