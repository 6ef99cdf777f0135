"""``python cli.py hw``: which devices, dtypes and sizes; running the microbenchmarks;
writing them as a results directory (environment.json, run.json, hw.json)."""

from __future__ import annotations

import math
import re
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from bench.core.devices import cuda_device_count, cuda_unavailable_reason
from bench.core.errors import UserError
from bench.harness.environment import cpu_model, fingerprint
from bench.harness.results import ENVIRONMENT_FILE, RUN_FILE, RunDir
from bench.hw.matmul import MATMUL_DTYPES, MatmulLadder
from bench.hw.records import HW_FILE, SCHEMA_VERSION, HwRecord

_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?)$")


@dataclass(frozen=True)
class Mode:
    """How thorough ``hw`` is: matrix sizes per device kind, repeats per figure, the cap
    on one figure's projected time, STREAM passes and the copy size."""

    name: str
    cpu_sizes: tuple[int, ...]
    gpu_sizes: tuple[int, ...]
    repeats: int
    max_s: float
    stream_ntimes: int
    transfer_bytes: int


MODES = {
    mode.name: mode
    for mode in (
        Mode("quick", (1024,), (8192,), 3, 5.0, 3, 64 * 2**20),
        Mode("default", (1024, 2048), (4096, 8192), 5, 10.0, 10, 256 * 2**20),
        Mode("thorough", (1024, 2048, 4096), (2048, 4096, 8192), 5, 120.0, 10, 1024 * 2**20),
    )
}
"""``default`` is a first look in about a minute or two on a laptop CPU; ``thorough``
takes the large sizes (one fp16 4096³ product can take minutes on a CPU without an fp16
GEMM); STREAM passes follow STREAM's own default of 10."""


@dataclass(frozen=True)
class HwOptions:
    """What to measure. ``devices`` None = the CPU and every CUDA device; ``sizes`` None =
    the mode's sizes per device kind; ``stream_mib`` None = sized from the cache (4x LLC);
    ``max_s`` None = the mode's cap per figure."""

    devices: tuple[str, ...] | None = None
    dtypes: tuple[str, ...] = MATMUL_DTYPES
    sizes: tuple[int, ...] | None = None
    mode: Mode = MODES["default"]
    stream_mib: int | None = None
    cap_s: float | None = None

    @property
    def max_s(self) -> float:
        """Cap on one figure's projected time: a size over it is recorded as capped."""
        return self.cap_s or self.mode.max_s

    def sizes_for(self, kind: str) -> tuple[int, ...]:
        if self.sizes:
            return self.sizes
        return self.mode.gpu_sizes if kind == "cuda" else self.mode.cpu_sizes


@dataclass(frozen=True)
class Step:
    """One line of progress: a figure (or a group measured together, like STREAM's four
    kernels) and how to measure it."""

    label: str
    measure: Callable[[], list[HwRecord]]


class HwProgress(Protocol):
    """Told when each step begins and ends (``hw`` prints a bar or one line per step)."""

    def begin(self, index: int, total: int, label: str) -> None: ...

    def end(self, records: list[HwRecord], seconds: float) -> None: ...


