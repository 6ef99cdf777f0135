"""Running one job in its own spawned process, so that a crash, hang or out-of-memory
kill stays there and becomes a status instead of ending the run.

The worker tells the parent which phase it is in (``enter_phase``), so that a timeout or
a crash names it; and it never outlives the parent: on Linux the kernel kills it when the
parent dies (``PR_SET_PDEATHSIG``), elsewhere a watchdog thread ends it.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from bench.core.errors import Unavailable, UserError
from bench.core.lifetime import kill_me_with_parent

_CONTEXT = multiprocessing.get_context("spawn")
FIRST_PHASE = "worker start"
"""The phase of a worker until it names one: spawning, unpickling the job, imports."""
_sender: Connection | None = None


@dataclass(frozen=True)
class WorkerOutcome:
    """How a worker ended: ``ok`` with its payload, or ``error`` (bad user input),
    ``skipped`` (the runtime cannot serve the cell here), ``failed`` (an exception),
    ``crashed`` (died without answering) or ``timeout``; ``phase`` is the phase it
    was in (see ``enter_phase``)."""

    status: str
    payload: Any = None
    reason: str | None = None
    traceback: str | None = None
    phase: str = FIRST_PHASE


def enter_phase(name: str) -> None:
    """In a worker: say that the job now enters phase ``name`` (``build``, ``load`` …).
    Elsewhere: nothing."""
    if _sender is not None:
        _sender.send(("phase", name))


def run_in_worker(func: Callable[[Any], Any], job: Any, timeout_s: float) -> WorkerOutcome:
    """Call ``func(job)`` in a fresh spawned process and wait at most ``timeout_s`` for
    all of it, every phase included.

    ``func`` must be a module-level function, and ``job`` and what ``func`` returns must
    pickle (the typed jobs and results do); a failure's traceback comes back as text. The
    parent blocks on the pipe and the process sentinel together; it never polls. On
    KeyboardInterrupt the worker is killed and the interrupt goes on to the caller.
    """
    receiver, sender = _CONTEXT.Pipe(duplex=False)
    process = _CONTEXT.Process(target=_child, args=(sender, func, job, os.getpid()), daemon=True)
    process.start()
    sender.close()
    deadline = time.monotonic() + timeout_s
    phase = FIRST_PHASE
    try:
        while True:
            remaining = deadline - time.monotonic()
            ready = wait([receiver, process.sentinel], timeout=max(0.0, remaining))
            if not ready:
                reason = f"stopped in {phase}: the worker did not finish within {timeout_s:g} s"
                return WorkerOutcome("timeout", reason=reason, phase=phase)
            message = _receive(receiver) if receiver in ready else None
            if message is None:  # died without answering
                phase = _last_phase(receiver, phase)
                process.join()
                reason = f"{_death_reason(process.exitcode)} in {phase}"
                return WorkerOutcome("crashed", reason=reason, phase=phase)
            if message[0] == "phase":
                phase = message[1]
                continue
            status, payload, reason, trace = message
            process.join(timeout=30)
            return WorkerOutcome(status, payload, reason, trace, phase)
    finally:
        if process.is_alive():
            process.kill()
            process.join()
        receiver.close()


def _receive(receiver: Connection) -> tuple | None:
    try:
        return receiver.recv()
    except EOFError:
        return None


def _last_phase(receiver: Connection, phase: str) -> str:
    """The last phase a dead worker announced (messages may wait in the pipe still)."""
    while receiver.poll():
        message = _receive(receiver)
        if message is None:
            break
        if message[0] == "phase":
            phase = message[1]
    return phase


def _child(sender: Connection, func: Callable[[Any], Any], job: Any, parent_pid: int) -> None:
    global _sender
    _die_with_parent(parent_pid)
    # Ctrl-C is the parent's to handle: it kills this worker and keeps what was measured.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _sender = sender
    try:
        message = ("ok", func(job), None, None)
    except UserError as exc:
        message = ("error", None, str(exc), None)
    except Unavailable as exc:
        message = ("skipped", None, str(exc), None)
    except Exception as exc:  # any failure of the measured code is a result, not a crash
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
        message = ("failed", None, reason, traceback.format_exc())
    try:
        sender.send(message)
        sender.close()
    except OSError:  # the parent is gone: nobody to tell
        os._exit(1)


def _die_with_parent(parent_pid: int) -> None:
    """End this worker when the run that started it ends, however it ends: the kernel's
    parent-death signal on Linux, else a thread that waits on the parent's sentinel."""
    if kill_me_with_parent():
        if os.getppid() != parent_pid:  # the parent died before the signal was set
            os._exit(1)
        return
    parent = multiprocessing.parent_process()
    if parent is None or os.getppid() != parent_pid:
        os._exit(1)

    def watch() -> None:
        wait([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def _death_reason(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:  # a signal Python has no name for
            name = f"signal {-exitcode}"
        hint = " (out of memory?)" if name == "SIGKILL" else ""
        return f"worker killed by {name}{hint}"
    return f"worker exited with code {exitcode} without a result"
