"""Exporters: cache keys, PyTorch → ONNX with verified parity, user factories, ONNX files."""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from onnx import TensorProto, helper

import exporters.parity
import exporters.torch_export
from bench.core.digest import cache_key
from bench.core.errors import UserError
from bench.core.spec import BATCH, PreparedModel, make_inputs
from exporters.cache import default_cache_dir
from exporters.errors import ExportError
from exporters.onnx_export import prepare_factory_model, prepare_zoo_model
from exporters.onnx_file import inspect_onnx, parse_shape_args
from exporters.reference import load_reference, reference_batches
from exporters.source import build_module, factory_input_specs


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


def _run_onnx(prepared: PreparedModel, batch: int) -> tuple[list[np.ndarray], dict]:
    inputs, outputs = load_reference(prepared.reference, batch)
    session = onnxruntime.InferenceSession(
        str(prepared.onnx_path), providers=["CPUExecutionProvider"]
    )
    got = session.run([spec.name for spec in prepared.outputs], inputs)
    return got, outputs


# --- cache -------------------------------------------------------------------------


def test_default_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPLOYBENCH_CACHE_DIR", "/tmp/somewhere")
    assert default_cache_dir() == Path("/tmp/somewhere")
    monkeypatch.delenv("DEPLOYBENCH_CACHE_DIR")
    assert "deploybench" in str(default_cache_dir())


def test_cache_key_is_canonical_and_changes_with_the_opset() -> None:
    key = cache_key(name="mlp", opset=18, inputs=[{"shape": ["batch", 784]}])
    assert key == cache_key(inputs=[{"shape": ["batch", 784]}], opset=18, name="mlp")
    assert len(key) == 16 and int(key, 16) >= 0
    assert key != cache_key(name="mlp", opset=17, inputs=[{"shape": ["batch", 784]}])


# --- PyTorch → ONNX ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["lenet5", "mlp", "lstm_classifier"])
def test_export_has_a_dynamic_batch_and_matches_torch(name: str, cache: Path) -> None:
    prepared = prepare_zoo_model(name, [1, 3], cache)
    assert not prepared.cache_hit and prepared.export_s > 0
    onnx.checker.check_model(str(prepared.onnx_path))
    graph_input = onnx.load(str(prepared.onnx_path)).graph.input[0]
    assert graph_input.name == "input"
    assert graph_input.type.tensor_type.shape.dim[0].dim_param == BATCH
    assert [spec.name for spec in prepared.outputs] == ["logits"]
    assert prepared.outputs[0].shape[0] == BATCH
    assert reference_batches(prepared.reference) == {1, 3}
    for batch in (1, 3):
        (got,), expected = _run_onnx(prepared, batch)
        assert got.shape[0] == batch
        np.testing.assert_allclose(got, expected["logits"], rtol=1e-4, atol=1e-5)
    assert prepared.params and prepared.flops_per_sample
    assert any("max abs error" in note for note in prepared.notes)


def test_reference_inputs_are_the_seeded_inputs(cache: Path) -> None:
    prepared = prepare_zoo_model("lenet5", [1, 3], cache)
    inputs, _ = load_reference(prepared.reference, 3)
    expected = make_inputs(prepared.inputs, {BATCH: 3}, prepared.seed)
    np.testing.assert_array_equal(inputs["input"], expected["input"])


def test_second_prepare_is_a_cache_hit_and_new_batches_need_no_export(cache: Path) -> None:
    first = prepare_zoo_model("lenet5", [1, 3], cache)
    mtime = first.onnx_path.stat().st_mtime_ns
    again = prepare_zoo_model("lenet5", [3, 1], cache)
    assert again.cache_hit and again.export_s == 0.0
    assert again.onnx_path == first.onnx_path
    assert again.flops_per_sample == first.flops_per_sample
    more = prepare_zoo_model("lenet5", [1, 5], cache)
    assert more.cache_hit and more.export_s == 0.0
    assert reference_batches(more.reference) == {1, 3, 5}
    assert first.onnx_path.stat().st_mtime_ns == mtime
    (got,), expected = _run_onnx(more, 5)
    np.testing.assert_allclose(got, expected["logits"], rtol=1e-4, atol=1e-5)


def test_changing_the_opset_makes_a_new_entry(cache: Path) -> None:
    at_18 = prepare_zoo_model("mlp", [1], cache, opset=18)
    at_17 = prepare_zoo_model("mlp", [1], cache, opset=17)
    assert at_17.onnx_path != at_18.onnx_path and not at_17.cache_hit
    assert onnx.load(str(at_17.onnx_path)).opset_import[0].version == 17


