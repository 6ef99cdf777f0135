"""OpenVINO 2022.3 LTS's Python ``benchmark_app`` (openvino-dev 2022.3.x, the last release
with the MYRIAD plugin for the Neural Compute Stick 2): its command line and its reports.

The formats are those of openvino-dev 2022.3.2's ``openvino/tools/benchmark``:

- ``benchmark_report.csv`` (``-report_type``, written into ``-report_folder`` by
  ``utils/statistics_report.py``): the sections "Command line parameters", "Configuration
  setup" and "Execution results", each a title line, then ``key;value`` lines, then a blank
  line. ``main.py`` fills them; on failure only "Command line parameters" and "Execution
  results" (ending ``error;<message>``) are written. The execution precision is not reported
  ("precision;UNSPECIFIED" always); MYRIAD runs FP16 whatever the model says.
- the console summary (``main.py``'s last lines): ``Count:``, ``Duration:``, ``Latency:`` with
  ``Median:`` (or ``<N> percentile:``), ``Average:``, ``Min:``, ``Max:``, then ``Throughput:``.

2022.3 has no ``-json_stats`` (added in 2023.0), so there is no JSON report to read.
Latencies are in ms; throughput is frames per second (for ``-api sync``, batch · 1000 /
median latency; for async, frames / wall time).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SECTIONS = ("Command line parameters", "Configuration setup", "Execution results")
HINTS = ("latency", "throughput", "cumulative_throughput", "none")
_LATENCY_KEY = re.compile(r"latency(?: \((\d+) percentile\))? \(ms\)")
_CONSOLE = {
    "count": re.compile(r"Count:\s+(\d+) iterations"),
    "duration": re.compile(r"Duration:\s+([\d.]+) ms"),
    "percentile": re.compile(r"^\[ INFO \]\s+(Median|\d+ percentile):\s+([\d.]+) ms", re.M),
    "average": re.compile(r"Average:\s+([\d.]+) ms"),
    "min": re.compile(r"\bMin:\s+([\d.]+) ms"),
    "max": re.compile(r"\bMax:\s+([\d.]+) ms"),
    "throughput": re.compile(r"Throughput:\s+([\d.]+) FPS"),
}


@dataclass(frozen=True)
class Latency:
    """Latency figures of one run, in ms; ``at_percentile`` is the ``percentile``-th
    (50: the median) as ``-latency_percentile`` asked."""

    percentile: int
    at_percentile: float
    average: float
    min: float
    max: float


@dataclass(frozen=True)
class Figures:
    """What both the console and the CSV report give: requests completed, wall time (ms),
    latency (None for MULTI devices, which report none) and throughput (FPS)."""

    count: int
    duration_ms: float
    latency: Latency | None
    throughput_fps: float


@dataclass(frozen=True)
class Report:
    """A ``benchmark_report.csv``: the figures and the run's setup."""

    figures: Figures
    device: str
    api: str
    batch_size: str
    requests: int
    precision: str | None  # None where 2022.3 writes UNSPECIFIED (it always does)
    streams: dict[str, str]
    first_inference_ms: float | None
    compile_ms: float | None


