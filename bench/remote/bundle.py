"""The files a device needs to run a model with its own tools: the ONNX file at an opset
its TensorRT parses (and the FP16 graph where the engine is strongly typed), each batch's
seeded inputs as raw files for ``trtexec --loadInputs``, the reference outputs, and a
manifest. ``cli.py export`` writes the same bundle for copying by hand, with the trtexec
commands to run on the device.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.core.digest import file_digest
from bench.core.spec import PreparedModel
from exporters.reference import load_reference, reference_batches
from runtimes.tensorrt.build import TrtVersion
from runtimes.tensorrt.trtexec_driver import input_files, quoted_name

MANIFEST = "manifest.json"
MODEL_FILE = "model.onnx"


@dataclass(frozen=True)
class Bundle:
    """A written bundle: its folder, the digest that names it on a device (of its
    manifest, which holds every file's digest), and each batch's inputs as (input name,
    file relative to the bundle)."""

    path: Path
    digest: str
    inputs: dict[int, list[tuple[str, str]]]

    def load_inputs(self, batch: int, folder: str) -> str | None:
        """``--loadInputs`` for ``batch`` with the files under ``folder`` (the bundle's
        place: on the device, or ``.`` beside it); None without stored inputs."""
        pairs = self.inputs.get(batch)
        if not pairs:
            return None
        return ",".join(f"{quoted_name(name)}:{folder}/{file}" for name, file in pairs)


def write_bundle(
    model: PreparedModel,
    batches: list[int],
    version: TrtVersion | None,
    dest: Path,
    graph: Path | None = None,
    graph_kind: str = "fp32",
    opset: int | None = None,
) -> Bundle:
    """Write ``model``'s bundle into ``dest`` (emptied first) for a device whose
    TensorRT is ``version`` (None: no trtexec, so no input files): the ONNX file
    (``graph`` where a cell runs a converted copy: the FP16 graph, the int8 QDQ copy, as
    ``graph_kind`` says), and the inputs for each batch of ``batches`` that has stored
    reference inputs (int64 inputs written as int32 before TensorRT 10)."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    shutil.copyfile(graph or model.onnx_path, dest / MODEL_FILE)
    stored = reference_batches(model.reference) if model.reference and version else set()
    inputs: dict[int, list[tuple[str, str]]] = {}
    files: dict[str, Any] = {}
    for batch in sorted(set(batches) & stored):
        assert model.reference is not None
        feeds, outputs = load_reference(model.reference, batch)
        assert version is not None
        folder = dest / f"b{batch}"
        folder.mkdir()
        input_files(feeds, folder, version)  # input0.bin, input1.bin … in feeds' order
        inputs[batch] = [(name, f"b{batch}/input{i}.bin") for i, name in enumerate(feeds)]
        np.savez(folder / "reference.npz", **outputs)
        files[str(batch)] = {
            "inputs": {
                name: {**_array(feeds[name]), "file": file, "digest": file_digest(dest / file)}
                for name, file in inputs[batch]
            },
            "outputs": {name: _array(array) for name, array in outputs.items()},
        }
    manifest = {
        "model": model.name,
        "source": model.source,
        "task": model.task,
        "opset": opset,
        "tensorrt": str(version) if version else None,
        "onnx": MODEL_FILE,
        "onnx_digest": file_digest(dest / MODEL_FILE),
        "graph": graph_kind,
        "seed": model.seed,
        "batches": files,
    }
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return Bundle(dest, file_digest(dest / MANIFEST)[:16], inputs)


def _array(array: np.ndarray) -> dict[str, Any]:
    return {"shape": list(array.shape), "dtype": str(array.dtype)}
