"""Output agreement between a cell and the PyTorch FP32 reference on the same input."""

from __future__ import annotations

import numpy as np


def compare_outputs(
    outputs: dict[str, np.ndarray], reference: dict[str, np.ndarray]
) -> dict[str, float]:
    """Max absolute error, max relative error and cosine similarity over every output
    tensor named in ``reference``, taken together (worst case for the errors). Relative
    errors are floored at 1e-6 of the largest reference value so that outputs near zero
    do not read as huge relative errors."""
    got = np.concatenate([np.asarray(outputs[n], np.float64).ravel() for n in reference])
    want = np.concatenate([np.asarray(reference[n], np.float64).ravel() for n in reference])
    diff = np.abs(got - want)
    floor = 1e-6 * float(np.abs(want).max(initial=0.0)) + np.finfo(np.float32).tiny
    scale = np.maximum(np.abs(want), floor)
    norms = np.linalg.norm(got) * np.linalg.norm(want)
    return {
        "max_abs_error": float(diff.max()) if diff.size else 0.0,
        "max_rel_error": float((diff / scale).max()) if diff.size else 0.0,
        "cosine_similarity": float(got @ want / norms) if norms > 0 else float(got.size == 0),
    }
