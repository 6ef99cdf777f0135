"""The reference zoo: registry, builders, output shapes, parameter and FLOP counts."""

from __future__ import annotations

import copy
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from bench.core.errors import UserError
from bench.core.spec import BATCH, make_inputs
from bench.harness.accuracy import TOLERANCES, compare_outputs
from exporters.flops import count_flops_per_sample, count_params
from exporters.models import RESIDUAL_DAMPING
from exporters.source import build_module, resolve_callable
from exporters.zoo import ZOO, get_entry

EXPECTED_OUTPUT = {
    "mlp": (10,),
    "lenet5": (10,),
    "resnet18": (1000,),
    "resnet50": (1000,),
    "mobilenet_v2": (1000,),
    "vgg16": (1000,),
    "alexnet": (1000,),
    "googlenet": (1000,),
    "unet_small": (2, 128, 128),
    "lstm_classifier": (5,),
    "anomaly_cnn1d": (2,),
    "resnet152": (1000,),
    "densenet161": (1000,),
    "xception": (1000,),
    "vit_b16": (1000,),
    "fcn_resnet50": (21, 224, 224),
    "yolo_detector": ((84, 80, 80), (84, 40, 40), (84, 20, 20)),
    "dcgan_generator": (3, 64, 64),
    "bert_base": ((128, 768), (768,)),
}
"""Each model's output shape without the batch; a tuple of shapes for several outputs."""
TASKS = {
    "unet_small": "segmentation",
    "fcn_resnet50": "segmentation",
    "yolo_detector": "detection",
    "dcgan_generator": "generation",
    "bert_base": "encoding",
}
"""The models whose task is not classification."""
PUBLISHED_PARAMS = {
    "resnet152": 60_192_808,
    "densenet161": 28_681_000,
    "xception": 22_855_952,
    "vit_b16": 86_567_656,
    "dcgan_generator": 3_576_704,
    "bert_base": 109_482_240,
    "fcn_resnet50": 35_322_218 - 2_365_205,
    "yolo_detector": 3_157_200 - 3 * (64 * 60 + 60) - 16,
}
"""Parameter counts of the reference implementations: torchvision, timm's Xception, the
PyTorch DCGAN example, Hugging Face's BertModel with its pooler; torchvision's FCN less its
aux head; Ultralytics' YOLOv8n less the 60 extra DFL box channels per scale and DFL's conv."""
SMALL = ["mlp", "lenet5", "lstm_classifier", "anomaly_cnn1d", "unet_small", "resnet18"]
DAMPED_BRANCHES = {
    "resnet18": 8,
    "resnet50": 16,
    "mobilenet_v2": 10,
    "xception": 12,
    "yolo_detector": 6,
    "resnet152": 50,
    "fcn_resnet50": 16,
}
"""How many residual branches each residual model halves (``exporters.models.damped``):
every ResNet block, MobileNetV2's inverted residuals that add their input, every Xception
block, the detector's backbone bottlenecks. No other model has a residual branch that
ends in a BatchNorm (ViT's and BERT's end in a linear layer)."""
HEAVY = {"resnet152", "fcn_resnet50"}
"""Over a second each to build: their damping is checked under ``-m slow``."""


def _tiered(names: list[str], cheap: set[str]) -> list[object]:
    """``names`` as parameters, all but the ``cheap`` ones under ``-m slow``."""
    return [n if n in cheap else pytest.param(n, marks=pytest.mark.slow) for n in names]


def _inputs(name: str, batch: int, device: str = "cpu") -> tuple[torch.Tensor, ...]:
    feeds = make_inputs(get_entry(name).inputs, {BATCH: batch}, seed=0)
    return tuple(torch.from_numpy(feeds[spec.name]).to(device) for spec in get_entry(name).inputs)


def _output_shapes(name: str) -> tuple[tuple[int, ...], ...]:
    shape = EXPECTED_OUTPUT[name]
    return shape if isinstance(shape[0], tuple) else (shape,)  # type: ignore[return-value]


def test_zoo_lists_the_required_models() -> None:
    assert set(ZOO) == set(EXPECTED_OUTPUT)
    for name, entry in ZOO.items():
        assert entry.name == name
        assert entry.task == TASKS.get(name, "classification")
        assert len(entry.output_names) == len(_output_shapes(name))
        assert all(spec.shape[0] == BATCH for spec in entry.inputs)
        assert callable(resolve_callable(entry.builder))
        assert entry.dynamic_axes == {} or name == "bert_base"
    assert get_entry("yolo_detector").output_names == ("p3", "p4", "p5")
    assert get_entry("dcgan_generator").output_names == ("image",)


def test_bert_takes_token_ids_and_a_mask_with_a_dynamic_sequence() -> None:
    entry = get_entry("bert_base")
    ids, mask = entry.inputs
    assert (ids.name, ids.shape, ids.dtype) == ("input_ids", (BATCH, 128), "int64")
    assert (mask.name, mask.shape, mask.dtype) == ("attention_mask", (BATCH, 128), "int64")
    assert (ids.low, ids.high) == (0, 30522)
    feeds = make_inputs(entry.inputs, {BATCH: 3}, seed=0)
    assert (feeds["attention_mask"] == 1).all()  # every token: no row is all padding
    assert int(feeds["input_ids"].max()) < 30522 and len(np.unique(feeds["input_ids"])) > 100
    assert entry.output_names == ("last_hidden_state", "pooler_output")
    sequence = {1: "sequence"}
    assert entry.dynamic_axes == {
        "input_ids": sequence,
        "attention_mask": sequence,
        "last_hidden_state": sequence,
    }
    hash(entry)  # the dict field is left out of the frozen entry's hash


def test_unknown_model_lists_the_choices() -> None:
    with pytest.raises(UserError, match=r"unknown model 'resnet19': choose one of mlp, lenet5"):
        get_entry("resnet19")


