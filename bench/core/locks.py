"""One writer per cache entry, across processes and runs (the ``filelock`` package).

The lock is a file beside the entry; the operating system releases it when its holder
dies, so an export killed by a timeout never blocks the next run. Whoever holds it may
treat any scratch left beside the entry as a dead writer's, and remove it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock


@contextmanager
def entry_lock(entry: Path, scratch: str | None = None) -> Iterator[None]:
    """Hold the lock of cache entry ``entry`` (``<entry>.lock``). With ``scratch`` (a glob
    beside the entry), first remove what earlier writers that died left there."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(entry.with_name(entry.name + ".lock"))):
        if scratch:
            for leftover in entry.parent.glob(scratch):
                if leftover.is_dir():
                    shutil.rmtree(leftover, ignore_errors=True)
                else:
                    leftover.unlink(missing_ok=True)
        yield
