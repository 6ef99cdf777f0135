"""The precision axis: accuracy verdicts, speedups with intervals, and executed precision
read back from the runtimes rather than echoed from the request."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from fixtures.records import cell, ended, timed
from onnx import TensorProto, helper, numpy_helper

from bench.core.cell import Target
from bench.core.record import Accuracy, CellRecord
from bench.harness.accuracy import TOLERANCES, compare_outputs
from bench.views.speedup import ratio_interval, speedups
from exporters.onnx_export import prepare_zoo_model
from exporters.reference import load_reference
from exporters.source import module_loader
from runtimes.base import LoadOptions
from runtimes.fp16_graph import fp16_graph
from runtimes.onnxruntime_rt import OnnxRuntime, compute_layers, majority
from runtimes.pytorch_rt import PyTorchRuntime

# --- accuracy -----------------------------------------------------------------------------


def logits(seed: int = 0, batch: int = 4) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(batch, 10)).astype(np.float32)


def test_identical_outputs_pass_with_zero_error() -> None:
    ref = {"logits": logits()}
    result = compare_outputs(dict(ref), ref, "fp32", classifier=True)
    assert result["max_abs_error"] == 0.0
    assert result["cosine_similarity"] == pytest.approx(1.0)
    assert result["top1_agreement"] == 1.0
    assert result["verdict"] == "pass"


@pytest.mark.parametrize(
    ("precision", "relative_error", "expected"),
    [
        ("fp32", 5e-5, "pass"),
        ("fp32", 5e-4, "warn"),
        ("fp32", 5e-3, "fail"),
        ("fp16", 5e-3, "pass"),
        ("fp16", 3e-2, "warn"),
        ("fp16", 2e-1, "fail"),
        ("bf16", 3e-2, "pass"),
        ("bf16", 5e-1, "fail"),
    ],
)
def test_verdict_follows_the_tolerance_of_the_requested_precision(
    precision: str, relative_error: float, expected: str
) -> None:
    ref = logits(batch=8)
    scale = np.abs(ref).max()
    got = ref.copy()
    got.flat[np.abs(ref).argmax()] += relative_error * scale  # one element off: cosine stays high
    result = compare_outputs({"logits": got}, {"logits": ref}, precision)
    assert result["scaled_error"] == pytest.approx(relative_error, rel=1e-3)
    assert result["verdict"] == expected
    assert result["tolerance"] == precision


def test_a_flipped_class_turns_a_pass_into_a_warning() -> None:
    ref = np.array([[1.0, 0.999], [0.0, 1.0]], dtype=np.float32)
    got = np.array([[0.999, 1.0], [0.0, 1.0]], dtype=np.float32)  # tiny error, sample 0 flips
    result = compare_outputs({"logits": got}, {"logits": ref}, "bf16", classifier=True)
    assert result["top1_agreement"] == 0.5
    assert result["verdict"] == "warn"


def test_outputs_near_zero_do_not_read_as_huge_relative_errors() -> None:
    ref = np.array([1.0, 1e-12], dtype=np.float32)
    got = np.array([1.0, 2e-12], dtype=np.float32)
    assert compare_outputs({"y": got}, {"y": ref})["max_rel_error"] < 1e-5


def test_tolerances_loosen_as_precision_drops() -> None:
    assert TOLERANCES["fp32"].pass_error < TOLERANCES["fp16"].pass_error
    assert TOLERANCES["fp16"].pass_error < TOLERANCES["bf16"].pass_error


# --- speedups -----------------------------------------------------------------------------


def test_ratio_interval_holds_the_true_ratio_of_medians() -> None:
    rng = np.random.default_rng(1)
    fp32 = rng.normal(10.0, 0.5, 400)
    fp16 = rng.normal(5.0, 0.25, 400)
    low, high = ratio_interval(fp32, fp16)
    assert low < 2.0 < high
    assert high - low < 0.2


def test_ratio_interval_of_one_distribution_holds_one() -> None:
    rng = np.random.default_rng(2)
    low, high = ratio_interval(rng.normal(10, 1, 300), rng.normal(10, 1, 300))
    assert low < 1.0 < high


def record(
    precision: str, times: np.ndarray, status: str = "ok", verdict: str = "pass", in_flight: int = 1
) -> CellRecord:
    of = cell("m", "r", precision=precision)
    if status != "ok":
        return ended(of, status)
    return timed(of, list(times), in_flight=in_flight, accuracy=Accuracy(verdict=verdict))


def test_speedups_pair_each_low_precision_cell_with_its_fp32_twin() -> None:
    rng = np.random.default_rng(3)
    rows = speedups(
        [
            record("fp32", rng.normal(10, 0.3, 200)),
            record("fp16", rng.normal(5, 0.2, 200)),
            record("bf16", rng.normal(20, 0.5, 200)),
        ]
    )
    by_precision = {row.precision: row for row in rows}
    assert by_precision["fp16"].speedup == pytest.approx(2.0, rel=0.05)
    assert by_precision["fp16"].verdict == "faster"
    assert by_precision["bf16"].speedup == pytest.approx(0.5, rel=0.05)
    assert by_precision["bf16"].verdict == "slower"


def test_a_speedup_whose_accuracy_failed_is_not_a_win() -> None:
    rng = np.random.default_rng(4)
    rows = speedups(
        [
            record("fp32", rng.normal(10, 0.3, 200)),
            record("fp16", rng.normal(5, 0.2, 200), verdict="fail"),
        ]
    )
    assert rows[0].speedup > 1.5
    assert rows[0].verdict == "accuracy failed"


def test_unmeasured_cells_and_missing_twins() -> None:
    rng = np.random.default_rng(5)
    rows = speedups(
        [
            record("fp32", rng.normal(10, 0.3, 50)),
            record("bf16", np.array([]), status="skipped"),
            timed(cell("m", "r", precision="fp16", batch=8), list(rng.normal(5, 0.2, 50))),
        ]
    )
    assert len(rows) == 1  # the batch-8 fp16 cell has no fp32 twin
    assert rows[0].speedup is None
    assert rows[0].verdict == "not measured: bf16 cell skipped"


# --- executed precision, read back ---------------------------------------------------------


def conv_graph(weight_type: int, through_cast: bool) -> onnx.ModelProto:
    weight = np.ones(
        (2, 1, 3, 3), dtype=np.float16 if weight_type == TensorProto.FLOAT16 else np.float32
    )
    nodes = []
    weight_name = "w"
    if through_cast:
        nodes.append(helper.make_node("Cast", ["w"], ["w_cast"], to=TensorProto.FLOAT))
        weight_name = "w_cast"
    nodes.append(helper.make_node("Conv", ["x", weight_name], ["y"]))
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 5, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 3, 3])],
        [numpy_helper.from_array(weight, "w")],
    )
    return helper.make_model(graph)


@pytest.mark.parametrize(
    ("weight_type", "through_cast", "expected"),
    [
        (TensorProto.FLOAT16, False, "fp16"),
        (TensorProto.FLOAT16, True, "fp32"),
        (TensorProto.FLOAT, False, "fp32"),
    ],
)
def test_compute_precision_reads_the_weights_the_compute_nodes_take(
    tmp_path: Path, weight_type: int, through_cast: bool, expected: str
) -> None:
    path = tmp_path / "g.onnx"
    onnx.save(conv_graph(weight_type, through_cast), str(path))
    assert majority(compute_layers(path)) == expected


def test_fp16_graph_keeps_fp32_io_and_is_cached(cache_dir: Path) -> None:
    prepared = prepare_zoo_model("lenet5", [1], cache_dir)
    first = fp16_graph(prepared.onnx_path, cache_dir)
    again = fp16_graph(prepared.onnx_path, cache_dir)
    assert again.cache_hit and again.path == first.path
    graph = onnx.load(str(first.path)).graph
    assert {t.type.tensor_type.elem_type for t in graph.input} == {TensorProto.FLOAT}
    assert {t.type.tensor_type.elem_type for t in graph.output} == {TensorProto.FLOAT}
    assert any(t.data_type == TensorProto.FLOAT16 for t in graph.initializer)


@pytest.mark.parametrize(
    ("runtime", "precision"),
    [(OnnxRuntime, "fp16"), (PyTorchRuntime, "bf16"), (PyTorchRuntime, "fp16")],
)
def test_low_precision_cells_report_what_ran_and_stay_close(
    cache_dir: Path, runtime: type, precision: str
) -> None:
    prepared = prepare_zoo_model("lenet5", [2], cache_dir)
    feeds, reference = load_reference(prepared.reference, 2)
    module = module_loader(prepared.source, prepared.seed)
    target, options = Target("cpu", precision), LoadOptions(threads=1, module=module)
    instance = runtime()
    built = instance.build(prepared, target, options, cache_dir)
    session = instance.load(built, prepared, target, options)
    if runtime is PyTorchRuntime:
        assert session.executed.precision == precision  # the module's own dtype
    else:  # ONNX Runtime says what its optimised graph computes in, whatever was asked
        assert session.executed.precision in ("fp16", "fp32")
    result = compare_outputs(session.infer(feeds), reference, precision, classifier=True)
    assert result["verdict"] != "fail", result
    assert result["max_abs_error"] > 0  # it really ran in a lower precision somewhere


def test_too_few_samples_give_a_ratio_without_an_interval() -> None:
    rows = speedups([record("fp32", np.array([10.0])), record("fp16", np.array([5.0]))])
    assert rows[0].speedup == pytest.approx(2.0)
    assert rows[0].ci_low is None and rows[0].ci_high is None
    assert rows[0].verdict.startswith("no interval")


def test_throughput_cells_with_different_requests_in_flight_are_not_compared() -> None:
    rng = np.random.default_rng(6)
    fp32 = record("fp32", rng.normal(10, 0.3, 100), in_flight=2)
    fp16 = record("fp16", rng.normal(5, 0.2, 100), in_flight=4)
    (row,) = speedups([fp32, fp16])
    assert row.verdict == "not comparable: 2 vs 4 requests in flight"


def test_speedup_intervals_come_from_repetitions_when_there_are_three() -> None:
    """Each repetition drifts as a whole (another minute, other neighbours): resampling
    the iterations of one run misses that; resampling repetitions does not."""
    from fixtures.records import cell, timed

    from bench.harness.repetitions import merged

    rng = np.random.default_rng(0)
    records = []
    for repetition in range(5):
        drift = 1 + 0.1 * rng.standard_normal()  # the repetition's own level
        for precision, ms in (("fp32", 10.0), ("fp16", 8.0)):
            times = list(ms * drift * (1 + 0.01 * rng.standard_normal(200)))
            records.append(timed(cell(precision=precision), times, repetition=repetition))
    (row,) = speedups(merged(records))
    assert row.interval_over == "5/5 repetitions"
    (single,) = speedups([r for r in records if r.repetition == 0])
    assert single.interval_over == "one run's iterations"
    assert row.ci_high - row.ci_low > 3 * (single.ci_high - single.ci_low)
    assert row.ci_low < row.speedup < row.ci_high
