"""Dense matrix-multiply throughput per dtype: square M = N = K products on one device,
counted as 2·M·N·K operations, with torch's own kernels (cuBLAS, oneDNN / MKL)."""

from __future__ import annotations

from collections.abc import Callable
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
PROBE_SIZE = 512
"""The side of the product that projects a dtype's first size."""
MIN_REPEATS = 3
"""A figure keeps at least this many repeats; fewer would not show its spread."""


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


def _operands(torch: Any, device: Any, dtype: str, size: int) -> Callable[[], Any]:
    """One product of seeded ``size``² operands in ``dtype`` (``torch._int_mm`` for int8,
    else ``torch.matmul``)."""
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
        return lambda: torch._int_mm(a, b, out=out)
    a, b = (
        torch.randn(size, size, generator=generator, device=device).to(torch_dtype)
        for _ in range(2)
    )
    out = torch.empty(size, size, dtype=torch_dtype, device=device)
    return lambda: torch.matmul(a, b, out=out)


def measure_matmul(
    torch: Any, device: Any, dtype: str, size: int, repeats: int, max_s: float
) -> HwRecord:
    """Throughput of ``size``³ products in ``dtype`` on ``device``: one warm-up, then
    ``repeats`` repeats of enough back-to-back products to last ``MIN_REPEAT_S``."""
    unit = unit_of(dtype)
    reason = unavailable_reason(torch, device, dtype)
    if reason is not None:
        return HwRecord("matmul", str(device), dtype, size, unit, "unavailable", reason)
    clock = DeviceClock(torch, device)
    api = "torch._int_mm" if dtype == "int8" else "torch.matmul"
    try:
        run = _operands(torch, device, dtype, size)
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


def figure_seconds(call_s: float, repeats: int) -> float:
    """Wall time of one figure whose product takes ``call_s``: a warm-up call, a sizing
    call, then ``repeats`` repeats of enough calls to last ``MIN_REPEAT_S``."""
    calls = max(1, int(MIN_REPEAT_S / call_s)) if call_s > 0 else 1
    return call_s * (2 + repeats * calls)


class MatmulLadder:
    """The sizes of one dtype on one device, smallest first, each run only when its
    projected time fits ``max_s``.

    A product's time is projected from the last size measured (the same rate, n³ work),
    or for the first size from a ``PROBE_SIZE``³ probe. Repeats drop to ``MIN_REPEATS``
    to fit the cap; a size that still does not fit is recorded ``capped`` with the
    projected time, never started: one product can take minutes (a CPU without an fp16
    GEMM) and a running product cannot be stopped. ``fix`` ends the capped reason (how to
    raise the cap).
    """

    def __init__(
        self, torch: Any, device: Any, dtype: str, repeats: int, max_s: float, fix: str
    ) -> None:
        self._torch, self._device, self._dtype = torch, device, dtype
        self._repeats, self._max_s, self._fix = repeats, max_s, fix
        self._known: tuple[int, float, str] | None = None
        """(size, seconds per product, where that came from)"""

    def measure(self, size: int) -> HwRecord:
        torch, device, dtype = self._torch, self._device, self._dtype
        if unavailable_reason(torch, device, dtype) is not None:
            return measure_matmul(torch, device, dtype, size, self._repeats, self._max_s)
        try:
            basis, call_s, origin = self._known or self._probe(min(PROBE_SIZE, size))
        except RuntimeError:  # the kernel refuses this dtype: measure_matmul says how
            return measure_matmul(torch, device, dtype, size, self._repeats, self._max_s)
        projected = call_s * (size / basis) ** 3
        repeats = self._repeats
        while repeats > MIN_REPEATS and figure_seconds(projected, repeats) > self._max_s:
            repeats -= 1
        total = figure_seconds(projected, repeats)
        if total > self._max_s:
            rate = matmul_flops(basis, basis, basis) / call_s
            reason = (
                f"projected {format_seconds(total)} ({format_seconds(projected)} per "
                f"{size}³ product at {format_ops(rate, unit_of(dtype))}, from {origin}), "
                f"over the {self._max_s:g} s cap per figure: {self._fix}"
            )
            record = HwRecord("matmul", str(device), dtype, size, unit_of(dtype), "capped", reason)
            record.details["projected_s"] = round(total, 3)
            return record
        record = measure_matmul(torch, device, dtype, size, repeats, self._max_s)
        record.details["projected_s"] = round(total, 3)
        if record.status == "ok" and record.median:
            seconds = matmul_flops(size, size, size) / (record.median * 1e12)
            self._known = (size, seconds, f"the {size}³ figure")
        return record

    def _probe(self, size: int) -> tuple[int, float, str]:
        """(size, seconds per product, origin) from one warm-up and one timed product."""
        run = _operands(self._torch, self._device, self._dtype, size)
        with _fp32_math(self._torch, self._dtype):
            (seconds,) = DeviceClock(self._torch, self._device).after_warm_up(run, 1)
        return size, seconds, f"a {size}³ probe"


def format_seconds(seconds: float) -> str:
    """``0.4 s``, ``12 s``, ``3 min 5 s``, ``1 h 2 min``."""
    if seconds < 10:
        return f"{seconds:.2g} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"


def format_ops(ops_per_s: float, unit: str) -> str:
    """A rate in G or T of ``unit``'s operations per second, three significant figures."""
    prefix = unit.removesuffix("/s")[1:]  # FLOP or OP
    if ops_per_s >= 1e12:
        return f"{ops_per_s / 1e12:.3g} T{prefix}/s"
    return f"{ops_per_s / 1e9:.3g} G{prefix}/s"
