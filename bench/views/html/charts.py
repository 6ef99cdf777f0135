"""The charts of the HTML reports, drawn by matplotlib as SVG and inlined in the page.

Each datum a chart draws (a cell's latency curve, a speedup bar, a throughput point, a
machine's bar) is one SVG group whose id is ``mark-<chart>-<n>``, with a ``<title>``
(the browser's tooltip) giving its figures: the browser test counts these against the
records, and a reader hovers them. Texts are drawn as SVG text, escaped by matplotlib;
math parsing is off, so a name with ``$`` in it is drawn as written.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bench.views.html.page import text

COLOURS = {
    "faster": "#1b7f3b",
    "improved": "#1b7f3b",
    "slower": "#b00020",
    "regressed": "#b00020",
    "failed": "#b00020",
    "inconclusive": "#d98c00",
    "": "#4c72b0",
}
"""A mark's colour by its kind; any other kind (no clear difference, unchanged) is grey."""
GREY = "#8a8a8a"
ECDF_POINTS = 300
"""Quantiles drawn per latency curve (the curve looks the same; the file stays small)."""
TRACE_BINS = 120
"""Run-order bins per latency trace (each bin's median)."""
_RC = {
    "svg.fonttype": "none",  # text stays text: small, searchable, escaped
    "svg.hashsalt": "deploybench",  # the same figure gives the same file
    "text.parse_math": False,
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


@dataclass(frozen=True)
class Mark:
    """One horizontal bar (or, for a failed one, a cross at the reference): ``value`` with
    an optional interval, its ``kind`` (colour and whether it is drawn as a bar) and tip."""

    label: str
    value: float | None
    low: float | None = None
    high: float | None = None
    kind: str = ""
    tip: str = ""


@dataclass(frozen=True)
class Series:
    """Points joined by a line: one ``(x, y, tip)`` per record."""

    label: str
    points: Sequence[tuple[float, float, str]]


def _figure(width: float, height: float):  # noqa: ANN202 - a matplotlib Figure
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _svg(figure, tips: dict[str, str], ident: str) -> str:  # noqa: ANN001 - a Figure
    """The figure as an SVG element (no XML prolog), each marked group given its tip, and
    every id matplotlib wrote (``axes_1``, clip paths, markers) and each reference to one
    prefixed with ``ident``: several charts share one page, whose ids must be unique.
    Called inside ``rc()``, whose settings the SVG writer reads."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg")
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.S)

    def scoped(tag: re.Match) -> str:  # inside tags only: text nodes are user text
        markup = re.sub(r'\bid="(?!mark-)([^"]+)"', rf'id="{ident}-\1"', tag.group(0))
        markup = re.sub(r"url\(#([^)]+)\)", rf"url(#{ident}-\1)", markup)
        return re.sub(r'xlink:href="#([^"]+)"', rf'xlink:href="#{ident}-\1"', markup)

    svg = re.sub(r"<[^>]+>", scoped, svg)

    def titled(match: re.Match) -> str:
        tip = tips.get(match.group(1))
        return match.group(0) + (f"<title>{text(tip)}</title>" if tip else "")

    return re.sub(r'<g id="(mark-[^"]+)">', titled, svg)


def _log(axes, which: str, base: float = 10) -> None:  # noqa: ANN001 - matplotlib Axes
    """A log scale on the ``x`` or ``y`` axis whose tick labels are plain numbers (the
    default ones are math text, which is off here)."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    getattr(axes, f"set_{which}scale")("log", base=base)
    axis = getattr(axes, f"{which}axis")
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    axis.set_major_formatter(plain)
    if base == 10:
        axis.set_minor_locator(LogLocator(subs=(2, 5)))
        axis.set_minor_formatter(plain)


def rc():  # noqa: ANN201 - a context manager
    """matplotlib settings for drawing (texts as written, no math)."""
    import matplotlib

    return matplotlib.rc_context(_RC)


def latency_chart(series: Sequence[tuple[str, np.ndarray]], ident: str) -> str:
    """Left: each cell's latency distribution (empirical CDF of its raw times, p50 and p99
    dotted); right: the same times in run order (median per bin), so a bimodal cell shows
    a step on the left and a drifting one a slope on the right."""
    with rc():
        figure = _figure(10, 3.2 + 0.12 * len(series))
        cdf, trace = figure.subplots(1, 2)
        tips: dict[str, str] = {}
        handles = []
        for index, (label, times) in enumerate(series):
            times = np.asarray(times, float)
            colour = f"C{index % 10}"
            levels = np.linspace(0, 1, min(times.size, ECDF_POINTS))
            quantiles = np.quantile(times, levels)
            gid = f"mark-{ident}-{index}"
            (line,) = cdf.step(quantiles, levels, where="post", color=colour, gid=gid)
            handles.append(line)
            p50, p99 = np.quantile(times, [0.5, 0.99])
            cdf.plot([p50, p99], [0.5, 0.99], "o", color=colour, markersize=4)
            tips[gid] = (
                f"{label}: {times.size} requests, p50 {p50:.3g} ms, p99 {p99:.3g} ms, "
                f"min {times.min():.3g} ms, max {times.max():.3g} ms"
            )
            bins = np.array_split(times, min(times.size, TRACE_BINS))
            starts = np.cumsum([0] + [b.size for b in bins[:-1]])
            trace.plot(starts, [np.median(b) for b in bins], color=colour, linewidth=1)
        every = np.concatenate([np.asarray(t, float) for _, t in series])
        if every.min() > 0 and every.max() / every.min() > 10:
            _log(cdf, "x")
            _log(trace, "y")
        cdf.set(xlabel="latency (ms)", ylabel="share of requests ≤ x", ylim=(0, 1.01))
        cdf.grid(alpha=0.3)
        trace.set(
            xlabel="request, in run order", ylabel=f"latency (ms), median of {TRACE_BINS} bins"
        )
        trace.grid(alpha=0.3)
        figure.legend(
            handles,
            [label for label, _ in series],
            loc="outside lower center",
            ncols=3,
            frameon=False,
        )
        return _svg(figure, tips, ident)


def interval_chart(
    marks: Sequence[Mark],
    ident: str,
    xlabel: str,
    reference: float = 1.0,
    band: tuple[float, float] | None = None,
) -> str:
    """Horizontal bars from ``reference`` to each value (log scale), its interval as a
    whisker, coloured by kind. A ``failed`` mark is a cross at the reference, never a bar
    (every other mark has a value). ``band`` shades the region counted as no change."""
    with rc():
        figure = _figure(9, 0.9 + 0.28 * len(marks))
        axes = figure.subplots()
        tips: dict[str, str] = {}
        positions = np.arange(len(marks))[::-1]
        bounds = [b for m in marks for b in (m.value, m.low, m.high) if b is not None]
        values = [b for b in bounds if np.isfinite(b) and b > 0] + [reference]
        for y, mark in zip(positions, marks, strict=True):
            mark = _finite_interval(mark)
            gid = f"mark-{ident}-{len(tips)}"
            if mark.kind == "failed":
                axes.plot([reference], [y], "x", color=COLOURS["failed"], markersize=9, gid=gid)
                axes.annotate(
                    "  " + mark.tip.split(":")[0],
                    (reference, y),
                    va="center",
                    fontsize=8,
                    color=COLOURS["failed"],
                )
                tips[gid] = mark.tip
                continue
            colour = COLOURS.get(mark.kind, GREY)
            axes.barh(
                y,
                mark.value - reference,
                left=reference,
                height=0.6,
                color=colour,
                alpha=0.8,
                gid=gid,
            )
            if mark.low is not None and mark.high is not None:
                axes.plot([mark.low, mark.high], [y, y], color="black", linewidth=1.2)
            tips[gid] = mark.tip
        axes.axvline(reference, color="black", linewidth=0.8)
        if band:
            axes.axvspan(*band, color="#dddddd", alpha=0.6, zorder=0)
        _log(axes, "x")
        low, high = min(values), max(values)
        axes.set_xlim(min(low, reference) / 1.15, max(high, reference) * 1.15)
        axes.set_yticks(positions, [m.label for m in marks])
        axes.set_ylim(-0.7, len(marks) - 0.3)
        axes.set_xlabel(xlabel)
        axes.grid(axis="x", alpha=0.3, which="both")
        return _svg(figure, tips, ident)


def _finite_interval(mark: Mark) -> Mark:
    """The mark without an interval that is not finite and positive (a bootstrap over
    medians of zero gives an infinite ratio): no whisker, rather than no chart."""
    ok = all(b is not None and np.isfinite(b) and b > 0 for b in (mark.low, mark.high))
    return mark if ok else Mark(mark.label, mark.value, None, None, mark.kind, mark.tip)


def lines_chart(
    series: Sequence[Series], ident: str, xlabel: str, ylabel: str, logx: bool = False
) -> str:
    """Each series as points joined by a line; each point is a mark."""
    with rc():
        figure = _figure(8, 3.6 + 0.12 * len(series))
        axes = figure.subplots()
        tips: dict[str, str] = {}
        handles = []
        for index, one in enumerate(series):
            colour = f"C{index % 10}"
            points = sorted(one.points)
            xs, ys = [p[0] for p in points], [p[1] for p in points]
            (line,) = axes.plot(xs, ys, "-", color=colour, linewidth=1.2)
            handles.append(line)
            for x, y, tip in points:
                gid = f"mark-{ident}-{len(tips)}"
                axes.plot([x], [y], "o", color=colour, markersize=5, gid=gid)
                tips[gid] = tip
        if logx:
            _log(axes, "x", base=2)
        axes.set(xlabel=xlabel, ylabel=ylabel)
        axes.set_ylim(bottom=0)
        axes.grid(alpha=0.3)
        figure.legend(
            handles, [s.label for s in series], loc="outside lower center", ncols=2, frameon=False
        )
        return _svg(figure, tips, ident)


def bars_chart(
    categories: Sequence[str],
    groups: Sequence[str],
    values: Sequence[Sequence[float | None]],
    ident: str,
    xlabel: str,
    log: bool = False,
    tips: Sequence[Sequence[str]] | None = None,
) -> str:
    """Grouped horizontal bars: one row per category, one bar per group in it
    (``values[category][group]``); an absent value draws nothing."""
    with rc():
        count = max(len(groups), 1)
        figure = _figure(9, 1.0 + 0.22 * len(categories) * max(count, 1.5))
        axes = figure.subplots()
        marks: dict[str, str] = {}
        height = 0.8 / count
        positions = np.arange(len(categories))[::-1]
        handles = []
        for g, group in enumerate(groups):
            offset = (count - 1) / 2 * height - g * height
            handle = None
            for c, y in enumerate(positions):
                value = values[c][g]
                if value is None:
                    continue
                gid = f"mark-{ident}-{len(marks)}"
                handle = axes.barh(
                    y + offset, value, height=height * 0.9, color=f"C{g % 10}", gid=gid
                )
                marks[gid] = tips[c][g] if tips else f"{group}: {categories[c]}: {value:.4g}"
            if handle is not None:
                handles.append((handle, group))
        axes.set_yticks(positions, list(categories))
        if log:
            _log(axes, "x")
        axes.set_xlabel(xlabel)
        axes.grid(axis="x", alpha=0.3, which="both")
        if count > 1:
            figure.legend(
                [h for h, _ in handles],
                [g for _, g in handles],
                loc="outside lower center",
                ncols=min(count, 3),
                frameon=False,
            )
        return _svg(figure, marks, ident)


@dataclass(frozen=True)
class Roof:
    """The machine's measured limits: peak FLOP/s per precision and memory bandwidth."""

    compute_tflops: dict[str, float]
    bandwidth_gbs: float | None
    bandwidth_label: str


def roofline_chart(points: Sequence[tuple[str, float, float, str]], roof: Roof, ident: str) -> str:
    """Log-log: achieved TFLOP/s against arithmetic intensity (FLOP per byte) for each
    ``(label, intensity, tflops, tip)``, under the measured roofs: a flat line per
    precision's matrix-multiply peak, a slope for the bandwidth."""
    with rc():
        figure = _figure(8, 4.5)
        axes = figure.subplots()
        tips: dict[str, str] = {}
        intensities = [p[1] for p in points]
        x = np.geomspace(min(intensities + [0.1]) / 3, max(intensities + [100]) * 3, 200)
        for index, (name, peak) in enumerate(sorted(roof.compute_tflops.items())):
            ridge = np.full_like(x, peak)
            if roof.bandwidth_gbs:
                ridge = np.minimum(ridge, x * roof.bandwidth_gbs / 1e3)
            axes.plot(
                x,
                ridge,
                "--",
                color=f"C{index + 5}",
                linewidth=1.2,
                label=f"{name} peak {peak:.3g} TFLOP/s",
            )
        if roof.bandwidth_gbs:
            axes.plot([], [], " ", label=f"{roof.bandwidth_label} {roof.bandwidth_gbs:.3g} GB/s")
        for index, (label, intensity, tflops, tip) in enumerate(points):
            gid = f"mark-{ident}-{index}"
            axes.plot([intensity], [tflops], "o", color=f"C{index % 5}", markersize=6, gid=gid)
            axes.annotate(
                label, (intensity, tflops), fontsize=7, xytext=(4, 3), textcoords="offset points"
            )
            tips[gid] = tip
        _log(axes, "x")
        _log(axes, "y")
        axes.set(
            xlabel="arithmetic intensity (FLOP per byte of weights and inputs)", ylabel="TFLOP/s"
        )
        axes.grid(alpha=0.3, which="both")
        axes.legend(loc="lower right", fontsize=8, frameon=False)
        return _svg(figure, tips, ident)


@dataclass(frozen=True)
class Probe:
    """One LoadGen Server run of a peak search: the offered rate (target QPS), its p50 and
    p99 per-sample latency (ms), LoadGen's verdict and a tip."""

    qps: float
    p50: float | None
    p99: float
    valid: bool
    tip: str


@dataclass(frozen=True)
class LoadCurve:
    """A Server cell's probes, its peak (the highest VALID rate, None when none was) and
    the latency bound of its runs (ms)."""

    label: str
    probes: Sequence[Probe]
    peak: float | None
    bound: float | None


def load_chart(curves: Sequence[LoadCurve], ident: str, percentile: str = "p99") -> str:
    """Latency against offered load: each curve's p99 (solid) and p50 (dashed) at each
    probe's target QPS, a VALID probe filled and an INVALID one hollow; each bound a
    dotted horizontal line (on ``percentile``), each peak a star on its p99 and a dotted
    vertical line. Each probe's p99 point is a mark."""
    with rc():
        figure = _figure(8, 3.8 + 0.12 * len(curves))
        axes = figure.subplots()
        tips: dict[str, str] = {}
        handles, labels = [], []
        latencies = []
        for index, curve in enumerate(curves):
            colour = f"C{index % 10}"
            probes = sorted(curve.probes, key=lambda p: p.qps)
            (line,) = axes.plot(
                [p.qps for p in probes], [p.p99 for p in probes], "-", color=colour, linewidth=1.2
            )
            halves = [p for p in probes if p.p50 is not None]
            axes.plot(
                [p.qps for p in halves],
                [p.p50 for p in halves],
                "--",
                color=colour,
                linewidth=0.9,
                alpha=0.8,
            )
            handles.append(line)
            labels.append(curve.label)
            for probe in probes:
                face = colour if probe.valid else "white"
                gid = f"mark-{ident}-{len(tips)}"
                axes.plot(
                    [probe.qps],
                    [probe.p99],
                    "o",
                    color=colour,
                    markerfacecolor=face,
                    markersize=6,
                    gid=gid,
                )
                tips[gid] = probe.tip
                if probe.p50 is not None:
                    axes.plot(
                        [probe.qps], [probe.p50], "s", color=colour, markerfacecolor=face, ms=4
                    )
                latencies += [v for v in (probe.p50, probe.p99) if v is not None]
            if curve.peak is not None:
                at_peak = [p.p99 for p in probes if p.valid and p.qps == curve.peak]
                axes.axvline(curve.peak, color=colour, linestyle=":", linewidth=1)
                if at_peak:
                    axes.plot([curve.peak], at_peak[:1], "*", color=colour, markersize=13)
        for bound in sorted({c.bound for c in curves if c.bound is not None}):
            bound_line = axes.axhline(bound, color="black", linestyle=":", linewidth=1)
            handles.append(bound_line)
            labels.append(f"bound {bound:g} ms on {percentile}")
            latencies.append(bound)
        positive = [v for v in latencies if v > 0]
        if positive and max(positive) / min(positive) > 10:
            _log(axes, "y")
        axes.set(xlabel="offered load: LoadGen's target QPS", ylabel="latency per sample (ms)")
        axes.grid(alpha=0.3, which="both")
        figure.legend(handles, labels, loc="outside lower center", ncols=3, frameon=False)
        return _svg(figure, tips, ident)
