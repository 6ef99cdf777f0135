"""The ``compare`` and ``baseline save`` verbs: read the sides, compare, print and write
the requested files, and return the exit code (0 pass, 1 regressed; UserError → 2)."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from rich.console import Console

from bench.commands.console import console
from bench.compare import output
from bench.compare.gate import compare
from bench.compare.html import comparison_page
from bench.compare.noise import MIN_RUNS, PERCENTAGE, noise_thresholds
from bench.compare.sides import Side, baseline_document, load_side
from bench.compare.thresholds import Thresholds
from bench.core.budget import AccuracyBudget
from bench.core.errors import UserError
from bench.harness.config import CompareConfig, load_config
from bench.harness.environment import fleet_node, machine_id, machine_label
from bench.harness.results import check_output_folders, fleet_columns, write_output
from bench.views.report import markdown_text

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
    threshold_model: str | None = None
    noise: list[Path] = field(default_factory=list)
    accuracy_budget: str | None = None


def run_compare(request: CompareRequest, console: Console) -> int:
    """Compare, print the table, write the requested files; 1 when the gate fails."""
    settings = compare_settings(request.config)
    thresholds = Thresholds.of_suite(settings)
    thresholds = thresholds.with_specs(request.thresholds)
    thresholds = _with_noise(
        thresholds, request.threshold_model or settings.threshold_model, request.noise
    )
    alpha = settings.alpha if request.alpha is None else request.alpha
    if not 0 < alpha < 0.5:
        raise UserError(f"--alpha {alpha} is out of range: give a level such as 0.05")
    budget = _budget(request.accuracy_budget or settings.accuracy_budget)
    check_output_folders(
        request.markdown, request.json, request.junit, request.html, request.github_benchmark
    )
    pairs, alone = machine_pairs(request.baseline, request.current)
    for machine in alone:
        console.print(f"not compared: {machine}", markup=False)
    if len(pairs) > 1:
        return _compare_machines(request, pairs, thresholds, alpha, budget, console)
    baseline, current = pairs[0]
    comparison = compare(
        baseline, current, thresholds, alpha, request.allow_different_hardware, budget=budget
    )
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


def machine_pairs(baseline: Path, current: Path) -> tuple[list[tuple[Side, Side]], list[str]]:
    """The sides to compare: the two paths themselves, or, where one is a fleet run of
    several machines, each machine's folder with the other side's folder of the same
    machine (hardware fingerprint and node; else the one folder of that hardware); and
    the machines found on one side only. UserError when no machine is on both sides."""
    folders = [fleet_columns(path) if path.is_dir() else [path] for path in (baseline, current)]
    sides = [[load_side(folder) for folder in paths] for paths in folders]
    if len(sides[0]) == 1 and len(sides[1]) == 1:
        return [(sides[0][0], sides[1][0])], []
    pairs = []
    for side in sides[0]:
        hardware = machine_id(side.environment)
        alike = [s for s in sides[1] if machine_id(s.environment) == hardware]
        same = [s for s in alike if fleet_node(s.environment) == fleet_node(side.environment)]
        if same or len(alike) == 1:
            pairs.append((side, (same or alike)[0]))
    if not pairs:
        raise UserError(
            f"{baseline} and {current} share no machine (hardware fingerprint): compare fleet "
            "runs of the same nodes, or give one machine's folder of each"
        )
    paired = {id(side) for pair in pairs for side in pair}
    alone = [
        f"{_machine_name(side.environment)} ({where} only)"
        for where, group in (("baseline", sides[0]), ("current", sides[1]))
        for side in group
        if id(side) not in paired
    ]
    return pairs, alone


def _compare_machines(
    request: CompareRequest,
    pairs: list[tuple[Side, Side]],
    thresholds: Thresholds,
    alpha: float,
    budget: AccuracyBudget | None,
    console: Console,
) -> int:
    """Each machine of a fleet run against the same machine on the other side: one gate
    per machine, printed and written one after another; 1 when any fails."""
    unsupported = [
        flag
        for flag, given in (
            ("--junit", request.junit),
            ("--html", request.html),
            ("--github-benchmark", request.github_benchmark),
        )
        if given
    ]
    if unsupported:
        raise UserError(
            f"{', '.join(unsupported)} writes one machine's comparison, and these runs hold "
            f"{len(pairs)}: give one machine's folder of each (e.g. {pairs[0][1].label})"
        )
    comparisons = []
    for base, current in pairs:
        comparison = compare(
            base, current, thresholds, alpha, request.allow_different_hardware, budget=budget
        )
        console.rule(_machine_name(comparison.current.environment))
        console.print(output.terminal(comparison))
        comparisons.append(comparison)
    if request.markdown:
        text = "".join(
            f"## {markdown_text(_machine_name(c.current.environment))}\n\n{output.markdown(c)}\n"
            for c in comparisons
        )
        write_output(request.markdown, text)
    if request.json:
        document = {
            "gate": "fail" if any(c.failed for c in comparisons) else "pass",
            "machines": [
                {"machine": _machine_name(c.current.environment), **c.to_dict()}
                for c in comparisons
            ],
        }
        write_output(request.json, json.dumps(document, indent=2, allow_nan=False) + "\n")
    return 1 if any(c.failed for c in comparisons) else 0


def _machine_name(environment: dict) -> str:
    node = fleet_node(environment)
    return machine_label(environment) + (f" on {node}" if node else "")


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


def _with_noise(thresholds: Thresholds, model: str, history: list[Path]) -> Thresholds:
    """``thresholds`` with each cell's own, derived by ``model`` from the runs of
    unchanged code in ``history`` (``--noise``)."""
    if model == PERCENTAGE:
        if history:
            raise UserError("--noise needs a threshold model: add --threshold-model t-test or iqr")
        return thresholds
    if len(history) < MIN_RUNS:
        raise UserError(
            f"--threshold-model {model} derives each cell's threshold from runs of unchanged "
            f"code: give at least {MIN_RUNS} with --noise (results directories or baselines)"
        )
    derived = noise_thresholds([load_side(path) for path in history], model)
    return replace(thresholds, cells=tuple(derived))


def compare_settings(path: Path | None) -> CompareConfig:
    """The suite's ``[compare]`` table: from ``path``, else bench.toml when present."""
    if path is None:
        if not DEFAULT_SUITE.is_file():
            return CompareConfig()
        path = DEFAULT_SUITE
    return load_config(path).compare


def compare_verb(args: argparse.Namespace) -> int:
    request = CompareRequest(
        baseline=args.baseline,
        current=args.current,
        config=args.config,
        thresholds=args.threshold,
        alpha=args.alpha,
        allow_different_hardware=args.allow_different_hardware,
        markdown=args.markdown,
        json=args.json,
        junit=args.junit,
        html=args.html,
        github_benchmark=args.github_benchmark,
        threshold_model=args.threshold_model,
        noise=args.noise,
        accuracy_budget=args.accuracy_budget,
    )
    return run_compare(request, console())


def _budget(text: str | None) -> AccuracyBudget | None:
    """The accuracy budget given (flag, else ``[compare] accuracy_budget``); UserError
    naming the forms where it reads as none."""
    if text is None:
        return None
    try:
        return AccuracyBudget.parse(text)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def baseline_save_verb(args: argparse.Namespace) -> int:
    return save_baseline(args.run_dir, args.file)
