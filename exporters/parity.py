"""Verify an exported ONNX file against the PyTorch reference outputs in ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.core.spec import TensorSpec
from exporters.errors import ExportError
from exporters.reference import reference_key

RTOL = 1e-3
ATOL = 1e-4
"""ONNX Runtime must match PyTorch within ATOL + RTOL * max|reference| per output."""


def check_parity(
    onnx_path: Path,
    inputs: tuple[TensorSpec, ...],
    output_names: tuple[str, ...],
    arrays: dict[str, np.ndarray],
    batch_sizes: list[int],
) -> str:
    """Run the ONNX file in ONNX Runtime (CPU) on the reference inputs; a note of the errors.

    Raises ExportError when an output differs from PyTorch beyond the tolerance.
    """
    from exporters.onnx_reference import cpu_session

    session = cpu_session(onnx_path)
    errors = []
    for batch in batch_sizes:
        feeds = {s.name: arrays[reference_key(batch, "in", s.name)] for s in inputs}
        results = session.run(list(output_names), feeds)
        worst = 0.0
        for name, got in zip(output_names, results, strict=True):
            expected = arrays[reference_key(batch, "out", name)]
            if got.shape != expected.shape:
                raise ExportError(
                    f"ONNX output '{name}' has shape {got.shape} at batch {batch}, "
                    f"PyTorch gives {expected.shape}"
                )
            error = float(np.max(np.abs(got.astype(np.float64) - expected), initial=0.0))
            limit = ATOL + RTOL * float(np.max(np.abs(expected), initial=0.0))
            if not error <= limit:
                raise ExportError(
                    f"ONNX output '{name}' differs from PyTorch at batch {batch}: "
                    f"max abs error {error:.3g} > tolerance {limit:.3g}"
                )
            worst = max(worst, error)
        errors.append(f"b{batch}={worst:.2g}")
    return f"onnxruntime CPU vs PyTorch FP32, max abs error: {', '.join(errors)}"
