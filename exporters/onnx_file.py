"""Read a user's ONNX file into a PreparedModel: checked, with its input and output specs.

Imports only ``onnx`` (neither torch nor onnxruntime). Dynamic dimensions keep the name
the file gives them (``?`` when unnamed) until ``--shape`` gives them a size; the harness
then asks for ``--shape`` through ``TensorSpec.concrete_shape``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

from bench.core.errors import UserError
from bench.core.spec import PreparedModel, TensorSpec, with_ranges

UNKNOWN_DIM = "?"
"""The name given to a dynamic dimension that the ONNX file leaves unnamed."""

MAX_DIM = 2**31 - 1
"""The largest dimension the runtimes index (a signed 32-bit count)."""
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
        if max(dims) > MAX_DIM:
            raise UserError(f"--shape {item}: a dimension above {MAX_DIM:,} is no real size")
        if name in shapes:
            raise UserError(f"--shape gives '{name}' twice: give each input once")
        shapes[name] = dims
    return shapes


def default_opset(model: onnx.ModelProto) -> int | None:
    """The default-domain (``ai.onnx``) opset a model was written at."""
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def written_opset(path: Path) -> int | None:
    """``default_opset`` of an ONNX file (its graph and weights are not loaded)."""
    return default_opset(onnx.load(str(path), load_external_data=False))


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


def _with_shape(spec: TensorSpec, shape: tuple[int, ...], given_as: str) -> TensorSpec:
    written = "x".join(map(str, shape))
    if len(shape) != len(spec.shape):
        raise UserError(
            f"{given_as} {spec.name}={written} has {len(shape)} dimensions but input "
            f"'{spec.name}' has {len(spec.shape)}: {spec.shape}"
        )
    for index, (model_dim, user_dim) in enumerate(zip(spec.shape, shape, strict=True)):
        if isinstance(model_dim, int) and model_dim != user_dim:
            raise UserError(
                f"{given_as} {spec.name}={written} sets dimension {index} to {user_dim} but "
                f"the model fixes it at {model_dim}: {spec.shape}"
            )
    return replace(spec, shape=shape)


def _fix_shapes(
    specs: tuple[TensorSpec, ...], shapes: dict[str, tuple[int, ...]], given_as: str
) -> tuple[TensorSpec, ...]:
    """``specs`` with the shapes given by name; a named dynamic dimension (``seq``) takes
    its size from whichever given shape holds it, so inputs sharing it need one shape.
    UserError when two shapes give one dimension two sizes."""
    fixed = {s.name: _with_shape(s, shapes[s.name], given_as) for s in specs if s.name in shapes}
    sizes: dict[str, tuple[int, str]] = {}
    for name, spec in fixed.items():
        original = next(s for s in specs if s.name == name)
        for dim, size in zip(original.shape, spec.shape, strict=True):
            if not isinstance(dim, str) or dim == UNKNOWN_DIM:
                continue
            if dim in sizes and sizes[dim][0] != size:
                other_size, other = sizes[dim]
                raise UserError(
                    f"{given_as} gives dimension '{dim}' two sizes: {other_size} in '{other}' "
                    f"and {size} in '{name}': inputs sharing it need the same size"
                )
            sizes[dim] = (size, name)
    named = {dim: size for dim, (size, _) in sizes.items()}
    result = []
    for spec in specs:
        if spec.name in fixed:
            result.append(fixed[spec.name])
        else:
            shape = tuple(named.get(d, d) if isinstance(d, str) else d for d in spec.shape)
            result.append(replace(spec, shape=shape))
    return tuple(result)


def index_ranges(model: onnx.ModelProto) -> dict[str, tuple[int, str]]:
    """For each integer graph input that indexes a constant table (a Gather on an
    initializer, as an embedding exports, possibly through Cast, Reshape, Squeeze or
    Unsqueeze): the table's row count and a description, so that generated indices
    stay in ``[0, rows)``. Several tables: the smallest."""
    tables = {init.name: tuple(init.dims) for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute:
            value = node.attribute[0]
            if value.name == "value":
                tables[node.output[0]] = tuple(value.t.dims)
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    ranges: dict[str, tuple[int, str]] = {}
    for value in model.graph.input:
        if value.name in tables:
            continue
        frontier, seen = [value.name], set()
        while frontier:
            name = frontier.pop()
            seen.add(name)
            for node in consumers.get(name, []):
                if node.op_type in _PASS_THROUGH and node.input[0] == name:
                    frontier.extend(o for o in node.output if o not in seen)
                elif node.op_type == "Gather" and node.input[1] == name:
                    shape = tables.get(node.input[0])
                    axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
                    if shape and -len(shape) <= axis < len(shape) and shape[axis] > 0:
                        rows = int(shape[axis])
                        known = ranges.get(value.name)
                        if known is None or rows < known[0]:
                            where = f"{rows} rows of Gather table '{node.input[0]}'"
                            ranges[value.name] = (rows, f"the model: {where}")
    return ranges


_PASS_THROUGH = {"Cast", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity"}


def _short(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def inspect_onnx(
    path: Path,
    shapes: dict[str, tuple[int, ...]],
    ranges: dict[str, tuple[float, float]] | None = None,
    data: dict[str, np.ndarray] | None = None,
) -> PreparedModel:
    """The checked ONNX file at ``path`` as a PreparedModel, input shapes fixed by ``shapes``.

    ``shapes`` gives an input's whole shape by name, fixing its dynamic dimensions (and
    the same named dimensions of other inputs); other dynamic dimensions stay symbolic.
    An integer input that indexes a table of the model draws values below the table's
    row count; ``ranges`` (``--input-range``) sets any input's range; ``data`` (``--inputs``)
    gives every input's values, and with them its shape. UserError when the file is
    missing or not valid ONNX, or when a shape, range or array does not fit the model.
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
    indexed = index_ranges(model)
    inputs = tuple(
        replace(s, low=0, high=indexed[s.name][0], origin=indexed[s.name][1])
        if s.name in indexed
        else s
        for s in inputs
    )
    inputs = with_ranges(inputs, ranges or {})
    if data is not None:
        inputs = _from_data(inputs, data, shapes)
    return PreparedModel(
        name=path.stem,
        onnx_path=path.resolve(),
        inputs=_fix_shapes(inputs, shapes, "--shape"),
        outputs=value_specs(model.graph.output),
        task="unknown",
        source="",
        cache_hit=True,
        precision=_own_precision(model),
    )


