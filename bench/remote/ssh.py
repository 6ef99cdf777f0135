"""A device reached over SSH, through the system's OpenSSH client.

The user's own ``ssh`` is run, so their ``~/.ssh/config`` (aliases, keys, the agent,
ProxyJump) applies and host keys are checked as they set it. ``BatchMode`` is always on:
nothing ever prompts for, or stores, a password. One master connection per run carries
every command (``ControlMaster``), so a cell pays a channel, not a handshake.

Every remote command runs under a guard (``GUARD``): the command is started in a process
group of its own and stopped with that whole group (TERM, then KILL) as soon as the SSH
channel closes, which is what happens when the host stops waiting (a cell timeout), the
user presses Ctrl-C, or the connection drops.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.core.errors import TargetLost, UserError
from bench.core.lifetime import tool_options

SSH_FAILED = 255
"""ssh's own exit status for a failure of its own (the guard never exits with it)."""

GUARD = r"""exec 3<&0 </dev/null
setsid sh -c "$1" 3<&- &
pid=$!
( read -r _ <&3; kill -TERM -"$pid"; sleep 3; kill -KILL -"$pid" ) >/dev/null 2>&1 &
watch=$!
exec 3<&-
wait "$pid"
status=$?
kill "$watch" 2>/dev/null
[ "$status" -eq 255 ] && status=254
exit "$status"
"""
"""Runs ``$1`` with ``sh`` in a new session (its own process group), and kills that group
when standard input, the SSH channel, reaches its end. ``read`` is a shell builtin, so the
watcher is one process; 255 is kept for ssh's own failures."""

_REASONS = (
    (
        "REMOTE HOST IDENTIFICATION HAS CHANGED",
        "its host key changed since it was recorded "
        "in known_hosts: if the device was reinstalled, remove the old key with "
        "ssh-keygen -R HOST, else stop: the connection may be intercepted",
    ),
    (
        "Host key verification failed",
        "its host key is not in known_hosts: connect once with ssh HOST to check and accept it",
    ),
    (
        "Permission denied",
        "the key was refused: add your public key to the device's "
        "~/.ssh/authorized_keys (ssh-copy-id HOST); passwords are never asked for",
    ),
    (
        "Could not resolve hostname",
        "the host name does not resolve: check the name or add a Host entry to ~/.ssh/config",
    ),
    (
        "Connection refused",
        "the connection was refused: is sshd running on the device, and is the port right?",
    ),
    ("timed out", "the connection timed out: is the device on and on this network?"),
    ("No route to host", "there is no route to the host: is the device on this network?"),
    ("Network is unreachable", "the network is unreachable from here"),
)


class RemoteError(UserError):
    """A device that cannot be reached or used: one line that says why and what to do."""


class ConnectionLost(RemoteError, TargetLost):
    """The connection dropped while a command ran (the device went away, or its network)."""


class RemoteTimeout(RemoteError, TimeoutError):
    """A command or copy on the device did not finish in time; it was stopped."""


@dataclass(frozen=True)
class Address:
    """``[user@]host[:port]``, or an alias of the user's ssh config."""

    host: str
    user: str | None = None
    port: int | None = None

    @classmethod
    def parse(cls, text: str) -> Address:
        match = re.fullmatch(r"(?:([^@\s]+)@)?([^@:\s]+|\[[0-9A-Fa-f:]+\])(?::(\d+))?", text)
        if not match or not match[2] or text.startswith("-") or match[2].startswith("-"):
            raise UserError(f"'{text}' is not an SSH address: give [user@]host[:port]")
        port = int(match[3]) if match[3] else None
        if port is not None and not 0 < port < 65536:
            raise UserError(f"port {port} of '{text}' is out of range (1-65535)")
        return cls(match[2].strip("[]"), match[1], port)

    def __str__(self) -> str:
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        return f"{user}{self.host}{port}"


@dataclass
class Completed:
    """A remote command that ran to its end: its exit status and output."""

    status: int
    stdout: str
    stderr: str


