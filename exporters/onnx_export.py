"""Prepare a PyTorch model for the runtimes: ONNX file, reference outputs, facts; cached.

A cache entry is ``<cache_dir>/onnx/<name>-<key>/`` holding ``model.onnx``,
``reference.npz`` and ``prepared.json``. It is built in a temporary directory and renamed
into place, so a killed export never leaves half an entry. A cache hit imports no torch.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from bench.core.digest import cache_key
from bench.core.locks import entry_lock
from bench.core.spec import BATCH, PreparedModel, TensorSpec, make_inputs, with_ranges
from exporters.cache import module_file_digest
from exporters.onnx_file import default_opset, value_specs
from exporters.parity import check_parity
from exporters.pretrained import PACKAGES, parse_source, weights_identity
from exporters.reference import load_all, reference_batches, write_reference
from exporters.source import (
    FACTORY_PREFIX,
    ZOO_PREFIX,
    build_module,
    builder_path,
    factory_input_specs,
)
from exporters.zoo import get_entry

if TYPE_CHECKING:
    import onnx
    from torch import nn

    from exporters.pretrained_load import Loaded

EXPORTER_VERSION = 4
"""Bump when a change here alters the files produced, to invalidate old cache entries.
4: the zoo's ResNet-18/50, MobileNetV2 and Xception halve their residual branches as
ResNet-152 does (docs/zoo-drift.md): their exports and reference outputs, and so the
baselines measured on them, change once."""

MODEL_FILE = "model.onnx"
REFERENCE_FILE = "reference.npz"
PREPARED_FILE = "prepared.json"


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return ""


@dataclass(frozen=True)
class _Request:
    """What determines an export: equal requests give the same cache entry."""

    name: str
    source: str
    inputs: tuple[TensorSpec, ...]
    output_names: tuple[str, ...] | None
    task: str
    opset: int
    seed: int
    dynamic_axes: dict[str, dict[int, str]] = field(default_factory=dict)
    given: dict[str, object] = field(default_factory=dict)
    """A pretrained model's key in place of its inputs (known once it is loaded): its
    weights' identity, library version, and ``--shape`` / ``--input-range`` as given."""

    def entry_dir(self, cache_dir: Path) -> Path:
        # dynamic_axes and given join the key only when given: other models keep their entries
        axes = {"dynamic_axes": self.dynamic_axes} if self.dynamic_axes else {}
        given = {"given": self.given} if self.given else {}
        key = cache_key(
            **axes,
            **given,
            name=self.name,
            source=self.source,
            inputs=[spec.key() for spec in self.inputs],
            output_names=self.output_names,
            task=self.task,
            opset=self.opset,
            seed=self.seed,
            builder=module_file_digest(builder_path(self.source).rpartition(":")[0]),
            torch=_version("torch"),
            onnxscript=_version("onnxscript"),
            exporter=EXPORTER_VERSION,
        )
        safe_name = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.name)
        return Path(cache_dir) / "onnx" / f"{safe_name}-{key}"


