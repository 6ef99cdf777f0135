"""Models exported once, on the driver, and shipped to the nodes through Ray's object
store: a node whose torch or onnx differs still measures the very same ONNX file, and no
node exports anything. (What a runtime derives from that file, such as an FP16 graph, a
TensorRT engine or a compiled OpenVINO model, is made on the node, as on a local run.)

A prepared model's files (its ONNX file with any external-data files beside it, its
seeded inputs and reference outputs, its int8 QDQ copies, the samples of its --dataset
and the reference outputs on them) travel as units, each put in
the object store once and written on a node once, under its content digest. A cell's task
takes its units' contents as arguments, so Ray fetches them before the task starts and
while the cell holds no resources.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

from bench.core.errors import UserError


@dataclass(frozen=True)
class Unit:
    """Files that must sit side by side on a node (an ONNX file and its external data),
    by content digest; ``ref`` is their bytes in the object store, by relative name."""

    digest: str
    origins: dict[str, str]
    """The file's path on the driver, by its name relative to the unit's folder."""
    ref: Any


def model_files(onnx_path: Path) -> dict[str, Path]:
    """An ONNX file and the external-data files its initializers name, by their names
    relative to its folder. UserError for a location outside that folder."""
    import onnx
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    files = {onnx_path.name: onnx_path}
    for tensor in graph.initializer:
        if not uses_external_data(tensor):
            continue
        location = PurePosixPath(ExternalDataInfo(tensor).location)
        if location.is_absolute() or ".." in location.parts:
            raise UserError(
                f"{onnx_path} keeps {tensor.name} in {location}, outside its folder: save "
                "its external data beside it"
            )
        files[str(location)] = onnx_path.parent / location
    return files


def ship(model: Any, put: Callable[[Any], Any]) -> list[Unit]:
    """The units of a prepared model (``put`` stores bytes in the object store)."""
    groups = [model_files(model.onnx_path)]
    groups += [{model.reference.name: model.reference}] if model.reference else []
    groups += [model_files(q.path) for q in model.quantized.values()]
    scored = model.scored
    groups += [{p.name: p for p in (scored.path, scored.reference) if p}] if scored else []
    units = []
    for files in groups:
        digest = hashlib.sha256()
        contents = {}
        for name, path in sorted(files.items()):
            data = path.read_bytes()
            digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
            contents[name] = data
        origins = {name: str(path) for name, path in files.items()}
        units.append(Unit(digest.hexdigest()[:24], origins, put(contents)))
    return units


def materialize(model: Any, units: list[Unit], contents: list[dict], root: Path) -> Any:
    """The prepared model with its paths on this node: each unit (``contents``: its
    files' bytes, in the order of ``units``) written under ``root/<digest>/`` once, into a
    scratch folder moved in whole, so that a copy cut short never looks complete and
    workers sharing a disk write it once."""
    here: dict[str, Path] = {}
    root.mkdir(parents=True, exist_ok=True)
    for unit, files in zip(units, contents, strict=True):
        folder = root / unit.digest
        if not folder.is_dir():
            scratch = Path(tempfile.mkdtemp(prefix=f".{unit.digest}-", dir=root))
            for name, data in files.items():
                target = scratch / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            try:
                scratch.rename(folder)
            except OSError:  # written meanwhile by another worker on this disk
                shutil.rmtree(scratch, ignore_errors=True)
                if not folder.is_dir():
                    raise
        here.update({origin: folder / name for name, origin in unit.origins.items()})
    quantized = {
        scheme: replace(q, path=here[str(q.path)]) for scheme, q in model.quantized.items()
    }
    scored = model.scored
    if scored is not None:
        reference = here[str(scored.reference)] if scored.reference else None
        scored = replace(scored, path=here[str(scored.path)], reference=reference)
    return replace(
        model,
        onnx_path=here[str(model.onnx_path)],
        reference=here[str(model.reference)] if model.reference else None,
        quantized=quantized,
        scored=scored,
    )
