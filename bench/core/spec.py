"""Plain descriptions of a model's tensors and of a prepared (exported) model.

Nothing here imports torch or onnxruntime: the harness, the planner and every runtime
worker read these without paying for a framework import.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from bench.core.errors import UserError

BATCH = "batch"
"""The symbolic name of the batch axis in reference-model input specs."""


@dataclass(frozen=True)
class TensorSpec:
    """One input or output tensor: its name, shape and dtype.

    A dimension is an int when fixed and a str (its symbolic name) when dynamic. ``low`` and
    ``high`` bound the generated values (integers drawn in ``[low, high)``, e.g. token ids);
    ``origin`` says where that range came from when it is not the default.
    """

    name: str
    shape: tuple[int | str, ...]
    dtype: str = "float32"
    low: float = -1.0
    high: float = 1.0
    origin: str = ""

    @property
    def dynamic(self) -> bool:
        """Whether a dimension is named, not fixed (the batch axis of an export, a
        sequence length)."""
        return any(not isinstance(dim, int) for dim in self.shape)

    def takes_samples(self, shape: tuple[int, ...]) -> bool:
        """Whether an array of ``shape`` is samples of this tensor: samples on the first
        axis, each of this tensor's other sizes (a symbolic one takes any)."""
        return len(shape) == len(self.shape) and all(
            not isinstance(want, int) or got == want
            for got, want in zip(shape[1:], self.shape[1:], strict=True)
        )

    def concrete_shape(self, sizes: dict[str, int]) -> tuple[int, ...]:
        """The shape with every symbolic dimension replaced from ``sizes``.

        Raises UserError naming ``--shape`` when a dynamic dimension has no size.
        """
        dims = []
        for dim in self.shape:
            if isinstance(dim, int):
                dims.append(dim)
            elif dim in sizes:
                dims.append(sizes[dim])
            else:
                example = "x".join(str(d) if isinstance(d, int) else "N" for d in self.shape)
                raise UserError(
                    f"input '{self.name}' has a dynamic dimension '{dim}' with no size: "
                    f"give it with --shape {self.name}={example}"
                )
        return tuple(dims)

    def to_dict(self) -> dict:
        return {**asdict(self), "shape": list(self.shape)}

    def key(self) -> dict:
        """What of the spec changes an export (its cache key): not ``origin``, a remark."""
        data = self.to_dict()
        del data["origin"]
        return data

    def values(self) -> str:
        """Where generated values come from, for the record: the range and its origin."""
        dtype = np.dtype(self.dtype)
        if dtype == np.bool_:
            text = "uniform {0, 1}"
        elif np.issubdtype(dtype, np.integer):
            text = f"integers in [{self.low:g}, {self.high:g})"
        else:
            text = f"uniform in [{self.low:g}, {self.high:g})"
        return f"{text} ({self.origin})" if self.origin else text

    @classmethod
    def from_dict(cls, data: dict) -> TensorSpec:
        return cls(**{**data, "shape": tuple(data["shape"])})


def with_ranges(
    specs: tuple[TensorSpec, ...], ranges: dict[str, tuple[float, float]]
) -> tuple[TensorSpec, ...]:
    """``specs`` with the value ranges given by input name (``--input-range``); UserError
    when a name is no input."""
    names = [spec.name for spec in specs]
    unknown = sorted(set(ranges) - set(names))
    if unknown:
        raise UserError(
            f"--input-range names {', '.join(unknown)} but the inputs are {', '.join(names)}"
        )
    for spec in specs:
        if spec.name in ranges:
            _check_range(spec, *ranges[spec.name])
    return tuple(
        replace(s, low=ranges[s.name][0], high=ranges[s.name][1], origin="--input-range")
        if s.name in ranges
        else s
        for s in specs
    )


def _check_range(spec: TensorSpec, low: float, high: float) -> None:
    """UserError when ``[low, high)`` holds no value of the input's dtype."""
    dtype = np.dtype(spec.dtype)
    given = f"--input-range {spec.name}={low:g}:{high:g}"
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        if low != int(low) or high != int(high):
            raise UserError(f"{given}: '{spec.name}' takes {dtype} values: give whole numbers")
        if low < info.min or high > info.max + 1:
            raise UserError(f"{given}: {dtype} holds {info.min} to {info.max}")
    elif np.issubdtype(dtype, np.floating) and max(abs(low), abs(high)) > np.finfo(dtype).max:
        raise UserError(f"{given}: beyond what {dtype} holds")


def make_inputs(
    specs: tuple[TensorSpec, ...], sizes: dict[str, int], seed: int
) -> dict[str, np.ndarray]:
    """Seeded synthetic inputs for ``specs``, the same for every runtime given the same seed."""
    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    for spec in specs:
        shape = spec.concrete_shape(sizes)
        dtype = np.dtype(spec.dtype)
        if dtype == np.bool_:
            feeds[spec.name] = rng.integers(0, 2, size=shape).astype(np.bool_)
        elif np.issubdtype(dtype, np.integer):
            feeds[spec.name] = rng.integers(int(spec.low), int(spec.high), size=shape, dtype=dtype)
        else:
            feeds[spec.name] = rng.uniform(spec.low, spec.high, size=shape).astype(dtype)
    return feeds


