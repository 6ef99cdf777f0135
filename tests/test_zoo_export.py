"""The zoo's larger models through the export, reference, accuracy and train paths.

The default tests use small configurations of the same builders: BERT's sequence axis,
dynamic in the ONNX file; several outputs and non-classifier tasks in a training step.
The full-size models export, pass parity and run on every CPU runtime under ``-m slow``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
import torchvision
from torch import nn
from torchvision.models.mobilenetv2 import InvertedResidual

from bench.core.cell import Target
from bench.core.spec import BATCH, PreparedModel, TensorSpec
from bench.harness.accuracy import compare_outputs
from exporters import models
from exporters import xception as xception_module
from exporters import yolo as yolo_module
from exporters.bert import BertEncoder
from exporters.models import dcgan_generator
from exporters.onnx_export import prepare_torch_model, prepare_zoo_model
from exporters.reference import load_reference
from exporters.source import build_module, module_loader
from exporters.yolo import YOLODetector
from exporters.zoo import ZOO
from runtimes import RUNTIMES
from runtimes.base import LoadOptions
from runtimes.pytorch_train import TrainSession
from scripts import zoo_drift

TINY_VOCAB = 1000
TINY_SEQUENCE = 16


def tiny_bert() -> nn.Module:
    """The zoo's BERT encoder at 1 layer, hidden 64: what the default tests export."""
    return BertEncoder(layers=1, hidden=64, heads=4, ffn=128, vocab=TINY_VOCAB)


def _tiny_bert_inputs() -> tuple[TensorSpec, ...]:
    """The zoo's BERT inputs at a short sequence and the tiny vocabulary."""
    ids, mask = ZOO["bert_base"].inputs
    return (
        replace(ids, shape=(BATCH, TINY_SEQUENCE), high=TINY_VOCAB),
        replace(mask, shape=(BATCH, TINY_SEQUENCE)),
    )


