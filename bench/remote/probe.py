"""What a device is and has, read in one SSH command: the board and its power state,
tegrastats, nvpmodel and jetson_clocks, each device tool's own section (trtexec,
benchmark_app: bench.remote.device_tools), Python and deploybench, disk space, and the
fingerprint a results folder keeps (environment.json).

Files are read under ``$DEPLOYBENCH_DEVICE_ROOT`` when the device's session sets it (empty
on a real device: the files are the device's own); the test suite points it at a fake
device tree.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from bench.harness.config import HostConfig
from bench.power.jetson import l4t_release
from bench.power.jetson_board import (
    GPU_DEVFREQ,
    THOR_DEVFREQ,
    clocks_state,
    parse_nvpmodel_query,
)
from bench.remote.device import Device
from bench.remote.device_tools import DEVICE_TOOLS
from bench.remote.ssh import Ssh

PROBE_TIMEOUT_S = 60.0

_SCRIPT = r"""R="${DEPLOYBENCH_DEVICE_ROOT:-}"
section() { echo "@@$1"; }
section uname; uname -m; uname -sr
section whoami; id -u
section os; cat "$R/etc/os-release" 2>/dev/null | grep '^PRETTY_NAME=' | cut -d= -f2- | tr -d '"'
section cpu; grep -m1 -E '^(model name|Hardware|Model)' "$R/proc/cpuinfo" 2>/dev/null \
  || grep -m1 -E '^(model name|Hardware|Model)' /proc/cpuinfo 2>/dev/null
section cores; getconf _NPROCESSORS_ONLN 2>/dev/null || nproc
section online; cat "$R/sys/devices/system/cpu/online" 2>/dev/null
section memory; grep -m1 MemTotal /proc/meminfo
section model; tr -d '\0' < "$R/proc/device-tree/model" 2>/dev/null; echo
section compatible; tr '\0' ' ' < "$R/proc/device-tree/compatible" 2>/dev/null; echo
section l4t; cat "$R/etc/nv_tegra_release" 2>/dev/null
section nvpmodel; nvpmodel -q 2>&1
section clocks; for f in "$R"/sys/devices/system/cpu/cpu[0-9]*/cpufreq; do
  [ -r "$f/scaling_min_freq" ] &&
    echo "cpu $(cat "$f/scaling_min_freq") $(cat "$f/scaling_max_freq")"
done; for f in "$R"/sys/class/devfreq/*; do case "$(basename "$f")" in
  __THOR_DEVFREQ__*) ;;
  __GPU_DEVFREQ__) [ -r "$f/min_freq" ] &&
    echo "gpu $(cat "$f/min_freq") $(cat "$f/max_freq")";; esac; done
section tegrastats; command -v tegrastats
section jetson_clocks; command -v jetson_clocks
section python; python3 -c 'import sys; print(sys.version.split()[0])' 2>/dev/null
section deploybench; D=__DEPLOYBENCH__; command -v "${D%% *}" >/dev/null 2>&1 && $D --version 2>&1
section disk; mkdir -p __WORKDIR__ 2>/dev/null; df -Pk __WORKDIR__ 2>/dev/null | tail -1
section home; echo "$HOME"
"""


def probe(ssh: Ssh, host: HostConfig) -> Device:
    """Read what the device behind ``ssh`` is and has (one command: the board's sections,
    then each device tool's own)."""
    script = (
        _SCRIPT.replace("__GPU_DEVFREQ__", "|".join(f"*{name}*" for name in GPU_DEVFREQ))
        .replace("__THOR_DEVFREQ__", THOR_DEVFREQ)
        .replace("__WORKDIR__", _shell_word(host.workdir))
        .replace("__DEPLOYBENCH__", shlex.quote(host.deploybench))
    )
    script += "".join(tool.probe_section(host) for tool in DEVICE_TOOLS)
    done = ssh.run(script, PROBE_TIMEOUT_S, "reading what the device has", check=False)
    return parse_probe(ssh.name, done.stdout)


def _shell_word(path: str) -> str:
    """``path`` as one shell word, its leading ``~`` expanded by the shell."""
    if path == "~" or path.startswith("~/"):
        return '"$HOME"' + shlex.quote(path[1:]) if path[1:] else '"$HOME"'
    return shlex.quote(path)


def sections(text: str) -> dict[str, str]:
    """The probe's output as section name → its text."""
    found: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("@@"):
            current = line[2:].strip()
            found[current] = []
        elif current is not None:
            found[current].append(line)
    return {name: "\n".join(lines).strip() for name, lines in found.items()}


def parse_probe(name: str, text: str) -> Device:
    """A Device from the probe's output."""
    parts = sections(text)
    uname = parts.get("uname", "").splitlines() + ["", ""]
    model = parts.get("model", "")
    release = l4t_release(parts.get("l4t", ""))
    jetson = None
    if release or "jetson" in model.lower():
        jetson = {
            "model": model,
            "release": release,
            "nvpmodel": _nvpmodel(parts.get("nvpmodel", "")),
            "jetson_clocks": clocks_text_state(parts.get("clocks", "")),
        }
    programs: dict[str, str | None] = {}
    libraries: dict[str, str | None] = {}
    for tool in DEVICE_TOOLS:
        found, versions = tool.read_probe(parts)
        programs.update(found)
        libraries.update(versions)
    memory = re.search(r"(\d+)", parts.get("memory", ""))
    cores = parts.get("cores", "").strip()
    deploybench = parts.get("deploybench", "")
    return Device(
        name=name,
        architecture=uname[0],
        kernel=uname[1],
        os=parts.get("os") or uname[1],
        cpu=parts.get("cpu", "").split(":", 1)[-1].strip() or uname[0],
        cores=int(cores) if cores.isdigit() else None,
        memory_gib=round(int(memory[1]) / 2**20, 2) if memory else None,
        root=parts.get("whoami", "").strip() == "0",
        home=parts.get("home", "~"),
        python=parts.get("python") or None,
        jetson=jetson,
        compatible=parts.get("compatible", "").strip(),
        online_cpus=parts.get("online", "").strip() or None,
        programs=programs,
        libraries=libraries,
        tegrastats=parts.get("tegrastats") or None,
        jetson_clocks=parts.get("jetson_clocks") or None,
        deploybench=_version(deploybench),
        free_mib=_free_mib(parts.get("disk", "")),
        raw=parts,
    )


def _nvpmodel(text: str) -> dict[str, Any] | None:
    mode = parse_nvpmodel_query(text)
    return {**mode, "from": "nvpmodel -q"} if mode else None


def clocks_text_state(text: str) -> dict[str, Any]:
    """Whether jetson_clocks is on, from the probe's ``cpu MIN MAX`` / ``gpu MIN MAX``
    lines, decided as on the board itself (bench.power.jetson_board.clocks_state)."""
    pinned: dict[str, list[bool]] = {"cpu": [], "gpu": []}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] in pinned:
            pinned[parts[0]].append(parts[1] == parts[2])
    return clocks_state(pinned["cpu"], pinned["gpu"])


def _version(text: str) -> str | None:
    match = re.search(r"deploybench (\S+)", text)
    return match[1] if match else None


def _free_mib(text: str) -> float | None:
    fields = text.split()
    return int(fields[3]) / 1024 if len(fields) >= 4 and fields[3].isdigit() else None
