"""The reference file: seeded inputs and PyTorch FP32 outputs per batch size (``.npz``).

Keys are ``b<batch>/in/<input name>`` and ``b<batch>/out/<output name>``. Reading and
writing need only numpy, so any runtime worker can compare its outputs with the reference.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

_KEY = re.compile(r"^b(\d+)/(in|out)/(.+)$")


def reference_key(batch: int, kind: str, name: str) -> str:
    """The npz key of tensor ``name`` at ``batch``; ``kind`` is ``"in"`` or ``"out"``."""
    return f"b{batch}/{kind}/{name}"


def reference_batches(path: Path) -> set[int]:
    """The batch sizes that have reference tensors in the file at ``path``."""
    with np.load(path) as data:
        return {int(match.group(1)) for key in data.files if (match := _KEY.match(key))}


def load_reference(path: Path, batch: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``(inputs, outputs)`` by tensor name at ``batch`` (outputs empty in a file of inputs
    alone); KeyError if that batch is absent."""
    inputs: dict[str, np.ndarray] = {}
    outputs: dict[str, np.ndarray] = {}
    with np.load(path) as data:
        for key in data.files:
            match = _KEY.match(key)
            if match and int(match.group(1)) == batch:
                target = inputs if match.group(2) == "in" else outputs
                target[match.group(3)] = data[key]
    if not inputs and not outputs:
        raise KeyError(f"no reference at batch {batch} in {path}")
    return inputs, outputs


def load_all(path: Path) -> dict[str, np.ndarray]:
    """Every array in the reference file, by key."""
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def write_reference(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``path`` atomically: readers see the old file or the new one."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    with open(partial, "wb") as handle:
        np.savez(handle, **arrays)
    os.replace(partial, path)
