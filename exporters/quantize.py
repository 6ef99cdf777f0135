"""Post-training static quantization: the FP32 ONNX model into a QDQ model
(QuantizeLinear / DequantizeLinear around each quantized operator), which ONNX Runtime,
OpenVINO and TensorRT all read and run in int8.

The quantizer is ONNX Runtime's ``quantize_static`` (QDQ format, per-channel weights),
fed calibration samples: the model's own seeded generated inputs (seeds past those of the
accuracy check, so the check is not run on the calibration data), or the arrays of a
``--calibration-data`` file. The result is cached like the FP16 graph, keyed by the
model's content, the scheme, the calibration settings, the data's digest and the
quantizer's version (and, for generated samples, the inputs' shapes, types and ranges).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from pathlib import Path

import numpy as np

from bench.core.digest import cache_key, file_digest
from bench.core.errors import UserError
from bench.core.locks import entry_lock
from bench.core.settings import QuantizeConfig
from bench.core.spec import (
    BATCH,
    QUANTIZATION_SCHEMES,
    PreparedModel,
    Quantized,
    TensorSpec,
    make_inputs,
)

CALIBRATION_SEEDS = 1_000_000
"""Generated calibration sample i uses seed ``model.seed + CALIBRATION_SEEDS + i``."""
_METHODS = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}
_REFERENCE_KEY = re.compile(r"^b(\d+)/in/(.+)$")


class QuantizeFailed(Exception):
    """The quantizer could not quantize the model (the message says what it met)."""


def calibration_samples(
    model: PreparedModel,
    settings: QuantizeConfig,
    data: dict[str, np.ndarray] | None,
    origin: str | None = None,
) -> tuple[list[dict[str, np.ndarray]], str]:
    """The samples calibration feeds, one request each, and where they came from
    (``origin`` names ``data``; else the calibration file)."""
    where = origin or settings.calibration_data
    if data is not None:
        count = min(len(next(iter(data.values()))), settings.calibration_samples)
        step = _fixed_batch(model.inputs)
        if count < step:
            raise UserError(
                f"{model.name} takes {step} samples a request: give --calibration-samples "
                f"{step} or more (and as many samples in {where})"
            )
        samples = [
            {name: array[i : i + step] for name, array in data.items()}
            for i in range(0, count - step + 1, step)
        ]
        return samples, f"{len(samples) * step} samples of {where}"
    specs = _concrete_specs(model)
    samples = [
        make_inputs(specs, {}, model.seed + CALIBRATION_SEEDS + i)
        for i in range(settings.calibration_samples)
    ]
    batch = specs[0].shape[0] if specs and specs[0].shape else 1
    rows = f" of batch {batch}" if batch != 1 else ""
    return samples, f"{len(samples)} generated requests{rows} (seeded)"


def check_calibration_data(
    data: dict[str, np.ndarray], specs: tuple[TensorSpec, ...], file: str
) -> None:
    """UserError (one line naming the fix) unless ``data`` holds one array per input of
    ``specs``, of its dtype, with samples on the first axis and the input's other sizes."""
    if not data:
        raise UserError(f"{file} holds no arrays: save one array per input (numpy.savez)")
    names = sorted(data)
    for spec in specs:
        if spec.name not in data:
            raise UserError(
                f"{file} has no array for input '{spec.name}' (it holds {', '.join(names)}): "
                "name each array after an input"
            )
        array = data[spec.name]
        if array.dtype != np.dtype(spec.dtype):
            raise UserError(
                f"{file}: '{spec.name}' is {array.dtype}, the model takes {spec.dtype}: "
                f"save it as {spec.dtype}"
            )
        if not spec.takes_samples(array.shape):
            shape = "x".join(str(d) if isinstance(d, int) else "?" for d in spec.shape[1:])
            raise UserError(
                f"{file}: '{spec.name}' has shape {'x'.join(map(str, array.shape))}; give "
                f"samples x {shape} (samples on the first axis)"
            )
        if len(array) < _fixed_batch(specs):
            raise UserError(f"{file}: '{spec.name}' holds no sample: give at least one")
    extra = sorted(set(data) - {spec.name for spec in specs})
    if extra:
        raise UserError(f"{file}: {', '.join(extra)} is no input of the model: drop it")
    if len({len(data[spec.name]) for spec in specs}) > 1:
        raise UserError(f"{file}: the arrays hold different numbers of samples: give as many")


