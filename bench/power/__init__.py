"""Power and energy from the hardware's own counters over exactly the measured window.

Sources (``suite.power``): ``nvml`` (NVIDIA GPU energy counter or power), ``rapl`` (CPU
package energy, Linux powercap), ``jetson`` (INA3221 rails in sysfs), ``tegrastats`` (its
output), ``auto`` (the first that works for the cell's device) or ``none``.
"""

from bench.power.meter import CellPower, window_figures
from bench.power.source import PowerSource, PowerUnavailable
from bench.power.sources import SETTINGS, available_sources, choose_source
from bench.power.state import power_fingerprint, record_end_state
from bench.power.tegrastats import TegrastatsLog

__all__ = [
    "SETTINGS",
    "CellPower",
    "PowerSource",
    "PowerUnavailable",
    "available_sources",
    "choose_source",
    "power_fingerprint",
    "record_end_state",
    "TegrastatsLog",
    "window_figures",
]