def _own_precision(model: onnx.ModelProto) -> str:
    """``fp16`` when the file's floating weights (its inputs' when it has none) are all
    FP16, else ``fp32``: the tolerance its cells are judged by at least."""
    floats = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE}
    types = {tensor.data_type for tensor in model.graph.initializer} & floats
    if not types:
        types = {value.type.tensor_type.elem_type for value in model.graph.input} & floats
    return "fp16" if types == {onnx.TensorProto.FLOAT16} else "fp32"


def _from_data(
    specs: tuple[TensorSpec, ...], data: dict[str, np.ndarray], shapes: dict[str, tuple[int, ...]]
) -> tuple[TensorSpec, ...]:
    """The specs with the shapes of the arrays given for them (``--inputs``): every input
    needs one, of the model's dtype, agreeing with any ``--shape``."""
    names = [spec.name for spec in specs]
    missing = [name for name in names if name not in data]
    extra = sorted(set(data) - set(names))
    if missing or extra:
        problem = f"lacks {', '.join(missing)}" if missing else f"has no input {', '.join(extra)}"
        raise UserError(f"--inputs {problem}: give one array per model input ({', '.join(names)})")
    for spec in specs:
        array = data[spec.name]
        if array.dtype != np.dtype(spec.dtype):
            raise UserError(
                f"--inputs array '{spec.name}' is {array.dtype} but the model takes "
                f"{spec.dtype}: save it as {spec.dtype}"
            )
        if spec.name in shapes and tuple(shapes[spec.name]) != array.shape:
            raise UserError(
                f"--shape {spec.name} and the --inputs array (shape {array.shape}) disagree: "
                "give one of them"
            )
    fixed = _fix_shapes(specs, {n: tuple(data[n].shape) for n in names}, "--inputs")
    return tuple(replace(spec, origin="--inputs") for spec in fixed)


def parse_range_args(items: list[str]) -> dict[str, tuple[float, float]]:
    """``["ids=0:10", ...]`` as ``{"ids": (0.0, 10.0)}``: values drawn in ``[LO, HI)``.
    UserError naming the expected form on bad syntax, LO not below HI or a repeated name."""
    ranges: dict[str, tuple[float, float]] = {}
    for item in items:
        name, _, bounds = item.strip().partition("=")
        low_text, _, high_text = bounds.partition(":")
        try:
            low, high = float(low_text), float(high_text)
        except ValueError:
            low = high = float("nan")
        if not name or not (np.isfinite(low) and np.isfinite(high)):
            raise UserError(f"--input-range expects NAME=LO:HI like ids=0:30522, got '{item}'")
        if not low < high:
            raise UserError(f"--input-range {item}: LO must be below HI")
        if name in ranges:
            raise UserError(f"--input-range gives '{name}' twice: give each input once")
        ranges[name] = (low, high)
    return ranges


def load_inputs_file(path: Path, flag: str = "--inputs") -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file (given with ``flag``), by name; UserError when it
    cannot be read as one. Object arrays (pickles) are refused: the file is data, not code."""
    if not path.is_file():
        raise UserError(f"{flag} file not found: {path} (check the path)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except Exception as exc:  # zip, format and pickle errors
        raise UserError(
            f"{flag} {path} is not a readable .npz of arrays ({_short(exc)}): "
            "save it with numpy.savez(path, name=array, ...)"
        ) from None
