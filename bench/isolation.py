"""Running one job in its own spawned process, so that a crash, hang or out-of-memory
kill stays there and becomes a status instead of ending the run."""

from __future__ import annotations

import multiprocessing
import signal
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from bench.core.errors import Unavailable, UserError

_CONTEXT = multiprocessing.get_context("spawn")


@dataclass(frozen=True)
class WorkerOutcome:
    """How a worker ended: ``ok`` with its payload, or ``error`` (bad user input),
    ``skipped`` (the runtime cannot serve the cell here), ``failed`` (an exception),
    ``crashed`` (died without answering) or ``timeout``."""

    status: str
    payload: Any = None
    reason: str | None = None
    traceback: str | None = None


def run_in_worker(func: Callable[[Any], Any], job: Any, timeout_s: float) -> WorkerOutcome:
    """Call ``func(job)`` in a fresh spawned process and wait at most ``timeout_s``.

    ``func`` must be a module-level function, and ``job`` and what ``func`` returns must
    pickle (the typed jobs and results do); a failure's traceback comes back as text. The
    parent blocks on the pipe and the process sentinel together; it never polls. On
    KeyboardInterrupt the worker is killed and the interrupt goes on to the caller.
    """
    receiver, sender = _CONTEXT.Pipe(duplex=False)
    process = _CONTEXT.Process(target=_child, args=(sender, func, job), daemon=True)
    process.start()
    sender.close()
    try:
        ready = wait([receiver, process.sentinel], timeout=timeout_s)
        if receiver in ready:
            try:
                status, payload, reason, trace = receiver.recv()
            except EOFError:
                process.join()
                return WorkerOutcome("crashed", reason=_death_reason(process.exitcode))
            process.join(timeout=30)
            return WorkerOutcome(status, payload, reason, trace)
        if process.sentinel in ready:
            process.join()
            return WorkerOutcome("crashed", reason=_death_reason(process.exitcode))
        return WorkerOutcome("timeout", reason=f"did not finish within {timeout_s:g} s")
    finally:
        if process.is_alive():
            process.kill()
            process.join()
        receiver.close()


def _child(sender: Connection, func: Callable[[Any], Any], job: Any) -> None:
    # Ctrl-C is the parent's to handle: it kills this worker and keeps what was measured.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        message = ("ok", func(job), None, None)
    except UserError as exc:
        message = ("error", None, str(exc), None)
    except Unavailable as exc:
        message = ("skipped", None, str(exc), None)
    except Exception as exc:  # any failure of the measured code is a result, not a crash
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
        message = ("failed", None, reason, traceback.format_exc())
    sender.send(message)
    sender.close()


def _death_reason(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:  # a signal Python has no name for
            name = f"signal {-exitcode}"
        hint = " (out of memory?)" if name == "SIGKILL" else ""
        return f"worker killed by {name}{hint}"
    return f"worker exited with code {exitcode} without a result"
