"""A YOLO-class single-stage detector in the YOLOv8 layout (C2f backbone, SPPF, PAN neck,
decoupled head) with raw per-scale head outputs, as trtexec users benchmark detectors:
no decode and no NMS in the graph. Random weights, seeded by the caller."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from exporters.models import calibrated, damped


class _ConvBnSiLU(nn.Sequential):
    """YOLO's ``Conv``: a convolution without bias, BatchNorm, SiLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 1, stride: int = 1):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, bias=False),
            nn.BatchNorm2d(out_channels, eps=1e-3, momentum=0.03),
            nn.SiLU(),
        )


class _Bottleneck(nn.Module):
    """Two 3x3 convolutions, with a residual connection when ``shortcut``."""

    def __init__(self, channels: int, shortcut: bool):
        super().__init__()
        self.body = nn.Sequential(
            _ConvBnSiLU(channels, channels, 3), _ConvBnSiLU(channels, channels, 3)
        )
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) if self.shortcut else self.body(x)


class _C2f(nn.Module):
    """YOLOv8's CSP block: split in two halves, ``depth`` bottlenecks on one, concatenate
    every intermediate result, fuse with a 1x1 convolution."""

    def __init__(self, in_channels: int, out_channels: int, depth: int, shortcut: bool):
        super().__init__()
        self.half = out_channels // 2
        self.split = _ConvBnSiLU(in_channels, 2 * self.half)
        self.blocks = nn.ModuleList(_Bottleneck(self.half, shortcut) for _ in range(depth))
        self.fuse = _ConvBnSiLU((2 + depth) * self.half, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = list(self.split(x).split(self.half, dim=1))
        for block in self.blocks:
            parts.append(block(parts[-1]))
        return self.fuse(torch.cat(parts, dim=1))


class _SPPF(nn.Module):
    """Spatial pyramid pooling, fast: three chained 5x5 max pools, concatenated."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        hidden = in_channels // 2
        self.reduce = _ConvBnSiLU(in_channels, hidden)
        self.pool = nn.MaxPool2d(5, 1, 2)
        self.fuse = _ConvBnSiLU(4 * hidden, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = [self.reduce(x)]
        for _ in range(3):
            parts.append(self.pool(parts[-1]))
        return self.fuse(torch.cat(parts, dim=1))


class YOLODetector(nn.Module):
    """A YOLOv8-layout single-stage detector with raw per-scale head outputs.

    ``widths`` are the channels at strides 2, 4, 8, 16, 32 and ``depths`` the bottleneck
    counts of the four backbone C2f blocks (YOLOv8n: 16..256 and 1, 2, 2, 1; the neck's
    blocks take the first count, as YOLOv8's scaling gives them). Maps
    [N, 3, H, W] (H, W divisible by 32) to three tensors at strides 8, 16 and 32, each
    [N, 4 + classes, H/s, W/s]: box distances (DFL-free, one value per side) and class
    logits, before any decode or NMS.
    """

    def __init__(
        self,
        widths: tuple[int, ...] = (16, 32, 64, 128, 256),
        depths: tuple[int, ...] = (1, 2, 2, 1),
        classes: int = 80,
    ):
        super().__init__()
        w1, w2, w3, w4, w5 = widths
        self.stem = nn.Sequential(_ConvBnSiLU(3, w1, 3, 2), _ConvBnSiLU(w1, w2, 3, 2))
        self.stage2 = _C2f(w2, w2, depths[0], True)
        self.stage3 = nn.Sequential(_ConvBnSiLU(w2, w3, 3, 2), _C2f(w3, w3, depths[1], True))
        self.stage4 = nn.Sequential(_ConvBnSiLU(w3, w4, 3, 2), _C2f(w4, w4, depths[2], True))
        self.stage5 = nn.Sequential(
            _ConvBnSiLU(w4, w5, 3, 2), _C2f(w5, w5, depths[3], True), _SPPF(w5, w5)
        )
        self.up = nn.Upsample(scale_factor=2.0, mode="nearest")
        self.top_down4 = _C2f(w5 + w4, w4, depths[0], False)
        self.top_down3 = _C2f(w4 + w3, w3, depths[0], False)
        self.down3 = _ConvBnSiLU(w3, w3, 3, 2)
        self.bottom_up4 = _C2f(w3 + w4, w4, depths[0], False)
        self.down4 = _ConvBnSiLU(w4, w4, 3, 2)
        self.bottom_up5 = _C2f(w4 + w5, w5, depths[0], False)
        # YOLOv8's branch widths: max(16, P3 / 4, 4 x reg_max 16) and max(P3, min(classes, 100))
        box, cls = max(16, w3 // 4, 64), max(w3, min(classes, 100))
        self.box = nn.ModuleList(self._branch(c, box, 4) for c in (w3, w4, w5))
        self.cls = nn.ModuleList(self._branch(c, cls, classes) for c in (w3, w4, w5))

    @staticmethod
    def _branch(in_channels: int, hidden: int, out_channels: int) -> nn.Sequential:
        return nn.Sequential(
            _ConvBnSiLU(in_channels, hidden, 3),
            _ConvBnSiLU(hidden, hidden, 3),
            nn.Conv2d(hidden, out_channels, 1),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        c3 = self.stage3(self.stage2(self.stem(x)))
        c4 = self.stage4(c3)
        c5 = self.stage5(c4)
        t4 = self.top_down4(torch.cat([self.up(c5), c4], dim=1))
        p3 = self.top_down3(torch.cat([self.up(t4), c3], dim=1))
        p4 = self.bottom_up4(torch.cat([self.down3(p3), t4], dim=1))
        p5 = self.bottom_up5(torch.cat([self.down4(p4), c5], dim=1))
        outputs = [
            torch.cat([box(p), cls(p)], dim=1)
            for p, box, cls in zip((p3, p4, p5), self.box, self.cls, strict=True)
        ]
        return outputs[0], outputs[1], outputs[2]


def yolo_detector() -> nn.Module:
    """YOLOv8n-scale detector, 80 classes, calibrated and damped BatchNorm: 3x640x640 to
    raw [N, 84, H/s, W/s] head outputs at strides 8, 16, 32 (no decode, no NMS)."""
    model = calibrated(YOLODetector(), 3, 640, 640)
    return damped(model, _residual_norms(model))


def _residual_norms(model: nn.Module) -> Iterator[nn.Module]:
    """The last BatchNorm of every bottleneck with a shortcut."""
    for block in model.modules():
        if isinstance(block, _Bottleneck) and block.shortcut:
            yield block.body[-1][1]