def report_sections(text: str) -> dict[str, dict[str, str]]:
    """The sections of a ``benchmark_report.csv`` as ``{title: {key: value}}`` (the first
    value wins where a key repeats: ``-pcseq`` appends per-group latency rows after it)."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for line in text.splitlines():
        if line in SECTIONS:
            current = sections.setdefault(line, {})
        elif not line.strip():
            current = None
        elif current is not None and ";" in line:
            key, _, value = line.partition(";")
            current.setdefault(key, value)
    return sections


def parse_report(text: str) -> Report:
    """A ``benchmark_report.csv``'s figures and setup. Raises ValueError naming the missing
    section when ``text`` is not such a report, and quoting the error when the run failed."""
    sections = report_sections(text)
    results = sections.get("Execution results")
    if results is None:
        raise ValueError("not a benchmark_app report: no 'Execution results' section")
    if "error" in results:
        raise ValueError(f"benchmark_app failed: {results['error']}")
    setup = sections.get("Configuration setup")
    if setup is None:
        raise ValueError("not a benchmark_app report: no 'Configuration setup' section")
    precision = setup.get("precision")
    return Report(
        figures=_report_figures(results),
        device=_need(setup, "target device", "Configuration setup"),
        api=_need(setup, "API", "Configuration setup"),
        batch_size=_need(setup, "batch size", "Configuration setup"),
        requests=int(_need(setup, "number of parallel infer requests", "Configuration setup")),
        precision=None if precision in (None, "UNSPECIFIED") else precision,
        streams={
            key[len("number of ") : -len(" streams")]: value
            for key, value in setup.items()
            if key.startswith("number of ") and key.endswith(" streams")
        },
        first_inference_ms=_maybe_float(results.get("first inference time (ms)")),
        compile_ms=_maybe_float(
            results.get("compile model time (ms)", results.get("import model time (ms)"))
        ),
    )


def parse_console(text: str) -> Figures:
    """The figures of ``benchmark_app``'s console summary. Raises ValueError naming the
    first line it lacks (a run that failed prints ``[ ERROR ] <message>`` instead)."""
    found = {name: pattern.search(text) for name, pattern in _CONSOLE.items()}
    for name in ("count", "duration", "throughput"):
        if found[name] is None:
            error = re.search(r"^\[ ERROR \] (.*)$", text, re.M)
            if error:
                raise ValueError(f"benchmark_app failed: {error[1]}")
            raise ValueError(f"not benchmark_app output: no '{name.title()}:' line")
    latency = None
    at, average, low, high = (found[k] for k in ("percentile", "average", "min", "max"))
    if at and average and low and high:
        label = at[1]
        latency = Latency(
            percentile=50 if label == "Median" else int(label.split()[0]),
            at_percentile=float(at[2]),
            average=float(average[1]),
            min=float(low[1]),
            max=float(high[1]),
        )
    return Figures(
        count=int(found["count"][1]),
        duration_ms=float(found["duration"][1]),
        latency=latency,
        throughput_fps=float(found["throughput"][1]),
    )


def benchmark_app_flags(
    model: str,
    device: str,
    hint: str,
    duration_s: int,
    niter: int | None,
    batch_shape: str | None,
    report_folder: str,
) -> list[str]:
    """Arguments (after ``benchmark_app``) that 2022.3 accepts: run ``model`` on ``device``
    with performance ``hint``, for ``duration_s`` seconds (0: no ``-t``) and/or ``niter``
    requests (with both, it runs until both are reached), input shape ``batch_shape`` (e.g.
    ``[1,3,224,224]``, or ``name[...]``; None keeps the model's), and the CSV report in
    ``report_folder``."""
    if hint not in HINTS:
        raise ValueError(f"hint {hint!r} is not one of 2022.3's: {', '.join(HINTS)}")
    if duration_s < 0 or (niter is not None and niter <= 0):
        raise ValueError("duration_s must be >= 0 and niter positive")
    if not duration_s and niter is None:
        raise ValueError("give duration_s or niter: else benchmark_app runs 60 s")
    flags = ["-m", model, "-d", device, "-hint", hint]
    if duration_s:
        flags += ["-t", str(duration_s)]
    if niter is not None:
        flags += ["-niter", str(niter)]
    if batch_shape:
        flags += ["-shape", batch_shape]
    return flags + ["-report_type", "no_counters", "-report_folder", report_folder]


def _report_figures(results: dict[str, str]) -> Figures:
    latency = None
    for key, value in results.items():
        match = _LATENCY_KEY.fullmatch(key)
        if match:
            latency = Latency(
                percentile=int(match[1] or 50),
                at_percentile=float(value),
                average=float(_need(results, "avg latency", "Execution results")),
                min=float(_need(results, "min latency", "Execution results")),
                max=float(_need(results, "max latency", "Execution results")),
            )
            break
    return Figures(
        count=int(_need(results, "total number of iterations", "Execution results")),
        duration_ms=float(_need(results, "total execution time (ms)", "Execution results")),
        latency=latency,
        throughput_fps=float(_need(results, "throughput", "Execution results")),
    )


def _need(section: dict[str, str], key: str, title: str) -> str:
    if key not in section:
        raise ValueError(f"benchmark_app report: '{title}' has no '{key}'")
    return section[key]


def _maybe_float(value: str | None) -> float | None:
    return None if value is None else float(value)