def hw_options(
    devices: list[str] | None,
    dtypes: list[str] | None,
    sizes: list[int] | None,
    mode: str = "default",
    stream_mib: int | None = None,
    max_s: float | None = None,
) -> HwOptions:
    """Validated options; UserError with one line on an unknown device or dtype, or a
    size or cap that is not positive."""
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
    if max_s is not None and not (math.isfinite(max_s) and max_s > 0):
        raise UserError("--max-s takes a positive number of seconds per figure")
    return HwOptions(
        devices=tuple(dict.fromkeys(d.lower() for d in devices)) if devices else None,
        dtypes=tuple(dict.fromkeys(dtypes)) if dtypes else MATMUL_DTYPES,
        sizes=tuple(sorted(set(sizes))) if sizes else None,
        mode=MODES[mode],
        stream_mib=stream_mib,
        cap_s=max_s,
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


def plan_hw(torch: Any, options: HwOptions) -> list[Step]:
    """The steps ``options`` ask for, device by device (see ``_device_steps``); a device
    that is absent is one step that records why."""
    steps = []
    for name, reason in resolve_devices(options.devices):
        if reason is None and name.startswith("cuda") and not torch.cuda.is_available():
            reason = f"torch {torch.__version__} here has no CUDA support"
        if reason is None:
            steps.extend(_device_steps(torch, torch.device(name), options))
        else:
            record = HwRecord.unavailable("device", name, "all", "-", reason)
            steps.append(Step(f"{name}: unavailable", partial(list, (record,))))
    return steps


def _device_steps(torch: Any, device: Any, options: HwOptions) -> list[Step]:
    """The matrix multiplies per dtype, smallest size first (``hw_options`` sorts them;
    each size projected before it runs), STREAM, the cache sizes, and on a GPU the pinned
    host↔device copies, the device-to-device copy and the peer-to-peer copies to every
    other GPU."""
    from bench.hw.caches import cache_records
    from bench.hw.stream import measure_device_copy, measure_stream, measure_transfer, stream_plan

    mode, name = options.mode, str(device)
    steps = []
    for dtype in options.dtypes:
        fix = "raise it with --max-s" + ("" if mode.name == "thorough" else " or use --thorough")
        ladder = MatmulLadder(torch, device, dtype, mode.repeats, options.max_s, fix)
        for size in options.sizes_for(device.type):
            steps.append(Step(f"{name} {dtype} matmul {size}", partial(_one, ladder.measure, size)))

    def stream() -> list[HwRecord]:
        plan = stream_plan(torch, device, options.stream_mib)
        return measure_stream(torch, device, plan, mode.stream_ntimes)

    def copies() -> list[HwRecord]:
        records = measure_transfer(torch, device, mode.transfer_bytes, mode.repeats * 2)
        records.append(measure_device_copy(torch, device, mode.transfer_bytes, mode.repeats * 2))
        torch.cuda.empty_cache()
        return records

    steps.append(Step(f"{name} STREAM", stream))
    steps.append(Step(f"{name} caches", partial(cache_records, torch, device)))
    if device.type == "cuda":
        steps.append(Step(f"{name} copies", copies))
        peers = partial(_peers, torch, device, mode.transfer_bytes, mode.repeats * 2)
        steps.append(Step(f"{name} peer copies", peers))
    return steps


def _one(measure: Callable[[int], HwRecord], size: int) -> list[HwRecord]:
    return [measure(size)]


def _peers(torch: Any, device: Any, nbytes: int, repeats: int) -> list[HwRecord]:
    """Copies from ``device`` to every other GPU; unavailable with the reason on one GPU."""
    from bench.hw.stream import measure_peer

    count = torch.cuda.device_count()
    if count < 2:
        reason = f"peer-to-peer needs two GPUs ({count} here)"
        return [HwRecord.unavailable("transfer", str(device), "p2p", "GB/s", reason)]
    records = []
    for index in range(count):
        if index != device.index:
            other = torch.device("cuda", index)
            records.append(measure_peer(torch, device, other, nbytes, repeats))
    torch.cuda.empty_cache()
    return records


def run_hw(options: HwOptions, progress: HwProgress) -> list[HwRecord]:
    """Every figure the options ask for, step by step, ``progress`` told of each; each
    device's records carry its name."""
    import torch

    steps = plan_hw(torch, options)
    records: list[HwRecord] = []
    for index, step in enumerate(steps):
        progress.begin(index, len(steps), step.label)
        began = time.perf_counter()
        done = step.measure()
        progress.end(done, time.perf_counter() - began)
        records.extend(done)
    for device in dict.fromkeys(r.device for r in records if r.kind != "device"):
        _name_device(torch, torch.device(device), records)
    return records


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
