"""Sections that set ours beside published figures: the u39kun and Lambda-style tables of
a run, and the GPU sheet of an ``hw`` result."""

from __future__ import annotations

from bench.core.record import CellRecord
from bench.html.page import Page
from bench.hw.records import HwRecord
from bench.hw.sheet import SHEET_TITLE, sheet_rows
from bench.published import GPU_SHEET, U39KUN, source
from bench.reproduce import (
    COLUMNS,
    LAMBDA_COLUMNS,
    LAMBDA_NOTE,
    lambda_rows,
    u39kun_differences,
    u39kun_rows,
)


def published_sections(
    page: Page, records: list[CellRecord], hw: list[HwRecord], machine: str = "", number: int = 0
) -> None:
    """Each table that has something of ours to show; ``machine`` names the machine in the
    headings and ``number`` keeps the anchors of several machines apart."""
    label = f": {machine}" if machine else ""
    ident = f"-{number}" if machine else ""
    rows = u39kun_rows(records)
    if rows:
        page.heading(f"u39kun: per-batch mean ms at batch 16{label}", anchor=f"u39kun{ident}")
        page.table(COLUMNS, [row.cells() for row in rows], caption=f"published: {source(U39KUN)}")
        page.paragraph("What differs between ours and theirs:")
        page.items(u39kun_differences(records))
    lambda_ = lambda_rows(records)
    if lambda_:
        page.heading(f"ResNet-50 training (Lambda-style){label}", anchor=f"lambda{ident}")
        page.table(LAMBDA_COLUMNS, lambda_, caption=LAMBDA_NOTE)
    if hw:
        columns, sheet = sheet_rows(hw)
        page.heading(f"{SHEET_TITLE}{label}", anchor=f"gpu-sheet{ident}")
        page.table(columns, sheet, caption=f"published: {source(GPU_SHEET)}")
