"""Shipping a configuration (bench.harness.ship): in a worker process, the cell is built
and loaded as when measured, its runtime writes the file the session loaded and a run.py
that loads it the same way, run.py's own ``infer`` must give the session's outputs, and
manifest.json records what ran, the settings and each file's digest. run.py then runs in
a fresh interpreter with only numpy and the runtime imported. TensorRT, which needs a GPU,
ships an engine built and run by the doubles of its other tests."""

from __future__ import annotations

import hashlib
import json
import runpy
import subprocess
import sys
import types
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from bench.core.cell import Cell
from bench.core.errors import UserError
from bench.core.settings import QuantizeConfig
from bench.core.spec import PreparedModel
from bench.harness.isolation import run_in_worker
from bench.harness.ship import MANIFEST, SNIPPET, ShipJob, ship_artifact
from exporters.onnx_export import prepare_zoo_model
from exporters.quantize import quantize
from exporters.source import module_loader
from runtimes import get_runtime
from runtimes.base import LoadOptions
from runtimes.onnxruntime_rt import majority
from runtimes.pytorch_rt import PyTorchRuntime
from runtimes.shipping import copy_onnx
from runtimes.tensorrt.runtime import TensorRTRuntime
from tests.fixtures.tensorrt.fake_runtime import FakeCudart, make_runtime_tensorrt
from tests.fixtures.tensorrt.fake_tensorrt import make_tensorrt

pytestmark = pytest.mark.xdist_group("ship")  # one worker: the shipped folders are shared
FIXTURES = Path(__file__).parent / "fixtures" / "tensorrt"
CASES = [
    ("onnxruntime", "fp32"),
    ("onnxruntime", "fp16"),
    ("onnxruntime", "int8"),
    ("openvino", "fp32"),
    ("pytorch", "fp32"),
]
MODEL_FILES = {"onnxruntime": ["model.onnx"], "openvino": ["model.blob", "model.onnx"]}


@pytest.fixture(scope="module")
def lenet(cache_dir: Path) -> PreparedModel:
    """LeNet-5 for batches 1 and 2, with the u8s8 QDQ copy an int8 CPU cell runs."""
    model = replace(prepare_zoo_model("lenet5", [1, 2], cache_dir), quantized={})
    settings = QuantizeConfig(calibration_samples=4)
    model.quantized["u8s8"] = quantize(model, "u8s8", settings, None, cache_dir)
    return model


def job(
    model: PreparedModel, runtime: str, precision: str, out_dir: Path, cache_dir: Path
) -> ShipJob:
    cell = Cell(model.name, runtime, "cpu", precision, 2, "latency")
    options = get_runtime(runtime).options()
    figures = {"latency_ms": {"median": 1.25}}
    return ShipJob(cell, model, 2, 1, (1, 2), options, cache_dir, out_dir, figures, {})


