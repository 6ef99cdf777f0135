"""The reference zoo: registry, builders, output shapes, parameter and FLOP counts."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from bench.core.errors import UserError
from bench.core.spec import BATCH, make_inputs
from exporters.flops import count_flops_per_sample, count_params
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
}
SMALL = ["mlp", "lenet5", "lstm_classifier", "anomaly_cnn1d", "unet_small", "resnet18"]


def _inputs(name: str, batch: int, device: str = "cpu") -> tuple[torch.Tensor, ...]:
    feeds = make_inputs(get_entry(name).inputs, {BATCH: batch}, seed=0)
    return tuple(torch.from_numpy(feeds[spec.name]).to(device) for spec in get_entry(name).inputs)


def test_zoo_lists_the_required_models() -> None:
    assert set(ZOO) == set(EXPECTED_OUTPUT)
    for name, entry in ZOO.items():
        assert entry.name == name
        assert entry.task in {"classification", "segmentation"}
        assert entry.output_names == ("logits",)
        assert all(spec.shape[0] == BATCH for spec in entry.inputs)
        assert callable(resolve_callable(entry.builder))
    assert get_entry("unet_small").task == "segmentation"


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
def test_every_model_has_the_expected_output_shape_on_meta(name: str) -> None:
    with torch.device("meta"):
        module, example = build_module(f"zoo:{name}", seed=0)
    assert example is None
    assert not module.training
    with torch.no_grad():
        out = module(*_inputs(name, 2, device="meta"))
    assert tuple(out.shape) == (2, *EXPECTED_OUTPUT[name])


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
