"""Labelled data the cells are scored on (``--dataset``, ``[dataset]``).

Two forms: an ``.npz`` of arrays named as the model's inputs (samples on the first axis)
plus ``labels``, or an ImageFolder tree (a folder of images per class, classes numbered in
sorted order as torchvision's ImageFolder numbers them) read with a named preset. The
samples are shuffled with the dataset's seed; the first ``calibration`` of them calibrate
int8 cells and are never scored, the next ``samples`` are scored. Every fault is a
one-line UserError before any cell: labels that do not match the samples, an ImageFolder
with no class folders, an image that cannot be read, a preset that does not make the
model's input, an input the model does not have.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from bench.core.errors import UserError
from bench.core.settings import DatasetConfig
from bench.core.spec import ScoredData, TensorSpec
from exporters.onnx_file import load_inputs_file
from exporters.reference import write_reference
from exporters.scored_reference import LABELS, SAMPLES, TIMED

IMAGES = ""
"""The key of an image folder's images: they feed a model's one input, whatever its name."""
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".webp", ".tif", ".tiff")


@dataclass(frozen=True)
class Preset:
    """How an image becomes a model input, as torchvision's ``transforms`` do it for
    pretrained weights: the shorter side resized to ``resize`` (bilinear), the centre
    ``crop`` square cut, values scaled to [0, 1], then normalised per channel by ``mean``
    and ``std``; ``mode`` is PIL's (``RGB``, ``L`` for grey)."""

    resize: int
    crop: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    mode: str = "RGB"

    @property
    def shape(self) -> tuple[int, int, int]:
        """The ``(channels, height, width)`` of one sample it makes."""
        return (len(self.mean), self.crop, self.crop)

    def image(self, path: Path) -> np.ndarray:
        """The image at ``path`` as a float32 ``(C, H, W)`` sample; UserError naming the
        file where it cannot be read."""
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as opened:
                image = opened.convert(self.mode)
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            raise UserError(
                f"--dataset: cannot read the image {path} ({type(exc).__name__}): "
                "remove it or replace it with a readable image"
            ) from None
        width, height = image.size  # sizes and offsets rounded as torchvision rounds them
        short, long = sorted((width, height))
        resized = (self.resize, int(self.resize * long / short))
        size = resized if width <= height else resized[::-1]
        image = image.resize(size, Image.Resampling.BILINEAR)
        left = int(round((size[0] - self.crop) / 2.0))
        top = int(round((size[1] - self.crop) / 2.0))
        image = image.crop((left, top, left + self.crop, top + self.crop))
        pixels = np.asarray(image, dtype=np.float32) / 255.0
        pixels = pixels[:, :, None] if pixels.ndim == 2 else pixels
        normalised = (pixels - np.float32(self.mean)) / np.float32(self.std)
        return np.ascontiguousarray(normalised.transpose(2, 0, 1), dtype=np.float32)


IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
PRESETS = {
    "imagenet": Preset(256, 224, *IMAGENET),
    "imagenet-v2": Preset(232, 224, *IMAGENET),
    "inception": Preset(342, 299, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "cifar10": Preset(32, 32, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "mnist": Preset(28, 28, (0.1307,), (0.3081,), "L"),
    "mnist32": Preset(32, 32, (0.1307,), (0.3081,), "L"),
}
"""The presets by name: ``imagenet`` is torchvision's ImageNet weights' (256 → 224; the
``IMAGENET1K_V2`` weights of ResNet-50 and others resize to 232, ``imagenet-v2``),
``inception`` Inception v3's, ``cifar10`` and ``mnist`` the datasets' usual normalisation,
``mnist32`` MNIST's resized to LeNet-5's 32×32 input (stretched, not padded)."""


@dataclass(frozen=True)
class Dataset:
    """The samples read, in shuffled order: ``calibration`` first, then those scored.
    ``inputs`` by input name; ``labels`` None where the data has none."""

    name: str
    origin: str
    inputs: dict[str, np.ndarray]
    labels: np.ndarray | None
    total: int
    calibration: int
    seed: int

    @property
    def scored(self) -> int:
        return len(next(iter(self.inputs.values()))) - self.calibration

    def calibration_arrays(self) -> dict[str, np.ndarray]:
        """The samples int8 calibration runs on (disjoint from those scored)."""
        return {name: array[: self.calibration] for name, array in self.inputs.items()}

    def split(self) -> str:
        """What was scored and what calibrated, in words."""
        held = f"; the {self.calibration} before them calibrate int8" if self.calibration else ""
        return f"{self.scored} of {self.total} samples scored, shuffled with seed {self.seed}{held}"


def load_dataset(config: DatasetConfig, calibration: int = 0) -> Dataset:
    """The dataset ``config`` names, shuffled and cut to ``calibration`` samples held out
    plus ``config.samples`` scored (0: all the rest). An image folder's images feed a
    model's one input, whatever its name."""
    if config.path is None:
        raise ValueError("no dataset path")
    path = Path(config.path)
    if path.is_dir():
        return _image_folder(path, config, calibration)
    if not path.is_file():
        raise UserError(
            f"--dataset {path}: no such file or folder: give an .npz or an image folder"
        )
    if config.preset is not None:
        raise UserError(
            f"--dataset {path}: a preset applies to an image folder; an .npz holds the "
            "inputs as fed: leave out --dataset-preset"
        )
    return _npz(path, config, calibration)


def _npz(path: Path, config: DatasetConfig, calibration: int) -> Dataset:
    arrays = load_inputs_file(path, "--dataset")
    labels = arrays.pop(LABELS, None)
    if not arrays:
        raise UserError(f"--dataset {path}: holds no input arrays: name them as the model's inputs")
    counts = {name: len(array) if array.ndim else 0 for name, array in arrays.items()}
    total = next(iter(counts.values()))
    if len(set(counts.values())) > 1:
        sizes = ", ".join(f"{name} {count}" for name, count in counts.items())
        raise UserError(f"--dataset {path}: its inputs differ in sample count ({sizes})")
    if labels is not None and (labels.ndim == 0 or len(labels) != total):
        given = len(labels) if labels.ndim else "a scalar"
        raise UserError(
            f"--dataset {path}: {given} labels for {total} samples: give one label per sample"
        )
    if labels is not None and not np.issubdtype(labels.dtype, np.integer):
        raise UserError(
            f"--dataset {path}: labels are {labels.dtype}: give class indices as integers"
        )
    order = _order(total, config, calibration, str(path))
    inputs = {name: array[order] for name, array in arrays.items()}
    chosen = None if labels is None else labels[order]
    return Dataset(path.stem, str(path), inputs, chosen, total, calibration, config.seed)


def _image_folder(root: Path, config: DatasetConfig, calibration: int) -> Dataset:
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise UserError(
            f"--dataset {root}: no class folders: an image folder holds one folder of "
            "images per class (root/CLASS/image.jpg)"
        )
    if config.preset is None:
        raise UserError(f"--dataset {root}: an image folder needs --dataset-preset ({_names()})")
    preset = PRESETS.get(config.preset)
    if preset is None:
        raise UserError(f"unknown --dataset-preset '{config.preset}': choose {_names()}")
    files = [
        (path, label)
        for label, name in enumerate(classes)
        for path in sorted((root / name).rglob("*"))
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()
    ]
    if not files:
        raise UserError(
            f"--dataset {root}: no images in its {len(classes)} class folders "
            f"({', '.join(IMAGE_SUFFIXES)})"
        )
    order = _order(len(files), config, calibration, str(root))
    chosen = [files[i] for i in order]
    images = np.stack([preset.image(path) for path, _ in chosen])
    labels = np.array([label for _, label in chosen], dtype=np.int64)
    origin = f"{root} ({len(classes)} classes, preset {config.preset})"
    return Dataset(
        root.name, origin, {IMAGES: images}, labels, len(files), calibration, config.seed
    )


def _names() -> str:
    return ", ".join(PRESETS)


def _order(total: int, config: DatasetConfig, calibration: int, where: str) -> np.ndarray:
    """The indices read: shuffled, the held-out calibration samples first."""
    if total <= calibration:
        raise UserError(
            f"--dataset {where}: {total} samples, none left to score after the "
            f"{calibration} that calibrate int8: give --calibration-samples fewer or "
            "--calibration-data FILE"
        )
    scored = (
        total - calibration if config.samples == 0 else min(config.samples, total - calibration)
    )
    order = np.random.default_rng(config.seed).permutation(total)
    return order[: calibration + scored]


def check_dataset(dataset: Dataset, inputs: tuple[TensorSpec, ...], model: str) -> Dataset:
    """``dataset`` with its arrays in the dtypes of the model's ``inputs``; UserError
    naming the mismatch where an array is not an input of the model, an input has no
    array, or a sample's shape is not the input's."""
    names = [spec.name for spec in inputs]
    if IMAGES in dataset.inputs:
        if len(names) != 1:
            raise UserError(
                f"--dataset {dataset.origin}: images feed one input but {model} takes "
                f"{len(names)} ({', '.join(names)}): give an .npz with an array for each"
            )
        dataset = replace(dataset, inputs={names[0]: dataset.inputs[IMAGES]})
    unknown = sorted(set(dataset.inputs) - set(names))
    if unknown:
        raise UserError(
            f"--dataset {dataset.origin}: {', '.join(unknown)} is not an input of {model} "
            f"(its inputs: {', '.join(names)}): name the arrays as its inputs"
        )
    missing = [name for name in names if name not in dataset.inputs]
    if missing:
        raise UserError(
            f"--dataset {dataset.origin}: no array for {model}'s input "
            f"{', '.join(missing)}: add it, named so"
        )
    arrays = {}
    for spec in inputs:
        array = dataset.inputs[spec.name]
        if not spec.takes_samples(array.shape):
            sample = "x".join(map(str, array.shape[1:])) or "a scalar"
            wanted = "x".join(map(str, spec.shape[1:]))
            raise UserError(
                f"--dataset {dataset.origin}: a sample of '{spec.name}' is {sample} but "
                f"{model} takes {wanted}: give samples of that size (or another preset)"
            )
        arrays[spec.name] = _as_dtype(array, spec, dataset.origin)
    return replace(dataset, inputs=arrays)


def labelled_task(task: str, outputs: tuple[TensorSpec, ...], labels: np.ndarray | None) -> str:
    """The task a model is scored as on ``labels``: its own, unless it is ``unknown`` (an
    ONNX file): then one class index per sample and a first output of (batch, classes)
    make a classifier, a class map per sample and a first output of (batch, classes,
    *map) a segmentation model; anything else stays ``unknown`` (scored by agreement)."""
    if task != "unknown" or labels is None or not outputs:
        return task
    if labels.ndim == 1 and len(outputs[0].shape) == 2:
        return "classification"
    if labels.ndim >= 3 and len(outputs[0].shape) == labels.ndim + 1:
        return "segmentation"
    return task


def check_labels(dataset: Dataset, task: str, outputs: tuple[TensorSpec, ...], model: str) -> None:
    """UserError where the labels cannot score ``task``: a classifier takes one class
    index per sample (not one-hot rows), segmentation a class map per sample of the size
    of the model's output maps."""
    labels = dataset.labels
    if labels is None or not outputs:
        return
    given = "x".join(map(str, labels.shape[1:])) or "one value"
    if task == "classification" and labels.ndim != 1:
        raise UserError(
            f"--dataset {dataset.origin}: each sample's label is {given}, but {model} is "
            "a classifier: give one class index per sample (not one-hot rows)"
        )
    if task == "segmentation":
        maps = outputs[0].shape[2:]
        fits = labels.ndim == len(maps) + 1 and all(
            not isinstance(m, int) or m == n for m, n in zip(maps, labels.shape[1:], strict=True)
        )
        if not fits:
            wanted = "x".join(map(str, maps))
            raise UserError(
                f"--dataset {dataset.origin}: label maps of {given} but {model}'s output "
                f"maps are {wanted}: give a class map per sample of that size"
            )


def _as_dtype(array: np.ndarray, spec: TensorSpec, origin: str) -> np.ndarray:
    dtype = np.dtype(spec.dtype)
    if np.issubdtype(dtype, np.integer) and not np.issubdtype(array.dtype, np.integer):
        raise UserError(
            f"--dataset {origin}: '{spec.name}' holds {array.dtype} but the model takes "
            f"{dtype}: give integer arrays"
        )
    return np.ascontiguousarray(array.astype(dtype, copy=False))


def stage(dataset: Dataset, cache_dir: Path, ignore_index: int, timed: int) -> ScoredData:
    """The scored samples written once to the cache (by content) for the cell workers,
    with the first ``timed`` of them again apart (a cell is timed on its batch of them
    without reading the rest)."""
    scored = {f"{SAMPLES}{n}": a[dataset.calibration :] for n, a in dataset.inputs.items()}
    if dataset.labels is not None:
        scored[LABELS] = dataset.labels[dataset.calibration :]
    digest = hashlib.sha256()
    for key in sorted(scored):
        digest.update(f"{key}{scored[key].dtype}{scored[key].shape}".encode())
        digest.update(np.ascontiguousarray(scored[key]).tobytes())
    content = digest.hexdigest()[:16]
    first = {f"{TIMED}{n}": a[dataset.calibration :][:timed] for n, a in dataset.inputs.items()}
    folder = Path(cache_dir) / "datasets"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{dataset.name}-{content}-{timed}.npz"
    if not path.is_file():
        write_reference(path, {**scored, **first})
    split = dataset.split()
    return ScoredData(path, dataset.name, split, dataset.scored, content, ignore_index)
