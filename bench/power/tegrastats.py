"""``tegrastats``: its power fields, and a source that runs it for boards whose sysfs
monitors are closed.

Power fields look like ``NAME current/average`` in milliwatts: JetPack 4 without units
(``POM_5V_IN 3273/3273``, AGX Xavier's ``GPU 1155/1155``), JetPack 5 to 7.1 with them
(``VDD_IN 5142mW/5142mW``), and L4T R39 (JetPack 7.2) with a third value
(``VDD_GPU_SOC 5139mW/5139mW/5139mW``); the first is the current one. Unconnected
channels (``NC``) and other fields (RAM, SWAP, CPU, GR3D_FREQ, temperatures) are skipped.
"""

from __future__ import annotations

import re
import select
import shutil
import subprocess
from typing import Any

from bench.core.lifetime import tool_options
from bench.power.integrate import Sample
from bench.power.source import PowerSource, PowerUnavailable, board_total

_RAIL = re.compile(r"\b([A-Z][A-Z0-9_]*) (\d+)(?:mW)?/(\d+)(?:mW)?(?:/\d+(?:mW)?)?(?=\s|$)")
_NOT_POWER = {"RAM", "SWAP", "IRAM", "NC"}


def parse_rails(line: str) -> dict[str, float]:
    """The current power of every rail on one tegrastats line, in watts by rail name."""
    return {
        name: int(current) / 1e3
        for name, current, _average in _RAIL.findall(line)
        if name not in _NOT_POWER
    }


class TegrastatsSource(PowerSource):
    """Runs ``tegrastats --interval N`` and reads the board's power from each line it
    prints (the input rail, else the sum of rails). ``read`` waits for the next line."""

    name = "tegrastats"
    kind = "power"
    paced = True

    def __init__(self, interval_s: float, executable: str = "tegrastats") -> None:
        path = shutil.which(executable)
        if path is None:
            raise PowerUnavailable(f"{executable} is not on PATH (it comes with JetPack)")
        self.interval_ms = max(1, round(interval_s * 1e3))
        self.resolution_s = self.interval_ms / 1e3
        self._timeout_s = 5 * self.resolution_s + 5
        self._process = subprocess.Popen(
            [path, "--interval", str(self.interval_ms)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
            **tool_options(),  # a worker killed at its timeout takes tegrastats with it
        )
        try:
            rails = self._first_rails()
        except PowerUnavailable:
            self.close()
            raise
        if not rails:
            self.close()
            raise PowerUnavailable("tegrastats prints no power rails on this board")
        self.label = board_total(rails).label

    def _first_rails(self) -> dict[str, float]:
        """The first line's rails, waiting at most a few intervals for it."""
        assert self._process.stdout is not None
        ready, _, _ = select.select([self._process.stdout], [], [], self._timeout_s)
        if not ready:
            raise PowerUnavailable(f"tegrastats printed nothing within {self._timeout_s:.0f} s")
        return self._next_rails()

    def _next_rails(self) -> dict[str, float]:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise PowerUnavailable(f"tegrastats stopped (exit code {self._process.poll()})")
        return parse_rails(line)

    def read(self) -> float:
        rails = self._next_rails()
        if not rails:  # a line without power fields: no reading, never 0 W
            raise ValueError("a tegrastats line carried no power rails")
        return board_total(rails).watts

    def describe(self) -> dict[str, Any]:
        return {"measures": f"board power, {self.label} (tegrastats every {self.interval_ms} ms)"}

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()


class TegrastatsLog(PowerSource):
    """tegrastats lines recorded elsewhere (on a device over SSH), each stamped with the
    device's clock as it was read (``SECONDS.NANOS line``): ``samples`` are its power
    readings on that clock, for cutting to a window measured on the same clock."""

    name = "tegrastats"
    kind = "power"
    paced = True

    def __init__(self, text: str, interval_ms: int, where: str) -> None:
        self.interval_ms = interval_ms
        self.resolution_s = interval_ms / 1e3
        self.samples: list[Sample] = []
        self.label = "no power rails"
        self.where = where
        for line in text.splitlines():
            stamp, _, rest = line.partition(" ")
            rails = parse_rails(rest)
            if not rails:
                continue
            try:
                t_ns = round(float(stamp) * 1e9)
            except ValueError:
                continue
            total = board_total(rails)
            self.samples.append(Sample(t_ns, total.watts))
            self.label = total.label

    def read(self) -> float:
        raise PowerUnavailable("a recorded tegrastats log is read whole: use samples")

    def describe(self) -> dict[str, Any]:
        return {
            "measures": f"board power, {self.label} "
            f"(tegrastats every {self.interval_ms} ms on {self.where})"
        }