QUANTIZATION_SCHEMES = {
    "u8s8": "uint8 activations (asymmetric), int8 per-channel weights (symmetric)",
    "s8s8": "int8 activations and int8 per-channel weights, both symmetric",
}
"""How a QDQ model quantizes: ``u8s8`` for CPUs (ONNX Runtime fuses it into QLinearConv,
OpenVINO into u8 convolutions), ``s8s8`` for TensorRT, which takes no zero point."""


@dataclass(frozen=True)
class Quantized:
    """A QDQ (QuantizeLinear / DequantizeLinear) copy of a model's ONNX file in one
    ``scheme``, what calibrating it cost, and how (``notes``)."""

    path: Path
    scheme: str
    calibrate_s: float
    cache_hit: bool
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ScoredData:
    """Labelled data staged for a model's cells (bench.harness.dataset): ``path`` holds
    the scored samples (``in/<input>``, ``labels`` where labelled), ``reference`` the
    reference outputs on them (``out/<output>``, from ``reference_origin``; where there
    are none, ``no_reference`` says why). ``name`` and ``split`` say what was scored,
    ``digest`` its content; ``ignore_index`` is the label segmentation leaves out."""

    path: Path
    name: str
    split: str
    samples: int
    digest: str = ""
    ignore_index: int = 255
    reference: Path | None = None
    reference_origin: str = ""
    no_reference: str = ""

    def to_dict(self) -> dict:
        data = asdict(self)
        data["path"] = str(self.path)
        data["reference"] = str(self.reference) if self.reference else None
        return data

    @classmethod
    def from_dict(cls, data: dict) -> ScoredData:
        reference = data.get("reference")
        return cls(
            **{**data, "path": Path(data["path"]), "reference": reference and Path(reference)}
        )


@dataclass
class PreparedModel:
    """A model ready for the runtimes: an ONNX file plus what the harness needs to know.

    ``source`` tells the PyTorch runtime how to rebuild the same module: ``zoo:<name>`` for
    a reference model, ``factory:<package.module:function>`` for a user factory,
    ``pretrained:<library>:<name>[?weights=...]`` for a torchvision, timm or Transformers
    model (``exporters.pretrained``), or ``""`` for a user ONNX file (no PyTorch module
    exists). ``reference`` is an ``.npz`` file of
    seeded inputs and reference outputs per batch size, keyed ``b<batch>/in/<input>`` and
    ``b<batch>/out/<output>`` (see ``exporters.reference``): PyTorch FP32 for a PyTorch
    model, ONNX Runtime on the CPU for an ONNX file (``reference_origin``).
    """

    name: str
    onnx_path: Path
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    task: str
    source: str
    seed: int = 0
    params: int | None = None
    flops_per_sample: int | None = None
    export_s: float = 0.0
    cache_hit: bool = False
    reference: Path | None = None
    reference_origin: str = "pytorch fp32"
    """What made the reference outputs."""
    no_reference: str = ""
    """Why there are no reference outputs, where there are none."""
    precision: str = "fp32"
    """The file's own precision: ``fp16`` when its floating weights are all FP16."""
    notes: list[str] = field(default_factory=list)
    quantized: dict[str, Quantized] = field(default_factory=dict)
    """The QDQ copies made for int8 cells, by scheme (``bench.harness.runner`` adds them)."""
    not_quantized: dict[str, str] = field(default_factory=dict)
    """Why there is no QDQ copy in a scheme, where quantizing failed."""
    scored: ScoredData | None = None
    """The labelled data its cells are scored on (``--dataset``), None without."""

    def to_dict(self) -> dict:
        data = asdict(self)
        data["scored"] = self.scored.to_dict() if self.scored else None
        data["onnx_path"] = str(self.onnx_path)
        data["reference"] = str(self.reference) if self.reference else None
        data["quantized"] = {
            scheme: {**asdict(q), "path": str(q.path), "notes": list(q.notes)}
            for scheme, q in self.quantized.items()
        }
        data["inputs"] = [s.to_dict() for s in self.inputs]
        data["outputs"] = [s.to_dict() for s in self.outputs]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> PreparedModel:
        data = dict(data)
        data["onnx_path"] = Path(data["onnx_path"])
        data["reference"] = Path(data["reference"]) if data.get("reference") else None
        data["inputs"] = tuple(TensorSpec.from_dict(s) for s in data["inputs"])
        data["outputs"] = tuple(TensorSpec.from_dict(s) for s in data["outputs"])
        data["quantized"] = {
            scheme: Quantized(**{**q, "path": Path(q["path"]), "notes": tuple(q["notes"])})
            for scheme, q in (data.get("quantized") or {}).items()
        }
        data["scored"] = ScoredData.from_dict(data["scored"]) if data.get("scored") else None
        return cls(**data)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: Path) -> PreparedModel:
        return cls.from_dict(json.loads(path.read_text()))
