"""A Myriad X (Neural Compute Stick 2) cell: OpenVINO 2022.3 LTS's ``benchmark_app -d
MYRIAD`` on the stick's host, its CSV report parsed (runtimes.benchmark_app_report).

benchmark_app reports a summary, not each request's time: the record holds what it
reports (count, median, mean, min, max, throughput over its wall time) and leaves the
spread it does not report empty. It feeds random inputs and writes no outputs, so the
accuracy is unavailable; the stick has no power counter. MYRIAD executes FP16 whatever
the model's precision: the only precision such a cell has.
"""

from __future__ import annotations

import math
import shlex
from pathlib import Path

from bench.core.cell import Cell
from bench.core.record import (
    Accuracy,
    ColdStart,
    ExecutedFigures,
    Measured,
    Power,
    Throughput,
)
from bench.core.spec import BATCH, PreparedModel
from bench.core.stats import Summary
from bench.harness.config import BenchConfig, HostConfig
from bench.remote.bundle import MODEL_FILE
from bench.remote.device import CellFailed, Device, DeviceWork
from bench.remote.device_tool import DeviceTool
from runtimes.benchmark_app_report import benchmark_app_flags, parse_report

REPORT = "benchmark_report.csv"
OPENVINO_2022_OPSET = 16
"""The highest ONNX opset OpenVINO 2022.3, the last release with the MYRIAD plugin, reads."""
HINTS = {"latency": "latency", "throughput": "throughput"}


def measure_myriad(
    work: DeviceWork,
    cell: Cell,
    model: PreparedModel,
    config: BenchConfig,
    cache_dir: Path,
    run_id: str,
    repetition: int,
    deadline: float,
) -> Measured:
    """Run the cell with benchmark_app on the stick's host and read its report
    (``cache_dir``: unused, nothing is converted here)."""
    bundle = work.bundle(model, config, None, "fp32", None)
    onnx = f"{work.folders.model(bundle)}/{MODEL_FILE}"
    cell_dir = work.folders.cell(run_id, cell, repetition)
    measure = config.measure.measurement_rule()
    shapes = ",".join(
        f"{spec.name}[{','.join(map(str, spec.concrete_shape({BATCH: cell.batch})))}]"
        for spec in model.inputs
    )
    flags = benchmark_app_flags(
        onnx,
        "MYRIAD",
        HINTS[cell.scenario],
        max(1, math.ceil(measure.min_s)),
        max(1, measure.min_count),
        shapes,
        cell_dir,
    )
    if cell.scenario == "throughput" and config.suite.in_flight:
        flags += ["-nireq", str(config.suite.in_flight)]
    app = work.device.programs.get("benchmark_app")
    setupvars = work.device.programs.get("setupvars")
    assert app is not None and setupvars is not None  # else the cell was skipped
    # setupvars.sh is a bash script (it finds its folder through BASH_SOURCE): sourced
    # by the session's sh (dash on Ubuntu), it sets a wrong INTEL_OPENVINO_DIR, and
    # benchmark_app finds no MYRIAD plugin
    inner = f". {shlex.quote(setupvars)} > setupvars.log 2>&1 && exec {shlex.join([app, *flags])}"
    work.run(
        f"mkdir -p {shlex.quote(cell_dir)} && cd {shlex.quote(cell_dir)} && "
        f"bash -c {shlex.quote(inner)} > console.log "
        "2>&1 || { tail -n 3 console.log; exit 1; }",
        deadline,
        "benchmark_app on the Myriad X",
        "timed loop",
    )
    local = work.scratch / "cells" / Path(cell_dir).name
    work.ssh.pull(cell_dir, [REPORT, "console.log"], local, 600)
    try:
        report = parse_report((local / REPORT).read_text())
    except (OSError, ValueError) as exc:
        raise CellFailed(f"benchmark_app's report: {exc}", "timed loop") from None
    figures = report.figures
    latency = figures.latency
    summary = None
    if latency is not None and latency.percentile == 50:  # the median: the default asked
        summary = Summary(
            count=figures.count,
            min=latency.min,
            mean=latency.average,
            median=latency.at_percentile,  # the default percentile, 50
            max=latency.max,
        )
    window_s = figures.duration_ms / 1e3
    return Measured(
        executed=ExecutedFigures(
            precision="fp16",
            device="myriad",
            in_flight=report.requests,
            provider=f"openvino {work.device.libraries.get('openvino') or '2022.3'} benchmark_app",
            host=work.ssh.name,
            mode="tools",
            api=report.api,
            precision_source="MYRIAD executes FP16 only (benchmark_app reports no precision)",
        ),
        latency_ms=summary,
        throughput=Throughput(
            samples_per_s=figures.throughput_fps,
            requests_per_s=figures.count / window_s if window_s > 0 else None,
            window_s=window_s,
            requests=figures.count,
            warmup_requests=1,  # benchmark_app's first inference, timed apart
        ),
        power=Power(source="none", unavailable="a Myriad X stick has no power counter"),
        cold_start=ColdStart(
            load_s=report.compile_ms / 1e3 if report.compile_ms is not None else None,
            first_inference_ms=report.first_inference_ms,
            export_s=model.export_s,
            export_cache_hit=model.cache_hit,
        ),
        accuracy=Accuracy(
            unavailable="benchmark_app feeds random inputs and writes no outputs: "
            "accuracy on a Myriad X needs deploybench on its host (agent mode)"
        ),
        notes=[*model.notes, f"run on {work.ssh.name} by benchmark_app -d MYRIAD (tools mode)"],
    )


