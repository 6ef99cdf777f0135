"""Running one job in its own process, so that a crash, hang or out-of-memory kill stays
there and becomes a status instead of ending the run.

A worker is a fresh interpreter (``python -c``) whose every step before the job is this
module's, so that a signal at any moment of its start leaves it silent:

- it is born with SIGINT and SIGTERM blocked (the parent blocks them while it starts the
  process, and the mask is inherited through exec), then ignores SIGINT: Ctrl-C is the
  parent's to handle, which kills the worker and keeps what was measured;
- it dies with the parent: on Linux the kernel kills it (``PR_SET_PDEATHSIG``, set before
  exec), elsewhere a thread ends it when its stdin, which the parent holds open, closes;
- a job the parent stopped handing over (interrupted, or killed) ends it without a word.

The worker tells the parent which phase it is in (``enter_phase``), so that a timeout or
a crash names it.
"""

from __future__ import annotations

import atexit
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from multiprocessing.connection import Connection, Pipe, wait
from typing import Any, BinaryIO

from bench.core.errors import Unavailable, UserError
from bench.core.lifetime import KERNEL_ENDS_ORPHANS, tool_options

FIRST_PHASE = "worker start"
"""The phase of a worker until it names one: starting, reading the job, imports."""
_STOPS = {signal.SIGINT, signal.SIGTERM}
# The worker's first lines: the parent's import path, then this module. A parent that
# stopped before it handed the path over leaves the worker an empty stdin.
_BOOTSTRAP = """\
import os, pickle, sys
try:
    sys.path[:] = pickle.load(sys.stdin.buffer)
except (EOFError, pickle.UnpicklingError):
    os._exit(1)
from bench.harness.isolation import serve_job
serve_job({fd})
"""
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
    """Call ``func(job)`` in a fresh process and wait at most ``timeout_s`` for all of
    it, every phase included.

    ``func`` must be a module-level function, and ``job`` and what ``func`` returns must
    pickle (the typed jobs and results do); a failure's traceback comes back as text. The
    parent blocks on the worker's answer pipe, which closes when the worker dies; it never
    polls. On KeyboardInterrupt the worker is killed and the interrupt goes on to the
    caller.
    """
    receiver, sender = Pipe(duplex=False)
    with _stops_held():  # until `process` is assigned, so the finally below can end it
        process = subprocess.Popen(
            [sys.executable, *_interpreter_flags(), "-c", _BOOTSTRAP.format(fd=sender.fileno())],
            stdin=subprocess.PIPE,
            bufsize=0,
            pass_fds=(sender.fileno(),),
            **tool_options(),
        )
    assert process.stdin is not None
    handing: threading.Thread | None = None
    deadline = time.monotonic() + timeout_s
    phase = FIRST_PHASE
    try:
        sender.close()
        data = pickle.dumps(sys.path) + pickle.dumps((func, job))
        # A thread hands the job over, so that a worker that never reads it still times out.
        handing = threading.Thread(target=_hand_over, args=(process.stdin, data), daemon=True)
        handing.start()
        while True:
            remaining = deadline - time.monotonic()
            if not wait([receiver], timeout=max(0.0, remaining)):
                reason = f"stopped in {phase}: the worker did not finish within {timeout_s:g} s"
                return WorkerOutcome("timeout", reason=reason, phase=phase)
            message = _receive(receiver)
            if message is None:  # died without answering
                phase = _last_phase(receiver, phase)
                process.wait()
                reason = f"{_death_reason(process.returncode)} in {phase}"
                return WorkerOutcome("crashed", reason=reason, phase=phase)
            if message[0] == "phase":
                phase = message[1]
                continue
            status, payload, reason, trace = message
            with suppress(subprocess.TimeoutExpired):
                process.wait(timeout=30)
            return WorkerOutcome(status, payload, reason, trace, phase)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if handing is not None:
            handing.join()  # its worker is gone: a write still waiting has failed
        process.stdin.close()
        receiver.close()


@contextmanager
def _stops_held() -> Iterator[None]:
    """SIGINT and SIGTERM held back from this thread while the block runs, and from a
    process started in it until it lets them through."""
    held = signal.pthread_sigmask(signal.SIG_BLOCK, _STOPS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


def _interpreter_flags() -> list[str]:
    """This interpreter's flags (-X, -W, -I …), for a worker started as it was."""
    return subprocess._args_from_interpreter_flags()  # multiprocessing's own source


def _hand_over(pipe: BinaryIO, data: bytes) -> None:
    view = memoryview(data)
    with suppress(BrokenPipeError):  # the worker died first: its answer pipe says how
        while view:
            view = view[pipe.write(view) :]


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


def serve_job(fd: int) -> None:
    """In a worker that ``run_in_worker`` started: read the job from stdin, run it, and
    send its outcome through the pipe ``fd``."""
    global _sender
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOPS)  # a SIGTERM waiting ends us here
    os.set_inheritable(fd, False)  # the tools this job starts do not hold the answer pipe
    sender = Connection(fd, readable=False)
    try:
        func, job = _read_job()
        _watch_parent(_stdin_to_devnull())
        _sender = sender
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
    _exit_without_teardown()


def _exit_without_teardown() -> None:
    """End the worker once its answer is sent: exit handlers run and output is flushed,
    but the interpreter does not unload its modules, which the parent would wait for
    (after a PyTorch cell, about 0.9 s of nothing measured)."""
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _read_job() -> tuple[Callable[[Any], Any], Any]:
    """The function and job the parent handed over; the worker ends quietly where the
    parent stopped before the end of it."""
    try:
        return pickle.load(sys.stdin.buffer)
    except (EOFError, pickle.UnpicklingError):  # cut short
        os._exit(1)


def _stdin_to_devnull() -> int:
    """Point stdin at /dev/null, so that the job and the tools it starts read nothing
    there; the job pipe's own descriptor, which the parent holds open, is returned."""
    pipe = os.dup(0)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    return pipe


def _watch_parent(pipe: int) -> None:
    """Where the kernel does not end an orphan: end this worker when ``pipe``, its end of
    the job pipe, closes (the parent died)."""
    if KERNEL_ENDS_ORPHANS:
        os.close(pipe)
        return

    def watch() -> None:
        while os.read(pipe, 4096):
            pass
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
