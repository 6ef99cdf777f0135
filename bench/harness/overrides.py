"""The ``run`` flags that override keys of the suite file, in one table: the command line
reads them into overrides (``overrides_from``), and a run handed on to another machine
gets them back as flags from the same table (``flags_for``), as pyperf's ``worker_cmd``
builds a worker's command line in one place."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Overrides = dict[str, dict[str, Any]]
"""``{table: {key: value}}``: what the flags given set, by suite-file table."""


@dataclass(frozen=True)
class Override:
    """A flag (``--cell-timeout``) and the suite-file key it sets (``[suite]
    cell_timeout_s``)."""

    flag: str
    table: str
    key: str
    switch: bool = False
    """A flag with no argument (``--per-gpu``): given means True."""

    @property
    def dest(self) -> str:
        """The flag's name on the parsed arguments (``cell_timeout``)."""
        return self.flag.removeprefix("--").replace("-", "_")

    def flags(self, value: Any) -> list[str]:
        """The flag that sets ``value`` again: lists comma-separated, devices by ';' (a
        combined device such as ``hetero:gpu,cpu`` holds a comma); a switch alone."""
        if self.switch:
            return [self.flag] if value else []
        if isinstance(value, list | tuple):
            value = (";" if self.key == "devices" else ",").join(map(str, value))
        return [self.flag, str(value)]


OVERRIDES = (
    Override("--models", "suite", "models"),
    Override("--runtimes", "suite", "runtimes"),
    Override("--devices", "suite", "devices"),
    Override("--precisions", "suite", "precisions"),
    Override("--batch-sizes", "suite", "batch_sizes"),
    Override("--scenarios", "suite", "scenarios"),
    Override("--threads", "suite", "threads"),
    Override("--in-flight", "suite", "in_flight"),
    Override("--cell-timeout", "suite", "cell_timeout_s"),
    Override("--export-timeout", "suite", "export_timeout_s"),
    Override("--power", "suite", "power"),
    Override("--repeat", "suite", "repeat"),
    Override("--results-dir", "suite", "results_dir"),
    Override("--name", "suite", "name"),
    Override("--calibration-data", "quantize", "calibration_data"),
    Override("--calibration-samples", "quantize", "calibration_samples"),
    Override("--quantize-method", "quantize", "method"),
    Override("--dataset", "dataset", "path"),
    Override("--dataset-preset", "dataset", "preset"),
    Override("--dataset-samples", "dataset", "samples"),
    Override("--accuracy-budget", "dataset", "budget"),
    Override("--latency-bound", "loadgen", "latency_bound_ms"),
    Override("--target-qps", "loadgen", "target_qps"),
    Override("--loadgen-duration", "loadgen", "min_duration_s"),
    Override("--cluster", "cluster", "address"),
    Override("--fleet", "cluster", "plan"),
    Override("--nodes", "cluster", "nodes"),
    Override("--per-gpu", "cluster", "per_gpu", switch=True),
)


def overrides_from(values: Mapping[str, Any]) -> Overrides:
    """The suite-file keys that the given flags set (``values``: parsed arguments by
    ``dest``; None = not given)."""
    overrides: Overrides = {}
    for override in OVERRIDES:
        value = values.get(override.dest)
        if value is not None:
            overrides.setdefault(override.table, {})[override.key] = value
    return overrides


def flags_for(overrides: Overrides, skip: tuple[str, ...] = ()) -> list[str]:
    """The flags that set ``overrides`` again, in their order; keys named ``table.key`` in
    ``skip`` are left out (for the caller to pass its own way)."""
    by_key = {(o.table, o.key): o for o in OVERRIDES}
    flags: list[str] = []
    for table, keys in overrides.items():
        for key, value in keys.items():
            override = by_key.get((table, key))
            if override is not None and f"{table}.{key}" not in skip:
                flags += override.flags(value)
    return flags
