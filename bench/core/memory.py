"""The process's own memory figures."""

from __future__ import annotations

import resource
import sys
from pathlib import Path

_STATUS = Path("/proc/self/status")


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far: Linux's ``VmHWM``, which starts again
    at exec (``ru_maxrss`` carries a spawning parent's peak over into the child, so a
    worker started by a parent holding a large dataset would report the parent's);
    elsewhere ``ru_maxrss`` (KiB on Linux, bytes on macOS)."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024
