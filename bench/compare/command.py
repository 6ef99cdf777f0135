"""The ``compare`` and ``baseline save`` verbs: read the sides, compare, print and write
the requested files, and return the exit code (0 pass, 1 regressed; UserError → 2)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from bench.compare import output
from bench.compare.gate import compare
from bench.compare.html import comparison_page
from bench.compare.metrics import Thresholds
from bench.compare.sides import baseline_document, load_side
from bench.config import CompareConfig, load_config
from bench.core.errors import UserError
from bench.results import check_output_folders, write_output

DEFAULT_SUITE = Path("bench.toml")


@dataclass
class CompareRequest:
    """A ``compare`` as given on the command line."""

    baseline: Path
    current: Path
    config: Path | None = None
    thresholds: list[str] = field(default_factory=list)
    alpha: float | None = None
    allow_different_hardware: bool = False
    markdown: Path | None = None
    json: Path | None = None
    junit: Path | None = None
    html: Path | None = None
    github_benchmark: Path | None = None


def run_compare(request: CompareRequest, console: Console) -> int:
    """Compare, print the table, write the requested files; 1 when the gate fails."""
    settings = _settings(request.config)
    thresholds = Thresholds(settings.threshold, tuple(sorted(settings.thresholds.items())))
    thresholds = thresholds.with_specs(request.thresholds)
    alpha = settings.alpha if request.alpha is None else request.alpha
    if not 0 < alpha < 0.5:
        raise UserError(f"--alpha {alpha} is out of range: give a level such as 0.05")
    check_output_folders(
        request.markdown, request.json, request.junit, request.html, request.github_benchmark
    )
    baseline, current = load_side(request.baseline), load_side(request.current)
    comparison = compare(baseline, current, thresholds, alpha, request.allow_different_hardware)
    console.print(output.terminal(comparison))
    if request.markdown:
        write_output(request.markdown, output.markdown(comparison))
    if request.json:
        write_output(
            request.json, json.dumps(comparison.to_dict(), indent=2, allow_nan=False) + "\n"
        )
    if request.junit:
        write_output(request.junit, output.junit(comparison))
    if request.html:
        write_output(request.html, comparison_page(comparison))
    if request.github_benchmark:
        entries = output.github_benchmark(current)
        write_output(request.github_benchmark, json.dumps(entries, indent=2) + "\n")
    return 1 if comparison.failed else 0


def save_baseline(run_dir: Path, destination: Path) -> int:
    """Write the baseline of ``run_dir`` to ``destination`` (folders made as needed)."""
    if not run_dir.is_dir():
        raise UserError(f"{run_dir} is not a directory: give a run's results directory")
    side = load_side(run_dir)
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_text(json.dumps(baseline_document(side, str(run_dir)), indent=1) + "\n")
    except OSError as exc:
        raise UserError(
            f"cannot write {destination} ({exc.strerror}): choose another path"
        ) from None
    repetitions = {len(cell.repetitions) for cell in side.cells.values() if cell.status == "ok"}
    runs = "/".join(str(n) for n in sorted(repetitions)) or "0"
    print(f"saved {len(side.cells)} cells ({runs} repetitions each) to {destination}")
    return 0


def _settings(path: Path | None) -> CompareConfig:
    """The suite's ``[compare]`` table: from ``path``, else bench.toml when present."""
    if path is None:
        if not DEFAULT_SUITE.is_file():
            return CompareConfig()
        path = DEFAULT_SUITE
    return load_config(path).compare
