"""The reference model zoo: what each model is, how to build it, and what it takes in.

This module imports neither torch nor ``exporters.models``: the planner and the CLI list
and validate models without paying for a framework import. ``builder`` is a dotted
``package.module:function`` string resolved only when a model is actually built.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.core.errors import UserError
from bench.core.spec import BATCH, TensorSpec


@dataclass(frozen=True)
class ZooEntry:
    """One reference model: its builder, its input specs (batch first) and its task.

    ``task`` is ``"classification"`` when the output is class logits (top-1 agreement is
    meaningful) and ``"segmentation"`` for per-pixel class logits.
    """

    name: str
    description: str
    builder: str
    inputs: tuple[TensorSpec, ...]
    output_names: tuple[str, ...] = ("logits",)
    task: str = "classification"


def _image(channels: int, size: int) -> tuple[TensorSpec, ...]:
    return (TensorSpec("input", (BATCH, channels, size, size)),)


def _reference(
    name: str, description: str, inputs: tuple[TensorSpec, ...], task: str = "classification"
) -> ZooEntry:
    """An entry whose builder is the function of the same name in ``exporters.models``."""
    return ZooEntry(name, description, f"exporters.models:{name}", inputs, ("logits",), task)


_IMAGENET = "3x224x224 images, 1000 classes"

_ENTRIES = (
    _reference(
        "mlp", "MLP 784-512-256-10 on flattened 28x28 images", (TensorSpec("input", (BATCH, 784)),)
    ),
    _reference("lenet5", "LeNet-5, 1x32x32 images, 10 classes", _image(1, 32)),
    _reference("resnet18", f"ResNet-18, {_IMAGENET}", _image(3, 224)),
    _reference("resnet50", f"ResNet-50, {_IMAGENET}", _image(3, 224)),
    _reference("mobilenet_v2", f"MobileNetV2, {_IMAGENET}", _image(3, 224)),
    _reference("vgg16", f"VGG-16, {_IMAGENET}", _image(3, 224)),
    _reference("alexnet", f"AlexNet, {_IMAGENET}", _image(3, 224)),
    _reference("googlenet", f"GoogLeNet (Inception v1, no aux heads), {_IMAGENET}", _image(3, 224)),
    _reference(
        "unet_small",
        "Small U-Net (depth 3, width 16), 3x128x128 images to 2-class per-pixel logits",
        _image(3, 128),
        task="segmentation",
    ),
    _reference(
        "lstm_classifier",
        "2-layer LSTM sequence classifier, 64 steps x 32 features, 5 classes",
        (TensorSpec("input", (BATCH, 64, 32)),),
    ),
    _reference(
        "anomaly_cnn1d",
        "1-D CNN step-anomaly detector on a 1x256 time series, 2 classes",
        (TensorSpec("input", (BATCH, 1, 256)),),
    ),
)

ZOO: dict[str, ZooEntry] = {entry.name: entry for entry in _ENTRIES}
"""Every reference model, by name."""


def get_entry(name: str) -> ZooEntry:
    """The zoo entry called ``name``; UserError listing the valid names if there is none."""
    try:
        return ZOO[name]
    except KeyError:
        raise UserError(f"unknown model '{name}': choose one of {', '.join(ZOO)}") from None
