"""The sshd fixture is a real OpenSSH server: the system ssh client logs in through the
ssh_config it writes, the environment reaches the sessions, and each failure a remote-device
test needs (wrong key, changed host key, closed port, dropped connection) looks to ssh as it
does in the field."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixtures.sshd import SshServer


def ssh(config: Path, alias: str, command: str, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ssh", "-F", str(config), *options, alias, command],
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.fixture
def server(ssh_server) -> SshServer:
    return ssh_server()


def test_the_client_logs_in_through_the_written_config(server: SshServer) -> None:
    done = ssh(server.ssh_config, server.alias, "echo ok; id -un")
    assert (done.returncode, done.stdout) == (0, f"ok\n{server.user}\n"), done.stderr
    assert "Accepted publickey" in server.log_text()


def test_the_environment_reaches_every_session_path_included(ssh_server, tmp_path) -> None:
    tools = tmp_path / "device tools"
    tools.mkdir()
    (tools / "tegrastats").write_text("#!/bin/sh\necho fake tegrastats\n")
    (tools / "tegrastats").chmod(0o755)
    server = ssh_server(
        environment={"PATH": f"{tools}:/usr/bin:/bin", "DEPLOYBENCH_DEVICE_ROOT": "/srv/a b"}
    )
    done = ssh(server.ssh_config, server.alias, 'echo $PATH; echo "$DEPLOYBENCH_DEVICE_ROOT"')
    assert done.stdout == f"{tools}:/usr/bin:/bin\n/srv/a b\n", done.stderr
    assert ssh(server.ssh_config, server.alias, "tegrastats").stdout == "fake tegrastats\n"


def test_an_unauthorized_key_is_refused(server: SshServer) -> None:
    done = ssh(server.wrong_key_config(), server.alias, "echo ok")
    assert done.returncode == 255
    assert "Permission denied (publickey" in done.stderr


def test_a_changed_host_key_is_refused(server: SshServer) -> None:
    done = ssh(server.changed_host_key_config(), server.alias, "echo ok")
    assert done.returncode == 255
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in done.stderr


def test_a_closed_port_refuses_the_connection(server: SshServer) -> None:
    done = ssh(server.unreachable_config(), server.alias, "echo ok")
    assert done.returncode == 255
    assert "Connection refused" in done.stderr


def test_dropping_connections_ends_a_running_command_and_the_server_stays_up(
    server: SshServer,
) -> None:
    command = ["ssh", "-F", str(server.ssh_config), server.alias, "echo started; sleep 30"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as client:
        assert client.stdout.readline() == b"started\n"
        server.drop_connections()
        assert client.wait(timeout=5) == 255  # at once, not when `sleep 30` ends
    assert ssh(server.ssh_config, server.alias, "echo ok").stdout == "ok\n"


@pytest.fixture
def control_dir() -> Iterator[Path]:
    """A short folder for control sockets (a socket's path must stay under ~100 bytes)."""
    with tempfile.TemporaryDirectory(prefix="ssh-cm-", dir="/tmp") as folder:
        yield Path(folder)


def test_a_second_command_reuses_the_control_master(server: SshServer, control_dir) -> None:
    shared = ("-o", "ControlMaster=auto", "-o", f"ControlPath={control_dir}/%C")
    persist = (*shared, "-o", "ControlPersist=60")
    try:
        assert ssh(server.ssh_config, server.alias, "echo one", *persist).stdout == "one\n"
        check = subprocess.run(
            ["ssh", "-F", str(server.ssh_config), *shared, "-O", "check", server.alias],
            capture_output=True,
            text=True,
            timeout=10,
        )
        assert check.returncode == 0 and "Master running" in check.stderr, check.stderr
        assert ssh(server.ssh_config, server.alias, "echo two", *persist).stdout == "two\n"
        assert server.log_text().count("Accepted publickey") == 1
    finally:
        subprocess.run(
            ["ssh", "-F", str(server.ssh_config), *shared, "-O", "exit", server.alias],
            capture_output=True,
            timeout=10,
        )


def test_a_stopped_server_refuses_connections(tmp_path) -> None:
    with SshServer(tmp_path / "sshd") as server:
        assert ssh(server.ssh_config, server.alias, "echo ok").returncode == 0
    done = ssh(server.ssh_config, server.alias, "echo ok")
    assert done.returncode == 255
    assert "Connection refused" in done.stderr
