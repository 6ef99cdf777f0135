"""int8 as a precision: one QDQ copy of the FP32 model (ONNX Runtime's quantize_static,
per-channel weights, calibrated on generated or given samples, cached), run by ONNX
Runtime and OpenVINO, what each really executed read back, the int8 tolerance, and one
line with exit 2 for calibration data that does not fit the model."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import cli
from bench.core.errors import UserError
from bench.core.settings import QuantizeConfig
from bench.core.spec import PreparedModel
from exporters.onnx_export import prepare_zoo_model
from exporters.quantize import calibration_samples, check_calibration_data, quantize
from exporters.reference import load_reference


@pytest.fixture(scope="module")
def lenet(cache_dir: Path) -> PreparedModel:
    return prepare_zoo_model("lenet5", [1, 2], cache_dir)


def ops(path: Path) -> Counter:
    return Counter(node.op_type for node in onnx.load(str(path)).graph.node)


def test_the_qdq_copy_is_per_channel_and_cached(lenet: PreparedModel, tmp_path: Path) -> None:
    settings = QuantizeConfig(calibration_samples=8)
    made = quantize(lenet, "u8s8", settings, None, tmp_path)
    assert not made.cache_hit and made.calibrate_s > 0 and made.path.is_file()
    counts = ops(made.path)
    assert counts["QuantizeLinear"] > 0 and counts["DequantizeLinear"] > counts["QuantizeLinear"]
    graph = onnx.load(str(made.path)).graph
    scales = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    weight_scales = [
        scales[node.input[1]]
        for node in graph.node
        if node.op_type == "DequantizeLinear" and scales.get(node.input[1]) is not None
    ]
    assert max(s.size for s in weight_scales) > 1  # a scale per output channel
    assert "8 generated requests (seeded)" in made.notes[0] and "minmax" in made.notes[0]
    again = quantize(lenet, "u8s8", settings, None, tmp_path)
    assert again.cache_hit and again.path == made.path
    other = quantize(lenet, "u8s8", QuantizeConfig(calibration_samples=4), None, tmp_path)
    assert other.path != made.path  # the calibration settings are part of the key


def test_the_symmetric_copy_has_no_zero_point(lenet: PreparedModel, tmp_path: Path) -> None:
    made = quantize(lenet, "s8s8", QuantizeConfig(calibration_samples=4), None, tmp_path)
    graph = onnx.load(str(made.path)).graph
    points = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    zero_points = [points[node.input[2]] for node in graph.node if node.op_type == "QuantizeLinear"]
    assert zero_points and all(z.dtype == np.int8 and not z.any() for z in zero_points)


def test_calibration_uses_other_inputs_than_the_accuracy_check(lenet: PreparedModel) -> None:
    samples, origin = calibration_samples(lenet, QuantizeConfig(calibration_samples=3), None)
    checked, _ = load_reference(lenet.reference, 1)
    assert len(samples) == 3 and origin == "3 generated requests (seeded)"
    assert samples[0]["input"].shape == checked["input"].shape
    assert not np.array_equal(samples[0]["input"], checked["input"])
    assert not np.array_equal(samples[0]["input"], samples[1]["input"])


def test_given_calibration_data_is_split_into_samples(lenet: PreparedModel) -> None:
    data = {"input": np.ones((5, 1, 32, 32), np.float32)}
    settings = QuantizeConfig(calibration_samples=4, calibration_data="real.npz")
    samples, origin = calibration_samples(lenet, settings, data)
    assert [s["input"].shape for s in samples] == [(1, 1, 32, 32)] * 4
    assert origin == "4 samples of real.npz"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "holds no arrays: save one array per input"),
        ({"image": np.zeros((2, 1, 32, 32), np.float32)}, "has no array for input 'input'"),
        ({"input": np.zeros((2, 1, 32, 32), np.float64)}, "'input' is float64, the model takes"),
        ({"input": np.zeros((2, 3, 32, 32), np.float32)}, "give samples x 1x32x32"),
        ({"input": np.zeros((2, 32, 32), np.float32)}, "give samples x 1x32x32"),
        ({"input": np.zeros((0, 1, 32, 32), np.float32)}, "holds no sample"),
        (
            {"input": np.zeros((2, 1, 32, 32), np.float32), "mask": np.zeros(2)},
            "mask is no input of the model: drop it",
        ),
    ],
)
def test_calibration_data_that_does_not_fit(lenet: PreparedModel, data: dict, message: str) -> None:
    with pytest.raises(UserError, match=message.replace("(", r"\(")) as error:
        check_calibration_data(data, lenet.inputs, "cal.npz")
    assert "\n" not in str(error.value)


def write_suite(path: Path, **suite: object) -> Path:
    lines = ["[suite]", 'name = "int8"', "threads = 1", "in_flight = 2"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in suite.items()]
    lines += ["[measure]", "warmup_s = 0.02", "warmup_min_iters = 2", "min_duration_s = 0.05"]
    lines += ["min_iters = 10", "[quantize]", "calibration_samples = 8"]
    path.write_text("\n".join(lines) + "\n")
    return path


def records(results: Path) -> dict[str, dict]:
    (run,) = [p for p in results.iterdir() if p.is_dir()]
    lines = (run / "results.jsonl").read_text().splitlines()
    return {r["key"]: r for r in map(json.loads, lines)}


@pytest.mark.e2e
def test_int8_cells_run_the_qdq_copy_and_read_back_what_ran(
    tmp_path: Path, cache_dir: Path
) -> None:
    config = write_suite(
        tmp_path / "bench.toml",
        models=["lenet5"],
        runtimes=["pytorch", "onnxruntime", "openvino"],
        precisions=["fp32", "int8"],
    )
    argv = ["run", "--config", str(config), "--results-dir", str(tmp_path / "r")]
    assert cli.main([*argv, "--cache-dir", str(cache_dir), "--no-progress"]) == 0
    found = records(tmp_path / "r")
    ort, ov = (
        found["lenet5/onnxruntime/cpu/int8/b1/latency"],
        found["lenet5/openvino/cpu/int8/b1/latency"],
    )
    for record in (ort, ov):
        assert record["status"] == "ok" and record["executed"]["precision"] == "int8"
        assert record["accuracy"]["tolerance"] == "int8" and record["accuracy"]["verdict"]
        assert record["cold_start"]["calibrate_s"] >= 0
        assert any(note.startswith("int8 QDQ, u8s8") for note in record["notes"])
    assert ort["executed"]["compute_layers"] == {"int8": 5}  # 2 convolutions, 3 Gemm
    assert ov["cold_start"]["calibrate_s"] == 0 and ov["cold_start"]["calibrate_cache_hit"]
    assert set(ov["executed"]["compute_layer_precisions"]) <= {"u8", "i8"}  # as OpenVINO says
    torch = found["lenet5/pytorch/cpu/int8/b1/latency"]
    assert torch["status"] == "skipped" and "no int8 path" in torch["reason"]
    (run,) = [p for p in (tmp_path / "r").iterdir() if p.is_dir()]
    rows = json.loads((run / "speedups.json").read_text())
    int8 = [r for r in rows if r["precision"] == "int8" and r["runtime"] != "pytorch"]
    assert len(int8) == 2 and all(r["speedup"] for r in int8)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: None, "--calibration-data file not found"),
        (lambda d: np.savez(d, image=np.zeros((2, 1, 32, 32), np.float32)), "no array for input"),
        (lambda d: d.write_text("not a zip"), "is not a readable .npz of arrays"),
    ],
)
def test_calibration_data_that_does_not_fit_is_one_line(
    tmp_path: Path, cache_dir: Path, capsys: pytest.CaptureFixture[str], make, message: str
) -> None:
    data = tmp_path / "cal.npz"
    make(data)
    config = write_suite(
        tmp_path / "bench.toml", models=["lenet5"], runtimes=["onnxruntime"], precisions=["int8"]
    )
    argv = ["run", "--config", str(config), "--results-dir", str(tmp_path / "r")]
    argv += ["--cache-dir", str(cache_dir), "--no-progress", "--calibration-data", str(data)]
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


def test_the_summary_says_how_many_compute_layers_ran_in_int8() -> None:
    from fixtures.records import cell, timed

    from bench.views.report import summary_rows

    times = [1.0, 1.1, 1.2]
    mixed = timed(cell("resnet18", precision="int8"), times)
    mixed.executed.compute_layers = {"int8": 47, "fp32": 6}  # ONNX Runtime's read-back
    none = timed(cell("resnet18", precision="int8"), times, executed="fp32")
    none.executed.compute_layers = {"fp32": 53}
    whole = timed(cell("resnet18", "openvino", precision="int8"), times)
    whole.executed.compute_layer_precisions = {"u8": 53}  # OpenVINO's
    targets = [row[2] for row in summary_rows([mixed, none, whole])]
    assert targets == [
        "cpu int8 (47/53 layers int8)",
        "cpu int8→fp32 (0/53 layers int8)",
        "cpu int8",
    ]


def test_a_model_the_quantizer_cannot_handle_fails_its_int8_cells(
    lenet: PreparedModel, tmp_path: Path, cache_dir: Path
) -> None:
    from dataclasses import replace

    from bench.core.cell import Cell
    from bench.harness.config import config_from_dict
    from bench.harness.runner import quantized_for
    from exporters.quantize import QuantizeFailed

    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x08\x07 not a protobuf the quantizer can read")
    model = replace(lenet, name="broken", onnx_path=broken, quantized={})
    with pytest.raises(QuantizeFailed, match="onnxruntime's quantizer cannot quantize broken: "):
        quantize(model, "u8s8", QuantizeConfig(calibration_samples=2), None, tmp_path)
    config = config_from_dict({"suite": {"models": ["lenet5"], "precisions": ["int8"]}})
    cell = Cell("broken", "onnxruntime", "cpu", "int8", 1, "latency")
    reason = quantized_for(model, cell, config, tmp_path)
    assert reason and reason.startswith("onnxruntime's quantizer cannot quantize broken: ")
    assert model.not_quantized == {"u8s8": reason} and not model.quantized
    assert quantized_for(model, cell, config, tmp_path) == reason  # not tried twice


def test_fewer_calibration_samples_than_a_fixed_batch_is_one_line(lenet: PreparedModel) -> None:
    from dataclasses import replace

    from bench.core.spec import TensorSpec

    fixed = replace(lenet, inputs=(TensorSpec("input", (4, 1, 32, 32)),))
    data = {"input": np.zeros((10, 1, 32, 32), np.float32)}
    settings = QuantizeConfig(calibration_samples=2, calibration_data="cal.npz")
    with pytest.raises(UserError, match="takes 4 samples a request: give --calibration-samples 4"):
        calibration_samples(fixed, settings, data)
