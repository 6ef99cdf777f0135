"""Shared fixtures: one export cache for the whole session, so each model is exported once."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An export cache shared by every test of the session (never the user's own cache)."""
    return tmp_path_factory.mktemp("export-cache")