@pytest.fixture(scope="module", params=CASES, ids=["/".join(case) for case in CASES])
def shipped(
    request: pytest.FixtureRequest,
    lenet: PreparedModel,
    cache_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[str, str, Path, dict[str, Any]]:
    """One configuration shipped through a worker process, as the tune command runs it:
    (runtime, precision, folder, manifest.json as read back)."""
    runtime, precision = request.param
    out_dir = tmp_path_factory.mktemp(f"ship-{runtime}-{precision}") / "artifact"
    outcome = run_in_worker(
        ship_artifact, job(lenet, runtime, precision, out_dir, cache_dir), timeout_s=120
    )
    assert outcome.status == "ok", (outcome.reason, outcome.traceback)
    manifest = json.loads((out_dir / MANIFEST).read_text())
    assert manifest == json.loads(json.dumps(outcome.payload.to_dict(), default=str))
    return runtime, precision, out_dir, manifest


def test_the_manifest_records_what_ran_and_each_files_digest(
    shipped: tuple[str, str, Path, dict[str, Any]],
) -> None:
    runtime, precision, out_dir, manifest = shipped
    model_files = MODEL_FILES.get(runtime, ["model.pt2"])  # torch.export takes lenet5
    assert sorted(manifest["files"]) == sorted([*model_files, SNIPPET])
    assert sorted(p.name for p in out_dir.iterdir()) == sorted([*manifest["files"], MANIFEST])
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((out_dir / name).read_bytes()).hexdigest() == digest
    assert manifest["cell"]["key"] == f"lenet5/{runtime}/cpu/{precision}/b2/latency"
    assert manifest["runtime"]["name"] == runtime and manifest["runtime"]["version"]
    assert manifest["executed"]["device"] == "cpu" and manifest["executed"]["threads"] == 2
    assert manifest["check"]["outputs"] == {"logits": [2, 10]}
    assert manifest["check"]["max_difference"] <= manifest["check"]["tolerance"]
    assert manifest["figures"] == {"latency_ms": {"median": 1.25}}
    assert manifest["load"]["options"] == get_runtime(runtime).options().model_dump(mode="json")
    assert manifest["deploybench"]["commit"]
    executed = manifest["executed"]["precision"]
    if runtime != "onnxruntime":
        assert executed == precision
        return
    # ONNX Runtime's own optimised graph says what ran: the CPU provider has no FP16
    # kernels for most operators, and folds the FP16 graph's casts back to fp32.
    assert executed == majority(manifest["executed"]["details"].get("compute_layers", {}))
    assert executed == {"fp32": "fp32", "fp16": executed, "int8": "int8"}[precision]
    graph = onnx.load(str(out_dir / "model.onnx")).graph
    types = Counter(tensor.data_type for tensor in graph.initializer)
    operators = Counter(node.op_type for node in graph.node)
    if precision == "fp16":  # the FP16 conversion, not the export, was shipped
        assert types[onnx.TensorProto.FLOAT16] > types[onnx.TensorProto.FLOAT]
    assert (operators["QuantizeLinear"] > 0) == (precision == "int8")
    assert manifest["settings"]["providers"] == [["CPUExecutionProvider", {}]]
    assert manifest["settings"]["intra_op_num_threads"] == 2


@pytest.mark.slow  # ship_artifact runs run.py's load and infer itself; tune's e2e test runs one
def test_run_py_runs_in_a_fresh_process(shipped: tuple[str, str, Path, dict[str, Any]]) -> None:
    runtime, _, out_dir, _ = shipped
    done = subprocess.run(
        [sys.executable, SNIPPET], cwd=out_dir, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("logits: shape (2, 10), float32")
    assert "does not import" not in done.stderr  # OpenVINO imported its blob


@pytest.mark.e2e
def test_run_py_compiles_the_onnx_where_openvino_refuses_the_blob(
    lenet: PreparedModel, cache_dir: Path, tmp_path: Path
) -> None:
    ship_artifact(job(lenet, "openvino", "fp32", tmp_path / "a", cache_dir))
    (tmp_path / "a" / "model.blob").write_bytes(b"a blob of another OpenVINO")
    done = subprocess.run(
        [sys.executable, SNIPPET], cwd=tmp_path / "a", capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "model.blob does not import" in done.stderr and "compiling model.onnx" in done.stderr
    assert done.stdout.startswith("logits: shape (2, 10)")


def test_an_openvino_compile_from_the_model_cache_ships_a_blob_that_imports(
    lenet: PreparedModel, cache_dir: Path, tmp_path: Path
) -> None:
    import openvino

    for name in ("first", "cached"):  # the second compile comes from the model cache
        manifest = ship_artifact(job(lenet, "openvino", "fp32", tmp_path / name, cache_dir))
    blob = (tmp_path / "cached" / "model.blob").read_bytes()
    config = manifest.settings["config"]
    assert config["INFERENCE_PRECISION_HINT"] == "f32" and "CACHE_DIR" not in config
    openvino.Core().import_model(blob, "CPU", config)  # raises where it does not import


def test_a_folder_with_files_or_a_train_cell_is_refused(
    lenet: PreparedModel, cache_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "old.txt").write_text("an earlier artifact")
    with pytest.raises(UserError, match="holds files already"):
        ship_artifact(job(lenet, "onnxruntime", "fp32", tmp_path, cache_dir))
    train = job(lenet, "onnxruntime", "fp32", tmp_path / "new", cache_dir)
    train = replace(train, cell=replace(train.cell, scenario="train"))
    with pytest.raises(UserError, match="trains"):
        ship_artifact(train)


@pytest.mark.filterwarnings("ignore:`torch.jit.*is deprecated:FutureWarning")
def test_a_module_torch_export_refuses_ships_as_torchscript(
    lenet: PreparedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    def refuse(*args: object, **kwargs: object) -> None:
        raise torch._dynamo.exc.Unsupported("data-dependent control flow")

    monkeypatch.setattr(torch.export, "export", refuse)
    runtime, target = PyTorchRuntime(), Cell("lenet5", "pytorch", "cpu", "fp32", 2, "").target
    options = LoadOptions(threads=1, batch=2, module=module_loader(lenet.source, lenet.seed))
    built = runtime.build(lenet, target, options, tmp_path)
    shipped = runtime.ship(built, lenet, target, options, tmp_path)
    assert shipped.files == ("model.pt",) and shipped.settings["format"] == "torchscript"
    assert "torch.export failed (Unsupported: data-dependent" in shipped.notes[0]
    (tmp_path / SNIPPET).write_text(shipped.snippet)
    script = runpy.run_path(str(tmp_path / SNIPPET))
    feeds = script["random_feeds"]()
    expected = runtime.load(built, lenet, target, options).infer(feeds)
    outputs = script["infer"](script["load"](), feeds)
    np.testing.assert_allclose(outputs["logits"], expected["logits"], rtol=1e-5, atol=1e-6)


def test_an_onnx_file_ships_with_its_external_data(tmp_path: Path) -> None:
    weight = onnx.numpy_helper.from_array(np.ones((4, 4), np.float32), "weight")
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("MatMul", ["x", "weight"], ["y"])],
        "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])],
        [weight],
    )
    source = tmp_path / "source" / "export.onnx"
    source.parent.mkdir()
    onnx.save_model(
        onnx.helper.make_model(graph),
        str(source),
        save_as_external_data=True,
        location="weights.bin",
        size_threshold=0,
    )
    (tmp_path / "out").mkdir()
    assert copy_onnx(source, tmp_path / "out") == ("model.onnx", "weights.bin")
    copied = onnx.load(str(tmp_path / "out" / "model.onnx"))  # reads weights.bin beside it
    assert onnx.numpy_helper.to_array(copied.graph.initializer[0]).sum() == 16


def test_tensorrt_ships_its_engine_and_run_py_runs_it_on_the_doubles(
    lenet: PreparedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", make_tensorrt("10.3.0"))
    monkeypatch.setattr("runtimes.tensorrt.runtime.cuda_python_installed", lambda: True)
    monkeypatch.setattr("runtimes.tensorrt.cuda.cuda_unavailable_reason", lambda index: None)
    runtime, target = TensorRTRuntime(), Cell("lenet5", "tensorrt", "cuda:0", "fp16", 2, "").target
    options = LoadOptions(settings={"driver": "python", "workspace_mb": 512}, batch=2)
    built = runtime.build(lenet, target, options, tmp_path / "cache")
    out_dir = tmp_path / "artifact"
    out_dir.mkdir()
    shipped = runtime.ship(built, lenet, target, options, out_dir)
    assert shipped.files == ("model.engine",) and shipped.version == "10.3.0"
    assert (out_dir / "model.engine").read_bytes() == built.artifact.path.read_bytes()
    settings = shipped.settings
    assert settings["precision"] == "fp16" and settings["typing"] == "weak"
    assert settings["workspace_mb"] == 512 and settings["driver"] == "python"
    assert settings["shapes"] == {"input": [[2, 1, 32, 32]] * 3}  # min, opt, max
    assert any("runs only on TensorRT 10.3.0" in note for note in shipped.notes)

    # run.py on the run-time doubles: the engine computes 2 * input[:, :10]
    cudart = FakeCudart()
    trt = make_runtime_tensorrt(cudart, FIXTURES / "inspector_lenet5_fp16_b2.json")
    trt.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, severity: None})
    trt.ICudaEngine = object  # in run.py's annotations
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setitem(sys.modules, "cuda.bindings", types.SimpleNamespace(runtime=cudart))
    (out_dir / SNIPPET).write_text(shipped.snippet)
    script = runpy.run_path(str(out_dir / SNIPPET))
    feeds = script["random_feeds"]()
    outputs = script["infer"](script["load"](), feeds)
    np.testing.assert_array_equal(outputs["logits"], 2 * feeds["input"].reshape(2, -1)[:, :10])
    assert cudart.copies == ["H2D", "D2H"] and not cudart.memory  # every buffer freed
    assert cudart.devices[-1][1] == 0
