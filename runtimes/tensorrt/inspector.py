"""The precision a TensorRT engine runs in, read from the engine inspector's JSON
(``IEngineInspector`` with ``ProfilingVerbosity.DETAILED``) or trtexec's
``--exportLayerInfo``, which is the same document.

Each layer's tensors carry one ``"Format/Datatype"`` string up to TensorRT 10.x; TensorRT
11 splits it into ``"Format"`` and ``"DataType"`` (NVIDIA's "Migrating IEngineInspector
Usage from TensorRT 10.x to 11.x"), so the type is read from whichever is there."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

_COMPUTE = re.compile(r"conv|gemm|matmul|matrixmultiply|fullyconnected|attention|myelin|rnn")
_DATATYPES = (  # checked in order: "bfloat16" before "float", "fp16"/"half" before "float"
    ("bf16", ("bf16", "bfloat16")),
    ("fp8", ("fp8", "e4m3")),
    ("int8", ("int8",)),
    ("fp16", ("fp16", "half")),
    ("fp32", ("fp32", "float")),
)


def datatype(text: str) -> str | None:
    """Our name for an inspector "Format/Datatype" string ("Row major linear FP16 format",
    "Channel major FP16 format where channel % 8 == 0", "Float", "Half"); None for
    "N/A due to dynamic shapes" and other non-types."""
    lowered = text.lower().replace("uint8", "")  # TensorRT's UInt8 is no int8 compute
    for name, words in _DATATYPES:
        if any(word in lowered for word in words):
            return name
    return None


def layer_precisions(info: dict[str, Any]) -> list[tuple[str, str]]:
    """(layer type, precision of its first input) of each layer of an engine inspector's
    (or trtexec ``--exportLayerInfo``) JSON, for layers whose type can be read."""
    layers = []
    for layer in info.get("Layers", []):
        if not isinstance(layer, dict):
            continue  # layer names only: the engine was built without DETAILED verbosity
        tensors = layer.get("Inputs") or layer.get("Outputs") or []
        kind = _tensor_datatype(tensors[0]) if tensors and isinstance(tensors[0], dict) else None
        if kind:
            layers.append((str(layer.get("LayerType", "")), kind))
    return layers


def _tensor_datatype(tensor: dict[str, Any]) -> str | None:
    """The type of one tensor entry: TensorRT 11's ``DataType``, else the older combined
    ``Format/Datatype`` (any capitalisation), else a ``Format`` string that names one."""
    fields = {str(key).lower(): value for key, value in tensor.items()}
    for key in ("datatype", "format/datatype", "format"):
        if key in fields and (kind := datatype(str(fields[key]))):
            return kind
    return None


def executed_precision(layers: list[tuple[str, str]]) -> str:
    """The precision most compute layers (convolutions, matrix products, fused Myelin
    regions) take their inputs in; every layer counts when none computes; else unknown."""
    compute = [p for t, p in layers if _COMPUTE.search(t.lower())] or [p for _, p in layers]
    return Counter(compute).most_common(1)[0][0] if compute else "unknown"
