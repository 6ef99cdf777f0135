"""The models of the paired gate's operating curve (scripts/gate_curve.py), as factories
for ``ab``: ResNet-18, a copy of it under another name (the side a calibrated slowdown is
injected into), and a real model change, ResNet-18 with about 5% more work; LeNet-5 and
its copy for the script's quick check.

``resnet18_deeper`` adds one residual branch after the last stage: a 3×3 convolution from
the 512 channels at 7×7 to 400 of them, added to those 400 (the other 112 pass through).
That is 7·7·512·400·9 = 90.3 M multiply-adds on top of ResNet-18's 1.814 G: +4.98%.

    python cli.py ab scripts.gate_variants:resnet18 scripts.gate_variants:resnet18_deeper \\
        --runtimes onnxruntime --precisions fp32
"""

from __future__ import annotations

import torch
from torch import nn

from exporters.models import lenet5 as zoo_lenet5
from exporters.models import resnet18 as zoo_resnet18

EXTRA_CHANNELS = 400


def _example() -> torch.Tensor:
    return torch.zeros(1, 3, 224, 224)


def resnet18() -> tuple[nn.Module, torch.Tensor]:
    """The zoo's ResNet-18 (seeded random weights, calibrated BatchNorm)."""
    return zoo_resnet18(), _example()


def resnet18_copy() -> tuple[nn.Module, torch.Tensor]:
    """The same model under its own name, for an A/A pair or an injected slowdown."""
    return zoo_resnet18(), _example()


def lenet5() -> tuple[nn.Module, torch.Tensor]:
    """The zoo's LeNet-5."""
    return zoo_lenet5(), torch.zeros(1, 1, 32, 32)


def lenet5_copy() -> tuple[nn.Module, torch.Tensor]:
    """The same model under its own name."""
    return zoo_lenet5(), torch.zeros(1, 1, 32, 32)


class _Branch(nn.Module):
    """``x`` plus a 3×3 convolution of it on its first ``EXTRA_CHANNELS`` channels."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, EXTRA_CHANNELS, 3, padding=1, bias=False)
        nn.init.normal_(self.conv.weight, std=0.01)
        self.rest = channels - EXTRA_CHANNELS

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + nn.functional.pad(self.conv(x), (0, 0, 0, 0, 0, self.rest))


def resnet18_deeper() -> tuple[nn.Module, torch.Tensor]:
    """ResNet-18 with one more residual branch after its last stage: +4.98% multiply-adds."""
    model = zoo_resnet18()
    model.layer4 = nn.Sequential(*model.layer4, _Branch(512))
    return model.eval(), _example()
