"""Read a user's ONNX file into a PreparedModel: checked, with its input and output specs.

Imports only ``onnx`` (neither torch nor onnxruntime). Dynamic dimensions keep the name
the file gives them (``?`` when unnamed) until ``--shape`` gives them a size; the harness
then asks for ``--shape`` through ``TensorSpec.concrete_shape``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import onnx
from onnx import helper

from bench.core.errors import UserError
from bench.core.spec import PreparedModel, TensorSpec

UNKNOWN_DIM = "?"
"""The name given to a dynamic dimension that the ONNX file leaves unnamed."""

_SHAPE_ARG = re.compile(r"^([^=\s]+)=(\d+(?:x\d+)*)$")


def parse_shape_args(items: list[str]) -> dict[str, tuple[int, ...]]:
    """``["input=1x3x224x224", ...]`` as ``{"input": (1, 3, 224, 224), ...}``.

    UserError naming the expected form on bad syntax, a zero dimension or a repeated name.
    """
    shapes: dict[str, tuple[int, ...]] = {}
    for item in items:
        match = _SHAPE_ARG.match(item.strip())
        if not match:
            raise UserError(f"--shape expects NAME=DIMS like input=1x3x224x224, got '{item}'")
        name, dims = match.group(1), tuple(int(d) for d in match.group(2).split("x"))
        if 0 in dims:
            raise UserError(f"--shape {item}: every dimension must be at least 1")
        if name in shapes:
            raise UserError(f"--shape gives '{name}' twice: give each input once")
        shapes[name] = dims
    return shapes


def _dtype_name(value: onnx.ValueInfoProto) -> str:
    elem_type = value.type.tensor_type.elem_type
    try:
        return helper.tensor_dtype_to_np_dtype(elem_type).name
    except KeyError:
        raise UserError(
            f"'{value.name}' is not a tensor of a supported element type "
            f"({onnx.TensorProto.DataType.Name(elem_type)}): deploybench feeds plain tensors"
        ) from None


def _dims(value: onnx.ValueInfoProto) -> tuple[int | str, ...]:
    dims: list[int | str] = []
    for dim in value.type.tensor_type.shape.dim:
        if dim.HasField("dim_value") and dim.dim_value > 0:
            dims.append(dim.dim_value)
        else:
            dims.append(dim.dim_param or UNKNOWN_DIM)
    return tuple(dims)


def value_specs(values: Iterable[onnx.ValueInfoProto]) -> tuple[TensorSpec, ...]:
    """Specs of ONNX graph inputs or outputs; integer tensors draw values in [0, 100)."""
    specs = []
    for value in values:
        dtype = _dtype_name(value)
        integer = dtype.startswith(("int", "uint"))
        bounds = {"low": 0, "high": 100} if integer else {}
        specs.append(TensorSpec(value.name, _dims(value), dtype, **bounds))
    return tuple(specs)


def _with_shape(spec: TensorSpec, shape: tuple[int, ...]) -> TensorSpec:
    written = "x".join(map(str, shape))
    if len(shape) != len(spec.shape):
        raise UserError(
            f"--shape {spec.name}={written} has {len(shape)} dimensions but input "
            f"'{spec.name}' has {len(spec.shape)}: {spec.shape}"
        )
    for index, (model_dim, user_dim) in enumerate(zip(spec.shape, shape, strict=True)):
        if isinstance(model_dim, int) and model_dim != user_dim:
            raise UserError(
                f"--shape {spec.name}={written} sets dimension {index} to {user_dim} but "
                f"the model fixes it at {model_dim}: {spec.shape}"
            )
    return TensorSpec(spec.name, shape, spec.dtype, spec.low, spec.high)


def _short(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def inspect_onnx(path: Path, shapes: dict[str, tuple[int, ...]]) -> PreparedModel:
    """The checked ONNX file at ``path`` as a PreparedModel, input shapes fixed by ``shapes``.

    ``shapes`` gives an input's whole shape by name, fixing its dynamic dimensions; other
    dynamic dimensions stay symbolic. UserError when the file is missing or not valid
    ONNX, or when a shape names no input or contradicts the model's rank or fixed sizes.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"ONNX file not found: {path} (check the path)")
    try:
        model = onnx.load(str(path), load_external_data=False)
        onnx.checker.check_model(str(path))
    except Exception as exc:  # protobuf decode errors, checker errors, bad external data
        raise UserError(
            f"{path} is not a valid ONNX model ({_short(exc)}): re-export it or check the file"
        ) from exc
    initializers = {init.name for init in model.graph.initializer}
    inputs = value_specs(v for v in model.graph.input if v.name not in initializers)
    names = [spec.name for spec in inputs]
    unknown = sorted(set(shapes) - set(names))
    if unknown:
        raise UserError(
            f"--shape names {', '.join(unknown)} but the model's inputs are {', '.join(names)}"
        )
    inputs = tuple(_with_shape(s, shapes[s.name]) if s.name in shapes else s for s in inputs)
    return PreparedModel(
        name=path.stem,
        onnx_path=path.resolve(),
        inputs=inputs,
        outputs=value_specs(model.graph.output),
        task="unknown",
        source="",
        cache_hit=True,
    )
