"""Reference outputs for a user's ONNX file, which has no PyTorch module to compare with:
ONNX Runtime on the CPU runs the file as given (as Polygraphy compares against
``onnxrt``), on the seeded inputs or the user's ``--inputs``. Cached by the file's
content, the inputs and the ONNX Runtime version."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.core.digest import cache_key, file_digest
from bench.core.locks import entry_lock
from bench.core.spec import PreparedModel, make_inputs
from exporters.reference import reference_key, write_reference


def reference_inputs(
    prepared: PreparedModel, data: dict[str, np.ndarray] | None
) -> dict[str, np.ndarray]:
    """What every cell of the file is fed, in the order of its inputs: the user's arrays,
    else seeded ones."""
    if data is None:
        return make_inputs(prepared.inputs, {}, prepared.seed)
    return {spec.name: data[spec.name] for spec in prepared.inputs}


def with_ort_reference(
    prepared: PreparedModel, feeds: dict[str, np.ndarray], cache_dir: Path
) -> PreparedModel:
    """``prepared`` with a reference file of ``feeds`` and ONNX Runtime's CPU outputs on
    them. When ONNX Runtime cannot run the file, a file of the inputs alone, and the
    reason there is no reference (tried again by the next run)."""
    import onnxruntime

    version = onnxruntime.__version__  # the onnxruntime and onnxruntime-gpu wheels alike
    target = _entry(prepared, feeds, cache_dir, f"onnxruntime {version}")
    with entry_lock(target, scratch=f".{target.name}.*.partial"):
        if not target.is_file():
            try:
                outputs = _run(prepared.onnx_path, feeds)
            except Exception as exc:  # the file's own fault: no reference, cells still run
                why = f"onnxruntime {version} CPU could not run the file ({_first_line(exc)})"
                return without_reference(prepared, feeds, cache_dir, why)
            batch = _batch(feeds)
            outputs = {reference_key(batch, "out", n): a for n, a in outputs.items()}
            write_reference(target, {**_input_arrays(feeds), **outputs})
    origin = f"onnxruntime {version} CPU, the file as given"
    return replace(prepared, reference=target, reference_origin=origin)


def without_reference(
    prepared: PreparedModel, feeds: dict[str, np.ndarray], cache_dir: Path, why: str
) -> PreparedModel:
    """``prepared`` with a reference file of ``feeds`` alone, and ``why`` there are no
    reference outputs."""
    target = _entry(prepared, feeds, cache_dir, "inputs")
    with entry_lock(target, scratch=f".{target.name}.*.partial"):
        if not target.is_file():
            write_reference(target, _input_arrays(feeds))
    return replace(prepared, reference=target, reference_origin="", no_reference=why)


def _entry(
    prepared: PreparedModel, feeds: dict[str, np.ndarray], cache_dir: Path, maker: str
) -> Path:
    key = cache_key(
        file=file_digest(prepared.onnx_path),
        inputs={name: _array_key(array) for name, array in feeds.items()},
        maker=maker,
    )
    return Path(cache_dir) / "onnx-reference" / f"{prepared.onnx_path.stem}-{key}.npz"


def _input_arrays(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    batch = _batch(feeds)
    return {reference_key(batch, "in", name): array for name, array in feeds.items()}


def cpu_session(path: Path) -> Any:
    """An ONNX Runtime session running the file at ``path`` as given, on the CPU, its
    warnings left out of the run's output (what every reference and check runs on)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _run(path: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = cpu_session(path)
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))


def _batch(feeds: dict[str, np.ndarray]) -> int:
    """The cells' batch: the first input's leading size (1 for a scalar or no input)."""
    first = next(iter(feeds.values()), None)
    return int(first.shape[0]) if first is not None and first.ndim else 1


def _array_key(array: np.ndarray) -> str:
    digest = hashlib.sha256(f"{array.dtype}{array.shape}".encode())
    digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:300]