def test_a_failed_export_leaves_no_cache_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> list[str]:
        raise ExportError("exporter crashed")

    monkeypatch.setattr(exporters.torch_export, "export_onnx", broken)
    with pytest.raises(ExportError, match="exporter crashed"):
        prepare_zoo_model("mlp", [1], tmp_path)
    assert [p for p in (tmp_path / "onnx").iterdir() if p.suffix != ".lock"] == []


def test_parity_beyond_tolerance_is_an_export_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(exporters.parity, "ATOL", -1.0)
    with pytest.raises(ExportError, match="differs from PyTorch at batch 1"):
        prepare_zoo_model("lenet5", [1], tmp_path)
    assert [p for p in (tmp_path / "onnx").iterdir() if p.suffix != ".lock"] == []


def test_falls_back_to_the_torchscript_exporter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_export = torch.onnx.export

    def dynamo_fails(*args: object, dynamo: bool = True, **kwargs: object) -> object:
        if dynamo:
            raise RuntimeError("unsupported operator\nwith a long trace")
        return real_export(*args, dynamo=False, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", dynamo_fails)
    prepared = prepare_zoo_model("mlp", [1, 3], tmp_path)
    assert "dynamo exporter failed (RuntimeError: unsupported operator)" in prepared.notes[0]
    for batch in (1, 3):
        (got,), expected = _run_onnx(prepared, batch)
        np.testing.assert_allclose(got, expected["logits"], rtol=1e-4, atol=1e-5)


# --- user factories --------------------------------------------------------------------

FACTORIES = """
import torch
from torch import nn

NOT_A_FUNCTION = 3


class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(50, 4)
        self.linear = nn.Linear(4, 3)

    def forward(self, x, ids):
        mixed = self.linear(x + self.embed(ids).mean(dim=1))
        return mixed, mixed.sum(dim=1)


def with_example():
    return TwoInputs(), (torch.randn(1, 4), torch.randint(0, 50, (1, 8)))


def module_only():
    return nn.Linear(6, 2)


def returns_a_number():
    return 42


def raises():
    raise ValueError("bad config")
"""


@pytest.fixture
def factories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = "deploybench_test_factories"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(FACTORIES))
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    yield name
    sys.modules.pop(name, None)


def test_factory_with_example_inputs_exports_two_inputs_and_outputs(
    factories: str, tmp_path: Path
) -> None:
    _, example = build_module(f"factory:{factories}:with_example", seed=0)
    specs = factory_input_specs(example, {})
    assert [(s.name, s.shape, s.dtype) for s in specs] == [
        ("input0", (BATCH, 4), "float32"),
        ("input1", (BATCH, 8), "int64"),
    ]
    assert specs[1].low >= 0 and specs[1].high <= 50
    prepared = prepare_factory_model(f"{factories}:with_example", {}, [1, 3], tmp_path / "c")
    assert [s.name for s in prepared.outputs] == ["output0", "output1"]
    assert prepared.source == f"factory:{factories}:with_example"
    assert prepared.task == "unknown"
    got, expected = _run_onnx(prepared, 3)
    np.testing.assert_allclose(got[0], expected["output0"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got[1], expected["output1"], rtol=1e-4, atol=1e-5)


def test_factory_without_example_needs_shapes(factories: str) -> None:
    _, example = build_module(f"factory:{factories}:module_only", seed=0)
    assert example is None
    with pytest.raises(UserError, match="--shape"):
        factory_input_specs(example, {})
    (spec,) = factory_input_specs(example, {"input": (1, 6)})
    assert spec.shape == (BATCH, 6) and spec.dtype == "float32"


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        ("no_colon_here", "--model expects package.module:function"),
        ("deploybench_no_such_module:build", "cannot import 'deploybench_no_such_module'"),
        ("{m}:missing", "has no attribute 'missing'"),
        ("{m}:NOT_A_FUNCTION", "names a int, not a function"),
        ("{m}:returns_a_number", "returned int: return a torch.nn.Module"),
        ("{m}:raises", "raised ValueError: bad config"),
    ],
)
def test_bad_factories_are_user_errors(factories: str, factory: str, message: str) -> None:
    with pytest.raises(UserError, match=message) as error:
        build_module(f"factory:{factory.format(m=factories)}", seed=0)
    assert "\n" not in str(error.value)


# --- user ONNX files -------------------------------------------------------------------


