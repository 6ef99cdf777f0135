"""How far each zoo model's outputs drift from its own float64 PyTorch output: PyTorch
fp32 (the reference every cell is compared with), ONNX Runtime and OpenVINO on the CPU in
fp32, OpenVINO and PyTorch on the CPU in bf16. The table of docs/zoo-drift.md.

Random weights can make a deep network amplify rounding on its own, so that a precision
verdict would judge the weights rather than the runtime. Each cell gives the error over
the output's scale and the verdict under the harness's tolerance of its precision
(``bench.harness.accuracy``), bf16 cells their cosine similarity too, on the model's
seeded inputs at one batch size.

    python scripts/zoo_drift.py                        # every zoo model, batch 1
    python scripts/zoo_drift.py --undamped             # residual branches left at full scale
    python scripts/zoo_drift.py --models mlp,resnet50 --batch 2

``--undamped`` builds every model with ``damped`` a no-op: ResNet-18/50, MobileNetV2 and
Xception as they were before EXPORTER_VERSION 4 (ResNet-152, FCN-ResNet50 and the
detector lose their damping too). It exports into a temporary cache, never the shared one.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.core.cell import Target  # noqa: E402
from bench.core.spec import PreparedModel  # noqa: E402
from bench.harness.accuracy import compare_outputs  # noqa: E402
from exporters.cache import default_cache_dir  # noqa: E402
from exporters.onnx_export import prepare_zoo_model  # noqa: E402
from exporters.reference import load_reference  # noqa: E402
from exporters.source import build_module, module_loader  # noqa: E402
from exporters.zoo import ZOO  # noqa: E402
from runtimes import RUNTIMES  # noqa: E402
from runtimes.base import LoadOptions  # noqa: E402

CELLS = (
    ("onnxruntime", "fp32", "ONNX Runtime fp32"),
    ("openvino", "fp32", "OpenVINO fp32"),
    ("openvino", "bf16", "OpenVINO bf16"),
    ("pytorch", "bf16", "PyTorch bf16"),
)
"""The cells measured beside PyTorch fp32: runtime, precision, column title."""


def float64_outputs(
    prepared: PreparedModel, inputs: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """The model's outputs with float64 weights and float inputs (token ids stay integers)."""
    import torch

    module = build_module(prepared.source, prepared.seed)[0].double()
    tensors = [
        torch.from_numpy(np.ascontiguousarray(inputs[spec.name])) for spec in prepared.inputs
    ]
    tensors = [t.double() if t.is_floating_point() else t for t in tensors]
    with torch.no_grad():
        result = module(*tensors)
    outputs = (result,) if isinstance(result, torch.Tensor) else tuple(result)
    return {spec.name: o.numpy() for spec, o in zip(prepared.outputs, outputs, strict=True)}


def figures(
    outputs: dict[str, np.ndarray], reference: dict[str, np.ndarray], precision: str, task: str
) -> str:
    """A cell: error over scale and verdict, and for reduced precision the cosine."""
    f = compare_outputs(outputs, reference, precision, task == "classification")
    cosine = f" / {float(f['cosine_similarity']):.5f}" if precision != "fp32" else ""
    return f"{float(f['scaled_error']):.1e}{cosine} {f['verdict']}"


def measure(name: str, batch: int, threads: int, cache_dir: Path) -> list[str]:
    """The row of ``name``: PyTorch fp32, then each of ``CELLS``, against float64."""
    prepared = prepare_zoo_model(name, [batch], cache_dir)
    inputs, fp32 = load_reference(prepared.reference, batch)
    reference = float64_outputs(prepared, inputs)
    row = [figures(fp32, reference, "fp32", prepared.task)]
    options = LoadOptions(threads=threads, module=module_loader(prepared.source, prepared.seed))
    for runtime_name, precision, _ in CELLS:
        target = Target("cpu", precision)
        runtime = RUNTIMES[runtime_name]
        if runtime.unavailable_reason(target, prepared.source) is not None:
            row.append("-")
            continue
        instance = runtime()
        built = instance.build(prepared, target, options, cache_dir)
        session = instance.load(built, prepared, target, options)
        cell = figures(session.infer(inputs), reference, precision, prepared.task)
        ran = session.executed.precision
        row.append(cell if ran == precision else f"{cell} (ran {ran})")
    return row


@contextlib.contextmanager
def undamped() -> Iterator[None]:
    """Every zoo builder's ``damped`` a no-op while inside; restored on the way out."""
    from exporters import models, xception, yolo

    def keep(module, norms):  # noqa: ANN001, ANN202
        return module

    users = (models, xception, yolo)
    saved = [user.damped for user in users]
    for user in users:
        user.damped = keep
    try:
        yield
    finally:
        for user, original in zip(users, saved, strict=True):
            user.damped = original


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(ZOO), help="comma-separated zoo names")
    parser.add_argument("--batch", type=int, default=1, help="batch size (the suite's: 1)")
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads, 0: default")
    parser.add_argument("--undamped", action="store_true", help="residual branches at full scale")
    parser.add_argument("--cache-dir", type=Path, default=None, help="export cache")
    args = parser.parse_args(argv)
    names = [n for n in args.models.split(",") if n]
    print("| model | PyTorch fp32 | " + " | ".join(title for *_, title in CELLS) + " |")
    print("|---" * (len(CELLS) + 2) + "|")
    with contextlib.ExitStack() as stack:
        cache_dir = args.cache_dir or default_cache_dir()
        if args.undamped:
            stack.enter_context(undamped())
            cache_dir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        for name in names:
            row = measure(name, args.batch, args.threads, cache_dir)
            print(f"| {name} | " + " | ".join(row) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
