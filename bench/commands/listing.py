"""``cli.py list``: the reference models, the runtimes and the GPU stack."""

from __future__ import annotations

import argparse

from bench.commands.console import console
from bench.views import catalog


def list_verb(args: argparse.Namespace) -> int:
    shown = console()
    shown.print(catalog.models_table())
    shown.print(catalog.runtimes_table())
    shown.print(catalog.gpu_stack_table())
    return 0