def _two_input_model(path: Path) -> Path:
    weight = helper.make_tensor("w", TensorProto.FLOAT, [4], [1.0, 2.0, 3.0, 4.0])
    graph = helper.make_graph(
        [
            helper.make_node("Mul", ["x", "w"], ["scaled"]),
            helper.make_node("Cast", ["ids"], ["ids_float"], to=TensorProto.FLOAT),
        ],
        "two_inputs",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4]),
            helper.make_tensor_value_info("ids", TensorProto.INT64, ["N", "seq"]),
            helper.make_tensor_value_info("w", TensorProto.FLOAT, [4]),
        ],
        [
            helper.make_tensor_value_info("scaled", TensorProto.FLOAT, ["N", 4]),
            helper.make_tensor_value_info("ids_float", TensorProto.FLOAT, ["N", "seq"]),
        ],
        initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.save(model, str(path))
    return path


def test_inspect_reads_inputs_dtypes_and_dynamic_dims(tmp_path: Path) -> None:
    prepared = inspect_onnx(_two_input_model(tmp_path / "two.onnx"), {})
    assert prepared.name == "two" and prepared.source == "" and prepared.task == "unknown"
    assert prepared.cache_hit and prepared.reference is None
    x, ids = prepared.inputs
    assert (x.name, x.shape, x.dtype) == ("x", ("N", 4), "float32")
    assert (ids.name, ids.shape, ids.dtype, ids.low, ids.high) == (
        "ids",
        ("N", "seq"),
        "int64",
        0,
        100,
    )
    assert [spec.name for spec in prepared.outputs] == ["scaled", "ids_float"]
    with pytest.raises(UserError, match=r"dynamic dimension 'N' .* --shape ids=NxN"):
        ids.concrete_shape({})


def test_shapes_fix_dynamic_dims_and_inputs_keep_their_dtype(tmp_path: Path) -> None:
    shapes = parse_shape_args(["x=3x4", "ids=3x16"])
    prepared = inspect_onnx(_two_input_model(tmp_path / "two.onnx"), shapes)
    assert [spec.shape for spec in prepared.inputs] == [(3, 4), (3, 16)]
    feeds = make_inputs(prepared.inputs, {}, seed=0)
    assert feeds["x"].dtype == np.float32 and feeds["x"].shape == (3, 4)
    assert feeds["ids"].dtype == np.int64 and feeds["ids"].shape == (3, 16)
    assert feeds["ids"].min() >= 0 and feeds["ids"].max() < 100
    session = onnxruntime.InferenceSession(
        str(prepared.onnx_path), providers=["CPUExecutionProvider"]
    )
    scaled, ids_float = session.run(None, feeds)
    np.testing.assert_allclose(scaled, feeds["x"] * np.array([1, 2, 3, 4], np.float32))


@pytest.mark.parametrize(
    ("shapes", "message"),
    [
        ({"tokens": (1, 8)}, "--shape names tokens but the model's inputs are x, ids"),
        ({"ids": (1, 8, 2)}, "has 3 dimensions but input 'ids' has 2"),
        ({"x": (1, 5)}, "sets dimension 1 to 5 but the model fixes it at 4"),
    ],
)
def test_shapes_that_contradict_the_model_are_user_errors(
    tmp_path: Path, shapes: dict[str, tuple[int, ...]], message: str
) -> None:
    with pytest.raises(UserError, match=message):
        inspect_onnx(_two_input_model(tmp_path / "two.onnx"), shapes)


def test_missing_and_corrupt_files_are_user_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nope.onnx"
    with pytest.raises(UserError, match=r"ONNX file not found: .*nope.onnx \(check the path\)"):
        inspect_onnx(missing, {})
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(UserError, match=r"corrupt.onnx is not a valid ONNX model \(") as error:
        inspect_onnx(corrupt, {})
    assert str(error.value).endswith("re-export it or check the file")
    assert "\n" not in str(error.value)


def test_parse_shape_args() -> None:
    assert parse_shape_args(["input=1x3x224x224", "ids=2x128"]) == {
        "input": (1, 3, 224, 224),
        "ids": (2, 128),
    }
    assert parse_shape_args([]) == {}
    for bad in ["input", "input=", "=1x2", "input=1x", "input=1,3", "input=axb", "input=0x3"]:
        with pytest.raises(UserError, match="--shape"):
            parse_shape_args([bad])
    with pytest.raises(UserError, match="twice"):
        parse_shape_args(["a=1", "a=2"])
