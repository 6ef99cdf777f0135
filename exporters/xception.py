"""Xception (Chollet 2017): entry, middle (8 blocks) and exit flows of depthwise-separable
convolutions with residual shortcuts. Not in torchvision; random weights, seeded by the
caller, calibrated BatchNorm, residual branches damped as the zoo's other residual nets."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise

import torch
from torch import nn

from exporters.models import calibrated, damped


def _separable(in_channels: int, out_channels: int) -> nn.Sequential:
    """A 3x3 depthwise convolution then a 1x1 pointwise one (no bias: BatchNorm follows)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, in_channels, 3, padding=1, groups=in_channels, bias=False),
        nn.Conv2d(in_channels, out_channels, 1, bias=False),
    )


class _XceptionBlock(nn.Module):
    """ReLU, separable conv and BatchNorm from each width in ``widths`` to the next, plus a
    residual connection.

    With ``stride`` 2 the block ends in a 3x3 max pool and its residual is a strided 1x1
    convolution; the first block of the entry flow starts without the ReLU.
    """

    def __init__(self, widths: list[int], stride: int = 1, start_with_relu: bool = True) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for index, (cin, cout) in enumerate(pairwise(widths)):
            if index or start_with_relu:
                layers.append(nn.ReLU())
            layers += [_separable(cin, cout), nn.BatchNorm2d(cout)]
        if stride != 1:
            layers.append(nn.MaxPool2d(3, stride, padding=1))
        self.body = nn.Sequential(*layers)
        self.skip: nn.Module = nn.Identity()
        if stride != 1 or widths[0] != widths[-1]:
            self.skip = nn.Sequential(
                nn.Conv2d(widths[0], widths[-1], 1, stride=stride, bias=False),
                nn.BatchNorm2d(widths[-1]),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.skip(x)


def _conv_bn_relu(in_channels: int, out_channels: int, stride: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
    ]


def xception() -> nn.Module:
    """Xception: entry, middle (8 blocks) and exit flows, 3x299x299 to 1000 logits,
    calibrated and damped BatchNorm."""
    model = nn.Sequential(
        *_conv_bn_relu(3, 32, stride=2),
        *_conv_bn_relu(32, 64),
        _XceptionBlock([64, 128, 128], stride=2, start_with_relu=False),
        _XceptionBlock([128, 256, 256], stride=2),
        _XceptionBlock([256, 728, 728], stride=2),
        *(_XceptionBlock([728, 728, 728, 728]) for _ in range(8)),
        _XceptionBlock([728, 728, 1024], stride=2),
        _separable(1024, 1536),
        nn.BatchNorm2d(1536),
        nn.ReLU(),
        _separable(1536, 2048),
        nn.BatchNorm2d(2048),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(2048, 1000),
    )
    model = calibrated(model, 3, 299, 299)
    return damped(model, _residual_norms(model))


def _residual_norms(model: nn.Module) -> Iterator[nn.Module]:
    """The last BatchNorm of every block's body (before its max pool, where it has one)."""
    for block in model.modules():
        if isinstance(block, _XceptionBlock):
            yield [layer for layer in block.body if isinstance(layer, nn.BatchNorm2d)][-1]
