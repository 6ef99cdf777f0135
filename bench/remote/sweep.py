"""Power-mode sweeps on a Jetson: the suite once per nvpmodel mode and jetson_clocks
state, and the board put back as it was at the end, after Ctrl-C and after a lost
connection (a fresh connection is tried; where none comes, the command to type is
printed).

Changing either needs root on the device: the commands run as ``sudo -n`` (never a
password prompt) unless the SSH user is root.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console

from bench.harness.config import HostConfig
from bench.remote.device import Device
from bench.remote.probe import probe
from bench.remote.ssh import RemoteError, Ssh, telling_line

SETTLE_S = 2.0
"""Seconds to let clocks and fans settle after a change, before the next run starts."""
RESTORE_TRIES = 3


def sweep(
    ssh: Ssh,
    device: Device,
    host: HostConfig,
    modes: list[str],
    clocks: list[str],
    run_one: Callable[[str, Device], int],
    console: Console,
) -> int:
    """``run_one(label, device now)`` under each mode × clocks state; the worst exit
    code. The board's mode and clocks are restored whatever happens."""
    jetson = device.jetson
    if jetson is None:
        raise RemoteError(
            f"{ssh.name} is not a Jetson: --power-modes and --jetson-clocks need nvpmodel "
            "and jetson_clocks"
        )
    original = jetson.get("nvpmodel") or {}
    if modes and original.get("id") is None:
        raise RemoteError(f"nvpmodel -q says no mode on {ssh.name}: is nvpmodel installed?")
    if "off" in clocks and (jetson.get("jetson_clocks") or {}).get("on"):
        raise RemoteError(
            f"jetson_clocks was already on when the sweep began on {ssh.name}, so its off "
            "state is unknown: reboot the board (or sweep --jetson-clocks on only)"
        )
    work = device.path(host.workdir)
    stored = f"{work}/jetson_clocks.conf"
    if clocks:  # the board's clocks as the sweep found them, for the end
        _store_clocks(ssh, device, work, stored)
    codes = []
    try:
        for mode in modes or [None]:
            mode_stored = stored
            if mode is not None:
                if clocks:  # unpin before switching, so that the new mode starts unpinned
                    _root(
                        ssh,
                        f"{device.sudo}jetson_clocks --restore {shlex.quote(stored)}",
                        "jetson_clocks",
                    )
                now = set_mode(ssh, device, host, mode)
                if clocks:  # --store saves the online cores: "off" must restore this mode's
                    mode_stored = f"{work}/jetson_clocks.mode{int(mode)}.conf"
                    _store_clocks(ssh, device, work, mode_stored)
            online = (device if mode is None else now).online_cpus
            for state in clocks or [None]:
                if state == "on":
                    _root(ssh, f"{device.sudo}jetson_clocks", "jetson_clocks")
                elif state == "off":
                    restore_clocks = (
                        f"{device.sudo}jetson_clocks --restore {shlex.quote(mode_stored)}"
                    )
                    _root(ssh, restore_clocks, "jetson_clocks")
                time.sleep(SETTLE_S)
                now = probe(ssh, host)
                label = "-".join(
                    part
                    for part in (
                        f"mode{mode}" if mode is not None else "",
                        f"clocks-{state}" if state else "",
                    )
                    if part
                )
                cpus = f"CPUs {now.online_cpus} online"
                if now.online_cpus != online:  # recorded in environment.json either way
                    cpus += f", not the {online} of the mode as nvpmodel set it"
                console.print(f"power mode {label}: {_state(now.jetson)}, {cpus}")
                codes.append(run_one(label, now))
    finally:
        restore(ssh, device, host, original, stored if clocks else None, console)
    return max(codes, default=0)


def _store_clocks(ssh: Ssh, device: Device, work: str, path: str) -> None:
    """``jetson_clocks --store`` into ``path`` (which asks before it overwrites: an older
    file goes first)."""
    quoted = shlex.quote(path)
    store = f"rm -f {quoted} && {device.sudo}jetson_clocks --store {quoted}"
    _root(ssh, f"mkdir -p {shlex.quote(work)} && {store}", "jetson_clocks")


def set_mode(ssh: Ssh, device: Device, host: HostConfig, mode: str) -> Device:
    """Switch the board to nvpmodel mode ``mode`` (an id) and check that it took; the
    device as probed in that mode."""
    out = _root(ssh, f"{device.sudo}nvpmodel -m {int(mode)}", "nvpmodel -m")
    if "reboot" in out.lower():  # nvpmodel asks; with no answer (stdin is empty) it stays
        raise RemoteError(
            f"switching {ssh.name} to nvpmodel mode {mode} needs a reboot: reboot it into "
            "that mode and run without --power-modes"
        )
    probed = probe(ssh, host)
    now = (probed.jetson or {}).get("nvpmodel") or {}
    if now.get("id") != int(mode):
        raise RemoteError(
            f"{ssh.name} is in nvpmodel mode {now.get('id')} after 'nvpmodel -m {mode}': "
            "is that a mode of this board (nvpmodel -p --verbose lists them)?"
        )
    return probed


def restore(
    ssh: Ssh,
    device: Device,
    host: HostConfig,
    original: dict[str, Any],
    stored: str | None,
    console: Console,
) -> None:
    """Put the board's mode and clocks back, trying a fresh connection when the one the
    sweep used is gone; where that fails, say what to type on the device."""
    commands = []
    if original.get("id") is not None:
        commands.append(f"{device.sudo}nvpmodel -m {original['id']}")
    if stored:
        commands.append(f"{device.sudo}jetson_clocks --restore {shlex.quote(stored)}")
    if not commands:
        return
    script = " && ".join(commands)
    for attempt in range(RESTORE_TRIES):
        try:
            ssh.run(script, 120, "restoring the power mode")
            console.print(
                f"restored {ssh.name}: nvpmodel mode {original.get('name')}"
                + (", jetson_clocks as before" if stored else "")
            )
            return
        except (RemoteError, TimeoutError) as exc:
            if attempt + 1 == RESTORE_TRIES:
                console.print(
                    f"could not restore {ssh.name} ({exc}): run on the device: {script}",
                    markup=False,
                )
                return
            ssh.reset()
            time.sleep(2.0)


def _root(ssh: Ssh, script: str, what: str) -> str:
    """Run ``script`` (a root command) on the device; its output. RemoteError naming
    the fix when sudo wants a password, else with the command's most telling line."""
    done = ssh.run(script, 120, what, check=False)
    text = done.stderr + done.stdout
    if done.status != 0:
        if "password is required" in text or "sudo:" in text:
            raise RemoteError(
                f"{what} needs root on {ssh.name} without a password: add a sudoers rule, "
                "e.g. 'USER ALL=(root) NOPASSWD: /usr/sbin/nvpmodel, /usr/bin/jetson_clocks'"
            )
        if "reboot" not in text.lower():  # a mode that needs one: set_mode says so
            raise RemoteError(f"{what} failed on {ssh.name}: {telling_line(done)}")
    return text


def _state(jetson: dict[str, Any] | None) -> str:
    jetson = jetson or {}
    mode = (jetson.get("nvpmodel") or {}).get("name", "unknown")
    clocks = (jetson.get("jetson_clocks") or {}).get("on")
    return f"nvpmodel {mode}, jetson_clocks {'on' if clocks else 'off' if clocks is False else '?'}"