class MyriadBenchmarkApp(DeviceTool):
    """OpenVINO cells on a Myriad X stick, by OpenVINO 2022.3's benchmark_app on the
    stick's host."""

    name = "benchmark_app"
    runtime = "openvino"
    device_kinds = ("myriad",)

    @classmethod
    def probe_section(cls, host: HostConfig) -> str:
        """OpenVINO 2022.3's setupvars.sh as ``[hosts]`` names it, else where the archive
        install puts it; benchmark_app as ``[hosts]`` names it, else on PATH; the OpenVINO
        its Python has once setupvars.sh is sourced."""
        given = shlex.quote(host.openvino_setupvars or "")
        places = " ".join(
            f'"{root}"/{folder}/setupvars.sh'
            for root in ("$R/opt/intel", "$HOME/intel")
            for folder in ("openvino_2022", "openvino_2022.*")
        )
        return (
            f"section setupvars; S={given}\n"
            f'[ -n "$S" ] || for c in {places}; do [ -f "$c" ] && {{ S=$c; break; }}; done\n'
            '[ -n "$S" ] && [ -f "$S" ] && echo "$S"\n'
            f"section benchmark_app; B={shlex.quote(host.benchmark_app or '')}\n"
            '[ -n "$B" ] || B=$(command -v benchmark_app); [ -n "$B" ] && echo "$B"\n'
            'section openvino; bash -c \'[ -f "$1" ] && . "$1" >/dev/null 2>&1; python3 -c '
            '"import openvino.runtime as o; print(o.get_version())"\' _ "$S" 2>/dev/null\n'
        )

    @classmethod
    def read_probe(
        cls, parts: dict[str, str]
    ) -> tuple[dict[str, str | None], dict[str, str | None]]:
        found = {
            "benchmark_app": parts.get("benchmark_app") or None,
            "setupvars": parts.get("setupvars") or None,
        }
        return found, {"openvino": parts.get("openvino") or None}

    @classmethod
    def max_opset(cls, device: Device) -> int | None:
        """OpenVINO 2022.3's ONNX frontend reads up to opset 16 (ONNX_OPSET_VERSION in
        src/frontends/onnx/frontend/CMakeLists.txt; above it, it falls back to 16's
        operators with a warning)."""
        return OPENVINO_2022_OPSET

    @classmethod
    def found(cls, device: Device) -> str | None:
        return "benchmark_app" if device.programs.get("benchmark_app") else None

    @classmethod
    def skip_reason(cls, cell: Cell, device: Device) -> str | None:
        if device.programs.get("benchmark_app") is None:
            return f"no benchmark_app on {device.name} (OpenVINO 2022.3's tools)"
        if device.programs.get("setupvars") is None:
            return (
                f"no OpenVINO 2022.3 setupvars.sh on {device.name}: the MYRIAD plugin comes "
                "with the archive install (/opt/intel/openvino_2022), not the PyPI wheel; "
                "set openvino_setupvars in [hosts]"
            )
        if cell.precision != "fp16":
            return f"a Myriad X runs fp16 only, not {cell.precision}"
        return None

    measure = staticmethod(measure_myriad)
