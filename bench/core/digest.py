"""Content keys that name cache entries (exported models, converted graphs, engines)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def cache_key(**parts: object) -> str:
    """16 hex digits of the SHA-256 of ``parts`` as canonical JSON (sorted keys, no spaces).

    Equal parts give equal keys whatever their order; values must be JSON-serialisable
    (anything else is written with ``str``).
    """
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def file_digest(path: Path) -> str:
    """16 hex digits of the SHA-256 of the file's content, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]
