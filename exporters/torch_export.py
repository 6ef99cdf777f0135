"""The PyTorch side of preparing a model: run it for reference outputs, export it to ONNX.

Imported lazily by ``exporters.onnx_export`` only when the cache cannot serve a request.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bench.core.errors import UserError
from bench.core.spec import BATCH, TensorSpec, make_inputs
from exporters.errors import ExportError
from exporters.onnx_file import written_opset
from exporters.reference import reference_key

EXPORT_BATCH = 2
"""The batch of the example inputs given to the exporter (1 would be specialised away)."""

EXTERNAL_DATA_BYTES = 1_800_000_000
"""Models with more parameter bytes than this keep their weights beside the ONNX file."""


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Swallow the exporters' prints and warnings: a benchmark run must not show them."""
    with (
        warnings.catch_warnings(),
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
    ):
        warnings.simplefilter("ignore")
        yield


def to_tensors(
    specs: tuple[TensorSpec, ...], feeds: dict[str, np.ndarray]
) -> tuple[torch.Tensor, ...]:
    """The feeds as torch tensors, in the order of ``specs``."""
    return tuple(torch.from_numpy(np.ascontiguousarray(feeds[spec.name])) for spec in specs)


def run_module(
    module: nn.Module, specs: tuple[TensorSpec, ...], feeds: dict[str, np.ndarray]
) -> list[np.ndarray]:
    """The module's outputs on ``feeds`` as numpy arrays (a single tensor gives one array)."""
    with torch.no_grad():
        result = module(*to_tensors(specs, feeds))
    outputs = [result] if isinstance(result, torch.Tensor) else result
    if not isinstance(outputs, (tuple, list)) or not all(
        isinstance(out, torch.Tensor) for out in outputs
    ):
        raise ExportError(
            f"the module returned {type(result).__name__}: a tensor or a tuple of tensors "
            "is needed to export it"
        )
    return [out.detach().cpu().numpy() for out in outputs]


def _output_names(count: int) -> tuple[str, ...]:
    return ("output",) if count == 1 else tuple(f"output{i}" for i in range(count))


def reference_arrays(
    module: nn.Module,
    inputs: tuple[TensorSpec, ...],
    output_names: tuple[str, ...] | None,
    batch_sizes: list[int],
    seed: int,
) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    """Seeded inputs and PyTorch outputs per batch, keyed for the reference file.

    Returns the arrays and the output names: ``output_names`` None names them ``output``
    or ``output0``, ``output1``...; ExportError when the module's output count differs.
    """
    arrays: dict[str, np.ndarray] = {}
    for batch in batch_sizes:
        feeds = make_inputs(inputs, {BATCH: batch}, seed)
        outputs = run_module(module, inputs, feeds)
        output_names = output_names or _output_names(len(outputs))
        if len(outputs) != len(output_names):
            raise ExportError(
                f"the module returned {len(outputs)} outputs for {len(output_names)} "
                f"output names ({', '.join(output_names)})"
            )
        for name, value in feeds.items():
            arrays[reference_key(batch, "in", name)] = value
        for name, value in zip(output_names, outputs, strict=True):
            arrays[reference_key(batch, "out", name)] = value
    return arrays, output_names


def _exception_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:200]


DYNAMO_OPSET = 18
"""The opset torch.onnx's dynamo exporter writes natively (torch 2.5 on); below it the
TorchScript exporter writes the asked opset itself, so it goes first."""


def opset_range() -> tuple[int, int]:
    """The opsets this torch's ONNX exporter writes (its ``_constants``; 7 to 23 for torch
    2.9 to 2.14 where they cannot be read)."""
    from torch.onnx import _constants

    return (
        getattr(_constants, "ONNX_MIN_OPSET", 7),
        getattr(_constants, "ONNX_MAX_OPSET", 23),
    )


def export_onnx(
    module: nn.Module,
    specs: tuple[TensorSpec, ...],
    output_names: tuple[str, ...],
    path: Path,
    opset: int,
    seed: int,
    dynamic_axes: dict[str, dict[int, str]] | None = None,
) -> list[str]:
    """Export ``module`` to ``path`` with a dynamic batch axis; returns notes on how.

    ``dynamic_axes`` makes more axes dynamic, by input or output name (``{"input_ids":
    {1: "sequence"}}``); axes of one name share one size. Tries the dynamo exporter first
    (which finds the outputs' dynamic axes itself) and falls back to the TorchScript
    exporter, noting why; below opset 18 the other way round. A file written at a higher
    opset than asked (a down-conversion that did not happen) counts as a failure: a
    device's parser may take no more. Raises ExportError when both fail.
    """
    low, high = opset_range()
    if not low <= opset <= high:
        raise UserError(
            f"opset {opset} is outside what torch {torch.__version__} exports "
            f"({low} to {high}): set suite.opset in that range"
        )
    example = to_tensors(specs, make_inputs(specs, {BATCH: EXPORT_BATCH}, seed))
    input_names = [spec.name for spec in specs]
    param_bytes = sum(p.numel() * p.element_size() for p in module.parameters())
    common = {
        "input_names": input_names,
        "output_names": list(output_names),
        "opset_version": opset,
        "verbose": False,
    }
    extra = dynamic_axes or {}
    axes = {name: {0: BATCH, **extra.get(name, {})} for name in [*input_names, *output_names]}
    names = {name for named in axes.values() for name in named.values()}
    dims = {name: torch.export.Dim(name) for name in names}  # one Dim per name: shared

    def dynamo() -> None:
        torch.onnx.export(
            module,
            example,
            str(path),
            dynamo=True,
            dynamic_shapes=tuple(
                {axis: dims[name] for axis, name in axes[spec.name].items()} for spec in specs
            ),
            external_data=param_bytes > EXTERNAL_DATA_BYTES,
            **common,
        )

    def torchscript() -> None:
        torch.onnx.export(module, example, str(path), dynamo=False, dynamic_axes=axes, **common)

    exporters = [("dynamo", dynamo), ("TorchScript", torchscript)]
    if opset < DYNAMO_OPSET:  # dynamo writes 18 and down-converts, where it can
        exporters.reverse()
    failures = []
    for name, export in exporters:
        path.unlink(missing_ok=True)
        try:
            with _quiet():
                export()
            written = written_opset(path)
            if written is not None and written > opset:
                raise ExportError(f"it wrote opset {written}, above {opset}")
        except Exception as exc:  # any exporter failure: try the other exporter
            failures.append(f"{name} exporter failed ({_exception_line(exc)})")
            continue
        if failures:
            return [f"{failures[0]}; exported by the {name} exporter"]
        return [f"exported by torch.onnx ({name})"]
    path.unlink(missing_ok=True)
    raise ExportError(f"ONNX export failed at opset {opset}: {'; '.join(failures)}")
