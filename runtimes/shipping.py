"""What every runtime's ``Runtime.ship`` shares: the request shapes a cell ran, copying an
ONNX file with its external data, and the parts of a ``run.py`` snippet that do not
depend on the runtime.

A snippet is plain Python for a deployer to read and keep: it imports numpy and the
runtime's own framework, never deploybench. A runtime writes its ``load()`` and
``infer(loaded, feeds)``; ``snippet`` puts them between the common parts (the folder the
file lives in, random inputs of the model's shapes and dtypes, printing each output).
"""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path
from typing import Any

import numpy as np

from bench.core.spec import BATCH, PreparedModel

_FEEDS = '''
def random_feeds(seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs of the model's shapes and dtypes, in the ranges it was measured on."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for name, (shape, dtype, low, high) in INPUTS.items():
        if dtype == "bool":
            feeds[name] = rng.integers(0, 2, size=shape).astype(np.bool_)
        elif np.issubdtype(np.dtype(dtype), np.integer):
            feeds[name] = rng.integers(low, high, size=shape, dtype=dtype)
        else:
            feeds[name] = rng.uniform(low, high, size=shape).astype(dtype)
    return feeds


if __name__ == "__main__":
    outputs = infer(load(), random_feeds())
    for name, value in outputs.items():
        print(f"{name}: shape {tuple(value.shape)}, {value.dtype}")
'''


def request_sizes(model: PreparedModel, batch: int) -> dict[str, int]:
    """The sizes of the named dimensions in one request of ``batch``, as a cell's worker
    feeds it: the batch axis of a PyTorch model's inputs; none for a user ONNX file, whose
    shapes were fixed when it was inspected."""
    return {BATCH: batch} if model.source else {}


def literal(value: Any) -> str:
    """``value`` (a string, number, bool or None, or a list, tuple or dict of them) as
    Python source, strings in double quotes as ruff writes them."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(map(literal, value)) + "]"
    if isinstance(value, tuple):
        return "(" + ", ".join(map(literal, value)) + ("," if len(value) == 1 else "") + ")"
    return repr(value)


def copy_onnx(source: Path, out_dir: Path, name: str = "model.onnx") -> tuple[str, ...]:
    """``source`` copied to ``out_dir / name`` with the external data files its
    initializers name (beside it, under the same names: the exporter keeps weights apart
    above 1.8 GB); the files written, relative to ``out_dir``."""
    import onnx
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    graph = onnx.load(str(source), load_external_data=False).graph
    data = sorted(
        {ExternalDataInfo(t).location for t in graph.initializer if uses_external_data(t)}
    )
    shutil.copyfile(source, out_dir / name)
    for location in data:
        (out_dir / location).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source.parent / location, out_dir / location)
    return (name, *data)


def snippet(
    title: str,
    model: PreparedModel,
    batch: int,
    packages: tuple[str, ...],
    body: str,
    stdlib: tuple[str, ...] = (),
) -> str:
    """A whole ``run.py``: the docstring (``title`` first), imports (``stdlib`` and
    ``packages`` import lines beside pathlib and numpy), ``HERE`` (the script's folder),
    ``INPUTS`` (each input's shape in one request of ``batch``, dtype and value range),
    the runtime's ``body`` (its ``load`` and ``infer`` and their constants) and the
    common end: ``random_feeds`` and a main that runs one request and prints each
    output's name, shape and dtype."""
    title = title.replace("\\", "/").replace('"', "'")  # it opens a docstring
    sizes = request_sizes(model, batch)
    rows = []
    for spec in model.inputs:
        integer = np.issubdtype(np.dtype(spec.dtype), np.integer)
        low, high = (int(spec.low), int(spec.high)) if integer else (spec.low, spec.high)
        shape = spec.concrete_shape(sizes)
        rows.append(f"    {literal(spec.name)}: {literal((shape, spec.dtype, low, high))},")
    head = f'''\
"""{title}

Written by deploybench with the model file beside it; manifest.json says how the cell was
measured. ``load()`` loads the model as it was measured, ``infer(loaded, feeds)`` runs one
request; run as a script, it runs one on random inputs and prints each output's shape.
"""

{_imports({"from pathlib import Path", *stdlib})}

{_imports({"import numpy as np", *packages})}

HERE = Path(__file__).resolve().parent
INPUTS = {{
{chr(10).join(rows)}
}}
"""Each input of one request: (shape, dtype, low, high), values drawn in [low, high)."""
'''
    return f"{head}\n{textwrap.dedent(body).strip()}\n\n{_FEEDS}"


def _imports(lines: set[str]) -> str:
    """Import lines in isort's order: ``import x`` first, then ``from x import y``."""
    return "\n".join(sorted(lines, key=lambda line: (line.startswith("from "), line)))