def test_zoo_imports_no_torch() -> None:
    code = (
        "import sys, exporters.zoo, exporters.onnx_export, exporters.onnx_file; "
        "sys.exit('torch' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


@pytest.mark.parametrize("name", sorted(ZOO))
def test_every_model_has_the_expected_output_shapes_and_size_on_meta(name: str) -> None:
    with torch.device("meta"):
        module, example = build_module(f"zoo:{name}", seed=0)
    assert example is None
    assert not module.training
    with torch.no_grad():
        out = module(*_inputs(name, 2, device="meta"))
    outputs = out if isinstance(out, tuple) else (out,)
    assert [tuple(o.shape) for o in outputs] == [(2, *shape) for shape in _output_shapes(name)]
    if name in PUBLISHED_PARAMS:
        assert count_params(module) == PUBLISHED_PARAMS[name]


@pytest.mark.parametrize("name", SMALL)
def test_small_models_run_forward_at_batch_2(name: str) -> None:
    module, _ = build_module(f"zoo:{name}", seed=0)
    with torch.no_grad():
        out = module(*_inputs(name, 2))
    assert tuple(out.shape) == (2, *EXPECTED_OUTPUT[name])
    assert torch.isfinite(out).all()


def test_weights_are_fixed_by_the_seed() -> None:
    first, _ = build_module("zoo:anomaly_cnn1d", seed=3)
    again, _ = build_module("zoo:anomaly_cnn1d", seed=3)
    other, _ = build_module("zoo:anomaly_cnn1d", seed=4)
    for key, value in first.state_dict().items():
        assert torch.equal(value, again.state_dict()[key]), key
    assert not torch.equal(first[0].weight, other[0].weight)


def test_batchnorm_models_are_calibrated_to_a_useful_output_scale() -> None:
    module, _ = build_module("zoo:anomaly_cnn1d", seed=0)
    with torch.no_grad():
        out = module(*_inputs("anomaly_cnn1d", 8))
    assert 0.05 < out.abs().max().item() < 100


@pytest.mark.parametrize("name", _tiered(list(DAMPED_BRANCHES), set(DAMPED_BRANCHES) - HEAVY))
def test_residual_models_halve_the_last_norm_of_every_branch(name: str) -> None:
    module, _ = build_module(f"zoo:{name}", seed=0)
    weights = [m.weight for m in module.modules() if isinstance(m, nn.BatchNorm2d)]
    halved = sum(bool(torch.all(w == RESIDUAL_DAMPING)) for w in weights)
    untouched = sum(bool(torch.all(w == 1.0)) for w in weights)
    assert (halved, untouched) == (DAMPED_BRANCHES[name], len(weights) - halved)


def _outputs(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> dict[str, np.ndarray]:
    with torch.no_grad():
        out = module(*inputs)
    outputs = out if isinstance(out, tuple) else (out,)
    return {f"output{i}": o.double().numpy() for i, o in enumerate(outputs)}


@pytest.mark.parametrize("name", _tiered(list(DAMPED_BRANCHES), {"mobilenet_v2"}))
def test_damped_models_drift_from_float64_within_the_tolerances(name: str) -> None:
    """PyTorch on the CPU in fp32 and bf16 against fp64: a model that lost its damping
    drifts past the bf16 tolerance on rounding alone (MobileNetV2: 10 %, halved 1 %)."""
    module, _ = build_module(f"zoo:{name}", seed=0)
    inputs = _inputs(name, 1)
    reference = _outputs(copy.deepcopy(module).double(), tuple(i.double() for i in inputs))
    for precision, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        outputs = _outputs(module.to(dtype), tuple(i.to(dtype) for i in inputs))
        figures = compare_outputs(outputs, reference, precision)
        tolerance = TOLERANCES[precision]
        assert float(figures["scaled_error"]) <= tolerance.pass_error, (precision, figures)
        assert float(figures["cosine_similarity"]) >= tolerance.pass_cosine, (precision, figures)


def test_mlp_flops_are_two_per_multiply_add() -> None:
    module, _ = build_module("zoo:mlp", seed=0)
    expected = 2 * (784 * 512 + 512 * 256 + 256 * 10)
    assert count_flops_per_sample(module, _inputs("mlp", 1)) == expected
    assert count_flops_per_sample(module, _inputs("mlp", 4)) == expected


def test_lstm_flops_are_counted_on_meta() -> None:
    module, _ = build_module("zoo:lstm_classifier", seed=0)
    hidden, steps = 128, 64
    per_step = 2 * 4 * hidden * (32 + hidden) + 2 * 4 * hidden * (hidden + hidden)
    expected = steps * per_step + 2 * hidden * 5
    assert count_flops_per_sample(module, _inputs("lstm_classifier", 1)) == expected


def test_params_are_the_sum_of_parameter_elements() -> None:
    module, _ = build_module("zoo:lenet5", seed=0)
    assert count_params(module) == sum(p.numel() for p in module.parameters())
    mlp, _ = build_module("zoo:mlp", seed=0)
    assert count_params(mlp) == 784 * 512 + 512 + 512 * 256 + 256 + 256 * 10 + 10


def test_bert_flops_are_its_matmuls() -> None:
    with torch.device("meta"):
        module, _ = build_module("zoo:bert_base", seed=0)
    tokens, hidden, ffn = 128, 768, 3072
    projections = 2 * tokens * (4 * hidden * hidden + 2 * hidden * ffn)
    attention = 2 * 2 * tokens * tokens * hidden  # scores and weighted values
    expected = 12 * (projections + attention) + 2 * hidden * hidden  # and the pooler
    assert count_flops_per_sample(module, _inputs("bert_base", 1, device="meta")) == expected