def quantize(
    model: PreparedModel,
    scheme: str,
    settings: QuantizeConfig,
    data: dict[str, np.ndarray] | None,
    cache_dir: Path,
    origin: str | None = None,
) -> Quantized:
    """The QDQ copy of ``model`` in ``scheme`` (``QUANTIZATION_SCHEMES``), made or found in
    the cache, calibrated on ``data`` (``origin`` says what it is). QuantizeFailed with
    the quantizer's reason when it cannot."""
    import onnxruntime

    data_digest = _data_digest(data)
    key = cache_key(
        onnx=file_digest(model.onnx_path),
        scheme=scheme,
        method=settings.method,
        samples=settings.calibration_samples,
        data=data_digest,
        inputs=[spec.key() for spec in _concrete_specs(model)] if data is None else None,
        seed=model.seed,
        quantizer=onnxruntime.__version__,
    )
    stem = re.sub(r"[^\w.-]", "_", model.name) or "model"
    target = Path(cache_dir) / "quantized" / f"{stem}-int8-{scheme}-{key}.onnx"
    notes_file = target.with_suffix(".notes")
    with entry_lock(target, scratch=f".{target.name}.*.partial"):
        if target.is_file():
            notes = tuple(notes_file.read_text().splitlines()) if notes_file.is_file() else ()
            return Quantized(target, scheme, 0.0, True, notes)
        start = time.perf_counter()
        samples, origin = calibration_samples(model, settings, data, origin)
        partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
        target.parent.mkdir(parents=True, exist_ok=True)
        _quantize_static(model, samples, scheme, settings.method, partial)
        notes = (
            f"int8 QDQ, {scheme} ({QUANTIZATION_SCHEMES[scheme]}), by onnxruntime "
            f"{onnxruntime.__version__} quantize_static, {settings.method} calibration on "
            f"{origin}",
            f"QDQ file {target}",
        )
        notes_file.write_text("\n".join(notes) + "\n")
        os.replace(partial, target)
        return Quantized(target, scheme, time.perf_counter() - start, False, notes)


def _quantize_static(
    model: PreparedModel,
    samples: list[dict[str, np.ndarray]],
    scheme: str,
    method: str,
    output: Path,
) -> None:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Samples(CalibrationDataReader):
        def __init__(self) -> None:
            self._samples = iter(samples)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._samples, None)

    symmetric = scheme == "s8s8"
    logging.getLogger().setLevel(logging.ERROR)  # its advice to pre-process, per call
    try:
        quantize_static(
            str(model.onnx_path),
            str(output),
            Samples(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=getattr(CalibrationMethod, _METHODS[method]),
            extra_options={"ActivationSymmetric": symmetric, "WeightSymmetric": True},
        )
    except Exception as exc:  # the quantizer's own errors are of every kind
        output.unlink(missing_ok=True)
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise QuantizeFailed(
            f"onnxruntime's quantizer cannot quantize {model.name}: {why}"
        ) from exc


def _fixed_batch(specs: tuple[TensorSpec, ...]) -> int:
    """Samples per request: a fixed leading size of the first input, else 1."""
    first = specs[0].shape[0] if specs and specs[0].shape else 1
    return first if isinstance(first, int) else 1


def _concrete_specs(model: PreparedModel) -> tuple[TensorSpec, ...]:
    """The inputs at one request's shapes: the smallest batch of the reference file (which
    knows every named size an ONNX file was given), else batch 1."""
    shapes: dict[int, dict[str, tuple[int, ...]]] = {}
    if model.reference is not None and model.reference.is_file():
        with np.load(model.reference) as stored:
            for key in stored.files:
                match = _REFERENCE_KEY.match(key)
                if match:
                    batch = int(match.group(1))
                    shapes.setdefault(batch, {})[match.group(2)] = stored[key].shape
    known = shapes[min(shapes)] if shapes else {}
    return tuple(
        TensorSpec(
            s.name, known.get(s.name) or s.concrete_shape({BATCH: 1}), s.dtype, s.low, s.high
        )
        for s in model.inputs
    )


def _data_digest(data: dict[str, np.ndarray] | None) -> str:
    if data is None:
        return "generated"
    digest = hashlib.sha256()
    for name in sorted(data):
        array = np.ascontiguousarray(data[name])
        digest.update(f"{name}:{array.dtype}:{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]
