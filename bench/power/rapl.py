"""CPU package energy from Linux powercap (RAPL): Intel, and AMD under the same names.

Only top-level ``package-N`` domains are summed. Their sub-domains (core, uncore, dram:
``intel-rapl:0:0`` …) are parts of a package and other top-level domains (``psys``, the
whole platform) overlap the packages, so both are listed and never added.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.power.source import PowerSource, PowerUnavailable

POWERCAP = "sys/class/powercap"
_TOP_LEVEL = re.compile(r"^intel-rapl:\d+$")
_ROOT_ONLY = (
    "energy_uj is readable by root only (since the PLATYPUS fix, CVE-2020-8694): run as "
    "root, or allow it until reboot with sudo chmod o+r /sys/class/powercap/intel-rapl:*/"
    "energy_uj, or for good with a udev rule running that chmod on powercap devices"
)


@dataclass(frozen=True)
class RaplDomain:
    """One powercap zone: its folder, name (``package-0``, ``dram``, ``psys``) and the
    value at which its ``energy_uj`` counter wraps to zero."""

    path: Path
    name: str
    max_energy_range_uj: int

    def energy_uj(self) -> int:
        return int((self.path / "energy_uj").read_text())


def rapl_domains(root: Path = Path("/")) -> tuple[list[RaplDomain], list[RaplDomain]]:
    """(packages, every other zone) under ``root``/sys/class/powercap. PowerUnavailable
    when there is no package zone or its counter cannot be read."""
    zones = sorted((root / POWERCAP).glob("intel-rapl:*"), key=lambda p: p.name)
    if not zones:
        raise PowerUnavailable(
            "no RAPL counters: /sys/class/powercap/intel-rapl:* not found (not Linux on "
            "x86, a virtual machine, or the intel_rapl_common driver is not loaded)"
        )
    packages, others = [], []
    for zone in zones:
        domain = _domain(zone)
        is_package = _TOP_LEVEL.match(zone.name) and domain.name.startswith("package")
        (packages if is_package else others).append(domain)
    if not packages:
        names = ", ".join(d.name for d in others)
        raise PowerUnavailable(f"no RAPL package domain (found only: {names})")
    try:
        for domain in packages:
            domain.energy_uj()
    except PermissionError:
        raise PowerUnavailable(_ROOT_ONLY) from None
    return packages, others


def _domain(zone: Path) -> RaplDomain:
    try:
        name = (zone / "name").read_text().strip()
        max_range = int((zone / "max_energy_range_uj").read_text())
    except (OSError, ValueError) as exc:
        raise PowerUnavailable(f"unreadable RAPL zone {zone.name}: {exc}") from None
    return RaplDomain(zone, name, max_range)


class RaplSource(PowerSource):
    """The sum of the CPU packages' energy counters, in joules, unwrapped: a counter that
    went down passed ``max_energy_range_uj``. Read it at least once per wrap period
    (minutes at full load), which any sampling rate does."""

    name = "rapl"
    kind = "energy"
    resolution_s = 0.001  # the counters update about every millisecond

    def __init__(self, root: Path = Path("/")) -> None:
        self.packages, self.others = rapl_domains(root)
        self._last = [domain.energy_uj() for domain in self.packages]
        self._total_uj = 0

    def read(self) -> float:
        for index, domain in enumerate(self.packages):
            now = domain.energy_uj()
            delta = now - self._last[index]
            if delta < 0:
                delta += domain.max_energy_range_uj
            self._total_uj += delta
            self._last[index] = now
        return self._total_uj / 1e6

    def describe(self) -> dict[str, Any]:
        return {
            "measures": "CPU package energy: " + " + ".join(d.name for d in self.packages),
            "domains": [d.path.name + " " + d.name for d in self.packages],
            "not_added": [d.path.name + " " + d.name for d in self.others],
        }