def _export_entry(
    target: Path, request: _Request, batch_sizes: list[int], build: Callable[[], nn.Module]
) -> PreparedModel:
    """Build, export, check and verify into a temporary directory renamed to ``target``."""
    import onnx

    from exporters.flops import count_flops_per_sample, count_params
    from exporters.torch_export import export_onnx, reference_arrays, to_tensors

    start = time.perf_counter()
    inputs, seed = request.inputs, request.seed
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    model_path = scratch / MODEL_FILE
    try:
        module = build()
        arrays, names = reference_arrays(module, inputs, request.output_names, batch_sizes, seed)
        notes = export_onnx(
            module, inputs, names, model_path, request.opset, seed, request.dynamic_axes
        )
        onnx.checker.check_model(str(model_path))
        written = onnx.load(str(model_path), load_external_data=False)
        notes.append(_opset_note(written, request.opset))
        notes.append(check_parity(model_path, inputs, names, arrays, batch_sizes))
        graph = written.graph
        one = to_tensors(inputs, make_inputs(inputs, {BATCH: 1}, seed))
        prepared = PreparedModel(
            name=request.name,
            onnx_path=target / MODEL_FILE,
            inputs=inputs,
            outputs=value_specs(graph.output),
            task=request.task,
            source=request.source,
            seed=seed,
            params=count_params(module),
            flops_per_sample=count_flops_per_sample(module, one),
            reference=target / REFERENCE_FILE,
            notes=notes,
        )
        write_reference(scratch / REFERENCE_FILE, arrays)
        prepared.export_s = time.perf_counter() - start
        prepared.save(scratch / PREPARED_FILE)
        try:
            os.rename(scratch, target)
        except OSError:
            if not (target / PREPARED_FILE).is_file():
                raise  # only another process's complete entry may take the place
        return prepared
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _opset_note(model: onnx.ModelProto, asked: int) -> str:
    """The opset the file was written at, and whether it is the one asked for."""
    written = default_opset(model)
    if written == asked:
        return f"written at opset {written}"
    return f"written at opset {written} (opset {asked} was asked for)"


def _add_batches(
    target: Path, stored: PreparedModel, missing: list[int], build: Callable[[], nn.Module]
) -> None:
    """Add reference outputs for ``missing`` batch sizes to an entry, without re-exporting."""
    from exporters.torch_export import reference_arrays

    output_names = tuple(spec.name for spec in stored.outputs)
    arrays, _ = reference_arrays(build(), stored.inputs, output_names, missing, stored.seed)
    note = check_parity(target / MODEL_FILE, stored.inputs, output_names, arrays, missing)
    reference = target / REFERENCE_FILE
    existing = load_all(reference) if reference.is_file() else {}
    write_reference(reference, {**existing, **arrays})
    stored.notes.append(note)
    partial = target / f".{PREPARED_FILE}.{os.getpid()}.partial"
    stored.save(partial)
    os.replace(partial, target / PREPARED_FILE)


def _prepare(
    request: _Request,
    batch_sizes: list[int],
    cache_dir: Path,
    build: Callable[[], nn.Module],
    described: Callable[[], _Request] | None = None,
) -> PreparedModel:
    """``request``'s entry, exported on a miss (as ``described()`` says, where its inputs
    are known only once the model is built), else found and given the missing batches."""
    if not batch_sizes:
        raise ValueError("batch_sizes must name at least one batch size")
    target = request.entry_dir(cache_dir)
    wanted = sorted(set(batch_sizes))
    # One writer per entry: a second run waits, then finds the entry made; a killed
    # export's scratch folder is removed by the next holder.
    with entry_lock(target, scratch=f".{target.name}-*"):
        if not ((target / MODEL_FILE).is_file() and (target / PREPARED_FILE).is_file()):
            return _export_entry(target, described() if described else request, wanted, build)
        for leftover in target.glob(".*.partial"):  # a killed writer's, under this lock
            leftover.unlink(missing_ok=True)
        stored = PreparedModel.load(target / PREPARED_FILE)
        reference = target / REFERENCE_FILE
        present = reference_batches(reference) if reference.is_file() else set()
        missing = sorted(set(wanted) - present)
        if missing:
            _add_batches(target, stored, missing, build)
    return replace(
        stored, onnx_path=target / MODEL_FILE, reference=reference, cache_hit=True, export_s=0.0
    )


