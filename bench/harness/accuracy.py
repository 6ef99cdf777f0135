"""Output agreement between a cell and the PyTorch FP32 reference on the same input, and
a pass / warn / fail verdict against the tolerances of the requested precision."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.core.record import Accuracy
from bench.core.spec import PreparedModel


@dataclass(frozen=True)
class Tolerance:
    """Limits on the error relative to the output's scale (max |error| / max |reference|)
    and on cosine similarity: within ``pass_*`` passes, within ``warn_*`` warns."""

    pass_error: float
    warn_error: float
    pass_cosine: float
    warn_cosine: float


TOLERANCES = {
    "fp32": Tolerance(pass_error=1e-4, warn_error=1e-3, pass_cosine=0.99999, warn_cosine=0.9999),
    "fp16": Tolerance(pass_error=1e-2, warn_error=5e-2, pass_cosine=0.999, warn_cosine=0.99),
    "bf16": Tolerance(pass_error=5e-2, warn_error=1e-1, pass_cosine=0.995, warn_cosine=0.98),
    "int8": Tolerance(pass_error=1e-1, warn_error=2.5e-1, pass_cosine=0.99, warn_cosine=0.95),
}
"""The int8 limits hold the error of post-training quantization with per-channel weights
(a few percent of the output's scale on the zoo's models) and fail a model whose outputs
it has scrambled. Cosine similarity of the whole output is the informative figure where
top-1 agreement is not: a random-weight classifier sends many inputs to one class, so
top-1 can agree while the logits are noise (top-1 agreement below 1 only warns)."""
TOP1_WARN = 1.0
"""Top-1 agreement below this (any flipped class) turns a pass into a warning."""


class Agreement:
    """Outputs against the reference's, over one or many chunks of samples: the largest
    absolute and relative errors, the error relative to the output's scale (max |error| /
    max |reference|), cosine similarity of everything seen, and for a classifier the
    share of samples whose first output's top class is the reference's. Relative errors
    are floored at 1e-6 of the largest reference value of their chunk, so that outputs
    near zero do not read as huge relative errors."""

    def __init__(self, classifier: bool) -> None:
        self.classifier = classifier
        self.max_abs = self.max_rel = self.scale = 0.0
        self.dot = self.got_sq = self.want_sq = 0.0
        self.agree = self.seen = 0

    def add(self, outputs: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> None:
        """One chunk: every output named in ``reference`` taken together."""
        got = np.concatenate([np.asarray(outputs[n], np.float64).ravel() for n in reference])
        want = np.concatenate([np.asarray(reference[n], np.float64).ravel() for n in reference])
        diff = np.abs(got - want)
        scale = float(np.abs(want).max(initial=0.0))
        floor = 1e-6 * scale + np.finfo(np.float32).tiny
        relative = float((diff / np.maximum(np.abs(want), floor)).max(initial=0.0))
        self.max_abs = max(self.max_abs, float(diff.max(initial=0.0)))
        self.max_rel = max(self.max_rel, relative)
        self.scale = max(self.scale, scale)
        self.dot += float(got @ want)
        self.got_sq += float(got @ got)
        self.want_sq += float(want @ want)
        if self.classifier:
            name = next(iter(reference))
            ours, theirs = top_classes(outputs[name], 1), top_classes(reference[name], 1)
            self.agree += int(np.sum(ours[:, 0] == theirs[:, 0]))
            self.seen += len(reference[name])

    def cosine(self) -> float:
        """Cosine similarity of all outputs seen (1 where both are all zeros)."""
        norms = np.sqrt(self.got_sq) * np.sqrt(self.want_sq)
        return self.dot / norms if norms > 0 else float(self.got_sq == self.want_sq == 0)

    def figures(self, precision: str) -> dict[str, float | str | None]:
        """The figures and the verdict under ``precision``'s tolerance."""
        figures: dict[str, float | str | None] = {
            "max_abs_error": self.max_abs,
            "max_rel_error": self.max_rel,
            "scaled_error": self.max_abs / self.scale if self.scale > 0 else 0.0,
            "cosine_similarity": self.cosine(),
            "top1_agreement": self.agree / self.seen if self.classifier and self.seen else None,
            "tolerance": precision,
        }
        figures["verdict"] = verdict(figures, TOLERANCES.get(precision, TOLERANCES["fp32"]))
        return figures


def top_classes(logits: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` highest classes of each sample (its values flattened), best first."""
    flat = np.asarray(logits).reshape(len(logits), -1)
    k = min(k, flat.shape[1])
    best = np.argpartition(-flat, k - 1, axis=1)[:, :k]
    ranks = np.take_along_axis(flat, best, axis=1).argsort(axis=1)[:, ::-1]
    return np.take_along_axis(best, ranks, axis=1)


def compare_outputs(
    outputs: dict[str, np.ndarray],
    reference: dict[str, np.ndarray],
    precision: str = "fp32",
    classifier: bool = False,
) -> dict[str, float | str | None]:
    """The ``Agreement`` figures of one set of outputs, and the verdict."""
    agreement = Agreement(classifier)
    agreement.add(outputs, reference)
    return agreement.figures(precision)


def verdict(figures: dict[str, float | str | None], tolerance: Tolerance) -> str:
    """``pass``, ``warn`` or ``fail`` for the figures of ``compare_outputs``."""
    error, cosine = float(figures["scaled_error"]), float(figures["cosine_similarity"])
    if error > tolerance.warn_error or cosine < tolerance.warn_cosine:
        return "fail"
    top1 = figures.get("top1_agreement")
    if error > tolerance.pass_error or cosine < tolerance.pass_cosine:
        return "warn"
    if top1 is not None and float(top1) < TOP1_WARN:
        return "warn"
    return "pass"


def cell_accuracy(
    model: PreparedModel,
    outputs: dict[str, np.ndarray],
    reference: dict[str, np.ndarray] | None,
    precision: str,
) -> Accuracy:
    """The cell's outputs against the reference, under the tolerance of the requested
    precision or of the model's own, whichever is looser (an FP16 file is no FP32
    model); unavailable, with the reason, where there is no reference."""
    if not reference:
        return Accuracy(unavailable=model.no_reference or "no reference outputs")
    classifier = model.task == "classification"
    figures = compare_outputs(outputs, reference, tolerance_of(model, precision), classifier)
    return Accuracy(reference=model.reference_origin, **figures)


def tolerance_of(model: PreparedModel, precision: str) -> str:
    """The tolerance a cell is judged under: the requested precision's, or the model
    file's own where that is looser (an FP16 file is no FP32 model)."""
    return model.precision if precision == "fp32" else precision
