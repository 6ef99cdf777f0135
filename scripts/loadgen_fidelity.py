"""How faithfully the LoadGen cells measure, and what LoadGen's harness costs here
(docs/serving.md).

a. SingleStream's p90 against the ``latency`` scenario's p90 on the same cell (fp32,
   batch 1), repetitions of the two interleaved, so that the machine's run-to-run spread
   is measured beside the gap: the claim is that they agree within that spread.
b. Offline samples/s against the ``throughput`` scenario's on the same cell, at a batch
   that keeps the CPU busy (``--batch``), interleaved likewise: the target is within 5%.
c. The harness's own cost per sample: request slots that only sleep (1 ms), served by
   LoadGen Offline and Server, against the ideal of slots / service time; the Server's
   peak also against a simulated queue of the same slots with no overhead at all.
d. The Server peak search on one cell: our bisection (``[loadgen] search = "bisect"``)
   against LoadGen's FindPeakPerformance (``"loadgen"``): runs, seconds and peaks.

Every cell of a, b and d runs as the suite runs it: prepared once, measured in its own
worker, with the suite's [measure] and [loadgen] defaults but for ``--duration``.

    python scripts/loadgen_fidelity.py          # 20-25 minutes on 2 cores: docs/serving/
    python scripts/loadgen_fidelity.py --models lenet5 --runtimes onnxruntime \\
        --duration 0.3 --repeat 1 --out /tmp/fidelity.json          # a quick check
"""

from __future__ import annotations

import argparse
import heapq
import importlib.metadata
import json
import os
import re
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.core.cell import Cell  # noqa: E402
from bench.core.record import CellRecord  # noqa: E402
from bench.core.spec import PreparedModel  # noqa: E402
from bench.harness.config import BenchConfig, config_from_dict  # noqa: E402
from bench.harness.environment import cpu_model  # noqa: E402
from bench.harness.plan import ModelRequest  # noqa: E402
from bench.harness.runner import measure, prepare  # noqa: E402
from bench.harness.serving import Served, serve  # noqa: E402
from exporters.cache import default_cache_dir  # noqa: E402

OFFLINE_TARGET = 0.05
"""Offline samples/s within this of the throughput scenario's."""
LIBRARIES = ("onnxruntime", "openvino", "mlcommons-loadgen")
PAIRS = (("latency", "single_stream"), ("throughput", "offline"))
"""The suite's own scenario and LoadGen's, compared on one cell."""


def progress(line: str) -> None:
    """Where the script is (not part of the figures' text)."""
    print(line, flush=True)


@dataclass
class Agreement:
    """One cell's figure by the suite's own scenario (``ours``) and by LoadGen's, one value
    per repetition. ``record`` holds the same figure as the LoadGen cell's own record
    computes it from the slots' request times (``latency_ms``, ``throughput``), where the
    dispatch and LoadGen's clock play no part; ``valid`` is LoadGen's verdict per run."""

    cell: str
    figure: str
    ours: list[float] = field(default_factory=list)
    loadgen: list[float] = field(default_factory=list)
    record: list[float] = field(default_factory=list)
    valid: list[bool] = field(default_factory=list)

    @property
    def gap(self) -> float:
        """LoadGen's median over ours, less 1."""
        return statistics.median(self.loadgen) / statistics.median(self.ours) - 1

    @property
    def noise(self) -> float:
        """The machine's run-to-run spread: the largest distance of a repetition from its
        own scenario's median, relative (0 with one repetition each)."""
        return max(_spread(self.ours), _spread(self.loadgen))

    def figures(self) -> dict:
        return asdict(self) | {"gap": self.gap, "noise": self.noise}


