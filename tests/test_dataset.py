"""Labelled data (``--dataset``): the loaders on files made here, the metric maths on
known cases, the accuracy budget, and its gates in the speedup table, ``compare`` and
``tune``; a run end to end on a dataset made here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fixtures.records import cell, timed
from test_cli import cli, only_run_dir, records_of, run_dirs, write_suite
from test_compare_gate import ENV

from bench.compare.gate import compare
from bench.compare.sides import side_from_records
from bench.compare.significance import IMPROVED, REGRESSED, UNCHANGED
from bench.core.budget import AccuracyBudget
from bench.core.errors import UserError
from bench.core.record import Accuracy, CellRecord, TaskAccuracy
from bench.core.settings import DatasetConfig
from bench.core.spec import BATCH, TensorSpec
from bench.harness.accuracy import compare_outputs
from bench.harness.dataset import PRESETS, check_dataset, check_labels, labelled_task, load_dataset
from bench.harness.scoring import Agreement, Classification, Segmentation
from bench.harness.start import RunRequest, settle
from bench.harness.tuner import Configuration, Constraints, judge
from bench.views.speedup import speedups

IMAGE = (TensorSpec("input", (BATCH, 1, 8, 8)),)


def npz(path: Path, count: int = 40, labels: np.ndarray | None = None, **arrays) -> Path:
    rng = np.random.default_rng(1)
    data = arrays or {"input": rng.standard_normal((count, 1, 8, 8)).astype(np.float32)}
    if labels is None:
        labels = np.arange(count) % 10
    np.savez(path, **data, labels=labels)
    return path


def config(path: Path, **given) -> DatasetConfig:
    return DatasetConfig(path=str(path), **given)


# --- loaders -----------------------------------------------------------------------------


def test_an_npz_is_shuffled_and_split_into_calibration_and_scored(tmp_path: Path) -> None:
    path = npz(tmp_path / "d.npz", 40)
    data = load_dataset(config(path, samples=10, seed=3), calibration=8)
    assert data.total == 40 and data.calibration == 8 and data.scored == 10
    assert data.inputs["input"].shape == (18, 1, 8, 8)
    with np.load(path) as raw:  # each sample keeps its own label through the shuffle
        for sample, label in zip(data.inputs["input"], data.labels, strict=True):
            index = int(np.flatnonzero((raw["input"] == sample).all(axis=(1, 2, 3)))[0])
            assert raw["labels"][index] == label
    again = load_dataset(config(path, samples=10, seed=3), calibration=8)
    assert np.array_equal(again.labels, data.labels)  # seeded
    other = load_dataset(config(path, samples=10, seed=4), calibration=8)
    assert not np.array_equal(other.inputs["input"], data.inputs["input"])
    assert data.calibration_arrays()["input"].shape[0] == 8
    assert "10 of 40 samples scored, shuffled with seed 3" in data.split()
    assert "8 before them calibrate int8" in data.split()
    everything = load_dataset(config(path, samples=0), calibration=8)
    assert everything.scored == 32


@pytest.mark.parametrize(
    ("labels", "arrays", "message"),
    [
        (np.arange(39), None, "39 labels for 40 samples"),
        (np.linspace(0, 1, 40), None, "labels are float64: give class indices as integers"),
        (
            np.arange(40),
            {"a": np.zeros((40, 2)), "b": np.zeros((41, 2))},
            "differ in sample count (a 40, b 41)",
        ),
    ],
)
def test_bad_npz_files_are_one_line_errors(
    tmp_path: Path, labels: np.ndarray, arrays: dict | None, message: str
) -> None:
    path = npz(tmp_path / "d.npz", 40, labels, **(arrays or {}))
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_dataset(config(path))


def test_a_corrupt_or_missing_file_and_a_preset_on_an_npz_are_refused(tmp_path: Path) -> None:
    corrupt = tmp_path / "bad.npz"
    corrupt.write_bytes(b"not a zip")
    with pytest.raises(UserError, match="not a readable .npz"):
        load_dataset(config(corrupt))
    with pytest.raises(UserError, match="no such file or folder"):
        load_dataset(config(tmp_path / "absent.npz"))
    with pytest.raises(UserError, match="a preset applies to an image folder"):
        load_dataset(config(npz(tmp_path / "d.npz"), preset="imagenet"))
    with pytest.raises(UserError, match="none left to score after the 40"):
        load_dataset(config(npz(tmp_path / "d.npz", 40)), calibration=40)


def image_folder(root: Path, per_class: int = 3) -> Path:
    from PIL import Image

    for label, shade in enumerate((30, 220)):
        folder = root / f"class{label}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            size = (40 + 4 * i, 30)  # not square: resize keeps the aspect, then crops
            Image.new("RGB", size, (shade, shade, shade)).save(folder / f"{i}.png")
    return root


def test_an_image_folder_is_read_with_its_preset(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "images")
    data = load_dataset(config(root, preset="mnist32", samples=0))
    images = next(iter(data.inputs.values()))
    assert images.shape == (6, 1, 32, 32) and images.dtype == np.float32
    mean, std = PRESETS["mnist32"].mean[0], PRESETS["mnist32"].std[0]
    for image, label in zip(images, data.labels, strict=True):  # class0 dark, class1 bright
        shade = (30, 220)[label] / 255
        assert np.allclose(image, (shade - mean) / std, atol=1e-3)
    model = (TensorSpec("pixels", (BATCH, 1, 32, 32)),)
    checked = check_dataset(data, model, "m")  # the images feed the one input by its name
    assert list(checked.inputs) == ["pixels"]
    with pytest.raises(UserError, match="a sample of 'pixels' is 1x32x32 but m takes 3x224x224"):
        check_dataset(data, (TensorSpec("pixels", (BATCH, 3, 224, 224)),), "m")


def test_image_folder_faults_are_one_line_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "loose.png").write_bytes(b"")
    with pytest.raises(UserError, match="no class folders"):
        load_dataset(config(empty, preset="imagenet"))
    root = image_folder(tmp_path / "images", per_class=1)
    with pytest.raises(UserError, match="needs --dataset-preset"):
        load_dataset(config(root))
    with pytest.raises(UserError, match="unknown --dataset-preset 'imagenet1k': choose imagenet"):
        load_dataset(config(root, preset="imagenet1k"))
    (root / "class0" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(UserError, match=r"cannot read the image .*broken\.jpg"):
        load_dataset(config(root, preset="imagenet", samples=0))


def test_labels_must_fit_the_task(tmp_path: Path) -> None:
    one_hot = npz(tmp_path / "d.npz", 40, np.eye(10, dtype=int)[np.arange(40) % 10])
    data = load_dataset(config(one_hot))
    logits = (TensorSpec("logits", (BATCH, 10)),)
    with pytest.raises(UserError, match="each sample's label is 10, but m is a classifier"):
        check_labels(data, "classification", logits, "m")
    maps = npz(tmp_path / "s.npz", 40, np.zeros((40, 8, 8), int))
    masks = (TensorSpec("out", (BATCH, 21, 16, 16)),)
    with pytest.raises(UserError, match="label maps of 8x8 but m's output maps are 16x16"):
        check_labels(load_dataset(config(maps)), "segmentation", masks, "m")
    check_labels(
        load_dataset(config(maps)), "segmentation", (TensorSpec("out", (BATCH, 21, 8, 8)),), "m"
    )
    assert labelled_task("unknown", logits, np.arange(3)) == "classification"
    assert labelled_task("unknown", masks, np.zeros((3, 16, 16))) == "segmentation"
    assert labelled_task("unknown", logits, None) == "unknown"


def test_the_dataset_must_match_the_model_inputs(tmp_path: Path) -> None:
    data = load_dataset(config(npz(tmp_path / "d.npz")))
    with pytest.raises(UserError, match="input is not an input of m .its inputs: x."):
        check_dataset(data, (TensorSpec("x", (BATCH, 1, 8, 8)),), "m")
    two = (*IMAGE, TensorSpec("mask", (BATCH, 8)))
    with pytest.raises(UserError, match="no array for m's input mask"):
        check_dataset(data, two, "m")
    with pytest.raises(UserError, match="a sample of 'input' is 1x8x8 but m takes 1x9x9"):
        check_dataset(data, (TensorSpec("input", (BATCH, 1, 9, 9)),), "m")
    as_half = check_dataset(data, (TensorSpec("input", (BATCH, 1, 8, 8), "float16"),), "m")
    assert as_half.inputs["input"].dtype == np.float16
    with pytest.raises(UserError, match="holds float32 but the model takes int64"):
        check_dataset(data, (TensorSpec("input", (BATCH, 1, 8, 8), "int64"),), "m")


# --- metric maths --------------------------------------------------------------------------


def test_top1_top5_and_labels_outside_the_classes() -> None:
    logits = np.array(
        [
            [9, 8, 7, 6, 5, 4],  # best 0; top-5 0..4
            [0, 1, 2, 3, 4, 5],  # best 5; top-5 5..1
            [5, 0, 0, 0, 0, 9],  # best 5, then 0
            [1, 2, 3, 4, 5, 6],
        ],
        float,
    )
    score = Classification()
    score.add(logits[:2], np.array([0, 0]))  # a hit; label 0 is sixth of sample 2: a miss
    score.add(logits[2:], np.array([0, 17]))  # top-5 hit; 17 is no class of six
    assert (score.counted, score.outside) == (3, 1)
    assert score.value() == pytest.approx(1 / 3)
    assert score.top5() == pytest.approx(2 / 3)


def test_mean_iou_over_the_classes_present() -> None:
    # one 2x3 image, classes 0..2: channel-first logits whose argmax is `predicted`
    predicted = np.array([[0, 0, 1], [1, 2, 2]])
    labels = np.array([[0, 1, 1], [1, 255, 7]])  # 255 ignored, 7 is outside the classes
    logits = np.eye(3)[predicted].transpose(2, 0, 1)[None]
    score = Segmentation(ignore_index=255)
    score.add(logits, labels[None])
    # class 0: hit 1, union 2 (one pixel predicted 0 is labelled 1); class 1: hits 2 of
    # union 3; class 2 is predicted only where the label is left out: not present
    assert score.outside == 1
    assert score.value() == pytest.approx((1 / 2 + 2 / 3) / 2)
    score.add(np.eye(3)[[[2]]].transpose(2, 0, 1)[None], np.array([[[0]]]))
    # now a pixel of class 0 predicted 2: class 0 1/3, class 2 0/1
    assert score.value() == pytest.approx((1 / 3 + 2 / 3 + 0) / 3)


def test_the_chunked_agreement_is_the_whole_arrays_agreement() -> None:
    rng = np.random.default_rng(0)
    want = rng.standard_normal((12, 10))
    got = want + rng.normal(0, 1e-3, want.shape)
    agreement = Agreement(classifier=True)
    for start in range(0, 12, 5):
        agreement.add({"out": got[start : start + 5]}, {"out": want[start : start + 5]})
    whole = compare_outputs({"out": got}, {"out": want}, "fp16", classifier=True)
    figures = agreement.figures("fp16")
    for key in ("max_abs_error", "scaled_error", "cosine_similarity", "top1_agreement"):
        assert figures[key] == pytest.approx(whole[key]), key
    assert figures["verdict"] == whole["verdict"]


# --- the budget and its gates --------------------------------------------------------------


def test_budgets_in_points_and_relative() -> None:
    points, relative = AccuracyBudget.parse("1"), AccuracyBudget.parse("2%")
    assert AccuracyBudget.parse("1pt") == points and str(points) == "1 point"
    assert points.exceeded(0.80, 0.789) and not points.exceeded(0.80, 0.791)
    assert relative.allowed(0.5) == pytest.approx(0.01)
    assert relative.exceeded(0.5, 0.489) and not relative.exceeded(0.5, 0.491)
    for bad in ("", "one", "-1", "1 %%", "inf"):
        with pytest.raises(ValueError, match="give points of the metric"):
            AccuracyBudget.parse(bad)


def scored_record(precision: str, value: float, median: float = 1.0, **kw) -> CellRecord:
    task = TaskAccuracy(metric="top1", value=value, reference_value=0.8, dataset="d", samples=500)
    accuracy = Accuracy(verdict="pass", scaled_error=1e-3, dataset=task)
    return timed(cell("m", precision=precision), [median] * 20, accuracy=accuracy, **kw)


def test_the_speedup_table_is_gated_by_the_budget() -> None:
    records = [
        scored_record("fp32", 0.8),
        scored_record("fp16", 0.795, 0.5),
        scored_record("int8", 0.77, 0.25),
    ]
    rows = {r.precision: r for r in speedups(records, budget=AccuracyBudget.parse("1"))}
    assert rows["fp16"].verdict == "faster"
    assert (rows["fp16"].fp32_value, rows["fp16"].value) == (0.8, 0.795)
    assert rows["int8"].verdict.startswith("over the accuracy budget: top1 3.00 points below")
    unjudged = {r.precision: r for r in speedups(records)}
    assert unjudged["int8"].verdict == "faster"


def test_compare_regresses_a_metric_that_fell_past_the_budget() -> None:
    def side(value: float, label: str):
        return side_from_records(label, label, ENV, [scored_record("fp32", value)])

    budget = AccuracyBudget.parse("0.5")
    fell = compare(side(0.80, "a"), side(0.79, "b"), budget=budget).cells[0]
    assert fell.verdict == REGRESSED
    assert (
        "-1.00 points of top1 on d: past the accuracy budget of 0.5 points" in fell.changes[-1].note
    )
    rose = compare(side(0.79, "a"), side(0.80, "b"), budget=budget).cells[0]
    assert rose.changes[-1].verdict == IMPROVED
    within = compare(side(0.80, "a"), side(0.797, "b"), budget=budget).cells[0]
    task = [c for c in within.changes if c.metric == "task metric"][0]
    assert task.verdict == UNCHANGED and "within 0.5 points" in task.note
    unjudged = compare(side(0.80, "a"), side(0.70, "b")).cells[0]
    task = [c for c in unjudged.changes if c.metric == "task metric"][0]
    assert task.verdict == UNCHANGED and "give --accuracy-budget" in task.note


def test_tune_rejects_a_configuration_past_the_budget() -> None:
    configuration = Configuration("onnxruntime", "cpu", "int8", 1, 1)
    record = scored_record("int8", 0.77)
    limits = Constraints(accuracy_budget=AccuracyBudget.parse("1"))
    trial = judge(configuration, record, limits)
    assert trial.status == "rejected" and trial.violations == ("accuracy",)
    assert "over the accuracy budget: top1 3.00 points" in trial.reason
    assert judge(configuration, scored_record("int8", 0.795), limits).status == "met"
    ignored = Constraints(accuracy=False, accuracy_budget=AccuracyBudget.parse("1"))
    assert judge(configuration, record, ignored).status == "met"


# --- end to end ----------------------------------------------------------------------------


@pytest.mark.e2e
def test_a_run_scores_every_cell_on_the_dataset(tmp_path: Path, cache_dir: Path) -> None:
    rng = np.random.default_rng(0)
    dataset = tmp_path / "digits.npz"
    np.savez(
        dataset,
        input=rng.standard_normal((70, 1, 32, 32)).astype(np.float32),
        labels=np.r_[rng.integers(0, 10, 60), [12] * 10],  # 10 beyond lenet5's ten classes
    )
    suite = write_suite(tmp_path / "bench.toml", models=["lenet5"], runtimes=["onnxruntime"])
    results = tmp_path / "results"
    args = ["run", "--config", suite, "--results-dir", results, "--scenarios", "latency"]
    proc = cli(
        *args,
        "--precisions",
        "fp32,int8",
        "--batch-sizes",
        "8",
        "--dataset",
        dataset,
        "--calibration-samples",
        "16",
        "--accuracy-budget",
        "50",
        cache_dir=cache_dir,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    records = {r["cell"]["precision"]: r for r in records_of(only_run_dir(results))}
    fp32, int8 = records["fp32"]["accuracy"], records["int8"]["accuracy"]
    assert fp32["reference"] == "pytorch fp32 on digits" and fp32["verdict"] == "pass"
    task = fp32["dataset"]
    assert task["samples"] == 54 and task["metric"] == "top1"
    assert "54 of 70 samples scored, shuffled with seed 0; the 16 before" in task["split"]
    assert task["value"] == pytest.approx(task["reference_value"])
    assert task["labels_outside"] >= 1  # 16 held out: some of the ten are scored, apart
    assert int8["dataset"]["samples"] == 54 and int8["dataset"]["value"] is not None
    assert any("held out of scoring" in note for note in records["int8"]["notes"])
    inputs = records["fp32"]["model"]["inputs"][0]
    assert inputs["values"] == "the samples of digits"
    assert "metric" in proc.stdout and "top-1" in proc.stdout
    assert f"({task['labels_outside']} labels beyond its classes)" in proc.stdout


@pytest.mark.e2e
def test_a_dataset_that_does_not_fit_stops_before_any_cell(tmp_path: Path, cache_dir: Path) -> None:
    dataset = npz(tmp_path / "d.npz", 40, np.arange(39))
    suite = write_suite(tmp_path / "bench.toml", models=["lenet5"], runtimes=["onnxruntime"])
    results = tmp_path / "results"
    args = ("run", "--config", suite, "--results-dir", results)
    proc = cli(*args, "--dataset", dataset, cache_dir=cache_dir)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "39 labels for 40 samples" in proc.stderr and "Traceback" not in proc.stderr
    assert run_dirs(results) == []


def test_a_dataset_is_checked_against_the_suite_before_any_cell(tmp_path: Path) -> None:
    suite = write_suite(tmp_path / "bench.toml", models=["lenet5"], runtimes=["onnxruntime"])

    def settled(**dataset: str):
        return settle(RunRequest(suite, overrides={"dataset": dataset}))

    small = npz(tmp_path / "e.npz", 40)  # 1x8x8 samples; lenet5 takes 1x32x32
    with pytest.raises(UserError, match="lenet5 takes 1x32x32"):
        settled(path=str(small))
    with pytest.raises(UserError, match="give points of the metric"):
        settled(path=str(small), budget="lots")
    fits = npz(tmp_path / "f.npz", 40, input=np.zeros((40, 1, 32, 32), np.float32))
    setup = settled(path=str(fits), budget="2%")
    assert setup.dataset is not None and setup.dataset.scored == 40  # no int8 cell: all
    assert setup.config.dataset.accuracy_budget() == AccuracyBudget(2.0, relative=True)
    int8 = {"dataset": {"path": str(fits)}, "suite": {"precisions": ["fp32", "int8"]}}
    setup = settle(RunRequest(suite, overrides=int8))
    assert setup.dataset is not None and setup.dataset.scored == 8  # 32 calibrate int8
    with pytest.raises(UserError, match="--dataset-preset, --accuracy-budget applies to a run"):
        settle(RunRequest(suite, overrides={"dataset": {"preset": "imagenet", "budget": "1"}}))


def test_a_scored_model_ships_its_samples_and_reference_to_a_node(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    from bench.core.spec import PreparedModel, ScoredData
    from bench.fleet.shipping import materialize, ship

    here = tmp_path / "driver"
    here.mkdir()
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    onnx.save(helper.make_model(graph), here / "model.onnx")
    np.savez(here / "d.npz", **{"in/x": np.ones((3, 1)), "labels": np.arange(3)})
    np.savez(here / "d-reference.npz", **{"out/y": np.ones((3, 1))})
    scored = ScoredData(here / "d.npz", "d", "3 of 3", 3, reference=here / "d-reference.npz")
    model = PreparedModel("m", here / "model.onnx", (), (), "classification", "", scored=scored)
    units = ship(model, lambda contents: contents)
    node = materialize(model, units, [unit.ref for unit in units], tmp_path / "node")
    assert node.scored is not None and node.scored.path.parent != here
    assert np.array_equal(np.load(node.scored.path)["labels"], np.arange(3))
    assert np.array_equal(np.load(node.scored.reference)["out/y"], np.ones((3, 1)))
    assert node.scored.name == "d" and node.scored.samples == 3


@pytest.mark.slow  # the agent-mode test resumes a dataset run too; this adds 11 s
def test_resume_reads_the_dataset_only_when_named_again(tmp_path: Path, cache_dir: Path) -> None:
    dataset = npz(tmp_path / "d.npz", 40, input=np.zeros((40, 784), np.float32))
    suite = write_suite(tmp_path / "bench.toml", models=["mlp"], runtimes=["onnxruntime"])
    results = tmp_path / "results"
    args = ("--config", suite, "--results-dir", results, "--dataset-samples", "4")
    assert cli("run", *args, "--dataset", dataset, cache_dir=cache_dir).returncode == 0
    run = only_run_dir(results)
    proc = cli("run", "--resume", run, cache_dir=cache_dir)
    assert proc.returncode == 2
    assert f"names the dataset {dataset.resolve()}: resume reads no file" in proc.stderr
    proc = cli("run", "--resume", run, "--dataset", dataset, cache_dir=cache_dir)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_workers_peak_memory_is_its_own_not_its_parents() -> None:
    """A parent holding a dataset starts workers: ru_maxrss would carry its peak over
    into them through fork and exec; VmHWM starts again at exec."""
    import subprocess
    import sys

    held = np.ones(300 * 2**20 // 8)  # 300 MB, touched
    code = "from bench.core.memory import peak_rss_mb; print(peak_rss_mb())"
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert held.sum() > 0
    assert float(child.stdout) < 150  # an interpreter and numpy: tens of MB
