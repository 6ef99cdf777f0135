"""Where exported models are cached, and the content keys that name cache entries."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from pathlib import Path

import platformdirs

CACHE_DIR_ENV = "DEPLOYBENCH_CACHE_DIR"


def default_cache_dir() -> Path:
    """``$DEPLOYBENCH_CACHE_DIR`` when set, else the platform's user cache dir for deploybench."""
    override = os.environ.get(CACHE_DIR_ENV)
    if override:
        return Path(override)
    return Path(platformdirs.user_cache_dir("deploybench"))


def cache_key(**parts: object) -> str:
    """16 hex digits of the SHA-256 of ``parts`` as canonical JSON (sorted keys, no spaces).

    Equal parts give equal keys whatever their order; values must be JSON-serialisable
    (anything else is written with ``str``).
    """
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def module_file_digest(module_name: str) -> str:
    """16 hex digits of the SHA-256 of the file defining ``module_name``, or "" if none.

    Locates the file without executing the module, so a cache key can follow edits to a
    model's code without importing torch.
    """
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        return ""
    origin = Path(spec.origin) if spec and spec.origin else None
    if origin is None or not origin.is_file():
        return ""
    return file_digest(origin)


def file_digest(path: Path) -> str:
    """16 hex digits of the SHA-256 of the file's content, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]