def _spread(values: list[float]) -> float:
    middle = statistics.median(values)
    return max(abs(v / middle - 1) for v in values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet18,lenet5", help="zoo models, a comma list")
    parser.add_argument("--runtimes", default="onnxruntime,openvino", help="a comma list")
    parser.add_argument("--batch", default="8,lenet5=64", help="b's batch: N, MODEL=N, ...")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds a LoadGen run")
    parser.add_argument("--repeat", type=int, default=5, help="repetitions in a and b")
    parser.add_argument(
        "--search-cells",
        default="lenet5:onnxruntime:10,resnet18:onnxruntime:100",
        help="d: MODEL:RUNTIME:BOUND_MS, ... (the Server's p99 bound, ms)",
    )
    parser.add_argument("--search-runs", type=int, default=8, help="c, d: bisection's runs")
    parser.add_argument("--slots", type=int, default=2, help="c: sleeping request slots")
    parser.add_argument("--sleep-ms", type=float, default=1.0, help="c: a request's sleep")
    parser.add_argument("--cache-dir", type=Path, help="export cache (default: the usual)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "serving" / "fidelity.json")
    args = parser.parse_args(argv)
    models, runtimes = args.models.split(","), args.runtimes.split(",")
    searched = [part.split(":") for part in args.search_cells.split(",")]
    batches = batch_sizes(args.batch, models)
    cache_dir = args.cache_dir or default_cache_dir()
    started = time.perf_counter()
    machine = machine_figures()
    config = suite(
        list(dict.fromkeys([*models, *(model for model, _, _ in searched)])),
        sorted({1, *batches.values()}),
        args.duration,
        args.search_runs,
    )
    prepared = {
        m: prepare(ModelRequest(m, "zoo", m), config, cache_dir) for m in config.suite.models
    }
    seconds = {"prepare": time.perf_counter() - started}
    stream, offline = agreements(
        models, runtimes, batches, prepared, config, cache_dir, args.repeat
    )
    seconds["a_b"] = time.perf_counter() - started - sum(seconds.values())
    overhead = harness_overhead(args.slots, args.sleep_ms / 1e3, max(batches.values()), config)
    seconds["c"] = time.perf_counter() - started - sum(seconds.values())
    search = []
    for model, runtime, bound_ms in searched:
        progress(f"d: the Server peak search on {model} {runtime}, both ways ...")
        cell = Cell(model, runtime, "cpu", "fp32", 1, "server")
        search += search_comparison(cell, prepared[model], config, cache_dir, float(bound_ms))
    seconds["d"] = time.perf_counter() - started - sum(seconds.values())
    machine["loadavg_end"] = list(os.getloadavg())
    figures = {
        "machine": machine,
        "settings": {**vars(args), "out": str(args.out), "cache_dir": str(cache_dir)},
        "stream": [a.figures() for a in stream],
        "offline": [b.figures() for b in offline],
        "overhead": overhead,
        "search": search,
        "seconds": seconds,
    }
    lines = figure_lines(figures)
    print("\n" + "\n".join(lines), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    given = " ".join(sys.argv[1:] if argv is None else argv)
    header = f"# python scripts/loadgen_fidelity.py {given}".rstrip()
    header += f"  ({machine['cpu']}, {machine['cores']} cores, {date.today()})"
    args.out.with_suffix(".txt").write_text("\n".join([header, *lines]) + "\n")
    return 0


def batch_sizes(text: str, models: list[str]) -> dict[str, int]:
    """``--batch``: a default and per-model batches (``8,lenet5=64``), for each model."""
    default, own = 8, {}
    for part in text.split(","):
        name, _, value = part.rpartition("=")
        if name:
            own[name] = int(value)
        else:
            default = int(value)
    return {m: own.get(m, default) for m in models}


def suite(
    models: list[str], batch_sizes: list[int], duration: float, search_runs: int
) -> BenchConfig:
    """The suite the cells run under: the defaults, power off, LoadGen runs of
    ``duration`` s, peak searches of at most ``search_runs`` runs; when ``duration`` is
    shorter than the suite's own windows (1 s warm-up, 3 s measured), those shrink to it."""
    return config_from_dict(
        {
            "suite": {"name": "fidelity", "models": models, "batch_sizes": batch_sizes}
            | {"power": "none"},
            "measure": {"warmup_s": min(1.0, duration), "min_duration_s": min(3.0, duration)},
            "loadgen": {"min_duration_s": duration, "search_runs": search_runs},
        }
    )


def machine_figures() -> dict:
    """The CPU, its cores, the libraries that matter, and the load average now."""
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "-"
    return {
        "cpu": cpu_model(),
        "cores": psutil.cpu_count(logical=False) or os.cpu_count(),
        "logical": os.cpu_count(),
        "versions": versions,
        "loadavg_start": list(os.getloadavg()),
    }


def measured(cell: Cell, model: PreparedModel, config: BenchConfig, cache_dir: Path) -> CellRecord:
    """``cell`` measured in its own worker, as the suite does; an error unless it ran."""
    record = measure(cell, model, config, cache_dir, "fidelity")
    if record.status != "ok":
        raise RuntimeError(f"{cell.key}: {record.status}: {record.reason}")
    return record


def agreements(
    models: list[str],
    runtimes: list[str],
    batches: dict[str, int],
    prepared: dict[str, PreparedModel],
    config: BenchConfig,
    cache_dir: Path,
    repeat: int,
) -> tuple[list[Agreement], list[Agreement]]:
    """a and b: each cell's pairs of scenarios, ``repeat`` rounds, the side that goes
    first alternating from one round to the next."""
    cells = [(m, r) for m in models for r in runtimes]
    stream = [Agreement(f"{m} {r} fp32 b1", "p90 ms") for m, r in cells]
    offline = [Agreement(f"{m} {r} fp32 b{batches[m]}", "samples/s") for m, r in cells]
    for rep in range(repeat):
        progress(f"a, b: repetition {rep + 1}/{repeat} ...")
        for (model, runtime), a, b in zip(cells, stream, offline, strict=True):
            for (ours, theirs), kept, batch in zip(PAIRS, (a, b), (1, batches[model]), strict=True):
                for scenario in (ours, theirs) if rep % 2 == 0 else (theirs, ours):
                    cell = Cell(model, runtime, "cpu", "fp32", batch, scenario)
                    keep(kept, measured(cell, prepared[model], config, cache_dir))
    return stream, offline


def keep(agreement: Agreement, record: CellRecord) -> None:
    """Add one cell record's figure to its side of ``agreement``."""
    stream = agreement.figure == "p90 ms"
    if record.loadgen is None:  # the suite's own scenario
        ours = record.latency_ms.p90 if stream else record.throughput.samples_per_s
        agreement.ours.append(ours)
        return
    figures = record.loadgen
    agreement.loadgen.append(figures.latency_ms["p90"] if stream else figures.completed_qps)
    agreement.record.append(record.latency_ms.p90 if stream else record.throughput.samples_per_s)
    agreement.valid.append(bool(figures.valid))


def harness_overhead(slots: int, service_s: float, batch: int, suite: BenchConfig) -> dict:
    """c: ``slots`` request slots that only sleep ``service_s``, in this process (the CPU
    is left to the dispatcher and LoadGen): LoadGen Offline's rate at batch 1 and
    ``batch`` against the ideal (slots × batch / a request's mean time), the Server's
    dispatch latency at half the ideal load, and the Server's peak against the ideal and
    a simulated queue of the same requests with no overhead."""
    progress(f"c: {slots} slots sleeping {service_s * 1e3:g} ms ...")
    config, warmup = suite.loadgen, suite.measure.warmup_rule()
    sleeping = [lambda: time.sleep(service_s) for _ in range(slots)]
    offline = []
    with tempfile.TemporaryDirectory(prefix="fidelity-") as scratch:
        out = Path(scratch)
        for size in dict.fromkeys((1, batch)):
            served = serve(sleeping, size, "offline", config, warmup, out / f"offline-{size}")
            offline.append(offline_cost(served, slots, size))
            if size == 1:
                times_s = np.asarray(served.loop.times_ns) / 1e9
        ideal = offline[0]["ideal_qps"]
        half = config.model_copy(update={"target_qps": ideal / 2})
        server = serve(sleeping, 1, "server", half, warmup, out / "half")
        peak = serve(sleeping, 1, "server", config, warmup, out / "peak")
    latency = server.result.latency_ms
    requests_ms = np.asarray(server.loop.times_ns) / 1e6
    bound_s, percentile = config.latency_bound_ms / 1e3, config.server_percentile
    return {
        "slots": slots,
        "sleep_ms": service_s * 1e3,
        "offline": offline,
        "half_load_qps": server.result.target_qps,
        "half_load_valid": server.result.valid,
        "half_load_p50_ms": latency["p50"],
        "half_load_p99_ms": latency["p99"],
        "half_load_request_p50_ms": float(np.median(requests_ms)),
        "half_load_request_p99_ms": float(np.percentile(requests_ms, 99)),
        "half_load_dispatch_us": (latency["p50"] - float(np.median(requests_ms))) * 1e3,
        "server_ideal_qps": ideal,
        "server_peak_qps": peak.search.peak_qps if peak.search else None,
        "server_peak_runs": len(peak.search.probes) if peak.search else None,
        "server_bound_ms": config.latency_bound_ms,
        "server_percentile": percentile,
        "queue_knee_qps": queue_knee(times_s, slots, bound_s, percentile),
    }


def offline_cost(served: Served, slots: int, batch: int) -> dict:
    """An Offline run of sleeping slots against its ideal: each slot serving ``batch``
    samples per request back to back, at the requests' own mean time. The overhead is
    per sample, on a slot's critical path (dispatch, completion, LoadGen)."""
    service = float(np.mean(served.loop.times_ns)) / 1e9
    ideal = slots * batch / service
    rate = served.result.completed_qps
    return {
        "batch": batch,
        "service_ms": service * 1e3,
        "ideal_qps": ideal,
        "qps": rate,
        "valid": served.result.valid,
        "overhead_us": (slots / rate - service / batch) * 1e6,
        "share": 1 - rate / ideal,
    }


def queue_knee(
    service_s: np.ndarray, slots: int, bound_s: float, percentile: float, queries: int = 20_000
) -> float:
    """The highest Poisson arrival rate at which ``slots`` servers taking one waiting
    sample each, in order, with service times drawn from ``service_s`` and no other cost,
    keep the ``percentile`` response time within ``bound_s`` (seeded simulation)."""
    rng = np.random.default_rng(0)
    gaps = rng.exponential(1.0, queries)
    services = rng.choice(service_s, queries).tolist()

    def response(rate: float) -> float:
        free, responses, now = [0.0] * slots, np.empty(queries), 0.0
        for i, (gap, took) in enumerate(zip((gaps / rate).tolist(), services, strict=True)):
            now += gap
            end = max(now, heapq.heappop(free)) + took
            heapq.heappush(free, end)
            responses[i] = end - now
        return float(np.percentile(responses, percentile * 100))

    low, high = 0.0, slots / float(np.mean(service_s))
    for _ in range(25):
        middle = (low + high) / 2
        low, high = (middle, high) if response(middle) <= bound_s else (low, middle)
    return low


_RUNS = re.compile(r"(\d+) LoadGen runs")


def search_comparison(
    cell: Cell, model: PreparedModel, config: BenchConfig, cache_dir: Path, bound_ms: float
) -> list[dict]:
    """d: the Server cell's peak under a p99 bound of ``bound_ms`` searched by our
    bisection and by LoadGen's FindPeakPerformance. LoadGen's search is followed by one
    run at its peak (its log keeps only its last run): that run counts in its runs and
    seconds."""
    found = []
    for method in ("bisect", "loadgen"):
        loadgen = {"search": method, "latency_bound_ms": bound_ms}
        settings = config.model_copy(update={"loadgen": config.loadgen.model_copy(update=loadgen)})
        record = measured(cell, model, settings, cache_dir)
        search, result = record.loadgen.search or {}, record.loadgen
        runs, seconds = len(search.get("probes", [])), search.get("seconds")
        if method == "loadgen":
            matched = _RUNS.search(search.get("note", ""))
            runs = (int(matched.group(1)) if matched else 0) + 1
            seconds = (seconds or 0.0) + (result.duration_s or 0.0)
        found.append(
            {
                "cell": f"{cell.model} {cell.runtime} fp32 b1",
                "method": method,
                "peak_qps": search.get("peak_qps"),
                "runs": runs,
                "search_s": seconds,
                "cell_s": record.finished_at - record.started_at,
                "reported_valid": result.valid,
                "reported_completed_qps": result.completed_qps,
                "reported_p99_ms": result.latency_ms.get("p99") if result.latency_ms else None,
                "bound_ms": result.target_latency_ms,
                "note": search.get("note", ""),
                "probes": search.get("probes", []),
            }
        )
    return found


def figure_lines(figures: dict) -> list[str]:
    """The four tables, one unit each, with their verdicts, as lines of text."""
    lines: list[str] = []
    say = lines.append
    machine = figures["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
    say(f"machine: {machine['cpu']}, {machine['cores']} cores; {versions}")
    load = "/".join(f"{x:.2f}" for x in machine["loadavg_start"])
    seconds = figures["seconds"]
    parts = ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items())
    say(f"load average at start {load}; {sum(seconds.values()):.0f} s in all ({parts})")
    reps = figures["settings"]["repeat"]
    say(f"\na. SingleStream p90 against the latency scenario's p90 (ms), {reps} runs each")
    say(f"{'cell':<30} {'latency':>8} {'Single':>8} {'requests':>8} {'gap':>7} {'noise':>6}")
    for a in figures["stream"]:
        verdict = _verdict(a["gap"], a["noise"], reps)
        say(
            f"{a['cell']:<30} {statistics.median(a['ours']):>8.3f} "
            f"{statistics.median(a['loadgen']):>8.3f} {statistics.median(a['record']):>8.3f} "
            f"{a['gap']:>+7.1%} {a['noise']:>6.1%}  {verdict}{_invalid(a)}"
        )
    say("(requests: the SingleStream runs' own request times, before dispatch and LoadGen;")
    say(" noise: the largest distance of a run from its own scenario's median)")
    say(f"\nb. Offline against the throughput scenario (samples/s), {reps} runs each")
    say(f"{'cell':<30} {'through.':>9} {'Offline':>9} {'record':>9} {'gap':>7} {'noise':>6}")
    for b in figures["offline"]:
        met = "met" if abs(b["gap"]) <= OFFLINE_TARGET else "missed"
        say(
            f"{b['cell']:<30} {statistics.median(b['ours']):>9.1f} "
            f"{statistics.median(b['loadgen']):>9.1f} {statistics.median(b['record']):>9.1f} "
            f"{b['gap']:>+7.1%} {b['noise']:>6.1%}  target ±{OFFLINE_TARGET:.0%}: {met}"
            f"{_invalid(b)}"
        )
    say("(record: what the Offline cell's throughput section says of the same run)")
    c = figures["overhead"]
    say(f"\nc. the harness's cost: {c['slots']} slots whose requests sleep {c['sleep_ms']:g} ms")
    for o in c["offline"]:
        say(
            f"Offline, batch {o['batch']}: {o['qps']:.0f} samples/s, {1 - o['share']:.1%} of "
            f"the ideal {o['ideal_qps']:.0f} (requests of {o['service_ms']:.3f} ms back to "
            f"back): {o['overhead_us']:.1f} µs a sample per slot"
        )
    say(
        f"Server at half load ({c['half_load_qps']:.0f} QPS): LoadGen's p50 "
        f"{c['half_load_p50_ms']:.3f} ms against the requests' {c['half_load_request_p50_ms']:.3f}"
        f" ms: {c['half_load_dispatch_us']:.0f} µs from issue to completion beyond the request"
    )
    peak, knee, ideal = c["server_peak_qps"], c["queue_knee_qps"], c["server_ideal_qps"]
    if peak:
        say(
            f"Server peak (p{c['server_percentile'] * 100:g} within {c['server_bound_ms']:g} ms): "
            f"{peak:.0f} QPS = {peak / ideal:.1%} of the ideal {ideal:.0f}, {peak / knee:.1%} "
            f"of a simulated queue's with no overhead ({knee:.0f} QPS)"
        )
    else:
        say(f"Server peak: none found; a simulated queue's with no overhead: {knee:.0f} QPS")
    say("\nd. the Server peak search, bisection against LoadGen's own (QPS)")
    say(f"{'cell':<30} {'method':<8} {'peak':>9} {'runs':>5} {'search s':>9} {'cell s':>7}")
    for d in figures["search"]:
        peak_text = f"{d['peak_qps']:.1f}" if d["peak_qps"] else "none"
        verdict = "VALID" if d["reported_valid"] else "INVALID"
        p99 = d["reported_p99_ms"]
        say(
            f"{d['cell']:<30} {d['method']:<8} {peak_text:>9} {d['runs']:>5} "
            f"{d['search_s']:>9.1f} {d['cell_s']:>7.1f}  reported run {verdict}, "
            f"p99 {p99:.2f} ms of {d['bound_ms']:g}"
            + (f"; {note}" if (note := _RUNS.sub("", d["note"]).strip("; ")) else "")
        )
    return lines


def _verdict(gap: float, noise: float, repeat: int) -> str:
    if repeat < 2:
        return "(one run each: no noise to judge by)"
    return "within noise" if abs(gap) <= noise else "beyond noise"


def _invalid(agreement: dict) -> str:
    bad = agreement["valid"].count(False)
    return f"; {bad} of {len(agreement['valid'])} LoadGen runs INVALID" if bad else ""


if __name__ == "__main__":
    sys.exit(main())