def prepare_torch_model(
    name: str,
    source: str,
    inputs: tuple[TensorSpec, ...],
    output_names: tuple[str, ...] | None,
    task: str,
    batch_sizes: list[int],
    cache_dir: Path,
    opset: int = 18,
    seed: int = 0,
    dynamic_axes: dict[str, dict[int, str]] | None = None,
) -> PreparedModel:
    """The PyTorch model ``source`` exported to a checked, verified ONNX file, cached.

    On a miss: builds the module with weights seeded by ``seed``, exports it with a dynamic
    batch axis and the dynamic axes of ``dynamic_axes`` (as ``ZooEntry`` has them), checks
    the file, verifies ONNX Runtime against PyTorch at every batch size (ExportError beyond
    tolerance) and stores the seeded inputs and PyTorch outputs in the reference file. On
    a hit: returns the stored entry (``cache_hit``, ``export_s`` 0), adding reference
    outputs for new batch sizes without re-exporting. ``output_names`` None names the
    outputs ``output`` or ``output0``, ``output1``...
    """
    request = _Request(name, source, inputs, output_names, task, opset, seed, dynamic_axes or {})
    return _prepare(request, batch_sizes, cache_dir, lambda: build_module(source, seed)[0])


def prepare_zoo_model(
    name: str, batch_sizes: list[int], cache_dir: Path, opset: int = 18, seed: int = 0
) -> PreparedModel:
    """The zoo model ``name`` prepared as by ``prepare_torch_model``; UserError if unknown."""
    entry = get_entry(name)
    return prepare_torch_model(
        entry.name,
        f"{ZOO_PREFIX}{entry.name}",
        entry.inputs,
        entry.output_names,
        entry.task,
        batch_sizes,
        cache_dir,
        opset,
        seed,
        entry.dynamic_axes,
    )


def prepare_factory_model(
    factory: str,
    shapes: dict[str, tuple[int, ...]],
    batch_sizes: list[int],
    cache_dir: Path,
    opset: int = 18,
    seed: int = 0,
    ranges: dict[str, tuple[float, float]] | None = None,
) -> PreparedModel:
    """A user factory ``package.module:function`` prepared as by ``prepare_torch_model``.

    Input specs come from the factory's example inputs or from ``shapes`` (``--shape``),
    value ranges from ``ranges`` (``--input-range``) where given; the task is
    ``"unknown"``. The module is built once, even on a miss.
    """
    source = f"{FACTORY_PREFIX}{factory}"
    module, example = build_module(source, seed)
    inputs = with_ranges(factory_input_specs(example, shapes), ranges or {})
    request = _Request(factory, source, inputs, None, "unknown", opset, seed)
    return _prepare(request, batch_sizes, cache_dir, lambda: module)


def prepare_pretrained_model(
    source: str,
    shapes: dict[str, tuple[int, ...]],
    batch_sizes: list[int],
    cache_dir: Path,
    opset: int = 18,
    seed: int = 0,
    ranges: dict[str, tuple[float, float]] | None = None,
) -> PreparedModel:
    """A torchvision, timm or Transformers model (``exporters.pretrained``) prepared as by
    ``prepare_torch_model``, its inputs, outputs and task as ``exporters.pretrained_load``
    finds them, value ranges from ``ranges`` where given. Keyed by its weights' identity
    (a file's SHA-256, a hub commit, the library version and weights name) and the flags
    as given, so a hit loads nothing and imports no torch."""
    ref = parse_source(source)
    given = {
        "weights": weights_identity(ref),
        "library": _version(PACKAGES[ref.library]),
        "shapes": {name: list(dims) for name, dims in sorted(shapes.items())},
        "ranges": {name: list(pair) for name, pair in sorted((ranges or {}).items())},
    }
    key = _Request(ref.model_name, source, (), None, "", opset, seed, given=given)
    loaded: list[Loaded] = []

    def load() -> Loaded:
        from exporters.pretrained_load import load_pretrained

        if not loaded:
            loaded.append(load_pretrained(source, shapes))
        return loaded[0]

    def described() -> _Request:
        model = load()
        inputs = with_ranges(model.inputs, ranges or {})
        return replace(key, inputs=inputs, output_names=model.output_names, task=model.task)

    return _prepare(key, batch_sizes, cache_dir, lambda: load().module, described)
