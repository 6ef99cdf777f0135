"""Jetson boards: the INA3221 power monitors' rails, read from sysfs.

JetPack 5 and 6 (mainline hwmon driver): ``/sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*/``
with ``inN_label``, bus voltage ``inN_input`` (mV) and ``currN_input`` (mA), so P = V·I;
channels labelled ``NC`` (not connected) and the ``sum of shunt voltages`` channel (in7)
are skipped. JetPack 4 (NVIDIA's iio driver): ``/sys/bus/i2c/drivers/ina3221x/*/iio:device*/``
with ``rail_name_N`` and ``in_powerN_input`` (mW). Both are found by globbing: hwmon numbers
and i2c buses differ from board to board and boot to boot.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.power.source import TOTAL_RAILS, PowerSource, PowerUnavailable, board_total

HWMON_GLOB = "sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*"
IIO_GLOB = "sys/bus/i2c/drivers/ina3221x/*/iio:device*"
_CHANNELS = (1, 2, 3)  # in4-in6 are shunt voltages, in7 their sum


@dataclass(frozen=True)
class Rail:
    """One monitored rail: its label and the files its power is read from."""

    name: str
    chip: str  # the i2c device, e.g. 1-0040
    power_mw: Path | None = None  # JetPack 4: power directly
    voltage_mv: Path | None = None  # JetPack 5+: bus voltage ...
    current_ma: Path | None = None  # ... and current

    def watts(self) -> float:
        """The rail's power now: mW as read (JetPack 4), else mV × mA."""
        if self.power_mw is not None:
            return int(self.power_mw.read_text()) / 1e3
        assert self.voltage_mv is not None and self.current_ma is not None
        return int(self.voltage_mv.read_text()) * int(self.current_ma.read_text()) / 1e6


def ina3221_rails(root: Path = Path("/")) -> list[Rail]:
    """Every connected INA3221 rail under ``root``, hwmon (JetPack 5+) first, then iio
    (JetPack 4); in chip then channel order."""
    rails = []
    for folder in sorted(root.glob(HWMON_GLOB)):
        chip = folder.parent.parent.name
        for channel in _CHANNELS:
            label = _label(folder / f"in{channel}_label")
            if label and label != "NC":
                voltage, current = folder / f"in{channel}_input", folder / f"curr{channel}_input"
                rails.append(Rail(label, chip, voltage_mv=voltage, current_ma=current))
    for folder in sorted(root.glob(IIO_GLOB)):
        chip = folder.parent.name
        for name_file in sorted(folder.glob("rail_name_*")):
            label = _label(name_file)
            channel = name_file.name.rsplit("_", 1)[1]
            if label and label != "NC":
                rails.append(Rail(label, chip, power_mw=folder / f"in_power{channel}_input"))
    return rails


def _label(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def update_interval_s(root: Path = Path("/")) -> float:
    """The slowest INA3221 refresh (hwmon ``update_interval``, ms), 0 when not reported."""
    intervals = []
    for path in root.glob(HWMON_GLOB + "/update_interval"):
        try:
            intervals.append(int(path.read_text()) / 1e3)
        except (OSError, ValueError):
            continue
    return max(intervals, default=0.0)


class JetsonSource(PowerSource):
    """A Jetson's power in watts: its input rail (VDD_IN, POM_5V_IN) where the board has
    one, otherwise the sum of its rails, labelled as such."""

    name = "jetson"
    kind = "power"

    def __init__(self, root: Path = Path("/")) -> None:
        rails = ina3221_rails(root)
        if not rails:
            raise PowerUnavailable(
                "no INA3221 power monitor in sysfs (/sys/bus/i2c/drivers/ina3221*/): "
                "not a Jetson, or a board without one (Jetson Nano 2GB)"
            )
        totals = [r for r in rails if r.name in TOTAL_RAILS]
        self.all_rails = rails
        self.rails = totals[:1] or rails
        self.resolution_s = update_interval_s(root)
        try:
            readings = {rail.name: rail.watts() for rail in self.rails}
        except PermissionError as exc:
            raise PowerUnavailable(f"INA3221 readings are not readable here: {exc}") from None
        except (OSError, ValueError) as exc:
            raise PowerUnavailable(f"INA3221 readings failed: {exc}") from None
        self.label = board_total(readings).label

    def read(self) -> float:
        return sum(rail.watts() for rail in self.rails)

    def describe(self) -> dict[str, Any]:
        return {
            "measures": f"board power, {self.label}",
            "rails": [f"{rail.chip} {rail.name}" for rail in self.all_rails],
        }


_RELEASE = re.compile(r"#\s*R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)")
JETPACK_OF_L4T = {"32": "4", "34": "5", "35": "5", "36": "6", "38": "7", "39": "7"}


def l4t_release(text: str) -> dict[str, str] | None:
    """``/etc/nv_tegra_release`` (``# R35 (release), REVISION: 4.1, …``) as the L4T
    release and the JetPack major version it ships in."""
    match = _RELEASE.search(text)
    if not match:
        return None
    major, revision = match.groups()
    return {"l4t": f"{major}.{revision}", "jetpack_major": JETPACK_OF_L4T.get(major, "unknown")}
