"""``tune``'s report: the decision and why, every configuration with its fate, the Pareto
front of samples/s against p99 latency as a chart (marked by precision), and the artifact
to ship. Read from the tune folder's ``tune.json`` data."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from bench.views.html.charts import _figure, _svg, rc
from bench.views.html.page import Cell, Page
from bench.views.report import markdown_table, markdown_text, metric_text, rich_table

PRECISION_MARKERS = {"fp32": "o", "fp16": "s", "bf16": "D", "int8": "^"}
COLUMNS = ("configuration", "samples/s", "p99 ms", "peak MB", "accuracy", "outcome")


def _rows(data: dict[str, Any]) -> list[list[str]]:
    chosen = (data.get("chosen") or {}).get("label")
    front = set(data.get("front", []))
    rows = []
    for trial in data["trials"]:
        mark = "chosen" if trial["label"] == chosen else trial["status"]
        if trial["label"] in front:
            mark += " (Pareto)"
        rows.append(
            [
                trial["label"],
                _number(trial.get("samples_per_s")),
                _number(trial.get("p99_ms")),
                _number(trial.get("peak_rss_mb")),
                _accuracy(trial),
                f"{mark}: {trial['reason']}" if trial.get("reason") else mark,
            ]
        )
    return rows


def _accuracy(trial: dict[str, Any]) -> str:
    """The verdict, and the task metric where the configuration was scored on data."""
    verdict = trial.get("verdict") or "-"
    if trial.get("metric_value") is None:
        return verdict
    return f"{verdict}, {metric_text(trial.get('metric'), trial['metric_value'])}"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def decision_lines(data: dict[str, Any]) -> list[str]:
    chosen = data.get("chosen")
    lines = [f"search: {data['method']}, {data['measurements']} configurations measured"]
    if chosen:
        lines.append(f"chosen: {chosen['label']}: {data['why']}")
    else:
        closest = ", ".join(f"{t['label']} ({t['reason']})" for t in data.get("closest", []))
        lines.append(f"{data['why']}; closest: {closest or 'none measured'}")
    artifact = data.get("artifact") or {}
    if artifact.get("unavailable"):
        lines.append(f"no artifact: {artifact['unavailable']}")
    elif artifact:
        lines.append(f"artifact: {artifact.get('folder')} (run.py loads it: python run.py)")
    return lines


def tune_table(data: dict[str, Any]) -> Table:
    """Every configuration with its fate, for the terminal (texts escaped: not markup)."""
    title = f"tune: {data['method']}, {data['measurements']} measured"
    text = ("configuration", "accuracy", "outcome")
    return rich_table(title, "", COLUMNS, _rows(data), "outcome", text)


def tune_markdown(data: dict[str, Any]) -> str:
    """The decision and the table of configurations, as Markdown."""
    lines = [f"# tune: {markdown_text(data['model']['name'])}", ""]
    lines += [f"- {markdown_text(line)}" for line in decision_lines(data)]
    rows = [[markdown_text(value) for value in row] for row in _rows(data)]
    return "\n".join([*lines, "", markdown_table(COLUMNS, rows), ""])


def pareto_chart(data: dict[str, Any]) -> str:
    """samples/s against p99 ms for every measured configuration, one marker per
    precision, the Pareto front joined, the chosen one ringed, the bound drawn."""
    measured = [
        t
        for t in data["trials"]
        if t["status"] in ("met", "rejected") and t.get("samples_per_s") and t.get("p99_ms")
    ]
    front = [t for t in measured if t["label"] in set(data.get("front", []))]
    chosen = (data.get("chosen") or {}).get("label")
    bound = (data.get("constraints") or {}).get("latency_bound_ms")
    tips: dict[str, str] = {}
    with rc():
        figure = _figure(7.5, 4.2)
        axes = figure.add_subplot()
        for precision, marker in PRECISION_MARKERS.items():
            points = [t for t in measured if t["configuration"]["precision"] == precision]
            for status, filled in (("met", True), ("rejected", False)):
                chosen_points = [t for t in points if t["status"] == status]
                if not chosen_points:
                    continue
                axes.scatter(
                    [t["p99_ms"] for t in chosen_points],
                    [t["samples_per_s"] for t in chosen_points],
                    marker=marker,
                    facecolors="#4c72b0" if filled else "none",
                    edgecolors="#4c72b0" if filled else "#b00020",
                    label=f"{precision} ({status})",
                    gid=f"mark-{precision}-{status}",
                )
                tips[f"mark-{precision}-{status}"] = "; ".join(t["label"] for t in chosen_points)
        if front:
            axes.plot(
                [t["p99_ms"] for t in front],
                [t["samples_per_s"] for t in front],
                color="#1b7f3b",
                linewidth=1,
                label="Pareto front",
            )
        for t in measured:
            if t["label"] == chosen:
                axes.scatter(
                    [t["p99_ms"]], [t["samples_per_s"]], s=180, facecolors="none",
                    edgecolors="#1b7f3b", linewidths=2, label="chosen",
                )  # fmt: skip
        if bound:
            axes.axvline(bound, color="#b00020", linestyle="--", linewidth=1, label="p99 bound")
        axes.set_xlabel("p99 latency, ms")
        axes.set_ylabel("samples/s")
        axes.legend(fontsize=7, loc="best")
        return _svg(figure, tips, "tune-pareto")


def tune_html(data: dict[str, Any]) -> str:
    """report.html of a tune folder."""
    page = Page(f"tune: {data['model']['name']}")
    page.heading(f"tune: {data['model']['name']}", level=1)
    page.items(decision_lines(data))
    page.figure(
        pareto_chart(data),
        "Samples/s against p99 latency of every measured configuration: filled markers met "
        "every constraint, hollow red ones were rejected; the green line joins the Pareto "
        "front (no other configuration has both more samples/s and a lower p99); the ring "
        "is the chosen configuration, the dashed line the latency bound.",
        "pareto",
    )
    rows = [
        [row[0], *(Cell(v, _value(v)) for v in row[1:4]), row[4], row[5]] for row in _rows(data)
    ]
    classes = [t["status"].replace("rejected", "failed") for t in data["trials"]]
    page.table(COLUMNS, rows, row_classes=classes, ident="configurations")
    return page.render()


def _value(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None
