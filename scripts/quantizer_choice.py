"""Which post-training quantizer makes the int8 QDQ copies: ONNX Runtime's quantize_static
(what exporters/quantize.py uses) against NNCF (OpenVINO's), on the same FP32 export, the
same calibration samples and the same per-channel weights.

For each model and quantizer: the time quantizing took; the agreement of the QDQ copy's
outputs with the FP32 model's (cosine similarity and error over the output's scale,
medians over evaluation inputs other than the calibration ones); the QDQ copy's median
latency at batch 1 on ONNX Runtime's and OpenVINO's CPU runtimes, and how many of its
compute layers each ran in int8.

    python scripts/quantizer_choice.py                      # resnet18, mobilenet_v2
    python scripts/quantizer_choice.py --models lenet5 --samples 4 --runs 5 --quantizers onnxruntime

NNCF is not a dependency of deploybench: pip install nncf to compare (without it, only
ONNX Runtime's quantizer is measured, and the script says so).
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.core.settings import QuantizeConfig  # noqa: E402
from exporters.cache import default_cache_dir  # noqa: E402
from exporters.onnx_export import prepare_zoo_model  # noqa: E402
from exporters.quantize import calibration_samples, quantize  # noqa: E402


def ort_quantizer(model, samples, settings, workdir: Path) -> Path:  # noqa: ANN001
    return quantize(model, "u8s8", settings, None, workdir).path


def nncf_quantizer(model, samples, settings, workdir: Path) -> Path:  # noqa: ANN001
    import nncf
    import onnx

    quantized = nncf.quantize(
        onnx.load(str(model.onnx_path)),
        nncf.Dataset(samples),
        preset=nncf.QuantizationPreset.MIXED,  # asymmetric activations, as u8s8
        subset_size=len(samples),
    )
    path = workdir / f"{model.name}-nncf.onnx"
    onnx.save(quantized, str(path))
    return path


def agreement(path: Path, model, inputs: list[dict]) -> tuple[float, float]:  # noqa: ANN001
    """Median cosine similarity and error over the output's scale, QDQ copy vs FP32."""
    import onnxruntime

    fp32 = onnxruntime.InferenceSession(str(model.onnx_path), providers=["CPUExecutionProvider"])
    int8 = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    cosines, errors = [], []
    for feeds in inputs:
        want = np.concatenate([o.ravel() for o in fp32.run(None, feeds)]).astype(np.float64)
        got = np.concatenate([o.ravel() for o in int8.run(None, feeds)]).astype(np.float64)
        cosines.append(float(want @ got / np.linalg.norm(want) / np.linalg.norm(got)))
        errors.append(float(np.abs(want - got).max() / np.abs(want).max()))
    return statistics.median(cosines), statistics.median(errors)


def ort_latency(path: Path, feeds: dict, runs: int) -> tuple[float, str]:
    import onnxruntime

    from runtimes.onnxruntime_rt import compute_layers

    with tempfile.TemporaryDirectory() as scratch:
        options = onnxruntime.SessionOptions()
        options.optimized_model_filepath = str(Path(scratch) / "optimized.onnx")
        options.log_severity_level = 3
        session = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
        layers = compute_layers(Path(options.optimized_model_filepath))
    return _median_ms(lambda: session.run(None, feeds), runs), _share(layers)


def ov_latency(path: Path, feeds: dict, runs: int) -> tuple[float, str]:
    import openvino

    from runtimes.openvino_rt import runtime_layers

    config = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
    compiled = openvino.Core().compile_model(str(path), "CPU", config)
    request = compiled.create_infer_request()
    layers: dict[str, int] = {}
    for kind, precision in runtime_layers(compiled):
        if kind in ("Convolution", "FullyConnected", "MatMul", "GroupConvolution"):
            layers[precision] = layers.get(precision, 0) + 1
    return _median_ms(lambda: request.infer(feeds), runs), _share(layers)


def _median_ms(call, runs: int) -> float:  # noqa: ANN001
    for _ in range(max(3, runs // 5)):
        call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def _share(layers: dict[str, int]) -> str:
    int8 = sum(n for name, n in layers.items() if name in ("int8", "i8", "u8"))
    return f"{int8}/{sum(layers.values())}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet18,mobilenet_v2")
    parser.add_argument("--samples", type=int, default=32, help="calibration samples")
    parser.add_argument("--eval", type=int, default=8, help="evaluation inputs")
    parser.add_argument("--runs", type=int, default=50, help="timed requests per runtime")
    parser.add_argument("--quantizers", default="onnxruntime,nncf")
    args = parser.parse_args()
    quantizers = {"onnxruntime": ort_quantizer, "nncf": nncf_quantizer}
    quantizers = {k: v for k, v in quantizers.items() if k in args.quantizers.split(",")}
    if "nncf" in quantizers and importlib.util.find_spec("nncf") is None:
        print("nncf is not installed (pip install nncf): measuring ONNX Runtime's quantizer only")
        del quantizers["nncf"]
    settings = QuantizeConfig(calibration_samples=args.samples)
    print(
        f"{'model':14} {'quantizer':12} {'quantize s':>10} {'cosine':>8} {'error':>7} "
        f"{'ORT ms':>8} {'int8':>6} {'OV ms':>8} {'int8':>6}"
    )
    for name in args.models.split(","):
        model = prepare_zoo_model(name, [1], default_cache_dir())
        samples, _ = calibration_samples(model, settings, None)
        evaluation, _ = calibration_samples(
            model, QuantizeConfig(calibration_samples=args.eval + args.samples), None
        )
        evaluation = evaluation[args.samples :]  # other seeds than the calibration's
        with tempfile.TemporaryDirectory() as workdir:
            for label, quantizer in quantizers.items():
                start = time.perf_counter()
                path = quantizer(model, samples, settings, Path(workdir))
                took = time.perf_counter() - start
                cosine, error = agreement(path, model, evaluation)
                ort_ms, ort_int8 = ort_latency(path, evaluation[0], args.runs)
                ov_ms, ov_int8 = ov_latency(path, evaluation[0], args.runs)
                print(
                    f"{name:14} {label:12} {took:10.1f} {cosine:8.4f} {error:7.3f} "
                    f"{ort_ms:8.2f} {ort_int8:>6} {ov_ms:8.2f} {ov_int8:>6}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
