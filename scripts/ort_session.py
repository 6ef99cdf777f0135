"""The ONNX Runtime CPU session the overhead scripts time: a zoo model exported (or taken
from the cache), loaded with one thread per physical core, its reference inputs staged."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.core.cell import Target  # noqa: E402
from exporters.cache import default_cache_dir  # noqa: E402
from exporters.onnx_export import prepare_zoo_model  # noqa: E402
from exporters.reference import load_reference  # noqa: E402
from runtimes.base import LoadOptions  # noqa: E402
from runtimes.onnxruntime_rt import OnnxRuntime  # noqa: E402


def staged_session(model: str, batch: int) -> tuple[Any, dict[str, np.ndarray], int]:
    """The loaded session (inputs already staged), its feeds and its thread count."""
    cache_dir = default_cache_dir()
    prepared = prepare_zoo_model(model, [batch], cache_dir)
    feeds, _ = load_reference(prepared.reference, batch)
    runtime, target = OnnxRuntime(), Target("cpu", "fp32")
    threads = psutil.cpu_count(logical=False) or 1
    options = LoadOptions(threads=threads)
    built = runtime.build(prepared, target, options, cache_dir)
    session = runtime.load(built, prepared, target, options)
    session.stage(feeds)
    return session, feeds, threads
