"""Reference PyTorch modules for the zoo, built with random (seeded by the caller) weights.

Every builder takes no arguments and returns an ``nn.Module``; the caller seeds torch,
sets eval mode and never downloads pretrained weights. This module imports torch and
torchvision, so only ``exporters.source`` imports it, lazily.

Freshly initialised networks with BatchNorm can have vanishing activations (MobileNetV2's
logits are ~1e-9, GoogLeNet's ~1e-2 and independent of the input), which would make
FP16 comparisons meaningless. Those builders therefore calibrate their BatchNorm
statistics on one batch of seeded random inputs, so every BN layer outputs unit scale.
Every network whose residual branches end in a BatchNorm (the ResNets, FCN's backbone,
MobileNetV2, Xception, the YOLO detector) also halves them (``damped``), which keeps deep
random stacks from amplifying rounding error. GoogLeNet and DenseNet concatenate their
branches instead: they have none to halve (docs/zoo-drift.md gives their bf16 drift).
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise

import torch
import torchvision
from torch import nn
from torchvision.models.mobilenetv2 import InvertedResidual
from torchvision.models.resnet import BasicBlock, Bottleneck

CALIBRATION_BATCH = 4
_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def calibrated(module: nn.Module, *sample_shape: int) -> nn.Module:
    """``module`` with BatchNorm running statistics set from one batch of random inputs.

    Inputs are uniform in [-1, 1) like the benchmark's, drawn from torch's global RNG, so
    the result is fixed by the caller's seed. The module is left in training mode. On the
    meta device (sizes and FLOPs only) there are no statistics to set: nothing runs.
    """
    if any(parameter.is_meta for parameter in module.parameters()):
        return module
    norms = [m for m in module.modules() if isinstance(m, _BATCH_NORMS)]
    momenta = [norm.momentum for norm in norms]
    for norm in norms:
        norm.momentum = 1.0  # the running statistics become exactly this batch's
    module.train()
    with torch.no_grad():
        module(torch.rand(CALIBRATION_BATCH, *sample_shape) * 2 - 1)
    for norm, momentum in zip(norms, momenta, strict=True):
        norm.momentum = momentum
    return module


RESIDUAL_DAMPING = 0.5
"""What ``damped`` scales each residual branch by."""


def residual_norms(module: nn.Module) -> Iterator[nn.Module]:
    """The last BatchNorm of every residual branch of torchvision's ResNets (basic and
    bottleneck blocks; FCN's backbone too) and of MobileNetV2 (the inverted residuals
    that add their input: those that keep its shape)."""
    for block in module.modules():
        if isinstance(block, BasicBlock):
            yield block.bn2
        elif isinstance(block, Bottleneck):
            yield block.bn3
        elif isinstance(block, InvertedResidual) and block.use_res_connect:
            yield block.conv[-1]


def damped(module: nn.Module, norms: Iterator[nn.Module]) -> nn.Module:
    """``module`` with ``norms``, the last BatchNorm of each residual branch, scaled by
    ``RESIDUAL_DAMPING``, so each branch adds half its calibrated output to the stream.

    At full scale a deep stack of random residual blocks amplifies rounding chaotically:
    ResNet-152 in fp32 and in fp64 then differ by 3e-4 of the output scale (in bf16 by
    20 %), so that no runtime could pass even an fp32 comparison. Halved: 6e-7 (under 1 %).
    ResNet-50 and MobileNetV2 in bf16 drift by 15 % and 10 % at full scale, 0.6 % and 1 %
    halved (PyTorch on the CPU; docs/zoo-drift.md).
    """
    with torch.no_grad():
        for norm in list(norms):
            norm.weight.mul_(RESIDUAL_DAMPING)
            norm.bias.mul_(RESIDUAL_DAMPING)
    return module


def calibrated_and_damped(module: nn.Module, *sample_shape: int) -> nn.Module:
    """``module`` ``calibrated`` on ``sample_shape``, then ``damped`` on its torchvision
    residual branches (``residual_norms``)."""
    model = calibrated(module, *sample_shape)
    return damped(model, residual_norms(model))


def mlp() -> nn.Module:
    """A 784→512→256→10 multilayer perceptron on flattened 28x28 images."""
    return nn.Sequential(
        nn.Linear(784, 512),
        nn.ReLU(),
        nn.Linear(512, 256),
        nn.ReLU(),
        nn.Linear(256, 10),
    )


def lenet5() -> nn.Module:
    """LeNet-5 on 1x32x32 images, 10 classes (tanh activations, average pooling)."""
    return nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5),
        nn.Tanh(),
        nn.AvgPool2d(2),
        nn.Conv2d(6, 16, kernel_size=5),
        nn.Tanh(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120),
        nn.Tanh(),
        nn.Linear(120, 84),
        nn.Tanh(),
        nn.Linear(84, 10),
    )


def resnet18() -> nn.Module:
    """torchvision ResNet-18, 1000 classes, random weights, calibrated and damped BN."""
    return calibrated_and_damped(torchvision.models.resnet18(weights=None), 3, 224, 224)


def resnet50() -> nn.Module:
    """torchvision ResNet-50, 1000 classes, random weights, calibrated and damped BN."""
    return calibrated_and_damped(torchvision.models.resnet50(weights=None), 3, 224, 224)


def mobilenet_v2() -> nn.Module:
    """torchvision MobileNetV2, 1000 classes, random weights, calibrated and damped BN."""
    return calibrated_and_damped(torchvision.models.mobilenet_v2(weights=None), 3, 224, 224)


def vgg16() -> nn.Module:
    """torchvision VGG-16, 1000 classes, random weights."""
    return torchvision.models.vgg16(weights=None)


def alexnet() -> nn.Module:
    """torchvision AlexNet, 1000 classes, random weights."""
    return torchvision.models.alexnet(weights=None)


def googlenet() -> nn.Module:
    """torchvision GoogLeNet without auxiliary heads, random weights, calibrated BatchNorm."""
    model = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=True)
    return calibrated(model, 3, 224, 224)


def _double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """A small U-Net: ``depth`` down/up stages, channel width doubling from ``base``.

    Maps [N, in_channels, H, W] to per-pixel logits [N, classes, H, W]; H and W must be
    divisible by 2**depth.
    """

    def __init__(self, in_channels: int = 3, classes: int = 2, depth: int = 3, base: int = 16):
        super().__init__()
        widths = [base * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList()
        channels = in_channels
        for width in widths[:-1]:
            self.down.append(_double_conv(channels, width))
            channels = width
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = _double_conv(widths[-2], widths[-1])
        self.up = nn.ModuleList()
        self.up_conv = nn.ModuleList()
        for width in reversed(widths[:-1]):
            self.up.append(nn.ConvTranspose2d(width * 2, width, kernel_size=2, stride=2))
            self.up_conv.append(_double_conv(width * 2, width))
        self.head = nn.Conv2d(widths[0], classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for up, conv, skip in zip(self.up, self.up_conv, reversed(skips), strict=True):
            x = conv(torch.cat([up(x), skip], dim=1))
        return self.head(x)


def unet_small() -> nn.Module:
    """A depth-3, width-16 U-Net, calibrated BatchNorm: 3x128x128 to 2-class pixel logits."""
    return calibrated(UNet(in_channels=3, classes=2, depth=3, base=16), 3, 128, 128)


class LSTMClassifier(nn.Module):
    """A 2-layer LSTM over [N, seq, features] whose last hidden state feeds a linear head."""

    def __init__(self, features: int = 32, hidden: int = 128, layers: int = 2, classes: int = 5):
        super().__init__()
        self.lstm = nn.LSTM(features, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sequence, _ = self.lstm(x)
        return self.head(sequence[:, -1, :])


def lstm_classifier() -> nn.Module:
    """Sequence classifier: [N, 64 steps, 32 features] to 5 class logits."""
    return LSTMClassifier(features=32, hidden=128, layers=2, classes=5)


def anomaly_cnn1d() -> nn.Module:
    """1-D CNN, calibrated BatchNorm: a [N, 1, 256] series to 2 logits (normal, step)."""

    def block(in_channels: int, out_channels: int) -> list[nn.Module]:
        return [
            nn.Conv1d(in_channels, out_channels, kernel_size=7, padding=3, bias=False),
            nn.BatchNorm1d(out_channels),
            nn.ReLU(inplace=True),
            nn.MaxPool1d(2),
        ]

    model = nn.Sequential(
        *block(1, 16),
        *block(16, 32),
        *block(32, 64),
        nn.AdaptiveAvgPool1d(1),
        nn.Flatten(),
        nn.Linear(64, 2),
    )
    return calibrated(model, 1, 256)


def resnet152() -> nn.Module:
    """torchvision ResNet-152, 1000 classes, random weights, calibrated and damped BN."""
    return calibrated_and_damped(torchvision.models.resnet152(weights=None), 3, 224, 224)


def densenet161() -> nn.Module:
    """torchvision DenseNet-161, 1000 classes, random weights, calibrated BatchNorm."""
    return calibrated(torchvision.models.densenet161(weights=None), 3, 224, 224)


def vit_b16() -> nn.Module:
    """torchvision ViT-B/16, 1000 classes, random weights; the head PyTorch's default Linear
    init (torchvision zeroes it, which would make every logit 0)."""
    model = torchvision.models.vit_b_16(weights=None)
    model.heads.head.reset_parameters()
    return model


class _OutTensor(nn.Module):
    """A torchvision segmentation model returning its ``out`` tensor instead of a dict."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)["out"]


def fcn_resnet50() -> nn.Module:
    """torchvision FCN-ResNet50 (no aux head), 21 classes, calibrated and damped BN:
    3x224x224 to per-pixel logits."""
    model = torchvision.models.segmentation.fcn_resnet50(
        weights=None, weights_backbone=None, num_classes=21, aux_loss=False
    )
    return calibrated_and_damped(_OutTensor(model), 3, 224, 224)


def dcgan_generator() -> nn.Module:
    """DCGAN generator: a [N, 100, 1, 1] latent to a 3x64x64 tanh image, calibrated BN."""
    layers: list[nn.Module] = []
    widths = [100, 512, 256, 128, 64]
    for index, (cin, cout) in enumerate(pairwise(widths)):
        stride, padding = (1, 0) if index == 0 else (2, 1)
        layers += [
            nn.ConvTranspose2d(cin, cout, 4, stride, padding, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(),
        ]
    layers += [nn.ConvTranspose2d(widths[-1], 3, 4, 2, 1, bias=False), nn.Tanh()]
    return calibrated(nn.Sequential(*layers), 100, 1, 1)
