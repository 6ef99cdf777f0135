"""TensorRT through the ``trtexec`` binary, for machines without TensorRT's Python bindings
(JetPack ships ``/usr/src/tensorrt/bin/trtexec``).

The version comes from trtexec's banner (``&&&& RUNNING TensorRT.trtexec [TensorRT v8601]``)
and picks the flags. Results are read from the files trtexec exports, never from its
stdout, whose wording changes between releases: ``--exportTimes`` (one entry per request:
enqueue, H2D, compute and D2H start/end times), ``--exportLayerInfo`` (the engine
inspector's JSON) and ``--exportOutput`` (output values, for the accuracy check).
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.core.lifetime import tool_options
from bench.core.timing import LoopRecord, StopRule
from runtimes.tensorrt.build import BuildPlan, TrtVersion

JETPACK_TRTEXEC = Path("/usr/src/tensorrt/bin/trtexec")
_BANNER = re.compile(r"TensorRT\.trtexec \[TensorRT v(\d+)\]")
_WARMUP = re.compile(r"Warmup completed (\d+) queries")


ONNX_OPSETS = (
    (TrtVersion(8, 0), 13),
    (TrtVersion(8, 4), 17),
    (TrtVersion(10, 0), 20),
)
"""The highest ONNX opset each TensorRT's ONNX parser takes, from the version given on
(onnx-tensorrt's docs/operators.md per release branch: 8.2 takes 13; 8.4 to 8.6, 17;
10.0 and 10.1, 20). Later 10.x take more (10.15: 24); 20 is kept for them, which every
10.x parses. tests/fixtures/edge/FACTS.md has the sources."""


def max_onnx_opset(version: TrtVersion) -> int | None:
    """The highest ONNX opset ``version``'s parser takes; None before 8.0 (not kept)."""
    found = None
    for since, opset in ONNX_OPSETS:
        if version >= since:
            found = opset
    return found


def find_trtexec(configured: str | None = None) -> Path | None:
    """``configured`` when given, else trtexec on PATH, else JetPack's; None if none is."""
    if configured:
        return Path(configured) if Path(configured).is_file() else None
    found = shutil.which("trtexec")
    if found:
        return Path(found)
    return JETPACK_TRTEXEC if JETPACK_TRTEXEC.is_file() else None


