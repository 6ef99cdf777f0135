"""Published figures shown beside ours: the seed lecture's GPU sheet and the u39kun
benchmark tables, copied verbatim as CSV files whose header comments name their source.

Numbers only: nothing here is measured by this project.
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from pathlib import Path

GPU_SHEET = "seed-gpu-sheet.csv"
"""P100 vs V100: DL training / inferencing TFLOPS, FP64 / FP32, HBM2 and STREAM triad
bandwidth, NVLink, L2 and L1 caches (NVIDIA datasheet figures as the lecture quotes them)."""
U39KUN = "u39kun-deep-learning-benchmark.csv"
"""Per-batch eval / train ms of VGG16, ResNet-152 and DenseNet-161 at batch 16, fp32 and
fp16, on Titan V, GTX 1080 Ti, Tesla V100 and RTX 2080 Ti."""

_HERE = Path(__file__).resolve().parent


@functools.cache
def read_table(name: str) -> tuple[dict[str, str], ...]:
    """The rows of the published file ``name`` as dicts by column (comments skipped), read
    once per process."""
    lines = (_HERE / name).read_text().splitlines()
    return tuple(csv.DictReader(line for line in lines if not line.startswith("#")))


def source(name: str) -> str:
    """The file's header comments as one line: where the figures come from."""
    lines = (_HERE / name).read_text().splitlines()
    return " ".join(line.lstrip("# ").strip() for line in lines if line.startswith("#"))


@dataclass(frozen=True)
class Beside:
    """A table of ours beside published figures, whatever prints it (terminal, Markdown,
    HTML): its anchor and title, columns and rows (``text`` names the columns of words, the
    last of them the one that wraps; the others hold figures), a caption saying where the
    published figures come from, and notes under a heading (what differs)."""

    anchor: str
    title: str
    columns: tuple[str, ...]
    rows: list[list[str]]
    caption: str
    text: tuple[str, ...]
    notes: tuple[str, ...] = ()
    notes_heading: str = "What differs between ours and theirs"
