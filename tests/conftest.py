"""Shared fixtures: one export cache for the whole session, so each model is exported once;
real OpenSSH servers on 127.0.0.1 for the remote-device tests."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fixtures.sshd import SshServer, require_sshd

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An export cache shared by every test of the session (never the user's own cache),
    and by every pytest-xdist worker of it: each cache entry is made under its own lock."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):  # <basetemp>/popen-gwN: share the parent
        root = root.parent
    path = root / "export-cache"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture
def ssh_server(tmp_path: Path) -> Iterator[Callable[..., SshServer]]:
    """``ssh_server(environment={...})`` starts a real sshd on 127.0.0.1 and returns it
    (``ssh -F server.ssh_config server.alias CMD``); every one started is stopped after the
    test. Skips without /usr/sbin/sshd (fails under $DEPLOYBENCH_REQUIRE_SSHD)."""
    require_sshd()
    servers: list[SshServer] = []

    def start(
        environment: dict[str, str] | None = None,
        alias: str = "jetson",
        private: Path | None = None,
    ) -> SshServer:
        server = SshServer(tmp_path / f"sshd-{len(servers)}", environment, alias, private)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()
