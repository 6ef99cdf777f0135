"""The console every verb prints to."""

from __future__ import annotations

from rich.console import Console


def console() -> Console:
    """A rich console; where the output is no terminal (a log file, a CI page), 160
    columns wide, so that tables are not squeezed to 80."""
    made = Console()
    if not made.is_terminal:
        made.width = 160
    return made
