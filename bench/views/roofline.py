"""Roofline context for model cells: the FLOP rate a cell achieved, and its share of the
same device's measured matrix-multiply peak in the precision it executed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

from bench.core.errors import UserError
from bench.core.record import CellRecord
from bench.harness.environment import machine_id, read_environment
from bench.harness.results import ENVIRONMENT_FILE
from bench.hw.records import HW_FILE, HwRecord, best_of, read_hw
from bench.views.report import markdown_table

COLUMNS = (
    "model",
    "runtime",
    "target",
    "scenario",
    "samples/s",
    "GFLOP/sample",
    "achieved TFLOP/s",
    "peak TFLOP/s",
    "% of peak",
)


@dataclass(frozen=True)
class RooflineRow:
    """One ok cell with a FLOP count: its achieved rate and, when the device has a matching
    ``hw`` figure, that peak and the share of it (``peak_note`` says what it is or why none)."""

    model: str
    runtime: str
    device: str
    precision: str
    scenario: str
    batch: int
    samples_per_s: float
    flops_per_sample: float
    flop_factor: int
    achieved_tflops: float
    peak_tflops: float | None
    peak_note: str
    share: float | None


def roofline_rows(records: list[CellRecord], hw: list[HwRecord]) -> list[RooflineRow]:
    """A row for every ok cell whose model has a FLOP count and that has a throughput. A
    training step counts ``training.flop_factor`` (3) forward passes per sample."""
    rows = []
    for record in records:
        cell = record.cell
        flops = record.model.flops_per_sample if record.model else None
        samples = record.samples_per_s
        if not record.ok or not flops or not samples:
            continue
        precision = record.executed_precision
        factor = record.flop_factor
        achieved = flops * factor * samples / 1e12
        peak = best_of(hw, "matmul", cell.device, (precision,))
        if peak is not None and peak.best:
            note = f"n={peak.size}"
            share = achieved / peak.best
        else:
            note = f"no {precision} matmul figure for {cell.device}" if hw else "no hw result"
            share = None
        rows.append(
            RooflineRow(
                cell.model,
                cell.runtime,
                cell.device,
                precision,
                cell.scenario,
                cell.batch,
                samples,
                flops,
                factor,
                achieved,
                peak.best if peak else None,
                note,
                share,
            )
        )
    return rows


def check_hw_dirs(paths: list[Path]) -> None:
    """UserError naming the first of ``paths`` that holds no ``hw`` result."""
    for path in paths:
        if not (path / HW_FILE).is_file():
            raise UserError(f"{path} has no {HW_FILE}: pass a directory made by cli.py hw")


def find_hw(run_dir: Path, environment: dict[str, Any], explicit: list[Path]) -> list[HwRecord]:
    """The peaks for a run: the ``hw`` directories given (UserError if one has no hw.json),
    else the newest one beside ``run_dir`` whose machine matches ``environment``."""
    if explicit:
        check_hw_dirs(explicit)
        return [record for path in explicit for record in read_hw(path)]
    wanted = machine_id(environment)
    for candidate in sorted(run_dir.parent.glob(f"*/{HW_FILE}"), reverse=True):
        try:  # a damaged neighbour is not this run's business: skip it
            environment = read_environment(candidate.parent / ENVIRONMENT_FILE, "")
            if machine_id(environment) == wanted:
                return read_hw(candidate.parent)
        except (UserError, OSError, ValueError, TypeError, KeyError, AttributeError):
            continue
    return []


def row_cells(row: RooflineRow) -> list[str]:
    return [
        row.model,
        row.runtime,
        f"{row.device} {row.precision}",
        f"{row.scenario} b{row.batch}",
        f"{row.samples_per_s:,.1f}",
        f"{row.flops_per_sample / 1e9:.3g}"
        + (f" x{row.flop_factor}" if row.flop_factor != 1 else ""),
        f"{row.achieved_tflops:.3g}",
        f"{row.peak_tflops:.3g} ({row.peak_note})" if row.peak_tflops else row.peak_note,
        f"{row.share:.1%}" if row.share is not None else "-",
    ]


CAPTION = (
    "achieved = counted forward FLOPs per sample x samples/s; a training step counts "
    "3x the forward FLOPs (x3); peak = best measured matrix multiply of that device and "
    "precision (cli.py hw)"
)


def roofline_table(rows: list[RooflineRow], title: str) -> Table:
    table = Table(title=title, title_justify="left", caption=CAPTION, caption_justify="left")
    for name in COLUMNS:
        table.add_column(name, justify="left" if name in COLUMNS[:4] else "right")
    for row in rows:
        table.add_row(*row_cells(row))
    return table


def roofline_markdown(rows: list[RooflineRow]) -> str:
    """The roofline table as Markdown (every cell escaped), with its caption under it."""
    return markdown_table(COLUMNS, [row_cells(row) for row in rows]) + f"\n{CAPTION}\n"
