"""Reference outputs on a dataset's scored samples: the PyTorch module in FP32 where the
model has one (as the seeded reference), else ONNX Runtime on the CPU running the file as
given. Cached beside the staged samples, keyed by the model file's content and the maker."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np

from bench.core.digest import cache_key, file_digest
from bench.core.locks import entry_lock
from bench.core.spec import PreparedModel, ScoredData
from exporters.reference import write_reference

CHUNK = 32
"""Samples the reference runs at once (a model of fixed batch runs its own)."""
SAMPLES, TIMED, LABELS, OUTPUTS = "in/", "first/", "labels", "out/"
"""The keys of a staged dataset file: the scored samples by input name, the first of
them again (what a cell is timed on, read without the rest), the labels; and of its
reference file, the outputs by name."""


def read_staged(
    path: Path, prefix: str = SAMPLES
) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """The arrays of a staged dataset file under ``prefix`` by input name, and its labels
    (None where it has none); only the arrays under ``prefix`` are read."""
    with np.load(path) as data:
        arrays = {k.removeprefix(prefix): data[k] for k in data.files if k.startswith(prefix)}
        labels = data[LABELS] if prefix == SAMPLES and LABELS in data.files else None
    return arrays, labels


def with_scored_reference(model: PreparedModel, scored: ScoredData) -> ScoredData:
    """``scored`` with the reference outputs of ``model`` on its samples (made once)."""
    maker = "pytorch fp32" if model.source else _ort_maker()
    key = cache_key(
        model=file_digest(model.onnx_path), source=model.source, seed=model.seed, maker=maker
    )
    target = scored.path.with_name(f"{scored.path.stem}-reference-{key}.npz")
    with entry_lock(target, scratch=f".{target.name}.*.partial"):
        if not target.is_file():
            feeds, _ = read_staged(scored.path)
            outputs = _torch(model, feeds) if model.source else _ort(model, feeds)
            write_reference(target, {f"{OUTPUTS}{name}": array for name, array in outputs.items()})
    origin = f"{maker} on {scored.name}" if model.source else f"{maker} CPU on {scored.name}"
    return replace(scored, reference=target, reference_origin=origin)


def _ort_maker() -> str:
    import onnxruntime

    return f"onnxruntime {onnxruntime.__version__}"


def chunks(feeds: dict[str, np.ndarray], size: int) -> Iterator[tuple[dict[str, np.ndarray], int]]:
    """``feeds`` in chunks of ``size`` samples, the last padded with its last sample;
    each with how many of its samples are real."""
    total = len(next(iter(feeds.values())))
    for start in range(0, total, size):
        real = min(size, total - start)
        chunk = {}
        for name, array in feeds.items():
            part = array[start : start + real]
            if real < size:
                part = np.concatenate([part, np.repeat(part[-1:], size - real, axis=0)])
            chunk[name] = part
        yield chunk, real


def _gather(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


def _torch(model: PreparedModel, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    from exporters.source import build_module
    from exporters.torch_export import run_module

    module = build_module(model.source, model.seed)[0]
    names = [spec.name for spec in model.outputs]
    parts = []
    for chunk, real in chunks(feeds, CHUNK):
        outputs = run_module(module, model.inputs, chunk)
        parts.append({n: out[:real] for n, out in zip(names, outputs, strict=True)})
    return _gather(parts)


def _ort(model: PreparedModel, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    from exporters.onnx_reference import cpu_session

    session = cpu_session(model.onnx_path)
    first = session.get_inputs()[0].shape[0]
    size = first if isinstance(first, int) and first > 0 else CHUNK
    names = [output.name for output in session.get_outputs()]
    parts = []
    for chunk, real in chunks(feeds, size):
        outputs = session.run(names, chunk)
        parts.append({n: out[:real] for n, out in zip(names, outputs, strict=True)})
    return _gather(parts)
