"""A cell scored on labelled data: its outputs on every scored sample, run in the cell's
batch, against the labels (top-1 and top-5, mean IoU) and against the reference outputs on
the same samples (the figures and verdict of bench.harness.accuracy's ``Agreement``). The
figures run over the samples chunk by chunk: a segmentation model's outputs are never all
held."""

from __future__ import annotations

import numpy as np

from bench.core.record import Accuracy, TaskAccuracy
from bench.core.spec import PreparedModel, ScoredData
from bench.harness.accuracy import Agreement, top_classes
from exporters.reference import load_all
from exporters.scored_reference import OUTPUTS, TIMED, chunks, read_staged
from runtimes.base import Session


class Classification:
    """Top-1 and top-5 hits of a classifier's first output against integer labels; labels
    beyond its classes are counted apart."""

    def __init__(self) -> None:
        self.hits1 = self.hits5 = self.counted = self.outside = 0
        self.classes = 0

    def add(self, logits: np.ndarray, labels: np.ndarray) -> None:
        flat = np.asarray(logits).reshape(len(logits), -1)
        self.classes = flat.shape[1]
        labels = np.asarray(labels).reshape(-1)
        inside = (labels >= 0) & (labels < self.classes)
        self.outside += int(np.sum(~inside))
        hits = top_classes(flat[inside], 5) == labels[inside][:, None]
        self.hits1 += int(np.sum(hits[:, 0]))
        self.hits5 += int(np.sum(hits.any(axis=1)))
        self.counted += int(np.sum(inside))

    def value(self) -> float | None:
        """Top-1 over the labels within the classes."""
        return self.hits1 / self.counted if self.counted else None

    def top5(self) -> float | None:
        """Top-5, for a classifier of five classes or more."""
        return self.hits5 / self.counted if self.counted and self.classes >= 5 else None


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
        """Mean IoU over the classes labelled or predicted."""
        if self.confusion is None:
            return None
        hits = np.diag(self.confusion).astype(np.float64)
        union = self.confusion.sum(axis=0) + self.confusion.sum(axis=1) - hits
        present = union > 0
        return float(np.mean(hits[present] / union[present])) if present.any() else None

    def top5(self) -> None:
        return None


Score = Classification | Segmentation


def scorer(task: str, labelled: bool, ignore_index: int) -> Score | None:
    """What scores ``task`` against labels; None where it has no labelled metric."""
    if not labelled:
        return None
    if task == "classification":
        return Classification()
    if task == "segmentation":
        return Segmentation(ignore_index)
    return None


def timed_samples(scored: ScoredData, batch: int) -> dict[str, np.ndarray]:
    """What a cell is timed on: the first ``batch`` scored samples (the last repeated
    where there are fewer), read without the rest."""
    first, _ = read_staged(scored.path, TIMED)
    return next(chunks(first, batch))[0]


def score_cell(session: Session, model: PreparedModel, batch: int, tolerance: str) -> Accuracy:
    """The cell's accuracy on ``model.scored``, its outputs judged under ``tolerance``."""
    scored = model.scored
    assert scored is not None
    feeds, labels = read_staged(scored.path)
    reference = load_all(scored.reference) if scored.reference else None
    labelled = labels is not None
    cell_score = scorer(model.task, labelled, scored.ignore_index)
    reference_score = scorer(model.task, labelled, scored.ignore_index)
    agreement = Agreement(model.task == "classification")
    first = model.outputs[0].name if model.outputs else None
    start = 0
    for chunk, real in chunks(feeds, batch):
        outputs = {n: a[:real] for n, a in session.infer(chunk).items()}
        first = first if first in outputs else next(iter(outputs))
        want = None
        if reference is not None:
            want = {n.removeprefix(OUTPUTS): a[start : start + real] for n, a in reference.items()}
            agreement.add(outputs, want)
        if cell_score is not None and labels is not None:
            cell_score.add(outputs[first], labels[start : start + real])
            if reference_score is not None and want is not None:
                reference_score.add(want[first], labels[start : start + real])
        start += real
    referenced = reference is not None
    task = _task(scored, agreement, cell_score, reference_score if referenced else None)
    if not referenced:
        why = scored.no_reference or "no reference outputs on the dataset"
        return Accuracy(unavailable=why, dataset=task)
    return Accuracy(reference=scored.reference_origin, dataset=task, **agreement.figures(tolerance))


def _task(
    scored: ScoredData,
    agreement: Agreement,
    cell_score: Score | None,
    reference_score: Score | None,
) -> TaskAccuracy:
    """The record's ``accuracy.dataset``: the labelled metric where there is one (the
    reference's beside it where ``reference_score`` ran), else the agreement with the
    reference where there is one."""
    task = TaskAccuracy(
        dataset=scored.name, digest=scored.digest, split=scored.split, samples=scored.samples
    )
    if cell_score is not None:
        task.metric = "top1" if isinstance(cell_score, Classification) else "miou"
        task.value, task.top5 = cell_score.value(), cell_score.top5()
        task.labels_outside = cell_score.outside
        if reference_score is not None:
            task.reference_value, task.reference_top5 = (
                reference_score.value(),
                reference_score.top5(),
            )
        if task.value is None:
            task.unavailable = "no label within the model's classes"
    elif scored.reference is not None:
        task.metric, task.value, task.reference_value = "agreement", agreement.cosine(), 1.0
    else:
        task.unavailable = f"no labels and no reference: {scored.no_reference}"
    return task
