"""Tables of ours beside published figures as page sections: the u39kun and Lambda-style
tables of a run, and the GPU sheet of an ``hw`` result."""

from __future__ import annotations

from bench.published import Beside
from bench.views.html.page import Page


def published_sections(
    page: Page, tables: list[Beside], machine: str = "", number: int = 0
) -> None:
    """Each table with its heading, caption and notes; ``machine`` names the machine in
    the headings and ``number`` keeps the anchors of several machines apart."""
    label = f": {machine}" if machine else ""
    ident = f"-{number}" if machine else ""
    for table in tables:
        page.heading(f"{table.title}{label}", anchor=f"{table.anchor}{ident}")
        page.table(table.columns, table.rows, caption=table.caption)
        if table.notes:
            page.paragraph(f"{table.notes_heading}:")
            page.items(table.notes)