@pytest.fixture(autouse=True)
def _keep_torch_threads() -> Iterator[None]:
    """Train and PyTorch sessions set torch's global thread count: give it back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _dims(value: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


def _check_dynamic_sequence(prepared: PreparedModel, module: nn.Module, vocab: int) -> None:
    """The file declares a symbolic, shared sequence axis and runs, padding included, at a
    sequence length other than the exported one, as the module does."""
    graph = onnx.load(str(prepared.onnx_path), load_external_data=False).graph
    assert {v.name: _dims(v) for v in graph.input} == {
        "input_ids": [BATCH, "sequence"],
        "attention_mask": [BATCH, "sequence"],
    }
    assert _dims(graph.output[0])[:2] == [BATCH, "sequence"]
    session = onnxruntime.InferenceSession(
        str(prepared.onnx_path), providers=["CPUExecutionProvider"]
    )
    rng = np.random.default_rng(1)
    ids = rng.integers(0, vocab, size=(2, 64), dtype=np.int64)
    mask = np.ones_like(ids)
    mask[1, 40:] = 0  # the second sequence is padded
    got = session.run(None, {"input_ids": ids, "attention_mask": mask})
    with torch.no_grad():
        want = module(torch.from_numpy(ids), torch.from_numpy(mask))
    assert [g.shape for g in got] == [tuple(w.shape) for w in want]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w.numpy(), rtol=1e-3, atol=1e-4)


def test_bert_exports_with_a_dynamic_sequence_axis(tmp_path: Path) -> None:
    entry = ZOO["bert_base"]
    source = f"factory:{__name__}:tiny_bert"
    prepared = prepare_torch_model(
        "tiny_bert",
        source,
        _tiny_bert_inputs(),
        entry.output_names,
        entry.task,
        [1, 2],
        tmp_path,
        dynamic_axes=entry.dynamic_axes,
    )
    assert prepared.notes[0] == "exported by torch.onnx (dynamo)"
    assert [s.name for s in prepared.outputs] == ["last_hidden_state", "pooler_output"]
    _check_dynamic_sequence(prepared, build_module(source, prepared.seed)[0], TINY_VOCAB)


def _train_once(module: nn.Module, task: str, inputs: tuple[TensorSpec, ...]) -> TrainSession:
    model = PreparedModel("tiny", Path("unused.onnx"), inputs, (), task, "zoo:tiny")
    session = TrainSession(module, model, Target("cpu", "fp32"), batch=2, threads=1)
    session.step()
    return session


def test_detection_generation_and_encoding_train_with_mse_on_the_first_output() -> None:
    torch.manual_seed(0)
    yolo = YOLODetector(widths=(8, 8, 16, 16, 32), depths=(1, 1, 1, 1))
    image = (TensorSpec("input", (BATCH, 3, 64, 64)),)
    cases = [
        (yolo, "detection", image),
        (dcgan_generator(), "generation", ZOO["dcgan_generator"].inputs),
        (tiny_bert(), "encoding", _tiny_bert_inputs()),
    ]
    for module, task, inputs in cases:
        session = _train_once(module, task, inputs)
        assert session.loss_name == "mse", task
        assert session.first_loss is not None and np.isfinite(session.first_loss), task


def test_damping_halves_the_last_norm_of_every_residual_branch() -> None:
    torch.manual_seed(0)
    basic = torchvision.models.resnet.BasicBlock(16, 16)
    bottleneck = torchvision.models.resnet.Bottleneck(64, 16)
    inverted = InvertedResidual(16, 16, 1, 6)  # keeps the shape: adds its input
    widening = InvertedResidual(16, 24, 2, 6)  # no shortcut: nothing to damp
    block = xception_module._XceptionBlock([16, 16, 16], stride=2)
    yolo = YOLODetector(widths=(8, 8, 16, 16, 32), depths=(1, 1, 1, 1))
    model = nn.Sequential(basic, bottleneck, inverted, widening, block, yolo)
    for norm in model.modules():
        if isinstance(norm, nn.BatchNorm2d):
            nn.init.ones_(norm.weight)
    norms = [
        *models.residual_norms(model),
        *yolo_module._residual_norms(model),
        *xception_module._residual_norms(model),
    ]
    damped = {id(norm) for norm in norms}
    ends = (basic.bn2, bottleneck.bn3, inverted.conv[-1], block.body[-2])  # before the pool
    assert {id(norm) for norm in ends} <= damped
    # and the detector's four backbone bottlenecks; the neck's have no shortcut
    assert len(damped) == len(norms) == len(ends) + 4
    models.damped(model, iter(norms))
    for norm in model.modules():
        if isinstance(norm, nn.BatchNorm2d):
            expected = models.RESIDUAL_DAMPING if id(norm) in damped else 1.0
            assert torch.all(norm.weight == expected)


def test_accuracy_compares_every_output_of_a_multi_output_model() -> None:
    rng = np.random.default_rng(0)
    reference = {
        name: rng.normal(size=(1, 84, s, s))
        for name, s in zip(("p3", "p4", "p5"), (8, 4, 2), strict=True)
    }
    outputs = {**reference, "p5": reference["p5"] + 1.0}  # only the last scale is off
    figures = compare_outputs(outputs, reference, "fp32", classifier=False)
    assert figures["top1_agreement"] is None and figures["verdict"] == "fail"
    assert compare_outputs(reference, reference)["verdict"] == "pass"


def test_the_drift_script_prints_its_table_and_restores_damping(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """scripts/zoo_drift.py (docs/zoo-drift.md's table) at tiny settings: a row of figures
    per model, and ``--undamped`` gives the builders their damping back when it ends."""
    before = models.damped
    assert zoo_drift.main(["--models", "mlp", "--undamped"]) == 0
    assert models.damped is yolo_module.damped is xception_module.damped is before
    rows = [row for row in capsys.readouterr().out.splitlines() if row.startswith("| ")]
    cell = r"\d\.\de-\d\d (pass|warn|fail)"
    assert rows[0].startswith("| model | PyTorch fp32 | ONNX Runtime fp32 |")
    assert len(rows) == 2 and re.match(rf"\| mlp \| {cell} \| {cell} \|", rows[1]), rows


# --- full size (slow) ------------------------------------------------------------------

NEW_MODELS = [
    "xception",
    "fcn_resnet50",
    "dcgan_generator",
    "yolo_detector",
    "resnet152",
    "densenet161",
    "bert_base",
    "vit_b16",
]


@pytest.mark.slow
@pytest.mark.parametrize("name", NEW_MODELS)
def test_new_model_exports_with_parity_and_runs_on_every_cpu_runtime(
    name: str, cache_dir: Path
) -> None:
    entry = ZOO[name]
    prepared = prepare_zoo_model(name, [1, 2], cache_dir)
    assert any(note.startswith("onnxruntime CPU vs PyTorch FP32") for note in prepared.notes)
    assert [s.name for s in prepared.outputs] == list(entry.output_names)
    assert prepared.params and prepared.flops_per_sample
    inputs, reference = load_reference(prepared.reference, 1)
    options = LoadOptions(threads=2, module=module_loader(prepared.source, prepared.seed))
    target = Target("cpu", "fp32")
    for runtime_name in ("pytorch", "onnxruntime", "openvino"):
        runtime = RUNTIMES[runtime_name]
        if (reason := runtime.unavailable_reason(target, prepared.source)) is not None:
            pytest.skip(f"{runtime_name}: {reason}")
        instance = runtime()
        built = instance.build(prepared, target, options, cache_dir)
        outputs = instance.load(built, prepared, target, options).infer(inputs)
        assert {k: v.shape for k, v in outputs.items()} == {
            k: v.shape for k, v in reference.items()
        }
        figures = compare_outputs(outputs, reference, "fp32", entry.task == "classification")
        assert figures["verdict"] == "pass", (runtime_name, figures)
    if name == "bert_base":
        _check_dynamic_sequence(prepared, build_module(prepared.source, prepared.seed)[0], 30522)
