"""An ``ab`` as given on the command line, shared by its two designs: the paired one
(bench.commands.ab) and interleaved runs of two checkouts (bench.commands.ab_runs)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class AbRequest:
    """An ``ab`` as given on the command line."""

    base: str
    new: str
    config_path: Path
    profile: str | None = None
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    base_options: list[str] = field(default_factory=list)
    new_options: list[str] = field(default_factory=list)
    new_precision: str | None = None
    """Run the new side in this precision, every cell (a paired speedup)."""
    shapes: list[str] = field(default_factory=list)
    ranges: list[str] = field(default_factory=list)
    cache_dir: Path | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    """``[ab]`` keys given as flags (threshold, half_width, max_s, confirm)."""
    markdown: Path | None = None
    json: Path | None = None
    junit: Path | None = None
    show_progress: bool = True
