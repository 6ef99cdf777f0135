"""Processes that end with the one that started them: a worker whose run was killed,
a tool (trtexec, tegrastats) whose worker was killed by a timeout."""

from __future__ import annotations

import ctypes
import signal
import sys

_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def kill_me_with_parent() -> bool:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux's
    ``PR_SET_PDEATHSIG``); False where that cannot be asked. As a subprocess's
    ``preexec_fn`` it binds the tool to the process that starts it."""
    if _LIBC is None:
        return False
    return _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0


def tool_options() -> dict[str, object]:
    """``subprocess`` keyword arguments for a tool that must not outlive its caller."""
    return {"preexec_fn": kill_me_with_parent} if _LIBC is not None else {}
