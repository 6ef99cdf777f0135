"""A cell scored on labelled data: its outputs on every scored sample, run in the cell's
batch, against the labels (top-1 and top-5, mean IoU) and against the reference outputs on
the same samples (the error figures and verdict of bench.harness.accuracy). The figures
run over the samples chunk by chunk: a segmentation model's outputs are never all held."""

from __future__ import annotations

import numpy as np

from bench.core.record import Accuracy, TaskAccuracy
from bench.core.spec import PreparedModel, ScoredData
from bench.harness.accuracy import TOLERANCES, verdict
from exporters.reference import load_all
from exporters.scored_reference import chunks
from runtimes.base import Session

LABELS = "labels"


class Agreement:
    """The error figures of ``compare_outputs`` over chunks: the largest errors, the
    output's scale, cosine similarity of everything seen, top-1 agreement of a classifier.
    The relative error's floor is 1e-6 of the scale of the chunk it is in."""

    def __init__(self, classifier: bool) -> None:
        self.classifier = classifier
        self.max_abs = self.max_rel = self.scale = 0.0
        self.dot = self.got_sq = self.want_sq = 0.0
        self.agree = self.seen = 0

    def add(self, outputs: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> None:
        got = np.concatenate([np.asarray(outputs[n], np.float64).ravel() for n in reference])
        want = np.concatenate([np.asarray(reference[n], np.float64).ravel() for n in reference])
        diff = np.abs(got - want)
        scale = float(np.abs(want).max(initial=0.0))
        floor = 1e-6 * scale + np.finfo(np.float32).tiny
        self.max_abs = max(self.max_abs, float(diff.max(initial=0.0)))
        self.max_rel = max(
            self.max_rel, float((diff / np.maximum(np.abs(want), floor)).max(initial=0.0))
        )
        self.scale = max(self.scale, scale)
        self.dot += float(got @ want)
        self.got_sq += float(got @ got)
        self.want_sq += float(want @ want)
        if self.classifier:
            name = next(iter(reference))
            self.agree += int(
                np.sum(_top(outputs[name], 1)[:, 0] == _top(reference[name], 1)[:, 0])
            )
            self.seen += len(reference[name])

    def cosine(self) -> float:
        norms = np.sqrt(self.got_sq) * np.sqrt(self.want_sq)
        return self.dot / norms if norms > 0 else float(self.got_sq == self.want_sq == 0)

    def figures(self, precision: str) -> dict[str, float | str | None]:
        figures: dict[str, float | str | None] = {
            "max_abs_error": self.max_abs,
            "max_rel_error": self.max_rel,
            "scaled_error": self.max_abs / self.scale if self.scale > 0 else 0.0,
            "cosine_similarity": self.cosine(),
            "top1_agreement": self.agree / self.seen if self.classifier and self.seen else None,
        }
        figures["tolerance"] = precision
        figures["verdict"] = verdict(figures, TOLERANCES.get(precision, TOLERANCES["fp32"]))
        return figures


def _top(logits: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` highest classes of each sample, best first."""
    flat = np.asarray(logits).reshape(len(logits), -1)
    k = min(k, flat.shape[1])
    best = np.argpartition(-flat, k - 1, axis=1)[:, :k]
    ranks = np.take_along_axis(flat, best, axis=1).argsort(axis=1)[:, ::-1]
    return np.take_along_axis(best, ranks, axis=1)


class Classification:
    """Top-1 and top-5 hits of a classifier's first output against integer labels; labels
    beyond its classes are counted apart."""

    def __init__(self) -> None:
        self.top1 = self.top5 = self.counted = self.outside = 0
        self.classes = 0

    def add(self, logits: np.ndarray, labels: np.ndarray) -> None:
        flat = np.asarray(logits).reshape(len(logits), -1)
        self.classes = flat.shape[1]
        labels = np.asarray(labels).reshape(-1)
        inside = (labels >= 0) & (labels < self.classes)
        self.outside += int(np.sum(~inside))
        best = _top(flat[inside], 5)
        hits = best == labels[inside][:, None]
        self.top1 += int(np.sum(hits[:, 0]))
        self.top5 += int(np.sum(hits.any(axis=1)))
        self.counted += int(np.sum(inside))

    def value(self) -> float | None:
        return self.top1 / self.counted if self.counted else None

    def value5(self) -> float | None:
        return self.top5 / self.counted if self.counted and self.classes >= 5 else None


class Segmentation:
    """A confusion matrix of per-pixel classes (argmax over the first output's channel
    axis) against label maps; ``ignore_index`` is left out, other labels beyond the
    classes are counted apart. Mean IoU is over the classes present in either."""

    def __init__(self, ignore_index: int) -> None:
        self.ignore_index = ignore_index
        self.confusion: np.ndarray | None = None
        self.outside = 0

    def add(self, logits: np.ndarray, labels: np.ndarray) -> None:
        classes = logits.shape[1]
        if self.confusion is None:
            self.confusion = np.zeros((classes, classes), np.int64)
        predicted = np.asarray(logits).argmax(axis=1).ravel()
        labels = np.asarray(labels).reshape(predicted.shape)
        kept = labels != self.ignore_index
        inside = kept & (labels >= 0) & (labels < classes)
        self.outside += int(np.sum(kept & ~inside))
        pairs = labels[inside].astype(np.int64) * classes + predicted[inside]
        self.confusion += np.bincount(pairs, minlength=classes * classes).reshape(classes, classes)

    def value(self) -> float | None:
        if self.confusion is None:
            return None
        hits = np.diag(self.confusion).astype(np.float64)
        union = self.confusion.sum(axis=0) + self.confusion.sum(axis=1) - hits
        present = union > 0
        return float(np.mean(hits[present] / union[present])) if present.any() else None

    def value5(self) -> None:
        return None


def scorer(task: str, labelled: bool, ignore_index: int) -> Classification | Segmentation | None:
    """What scores ``task`` against labels; None where it has no labelled metric."""
    if not labelled:
        return None
    if task == "classification":
        return Classification()
    if task == "segmentation":
        return Segmentation(ignore_index)
    return None


def score_cell(
    session: Session, model: PreparedModel, batch: int, precision: str
) -> tuple[Accuracy, dict[str, np.ndarray]]:
    """The cell's accuracy on ``model.scored``, and the first ``batch`` scored samples
    (the cell's timed inputs)."""
    scored = model.scored
    assert scored is not None
    with np.load(scored.path) as data:
        feeds = {k.removeprefix("in/"): data[k] for k in data.files if k.startswith("in/")}
        labels = data[LABELS] if LABELS in data.files else None
    reference = load_all(scored.reference) if scored.reference else None
    ours = scorer(model.task, labels is not None, scored.ignore_index)
    theirs = scorer(model.task, labels is not None, scored.ignore_index)
    agreement = Agreement(model.task == "classification")
    first = next(iter(model.outputs)).name if model.outputs else None
    start = 0
    for chunk, real in chunks(feeds, batch):
        outputs = {n: a[:real] for n, a in session.infer(chunk).items()}
        first = first if first in outputs else next(iter(outputs))
        want = None
        if reference is not None:
            want = {n.removeprefix("out/"): a[start : start + real] for n, a in reference.items()}
            agreement.add(outputs, want)
        if ours is not None and labels is not None:
            ours.add(outputs[first], labels[start : start + real])
            if theirs is not None and want is not None:
                theirs.add(want[first], labels[start : start + real])
        start += real
    timed = {name: array[:batch] for name, array in next(chunks(feeds, batch))[0].items()}
    return _accuracy(scored, precision, agreement, ours, theirs, reference is not None), timed


def _accuracy(
    scored: ScoredData,
    precision: str,
    agreement: Agreement,
    ours: Classification | Segmentation | None,
    theirs: Classification | Segmentation | None,
    referenced: bool,
) -> Accuracy:
    task = TaskAccuracy(dataset=scored.name, split=scored.split, samples=scored.samples)
    if ours is not None:
        task.metric = "top1" if isinstance(ours, Classification) else "miou"
        task.value, task.top5 = ours.value(), ours.value5()
        task.labels_outside = ours.outside
        if referenced and theirs is not None:
            task.reference_value, task.reference_top5 = theirs.value(), theirs.value5()
        if task.value is None:
            task.unavailable = "no label within the model's classes"
    elif referenced:
        task.metric, task.value, task.reference_value = "agreement", agreement.cosine(), 1.0
    else:
        task.unavailable = f"no labels and no reference: {scored.no_reference}"
    if not referenced:
        why = scored.no_reference or "no reference outputs on the dataset"
        return Accuracy(unavailable=why, dataset=task)
    return Accuracy(reference=scored.reference_origin, dataset=task, **agreement.figures(precision))
