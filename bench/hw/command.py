"""The ``hw`` verb: measure, write the result directory, print the table."""

from __future__ import annotations

import shutil
from pathlib import Path

from rich.console import Console

from bench.hw.suite import HwOptions, create_hw_dir, run_hw, write_hw
from bench.hw.table import hw_table


def hw_command(options: HwOptions, results_root: Path, console: Console) -> int:
    """Measure, write ``<results_root>/<stamp>-hw/`` and print the table. Exit code 0 when
    nothing failed (an unavailable dtype or device is not a failure), else 1."""
    run_dir = create_hw_dir(results_root, options)
    try:
        with console.status("measuring") as status:
            records = run_hw(options, lambda label: status.update(f"measuring {label}"))
    except BaseException:  # Ctrl-C or a crash: leave no directory without hw.json behind
        shutil.rmtree(run_dir.path)
        raise
    write_hw(run_dir, records)
    console.print(hw_table(records, f"hw: {run_dir.path}"))
    return 1 if any(r.status == "failed" for r in records) else 0
