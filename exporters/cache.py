"""Where exported models are cached, and the digest of a model's code in their keys."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import platformdirs

from bench.core.digest import file_digest

CACHE_DIR_ENV = "DEPLOYBENCH_CACHE_DIR"


def default_cache_dir() -> Path:
    """``$DEPLOYBENCH_CACHE_DIR`` when set, else the platform's user cache dir for deploybench."""
    override = os.environ.get(CACHE_DIR_ENV)
    if override:
        return Path(override)
    return Path(platformdirs.user_cache_dir("deploybench"))


def module_file_digest(module_name: str) -> str:
    """16 hex digits of the SHA-256 of the file defining ``module_name``, or "" if none.

    Locates the file without executing the module, so a cache key can follow edits to a
    model's code without importing torch.
    """
    if module_name.endswith(".py"):  # a factory given by its file
        return file_digest(Path(module_name)) if Path(module_name).is_file() else ""
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        return ""
    origin = Path(spec.origin) if spec and spec.origin else None
    if origin is None or not origin.is_file():
        return ""
    return file_digest(origin)
