"""``python cli.py hw``: which devices, dtypes and sizes; running the microbenchmarks;
writing them as a results directory (environment.json, run.json, hw.json)."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.core.devices import cuda_device_count, cuda_unavailable_reason
from bench.core.errors import UserError
from bench.environment import cpu_model, fingerprint
from bench.hw.matmul import MATMUL_DTYPES, measure_matmul
from bench.hw.records import HW_FILE, SCHEMA_VERSION, HwRecord
from bench.results import ENVIRONMENT_FILE, RUN_FILE, RunDir

CPU_SIZES = (1024, 2048, 4096)
GPU_SIZES = (2048, 4096, 8192)
QUICK_CPU_SIZES = (1024, 2048)
QUICK_GPU_SIZES = (8192,)
TRANSFER_BYTES = 256 * 2**20
QUICK_TRANSFER_BYTES = 64 * 2**20
_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?)$")


@dataclass(frozen=True)
class HwOptions:
    """What to measure. ``devices`` None = the CPU and every CUDA device; ``sizes`` None =
    the defaults per device kind; ``stream_mib`` None = sized from the cache (4x LLC)."""

    devices: tuple[str, ...] | None = None
    dtypes: tuple[str, ...] = MATMUL_DTYPES
    sizes: tuple[int, ...] | None = None
    quick: bool = False
    stream_mib: int | None = None

    @property
    def repeats(self) -> int:
        return 3 if self.quick else 5

    @property
    def stream_ntimes(self) -> int:
        """STREAM passes (STREAM's own default is 10)."""
        return 3 if self.quick else 10

    @property
    def max_s(self) -> float:
        """Time cap per matrix figure: a slow dtype stops early and says it was capped."""
        return 5.0 if self.quick else 30.0


def hw_options(
    devices: list[str] | None,
    dtypes: list[str] | None,
    sizes: list[int] | None,
    quick: bool,
    stream_mib: int | None,
) -> HwOptions:
    """Validated options; UserError with one line on an unknown device or dtype, or a
    size that is not positive."""
    for device in devices or []:
        if not _DEVICE.match(device.lower()):
            raise UserError(f"unknown device '{device}' for hw: use cpu, cuda or cuda:N")
    for dtype in dtypes or []:
        if dtype not in MATMUL_DTYPES:
            raise UserError(f"unknown dtype '{dtype}': choose from {', '.join(MATMUL_DTYPES)}")
    if sizes is not None and (not sizes or any(s < 1 for s in sizes)):
        raise UserError("--sizes takes positive matrix sizes, e.g. 1024,2048")
    if stream_mib is not None and stream_mib < 1:
        raise UserError("--stream-mib takes a positive size in MiB")
    return HwOptions(
        devices=tuple(dict.fromkeys(d.lower() for d in devices)) if devices else None,
        dtypes=tuple(dict.fromkeys(dtypes)) if dtypes else MATMUL_DTYPES,
        sizes=tuple(sizes) if sizes else None,
        quick=quick,
        stream_mib=stream_mib,
    )


def resolve_devices(requested: tuple[str, ...] | None) -> list[tuple[str, str | None]]:
    """``(device, unavailable reason)`` pairs: ``cuda`` stands for every CUDA device, and
    a device that is absent here comes with the reason (it is reported, not measured)."""
    count = cuda_device_count()
    resolved: list[tuple[str, str | None]] = []
    for device in requested or ("cpu", "cuda"):
        if device == "cpu":
            resolved.append(("cpu", None))
        elif device == "cuda" and count:
            resolved.extend((f"cuda:{i}", None) for i in range(count))
        elif device == "cuda":
            if requested is not None:  # asked for by name: say why it is not measured
                resolved.append(("cuda", cuda_unavailable_reason(0)))
        else:
            resolved.append((device, cuda_unavailable_reason(int(device.split(":")[1]))))
    return list(dict.fromkeys(resolved))


def run_hw(options: HwOptions, progress: Callable[[str], None]) -> list[HwRecord]:
    """Every figure the options ask for, device by device: the matrix multiplies per dtype
    and size, STREAM, and on a GPU the pinned host↔device copies. ``progress`` is told
    what runs next."""
    import torch

    from bench.hw.stream import measure_stream, measure_transfer, stream_plan

    records: list[HwRecord] = []
    for name, reason in resolve_devices(options.devices):
        if reason is None and name.startswith("cuda") and not torch.cuda.is_available():
            reason = f"torch {torch.__version__} here has no CUDA support"
        if reason is not None:
            records.append(HwRecord.unavailable("device", name, "all", "-", reason))
            continue
        device = torch.device(name)
        for size in _sizes(options, device.type):
            for dtype in options.dtypes:
                progress(f"{name}: {dtype} matmul {size}")
                records.append(
                    measure_matmul(torch, device, dtype, size, options.repeats, options.max_s)
                )
        progress(f"{name}: STREAM")
        plan = stream_plan(torch, device, options.stream_mib)
        records.extend(measure_stream(torch, device, plan, options.stream_ntimes))
        if device.type == "cuda":
            progress(f"{name}: host↔device copies")
            nbytes = QUICK_TRANSFER_BYTES if options.quick else TRANSFER_BYTES
            records.extend(measure_transfer(torch, device, nbytes, options.repeats * 2))
            torch.cuda.empty_cache()
        _name_device(torch, device, records)
    return records


def _sizes(options: HwOptions, kind: str) -> tuple[int, ...]:
    if options.sizes:
        return options.sizes
    if kind == "cuda":
        return QUICK_GPU_SIZES if options.quick else GPU_SIZES
    return QUICK_CPU_SIZES if options.quick else CPU_SIZES


def _name_device(torch: Any, device: Any, records: list[HwRecord]) -> None:
    """Put the device's name in the details of its records."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()
    for record in records:
        if record.device == str(device):
            record.details.setdefault("device_name", name)


def create_hw_dir(root: Path, options: HwOptions) -> RunDir:
    """A new results directory ``<root>/<stamp>-hw`` with environment.json and run.json,
    like a run's (UserError when ``root`` is not writable); ``write_hw`` adds hw.json."""
    run_dir = RunDir.create(root, "hw")
    run_dir.write_json(ENVIRONMENT_FILE, fingerprint())
    run_dir.write_json(
        RUN_FILE,
        {
            "run_id": run_dir.run_id,
            "kind": "hw",
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "argv": sys.argv,
            "options": asdict(options),
        },
    )
    return run_dir


def write_hw(run_dir: RunDir, records: list[HwRecord]) -> None:
    """Write ``records`` as the directory's hw.json."""
    records_json = [r.to_dict() for r in records]
    run_dir.write_json(HW_FILE, {"schema_version": SCHEMA_VERSION, "records": records_json})