@dataclass
class Ssh:
    """Commands and file copies on one device. ``close`` ends the master connection."""

    address: Address
    config_file: Path | None = None
    options: tuple[str, ...] = ()
    connect_timeout_s: float = 10.0
    _control: tempfile.TemporaryDirectory | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if shutil.which("ssh") is None:
            raise UserError("the ssh client is not installed here: install OpenSSH's client")
        if self.config_file is not None and not self.config_file.is_file():
            raise UserError(f"ssh config {self.config_file} does not exist: fix ssh_config")
        short = "/tmp" if Path("/tmp").is_dir() else None  # a socket path has ~100 bytes
        self._control = tempfile.TemporaryDirectory(prefix="dbssh-", dir=short)

    @property
    def name(self) -> str:
        return str(self.address)

    def argv(self, *extra: str) -> list[str]:
        """``ssh`` with the run's options, up to the destination."""
        assert self._control is not None
        argv = ["ssh"]
        if self.config_file is not None:
            argv += ["-F", str(self.config_file)]
        argv += [
            "-o",
            "BatchMode=yes",
            "-o",
            f"ConnectTimeout={max(1, round(self.connect_timeout_s))}",
            "-o",
            "ServerAliveInterval=5",
            "-o",
            "ServerAliveCountMax=3",
            "-o",
            "ControlMaster=auto",
            "-o",
            f"ControlPath={self._control.name}/%C",
            "-o",
            "ControlPersist=300",
        ]
        for option in self.options:
            argv += ["-o", option]
        if self.address.port:
            argv += ["-p", str(self.address.port)]
        if self.address.user:
            argv += ["-l", self.address.user]
        return [*argv, *extra, "--", self.address.host]

    def run(self, script: str, timeout_s: float, what: str, check: bool = True) -> Completed:
        """Run ``script`` (POSIX sh) on the device under the guard. A failure of SSH
        itself is a RemoteError (ConnectionLost when it dropped mid-command); a script
        that fails is a RemoteError naming ``what`` unless ``check`` is off; a script
        that outlives ``timeout_s`` is stopped, with its process group, and raises
        TimeoutError."""
        with self._guarded(script, text=False) as process:
            try:
                stdout, stderr = process.communicate(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                raise RemoteTimeout(f"{what} did not finish within {timeout_s:.0f} s") from None
        done = Completed(
            process.returncode, stdout.decode(errors="replace"), stderr.decode(errors="replace")
        )
        if done.status == SSH_FAILED:
            raise self.failure(done.stderr, what)
        if check and done.status != 0:
            raise RemoteError(f"{what} failed on {self.name}: {telling_line(done)}")
        return done

    def stream(self, script: str, on_line: Callable[[str], None], what: str) -> int:
        """Run ``script`` under the guard, handing each line it prints (standard output
        and error together) to ``on_line`` as it comes; its exit status. Ctrl-C closes
        the channel, and the guard stops the script."""
        with self._guarded(f"exec 2>&1; {script}", text=True) as process:
            assert process.stdout is not None and process.stderr is not None
            for line in process.stdout:
                on_line(line.rstrip("\n"))
            status = process.wait()
            if status == SSH_FAILED:
                raise self.failure(process.stderr.read(), what)
        return status

    @contextmanager
    def _guarded(self, script: str, text: bool) -> Iterator[subprocess.Popen]:
        """``ssh`` running ``script`` under the guard, its input held open (its end is
        the guard's signal to stop the script) until the command is done; killed, so
        the channel closes, when the caller leaves early (a timeout, Ctrl-C)."""
        command = f"sh -c {shlex.quote(GUARD)} guard {shlex.quote(script)}"
        held, ours = os.pipe()
        try:
            process = subprocess.Popen(
                [*self.argv(), command],
                stdin=held,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=text,
                errors="replace" if text else None,  # a device's odd bytes are no error
                **tool_options(),  # the host's end dies with the host: the guard sees it
            )
            try:
                yield process
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
                for stream in (process.stdout, process.stderr):
                    if stream is not None:
                        stream.close()
        finally:
            os.close(held)
            os.close(ours)

    def failure(self, stderr: str, what: str) -> RemoteError:
        """The one-line error for an ssh failure, from what ssh printed."""
        lines = [line.strip() for line in stderr.splitlines() if line.strip()]
        for needle, reason in _REASONS:
            if any(needle in line for line in lines):
                return RemoteError(f"cannot connect to {self.name}: {reason}")
        text = " ".join(lines)
        # A connection that never came up always says why (above); a shared one (ControlMaster)
        # that drops mid-command often says nothing at all.
        if not lines or re.search(
            r"closed by remote host|Broken pipe|Connection reset|"
            r"mux_client|client_loop|Timeout, server",
            text,
        ):
            return ConnectionLost(
                f"lost the connection to {self.name} during {what} "
                f"({lines[-1] if lines else 'no message'})"
            )
        return RemoteError(
            f"ssh to {self.name} failed during {what}: {lines[-1] if lines else 'exit 255'}"
        )

    def push(self, local_dir: Path, remote_dir: str, timeout_s: float = 3600) -> None:
        """Copy the files under ``local_dir`` to ``remote_dir`` (an absolute path) as a
        tar stream, unpacked beside it and moved into place whole, so that a copy cut
        short leaves nothing that looks complete; a full disk on the device is a
        RemoteError that says so."""
        target = shlex.quote(remote_dir)
        partial = shlex.quote(f"{remote_dir}.partial")
        script = (
            f"rm -rf {partial} && mkdir -p {partial} && tar -C {partial} -xf - "
            f"&& rm -rf {target} && mv {partial} {target} || {{ rm -rf {partial}; exit 1; }}"
        )
        what = f"copying {local_dir.name} to {remote_dir}"
        tar = subprocess.Popen(
            ["tar", "-C", str(local_dir), "-cf", "-", "."], stdout=subprocess.PIPE
        )
        try:
            done = subprocess.run(
                [*self.argv(), f"sh -c {shlex.quote(script)}"],
                stdin=tar.stdout,
                capture_output=True,
                timeout=timeout_s,
                check=False,
                **tool_options(),
            )
        except subprocess.TimeoutExpired:
            raise RemoteTimeout(f"{what} did not finish within {timeout_s:.0f} s") from None
        finally:
            assert tar.stdout is not None
            tar.stdout.close()
            tar.wait()
        stderr = done.stderr.decode(errors="replace")
        if done.returncode == SSH_FAILED:
            raise self.failure(stderr, what)
        if "No space left" in stderr:
            raise RemoteError(
                f"the device {self.name} is out of disk space in {remote_dir}: free some, "
                "or set workdir in [hosts] to a larger disk"
            )
        if done.returncode != 0:
            raise RemoteError(
                f"{what} failed: {telling_line(Completed(done.returncode, '', stderr))}"
            )

    def pull(self, remote_dir: str, names: list[str], local_dir: Path, timeout_s: float) -> None:
        """Copy ``names`` (files or folders under ``remote_dir``) into ``local_dir``;
        names missing on the device are left out."""
        quoted = " ".join(shlex.quote(name) for name in names)
        script = (
            f'cd {shlex.quote(remote_dir)} && for f in {quoted}; do [ -e "$f" ] && echo "$f"; '
            f"done | tar -cf - -T -"
        )
        what = f"fetching {remote_dir}"
        try:
            done = subprocess.run(
                [*self.argv(), f"sh -c {shlex.quote(script)}"],
                capture_output=True,
                timeout=timeout_s,
                check=False,
                **tool_options(),
            )
        except subprocess.TimeoutExpired:
            raise RemoteTimeout(f"{what} did not finish within {timeout_s:.0f} s") from None
        if done.returncode == SSH_FAILED:
            raise self.failure(done.stderr.decode(errors="replace"), what)
        local_dir.mkdir(parents=True, exist_ok=True)
        if done.stdout:
            unpacked = subprocess.run(
                ["tar", "-C", str(local_dir), "-xf", "-"], input=done.stdout, capture_output=True
            )
            if unpacked.returncode != 0:
                why = unpacked.stderr.decode(errors="replace").strip().splitlines()
                raise RemoteError(f"{what}: the copy did not unpack ({why[-1] if why else 'tar'})")

    def reset(self) -> None:
        """Forget the master connection (gone with a dropped network): the next command
        makes a new one."""
        assert self._control is not None
        self._stop_master()
        for socket in Path(self._control.name).iterdir():
            socket.unlink(missing_ok=True)

    def close(self) -> None:
        """End the master connection (if one was made) and forget its socket."""
        if self._control is None:
            return
        self._stop_master()
        self._control.cleanup()
        self._control = None

    def _stop_master(self) -> None:
        # no master, or one that hangs: its socket goes with the folder
        with contextlib.suppress(subprocess.TimeoutExpired, OSError):
            subprocess.run([*self.argv("-O", "exit")], capture_output=True, timeout=10)


def telling_line(done: Completed) -> str:
    """The most telling line a failed command printed: its first error line (trtexec's
    first ``[E]`` says why; the ones after follow from it), else its last line, else its
    exit status."""
    lines = [line.strip() for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    errors = [line for line in lines if "[E]" in line or "rror" in line or "FAILED" in line]
    return errors[0] if errors else lines[-1] if lines else f"exit status {done.status}"
