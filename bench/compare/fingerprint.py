"""Apples to apples: what differs between the two sides' environment fingerprints.

Hardware (CPU or GPU model, usable cores, board, power mode) makes the numbers a
comparison of machines, not of changes: the gate refuses it unless asked. Software
(drivers, runtime and library versions, Python) is reported at the top; a change of
runtime version may be the very change under test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

Environment = dict[str, Any]


@dataclass(frozen=True)
class Difference:
    """One fingerprint field that differs. ``known`` is False when one side does not record
    it (an older run, no environment.json): reported, but no proof of other hardware."""

    what: str
    baseline: str
    current: str
    hardware: bool
    known: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _at(value: Any, *keys: str) -> Any:
    """``value[key][key]…``; None where a level is missing or is no object (a damaged or
    older environment.json)."""
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _objects(value: Any) -> list[dict[str, Any]]:
    """The objects of a list (none when it is no list)."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _cpu_model(env: Environment) -> Any:
    return _at(env, "cpu", "model")


def _cores(env: Environment) -> Any:
    return _at(env, "cpu", "usable_cores")


def _gpus(env: Environment) -> Any:
    names = [gpu.get("name") for gpu in _objects(env.get("gpus"))]
    return ", ".join(str(n) for n in names) or "none"


def _cuda_driver(env: Environment) -> Any:
    drivers = {gpu.get("cuda_driver") for gpu in _objects(env.get("gpus"))}
    return ", ".join(sorted(str(d) for d in drivers if d)) or None


def _gpu_field(env: Environment, name: str) -> Any:
    """A field of each GPU in the power state at the start of the run (bench.power.state)."""
    gpus = _objects(_at(env, "power", "state", "gpus"))
    return ", ".join(str(gpu.get(name)) for gpu in gpus) or None


HARDWARE: tuple[tuple[str, Callable[[Environment], Any]], ...] = (
    ("CPU", _cpu_model),
    ("usable CPU cores", _cores),
    ("GPUs", _gpus),
    ("board", lambda env: _at(env, "power", "state", "jetson", "model")),
    ("power mode", lambda env: _at(env, "power", "state", "jetson", "nvpmodel", "name")),
    ("jetson_clocks", lambda env: _at(env, "power", "state", "jetson", "jetson_clocks", "on")),
    ("GPU power limit (W)", lambda env: _gpu_field(env, "power_limit_w")),
)
SOFTWARE: tuple[tuple[str, Callable[[Environment], Any]], ...] = (
    ("CUDA driver", _cuda_driver),
    ("Python", lambda env: env.get("python")),
    ("OS", lambda env: env.get("os")),
)


def differences(baseline: Environment, current: Environment) -> list[Difference]:
    """Every fingerprint field that differs, hardware first. A field missing on both sides
    is no difference; missing on one side it is (shown as 'unknown', and not ``known``)."""
    found = []
    for hardware, fields in ((True, HARDWARE), (False, SOFTWARE)):
        for what, read in fields:
            a, b = read(baseline), read(current)
            if a != b:
                known = a is not None and b is not None
                found.append(Difference(what, _show(a), _show(b), hardware, known))
    libraries = tuple(_at(env, "libraries") or {} for env in (baseline, current))
    libraries = tuple(found if isinstance(found, dict) else {} for found in libraries)
    for name in sorted(set(libraries[0]) | set(libraries[1])):
        if name == "deploybench":
            continue
        a, b = libraries[0].get(name), libraries[1].get(name)
        if a != b:
            found.append(
                Difference(name, _show(a, "not installed"), _show(b, "not installed"), False)
            )
    return found


def setting_differences(baseline: dict[str, Any], current: dict[str, Any]) -> list[Difference]:
    """Measuring settings that differ (a shorter window, other thread counts): allowed,
    since they may be the change under test, but printed, since they move the numbers."""
    return [
        Difference(name, _show(baseline.get(name)), _show(current.get(name)), False)
        for name in sorted(set(baseline) & set(current))
        if baseline[name] != current[name]
    ]


def commits(baseline: Environment, current: Environment) -> tuple[str | None, str | None]:
    """The project's git commit on each side (expected to differ: it is the change)."""
    return tuple(_commit(env) for env in (baseline, current))  # type: ignore[return-value]


def _commit(env: Environment) -> str | None:
    commit = _at(env, "git", "commit")
    commit = str(commit)[:12] if commit else None
    if commit and _at(env, "git", "dirty"):
        return f"{commit} (with uncommitted changes)"
    return commit


def _show(value: Any, missing: str = "unknown") -> str:
    return missing if value is None else str(value)
