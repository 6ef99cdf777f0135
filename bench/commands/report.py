"""``cli.py report``: machines side by side from run and hw result directories."""

from __future__ import annotations

import argparse

from bench.commands.console import console
from bench.views.machines_report import machines_report


def report_verb(args: argparse.Namespace) -> int:
    return machines_report(args.dirs, args.hw, args.markdown, console(), args.html)
