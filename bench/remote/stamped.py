"""A timed trtexec run with tegrastats beside it, on the device's clock.

Each tegrastats line, and each trtexec line up to ``Starting inference``, is prefixed
with the device's clock (``date +%s.%N``) by a shell loop as the line is read. trtexec
takes its trace's time zero right after logging that line (``runInference`` in
TensorRT's sampleInference.cpp), so the trace's measured window lands on the same clock
as the power readings, and they are cut to it. The stamp is when the loop read the line:
later than trtexec wrote it by the loop's own delay (one ``date`` a line), a few
milliseconds at most beside tegrastats' 100 ms interval, and said so in the notes.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from bench.power import TegrastatsLog, window_figures
from bench.power.meter import coarse_note
from bench.remote.device import DeviceWork
from runtimes.tensorrt.trtexec_driver import trace_window_ms

STAMP = (
    'stamp() { while IFS= read -r l; do printf "%s %s\\n" "$(date +%s.%N)" "$l"; done; }\n'
    'stamp_until() { while IFS= read -r l; do printf "%s %s\\n" "$(date +%s.%N)" "$l"; '
    'case "$l" in *"$1"*) exec cat;; esac; done; }'
)
"""``stamp`` prefixes every line; ``stamp_until TEXT`` those up to the first holding
TEXT, then passes the rest as they are (no ``date`` once trtexec's timed run begins)."""
STARTING = "Starting inference"
"""trtexec's log line just before its first request: its trace's time zero."""
LOG, POWER_LOG, TRACE = "timed.log", "power.log", "times.json"


def timed_script(work: DeviceWork, cell_dir: str, command: str) -> str:
    """``command`` (a trtexec run writing ``TRACE``) in ``cell_dir``, with tegrastats
    stamping its lines beside it when the device has it and the suite measures power;
    fails with trtexec's first ``[E]`` line."""
    lines = [STAMP, f"cd {shlex.quote(cell_dir)}", f"rm -f {TRACE} {LOG} {POWER_LOG} rc"]
    tegrastats = work.device.tegrastats if _wanted(work) else None
    interval = work.host.power_interval_ms
    if tegrastats:
        lines += [
            f"( {shlex.quote(tegrastats)} --interval {interval} & echo $! > tegrastats.pid;"
            f" wait ) 2>/dev/null | stamp > {POWER_LOG} &",
            f"n=0; while [ ! -s {POWER_LOG} ] && [ $n -lt 100 ]; do sleep 0.05; n=$((n+1)); done",
        ]
    lines.append(f'( {command}; echo "$?" > rc ) 2>&1 | stamp_until "{STARTING}" > {LOG}')
    if tegrastats:  # readings after the window's end too, so that they cover it
        lines.append(f"sleep {2 * interval / 1000:.3f}; kill $(cat tegrastats.pid) 2>/dev/null")
    lines.append(
        f'rc=$(cat rc); grep -q "FAILED" {LOG} && rc=1; '
        f'[ "$rc" -eq 0 ] || {{ grep "\\[E\\]" {LOG} | head -3; exit 1; }}'
    )
    return "\n".join(lines)


def _wanted(work: DeviceWork) -> bool:
    return work.power in ("auto", "tegrastats")


def power_figures(
    work: DeviceWork,
    local: Path,
    entries: list[dict[str, float]],
    warmup_ms: float,
    requests: int,
    batch: int,
) -> dict[str, Any]:
    """The cell's ``power`` from the copied-back logs in ``local``: tegrastats'
    readings cut to the trace's measured window; unavailable with the reason where
    they cannot be."""
    if not _wanted(work):
        reason = (
            "suite.power is none"
            if work.power == "none"
            else f"{work.power} is read on this machine; a device over SSH gives tegrastats"
        )
        return {"source": work.power, "unavailable": reason}
    if not work.device.tegrastats:
        reason = f"{work.ssh.name} has no tegrastats (it comes with JetPack)"
        return {"source": "tegrastats", "unavailable": reason}
    log = (local / LOG).read_text() if (local / LOG).is_file() else ""
    zero = next((line.split(" ", 1)[0] for line in log.splitlines() if STARTING in line), None)
    if zero is None:
        reason = f"trtexec logged no '{STARTING}' line to place its trace on the device's clock"
        return {"source": "tegrastats", "unavailable": reason}
    readings = (local / POWER_LOG).read_text() if (local / POWER_LOG).is_file() else ""
    source = TegrastatsLog(readings, work.host.power_interval_ms, work.ssh.name)
    start_ms, end_ms = trace_window_ms(entries, warmup_ms)
    zero_ns = round(float(zero) * 1e9)
    start, end = zero_ns + round(start_ms * 1e6), zero_ns + round(end_ms * 1e6)
    figures = window_figures(
        source, source.samples, start, end, requests, batch, 1e3 / work.host.power_interval_ms
    )
    if "unavailable" in figures:
        return figures
    notes = ["window placed on the device's clock by trtexec's 'Starting inference' line"]
    coarse = coarse_note(figures["window_s"], source.resolution_s)
    return {**figures, "notes": [*notes, coarse] if coarse else notes}
