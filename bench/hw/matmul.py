"""Dense matrix-multiply throughput per dtype: square M = N = K products on one device,
counted as 2·M·N·K operations, with torch's own kernels (cuBLAS, oneDNN / MKL)."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.hw.clock import DeviceClock
from bench.hw.records import HwRecord, matmul_flops, rates

MATMUL_DTYPES = ("fp64", "fp32", "tf32", "fp16", "bf16", "int8")
_TORCH_DTYPES = {
    "fp64": "float64",
    "fp32": "float32",
    "tf32": "float32",
    "fp16": "float16",
    "bf16": "bfloat16",
    "int8": "int8",
}
CPU_INT8_FLAGS = ("amx_int8", "avx512_vnni", "avx_vnni", "asimddp", "i8mm")
"""CPU instructions that give torch._int_mm (through oneDNN) a real int8 GEMM."""
CPU_LOW_PRECISION_FLAGS = ("avx512_fp16", "amx_fp16", "avx512_bf16", "amx_bf16", "fphp", "bf16")
MIN_REPEAT_S = 0.2


def unit_of(dtype: str) -> str:
    return "TOP/s" if dtype == "int8" else "TFLOP/s"


def cpu_flags() -> set[str]:
    """The CPU feature flags /proc/cpuinfo lists (x86 ``flags``, Arm ``Features``)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


def unavailable_reason(torch: Any, device: Any, dtype: str) -> str | None:
    """Why ``dtype`` has no matrix-multiply path on ``device`` here (None when it has)."""
    if device.type == "cpu":
        if dtype == "tf32":
            return "TF32 is an NVIDIA tensor-core format (Ampere and newer), not a CPU path here"
        if dtype == "int8":
            if not torch.backends.mkldnn.is_available():
                return "this torch has no oneDNN, so no int8 GEMM on the CPU"
            if not cpu_flags() & set(CPU_INT8_FLAGS):
                return "no int8 dot-product instructions (VNNI, AMX, dotprod) on this CPU"
        return None
    major, minor = torch.cuda.get_device_capability(device)
    name = torch.cuda.get_device_name(device)
    if dtype in ("tf32", "bf16") and major < 8:
        return f"{dtype} needs compute capability 8.0 or newer ({name} is {major}.{minor})"
    if dtype == "int8" and not hasattr(torch, "_int_mm"):
        return f"torch {torch.__version__} has no torch._int_mm"
    return None


@contextmanager
def _fp32_math(torch: Any, dtype: str) -> Any:
    """fp32 products in true fp32 ('highest'); tf32 allows TF32 tensor cores ('high')."""
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high" if dtype == "tf32" else "highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


def measure_matmul(
    torch: Any, device: Any, dtype: str, size: int, repeats: int, max_s: float
) -> HwRecord:
    """Throughput of ``size``³ products in ``dtype`` on ``device``: one warm-up, then
    ``repeats`` repeats of enough back-to-back products to last ``MIN_REPEAT_S``."""
    unit = unit_of(dtype)
    reason = unavailable_reason(torch, device, dtype)
    if reason is not None:
        return HwRecord("matmul", str(device), dtype, size, unit, "unavailable", reason)
    torch_dtype = getattr(torch, _TORCH_DTYPES[dtype])
    generator = torch.Generator(device=device).manual_seed(size)
    if dtype == "int8":
        a, b = (
            torch.randint(-128, 128, (size, size), generator=generator, device=device).to(
                torch_dtype
            )
            for _ in range(2)
        )
        out = torch.empty(size, size, dtype=torch.int32, device=device)
        api = "torch._int_mm"

        def run() -> Any:
            return torch._int_mm(a, b, out=out)
    else:
        a, b = (
            torch.randn(size, size, generator=generator, device=device).to(torch_dtype)
            for _ in range(2)
        )
        out = torch.empty(size, size, dtype=torch_dtype, device=device)
        api = "torch.matmul"

        def run() -> Any:
            return torch.matmul(a, b, out=out)

    clock = DeviceClock(torch, device)
    try:
        with _fp32_math(torch, dtype):
            seconds, calls, capped = clock.repeats(run, repeats, MIN_REPEAT_S, max_s)
    except RuntimeError as exc:  # a shape or dtype this device's kernels refuse
        status = "unavailable" if dtype == "int8" else "failed"
        reason = f"{api} failed: {str(exc).splitlines()[0]}"
        return HwRecord("matmul", str(device), dtype, size, unit, status, reason)
    work = matmul_flops(size, size, size)
    details: dict[str, Any] = {"api": api, "calls_per_repeat": calls, "capped": capped}
    if device.type == "cpu":
        details["threads"] = torch.get_num_threads()
        details["cpu_flags"] = sorted(cpu_flags() & set(CPU_LOW_PRECISION_FLAGS + CPU_INT8_FLAGS))
    return HwRecord(
        "matmul",
        str(device),
        dtype,
        size,
        unit,
        repeats=len(seconds),
        work=work,
        details=details,
        **rates(work, seconds, 1e12),
    )