def parse_banner(text: str) -> TrtVersion:
    """The TensorRT version in trtexec's banner: v8601 is 8.6.1 (major·1000 + minor·100 +
    patch), v100300 is 10.3.0 (major·10000 + minor·100 + patch, from 10.0 on)."""
    match = _BANNER.search(text)
    if not match:
        raise ValueError("no '&&&& RUNNING TensorRT.trtexec [TensorRT vN]' banner")
    number = int(match[1])
    if number >= 100000:
        return TrtVersion(number // 10000, number // 100 % 100, number % 100)
    return TrtVersion(number // 1000, number // 100 % 10, number % 100)


def trtexec_version(trtexec: Path) -> TrtVersion:
    """The version of the TensorRT behind ``trtexec`` (runs ``trtexec --help``)."""
    done = subprocess.run(
        [str(trtexec), "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    return parse_banner(done.stdout + done.stderr)


def quoted_name(name: str) -> str:
    """A tensor name as trtexec's lists take it: quoted when it holds ':' or ','."""
    return f"'{name}'" if re.search(r"[:,]", name) else name


def _shapes_flag(run: RunSettings) -> list[str]:
    """``--shapes`` for the dynamic inputs; none for an engine whose inputs are static."""
    return [f"--shapes={_shape_list(run.shapes)}"] if run.shapes else []


def _shape_list(shapes: dict[str, tuple[int, ...]]) -> str:
    """``name:1x3x224x224,other:1x128``."""
    return ",".join(f"{quoted_name(n)}:{'x'.join(map(str, s))}" for n, s in shapes.items())


def build_flags(
    version: TrtVersion,
    onnx: Path,
    engine: Path,
    plan: BuildPlan,
    timing_cache: Path | None,
) -> list[str]:
    """trtexec arguments that build ``plan``'s engine from ``onnx`` into ``engine`` and stop."""
    flags = [f"--onnx={onnx}", f"--saveEngine={engine}"]
    flags.append("--skipInference" if version >= TrtVersion(8, 6) else "--buildOnly")
    if version >= TrtVersion(8, 4):
        flags.append(f"--memPoolSize=workspace:{plan.workspace_mb}")
    else:
        flags.append(f"--workspace={plan.workspace_mb}")
    if plan.typing == "strong":
        if version < TrtVersion(11, 0):  # 11 types every network strongly: no flag needed
            flags.append("--stronglyTyped")
    elif plan.precision in ("fp16", "bf16", "int8"):  # int8: the QDQ copy's explicit layers
        flags.append(f"--{plan.precision}")
    if not plan.tf32:
        flags.append("--noTF32")
    for index, kind in enumerate(("min", "opt", "max")):  # dynamic inputs only
        shapes = {name: triple[index] for name, triple in plan.shapes.items()}
        flags += [f"--{kind}Shapes={_shape_list(shapes)}"] if shapes else []
    if plan.dla_core is not None:
        flags.append(f"--useDLACore={plan.dla_core}")
        if plan.gpu_fallback:
            flags.append("--allowGPUFallback")
    if plan.optimization_level is not None and version >= TrtVersion(8, 6):
        flags.append(f"--builderOptimizationLevel={plan.optimization_level}")
    if timing_cache is not None:
        flags.append(f"--timingCacheFile={timing_cache}")
    flags.append("--profilingVerbosity=detailed")
    return flags


@dataclass(frozen=True)
class RunSettings:
    """How trtexec runs an engine: shapes, requests in flight and the timing rules."""

    shapes: dict[str, tuple[int, ...]]
    streams: int = 1
    cuda_graph: bool = False
    data_transfers: bool = False
    dla_core: int | None = None


def run_flags(
    version: TrtVersion, engine: Path, run: RunSettings, warmup: StopRule, measure: StopRule
) -> list[str]:
    """trtexec arguments that time ``engine``: warm-up ≥ ``warmup.min_s`` (trtexec's
    warm-up is time only), then at least ``measure.min_count`` requests and
    ``measure.min_s`` seconds (whole seconds: trtexec rounds its duration)."""
    flags = [
        f"--loadEngine={engine}",
        *_shapes_flag(run),
        f"--warmUp={round(warmup.min_s * 1000)}",
        f"--iterations={max(measure.min_count, 1)}",
        f"--duration={math.ceil(measure.min_s)}",
    ]
    if run.streams > 1:  # --infStreams from 8.6 (release/8.6 sampleOptions.cpp), --streams before
        flags.append(
            f"--{'infStreams' if version >= TrtVersion(8, 6) else 'streams'}={run.streams}"
        )
    if run.cuda_graph:
        flags.append("--useCudaGraph")
    if not run.data_transfers:
        flags.append("--noDataTransfers")
    if run.dla_core is not None:
        flags.append(f"--useDLACore={run.dla_core}")
    return flags


def _ms(entry: dict[str, float], *names: str) -> float:
    """The first of ``names`` present in a trace entry (TensorRT 7 wrote inMs/outMs)."""
    for name in names:
        if name in entry:
            return float(entry[name])
    return 0.0


def trace_record(
    entries: list[dict[str, float]], warmup_ms: float, measure: StopRule, in_flight: int
) -> tuple[LoopRecord, list[tuple[float, float, float]]]:
    """A LoopRecord from an ``--exportTimes`` trace, and each measured request's (H2D,
    compute, D2H) ms. As trtexec itself does, requests whose compute started before
    ``warmup_ms`` are warm-up; the window runs from the first measured H2D start to the
    last D2H end; each latency is H2D + compute + D2H (trtexec's "Latency").

    Older trtexecs export the warm-up requests too; newer ones (``exportJSONTrace`` with
    ``nbWarmups``) leave them out, so ``warmup_count`` is 0 there: see ``warmup_queries``."""
    measured = _measured(entries, warmup_ms)
    splits = [
        (_ms(e, "h2dMs", "inMs"), _ms(e, "computeMs"), _ms(e, "d2hMs", "outMs")) for e in measured
    ]
    latencies = [_ms(e, "latencyMs") or sum(s) for e, s in zip(measured, splits, strict=True)]
    times = [round(ms * 1e6) for ms in latencies]
    start, end = trace_window_ms(entries, warmup_ms)
    window = round((end - start) * 1e6)
    capped = len(times) < measure.min_count or window < measure.min_s * 1e9
    record = LoopRecord(times, window, len(times), len(entries) - len(measured), capped, in_flight)
    return record, splits


def _measured(entries: list[dict[str, float]], warmup_ms: float) -> list[dict[str, float]]:
    measured = [e for e in entries if _ms(e, "startComputeMs") >= warmup_ms]
    if not measured:
        raise RuntimeError("trtexec's --exportTimes trace has no request after warm-up")
    return measured


def trace_window_ms(entries: list[dict[str, float]], warmup_ms: float) -> tuple[float, float]:
    """The measured window of a trace, in ms on its own clock (zero: when trtexec started
    inference): the first measured request's H2D start to the last one's D2H end."""
    measured = _measured(entries, warmup_ms)
    start = min(_ms(e, "startH2dMs", "startInMs", "startComputeMs") for e in measured)
    end = max(_ms(e, "endD2hMs", "endOutMs", "endComputeMs") for e in measured)
    return start, end


def warmup_queries(output: str) -> int | None:
    """The warm-up requests trtexec reports in its log ("Warmup completed N queries over
    X ms", ``printProlog`` in samples/common/sampleReporting.cpp); None if it does not say.
    For traces that, as newer trtexecs write them, hold the measured requests only."""
    match = _WARMUP.search(output)
    return int(match[1]) if match else None


def read_trace(path: Path) -> list[dict[str, float]]:
    """The entries of an ``--exportTimes`` file."""
    entries = json.loads(path.read_text())
    if not isinstance(entries, list):
        raise RuntimeError(f"{path.name}: not a trtexec --exportTimes trace")
    return entries


def read_outputs(path: Path) -> dict[str, np.ndarray]:
    """Output arrays from an ``--exportOutput`` file: ``[{"name", "dimensions": "1x1000",
    "values": [...]}]``."""
    outputs = {}
    for entry in json.loads(path.read_text()):
        dims = tuple(int(d) for d in str(entry["dimensions"]).split("x") if d)
        outputs[entry["name"]] = np.asarray(entry["values"], dtype=np.float32).reshape(dims)
    return outputs


def run_trtexec(trtexec: Path, flags: list[str], timeout_s: float, cwd: Path) -> str:
    """Run trtexec; its output when it passed, else RuntimeError with its first error line
    (trtexec prefixes errors with ``[E]``) or its exit status."""
    try:
        done = subprocess.run(
            [str(trtexec), *flags],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            cwd=cwd,
            **tool_options(),  # a worker killed at its timeout takes trtexec with it
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"trtexec did not finish within {timeout_s:.0f} s") from None
    output = done.stdout + done.stderr
    if done.returncode != 0 or "&&&& FAILED" in output:
        errors = [line for line in output.splitlines() if "[E]" in line]
        reason = errors[0].strip() if errors else f"exit status {done.returncode}"
        raise RuntimeError(f"trtexec failed: {reason}")
    return output


def input_files(feeds: dict[str, np.ndarray], directory: Path, version: TrtVersion) -> str:
    """Write each input as raw bytes for ``--loadInputs``; int64 inputs become int32 before
    TensorRT 10 (which has no int64 I/O: the ONNX parser casts them)."""
    specs = []
    for name, array in feeds.items():
        data = np.ascontiguousarray(array)
        if data.dtype == np.int64 and version < TrtVersion(10, 0):
            data = data.astype(np.int32)
        path = directory / f"input{len(specs)}.bin"
        data.tofile(path)
        specs.append(f"{quoted_name(name)}:{path}")
    return ",".join(specs)


def layer_info_flags(path: Path) -> list[str]:
    """Flags that make a run write the engine's layer information (types, precisions)."""
    return ["--profilingVerbosity=detailed", f"--exportLayerInfo={path}"]


def one_request_flags(run: RunSettings, engine: Path, inputs: str, output: Path) -> list[str]:
    """trtexec arguments for a single request on given inputs, outputs written to JSON."""
    return [
        f"--loadEngine={engine}",
        *_shapes_flag(run),
        f"--loadInputs={inputs}",
        f"--exportOutput={output}",
        "--iterations=1",
        "--warmUp=0",
        "--duration=0",
        *([f"--useDLACore={run.dla_core}"] if run.dla_core is not None else []),
    ]
