"""Processes that end with the one that started them: a worker whose run was killed,
a tool (trtexec, tegrastats) whose worker was killed by a timeout."""

from __future__ import annotations

import ctypes
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager

_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
KERNEL_ENDS_ORPHANS = _LIBC is not None
"""Whether a process started with ``tool_options`` is killed by the kernel when its
parent dies (Linux); elsewhere it must watch for that itself."""


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


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C raises KeyboardInterrupt (see ``stop_on_terminate``)."""


_terminations: list[int] = []


@contextmanager
def stop_on_terminate() -> Iterator[None]:
    """While the block runs, SIGTERM (a cancelled CI job, ``kill``) raises ``Terminated``
    in the main thread, so that a run stops as on Ctrl-C: what was measured is kept and
    the resume command said. Enter it from the main thread."""
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def terminated() -> bool:
    """Whether SIGTERM has arrived since ``stop_on_terminate``."""
    return bool(_terminations)


def _raise_terminated(signum: int, frame: object) -> None:
    _terminations.append(signum)
    raise Terminated
