"""Precision conversion of ONNX graphs: an FP16 copy with FP32 inputs and outputs.

The conversion is onnxconverter-common's ``convert_float_to_float16``, the maintained
converter. Its known pitfalls are handled here: weights beyond FP16's range are clamped by
the converter (we count them and say so), operators without FP16 kernels stay in FP32
(the converter's block list), and inputs and outputs stay FP32 so that every runtime is
fed and compared the same way.
"""

from __future__ import annotations

import importlib.metadata
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.core.digest import file_digest
from bench.core.locks import entry_lock

FP16_MAX = 65504.0
FP16_TINY = 5.96e-08  # smallest positive subnormal


@dataclass(frozen=True)
class ConvertedGraph:
    """A converted ONNX file and what making it cost."""

    path: Path
    convert_s: float
    cache_hit: bool
    notes: tuple[str, ...] = ()


def fp16_graph(onnx_path: Path, cache_dir: Path, already_fp16: bool = False) -> ConvertedGraph:
    """An FP16 copy of ``onnx_path`` (FP32 inputs and outputs kept), cached by the file's
    content and the converter's version. A file already FP16 (``already_fp16``: its
    floating weights are, ``PreparedModel.precision``) is itself the FP16 graph: it runs
    as given."""
    if already_fp16:
        return ConvertedGraph(onnx_path, 0.0, True, ("the file is already fp16: run as given",))
    digest = file_digest(onnx_path)
    version = importlib.metadata.version("onnxconverter-common")
    target = Path(cache_dir) / "precision" / f"{onnx_path.stem}-{digest}-occ{version}-fp16.onnx"
    notes_file = target.with_suffix(".notes")
    with entry_lock(target, scratch=f".{target.name}.*.partial"):
        if target.is_file():
            notes = tuple(notes_file.read_text().splitlines()) if notes_file.is_file() else ()
            return ConvertedGraph(target, 0.0, True, notes)
        return _convert(onnx_path, target, notes_file, version)


def _convert(onnx_path: Path, target: Path, notes_file: Path, version: str) -> ConvertedGraph:
    import onnx
    from onnxconverter_common import float16

    start = time.perf_counter()
    model = onnx.load(str(onnx_path))
    clamped = _out_of_range_weights(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the converter warns per clamped tensor; we count them
        converted = float16.convert_float_to_float16(
            model, keep_io_types=True, min_positive_val=FP16_TINY, max_finite_val=FP16_MAX
        )
    notes = [f"fp16 graph by onnxconverter-common {version}"]
    if clamped:
        notes.append(f"{clamped} weights outside the fp16 range were clamped")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    onnx.save(converted, str(partial))
    notes_file.write_text("\n".join(notes) + "\n")
    os.replace(partial, target)
    return ConvertedGraph(target, time.perf_counter() - start, False, tuple(notes))


def _out_of_range_weights(model: object) -> int:
    """How many FP32 weight values FP16 cannot hold (too large, or non-zero but too small)."""
    from onnx import TensorProto, numpy_helper

    count = 0
    for tensor in model.graph.initializer:  # type: ignore[attr-defined]
        if tensor.data_type != TensorProto.FLOAT:
            continue
        values = np.abs(numpy_helper.to_array(tensor))
        count += int(np.count_nonzero((values > FP16_MAX) | ((values > 0) & (values < FP16_TINY))))
    return count
