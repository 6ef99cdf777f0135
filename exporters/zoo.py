"""The reference model zoo: what each model is, how to build it, and what it takes in.

This module imports neither torch nor the modules that build the models
(``exporters.models``, ``xception``, ``yolo``, ``bert``): the planner and the CLI list and validate
models without paying for a framework import. ``builder`` is a dotted
``package.module:function`` string resolved only when a model is actually built.

The models span image classification and segmentation, detection (a YOLO-class detector's
raw head maps), generation (a DCGAN generator) and encoding (a BERT-base-shaped text
encoder's hidden states): ``ZooEntry.task`` says which, and so how accuracy and the train
scenario treat the outputs. A model may have several named outputs (``output_names``) and,
beyond the batch, dynamic axes in its ONNX file (``dynamic_axes``: BERT's sequence).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.core.errors import UserError
from bench.core.spec import BATCH, TensorSpec


@dataclass(frozen=True)
class ZooEntry:
    """One reference model: its builder, its input specs (batch first) and its task.

    ``task`` says what the outputs are, and so how accuracy and training treat them:
    ``"classification"`` for class logits (top-1 agreement is meaningful, cross-entropy
    trains), ``"segmentation"`` for per-pixel class logits (cross-entropy per pixel),
    ``"detection"`` for raw detector head maps (boxes and class logits per cell, no
    decode), ``"generation"`` for generated samples such as images, and ``"encoding"`` for
    an encoder's hidden states; the last three train with mean squared error.

    ``dynamic_axes`` names the axes beyond the batch that the ONNX file keeps symbolic, by
    input or output name (``{"input_ids": {1: "sequence"}}``): one name is one shared size.
    The input specs still fix those axes, at the size the harness feeds.
    """

    name: str
    description: str
    builder: str
    inputs: tuple[TensorSpec, ...]
    output_names: tuple[str, ...] = ("logits",)
    task: str = "classification"
    dynamic_axes: dict[str, dict[int, str]] = field(default_factory=dict, hash=False)


def _image(channels: int, size: int) -> tuple[TensorSpec, ...]:
    return (TensorSpec("input", (BATCH, channels, size, size)),)


def _reference(
    name: str,
    description: str,
    inputs: tuple[TensorSpec, ...],
    task: str = "classification",
    output_names: tuple[str, ...] = ("logits",),
    dynamic_axes: dict[str, dict[int, str]] | None = None,
    module: str = "models",
) -> ZooEntry:
    """An entry whose builder is the function of the same name in ``exporters.<module>``."""
    builder = f"exporters.{module}:{name}"
    return ZooEntry(name, description, builder, inputs, output_names, task, dynamic_axes or {})


_IMAGENET = "3x224x224 images, 1000 classes"
_BERT_SEQUENCE = 128
"""The sequence length the harness feeds BERT; its ONNX file takes any up to 512."""
_BERT_VOCAB = 30522

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
    _reference("resnet152", f"ResNet-152, {_IMAGENET}", _image(3, 224)),
    _reference("densenet161", f"DenseNet-161, {_IMAGENET}", _image(3, 224)),
    _reference(
        "xception",
        "Xception (entry, 8 middle, exit flows), 3x299x299 images, 1000 classes",
        _image(3, 299),
        module="xception",
    ),
    _reference("vit_b16", f"ViT-B/16, {_IMAGENET}", _image(3, 224)),
    _reference(
        "fcn_resnet50",
        "FCN-ResNet50 (no aux head), 3x224x224 images to 21-class per-pixel logits",
        _image(3, 224),
        task="segmentation",
    ),
    _reference(
        "yolo_detector",
        "YOLOv8n-scale detector (C2f/SPPF backbone, PAN neck), 3x640x640 images, 80 classes:"
        " raw anchor-free head maps [4 box + 80 class] at strides 8/16/32, no decode or NMS",
        _image(3, 640),
        task="detection",
        output_names=("p3", "p4", "p5"),
        module="yolo",
    ),
    _reference(
        "dcgan_generator",
        "DCGAN generator, 100-d uniform latent to a 3x64x64 tanh image",
        (TensorSpec("latent", (BATCH, 100, 1, 1)),),
        task="generation",
        output_names=("image",),
    ),
    _reference(
        "bert_base",
        f"BERT-base-shaped encoder (12 layers, hidden 768, 12 heads), {_BERT_SEQUENCE} tokens"
        " (sequence dynamic up to 512 in the ONNX file), all-ones attention mask",
        (
            TensorSpec(
                "input_ids", (BATCH, _BERT_SEQUENCE), "int64", 0, _BERT_VOCAB, "BERT's vocabulary"
            ),
            TensorSpec(
                "attention_mask", (BATCH, _BERT_SEQUENCE), "int64", 1, 2, "every token, no padding"
            ),
        ),
        task="encoding",
        output_names=("last_hidden_state", "pooler_output"),
        dynamic_axes={
            name: {1: "sequence"} for name in ("input_ids", "attention_mask", "last_hidden_state")
        },
        module="bert",
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
