"""The summary table printed after a run, and the same table as Markdown (report.md).

Every column is a field of the cell record (bench.core.record), computed where that
field is made: ``median ms``, ``p99 ms`` and ``CV`` are ``latency_ms`` (bench.core.stats
``Summary``, from the raw per-request times of the measured window; pooled over
repetitions by bench.harness.repetitions), ``known ±`` is ``window.half_width`` (how well
the window's figure was known when it ended, bench.core.stopping), ``samples/s`` is
``throughput.samples_per_s``
(``Throughput.of``: samples ÷ the window's wall time), ``accuracy`` is
``accuracy.verdict`` (bench.harness.accuracy), ``avg W`` and ``J/sample`` are ``power``
(bench.power.meter), and ``target`` is the cell beside ``executed`` (read back from the
runtime).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from rich.markup import escape
from rich.table import Table

from bench.core.cell import SERVING_SCENARIOS
from bench.core.record import CellRecord
from bench.published import Beside
from bench.views.speedup import Speedup


@dataclass(frozen=True)
class Column:
    """A column of the summary table: its heading, its text for a cell's record, and for
    a figure (right-aligned) the number behind the text (what an HTML table sorts by)."""

    name: str
    text: Callable[[CellRecord], str]
    value: Callable[[CellRecord], float | None] | None = None

    @property
    def figure(self) -> bool:
        return self.value is not None


def target_text(record: CellRecord) -> str:
    """Requested device and precision, with what ran beside each when it differs, and for
    an int8 cell whose compute layers did not all run in int8, how many did."""
    cell, executed = record.cell, record.executed
    device = _requested_vs_executed(cell.device, executed and executed.device)
    precision = _requested_vs_executed(cell.precision, executed and executed.precision)
    return f"{device} {precision}{_int8_share(record)}"


_INT8_NAMES = ("int8", "i8", "u8")
"""How the runtimes name int8 compute layers (ONNX Runtime's read-back, OpenVINO's)."""


def _int8_share(record: CellRecord) -> str:
    """`` (47/53 layers int8)`` where an int8 cell ran some compute layers in float."""
    if record.cell.precision != "int8" or record.executed is None:
        return ""
    extra = record.executed.model_extra or {}
    layers = extra.get("compute_layers") or extra.get("compute_layer_precisions") or {}
    if not isinstance(layers, dict):
        return ""
    int8 = sum(n for name, n in layers.items() if name in _INT8_NAMES and isinstance(n, int))
    total = sum(n for n in layers.values() if isinstance(n, int))
    return f" ({int8}/{total} layers int8)" if 0 < total != int8 else ""


def _requested_vs_executed(requested: str, executed: str | None) -> str:
    if executed is None or executed == requested:
        return requested
    return f"{requested}→{executed}"


def number_text(value: float | None) -> str:
    """A figure to 3 significant digits (whole, with thousands separators, from 100 up);
    ``-`` for none."""
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if value < 10 else f"{value:.1f}"


def _cv(cv: float | None, unstable: bool | None) -> str:
    if cv is None:
        return "-"
    return f"{cv:.0%}" + ("!" if unstable else "")


def _half_width(record: CellRecord) -> float | None:
    return record.window.half_width if record.window else None


def _known(record: CellRecord) -> str:
    """The window's half-width, ``!`` where it ended short of its target, `` cap`` where
    the time cap ended it."""
    window = record.window
    if window is None or window.half_width is None:
        return "-"
    short = "!" if window.target and window.half_width > window.target else ""
    width = ">100%" if window.half_width > 1 else f"{window.half_width:.1%}"
    return width + short + (" cap" if window.stop == "cap" else "")


def repetitions_mark(record: CellRecord) -> str:
    """' ×N' for a cell merged from N repetitions (bench.harness.repetitions)."""
    runs = record.repetitions
    return f" ×{len(runs)}" if runs else ""


def _loss(record: CellRecord) -> str:
    """A train cell's loss at its first and last step (in place of an accuracy check)."""
    training = record.training
    if training is None or training.loss_first is None or training.loss_last is None:
        return "-"
    return f"loss {training.loss_first:.3g}→{training.loss_last:.3g}"


def _p99(record: CellRecord) -> float | None:
    return record.latency_ms.p99 if record.latency_ms else None


def _cv_of(record: CellRecord) -> float | None:
    return record.latency_ms.cv if record.latency_ms else None


def _avg_w(record: CellRecord) -> float | None:
    return record.power.avg_w if record.power else None


def _status(record: CellRecord) -> str:
    if record.ok and record.host_bound:
        busy = record.device_metrics.device_busy  # type: ignore[union-attr]
        return f"ok, host-bound (device busy {busy:.0%} of the time)"
    if record.ok:
        return "ok"
    return f"{record.status}: {record.reason}" if record.reason else record.status


SUMMARY_COLUMNS = (
    Column("model", lambda r: r.cell.model),
    Column("runtime", lambda r: r.cell.runtime),
    Column("target", target_text),  # requested → executed (read back)
    Column("scenario", lambda r: f"{r.cell.scenario} b{r.cell.batch}" + repetitions_mark(r)),
    Column("median ms", lambda r: number_text(r.median_ms), lambda r: r.median_ms),
    Column("known ±", _known, _half_width),
    Column("p99 ms", lambda r: number_text(_p99(r)), _p99),
    Column("CV", lambda r: _cv(_cv_of(r), r.unstable), _cv_of),
    Column("samples/s", lambda r: number_text(r.samples_per_s), lambda r: r.samples_per_s),
    Column("accuracy", lambda r: r.verdict or _loss(r)),
    Column("status", _status),
)
POWER_COLUMNS = (
    Column("avg W", lambda r: number_text(_avg_w(r)), _avg_w),
    Column("J/sample", lambda r: number_text(r.j_per_sample), lambda r: r.j_per_sample),
)
"""Put before ``status`` when some cell measured power."""


def _task_value(record: CellRecord) -> float | None:
    return record.scored.value if record.scored else None


def _task_text(record: CellRecord) -> str:
    """The task metric, and how many labels were beyond the model's classes (left out)."""
    task = record.scored
    if task is None:
        return "-"
    outside = f" ({task.labels_outside} labels beyond its classes)" if task.labels_outside else ""
    return metric_text(task.metric, task.value) + outside


METRIC_COLUMN = Column("metric", _task_text, _task_value)
"""Put after ``accuracy`` when some cell was scored on labelled data (``--dataset``)."""
COLUMNS = tuple(column.name for column in SUMMARY_COLUMNS)
_NUMERIC = tuple(c.name for c in (*SUMMARY_COLUMNS, *POWER_COLUMNS, METRIC_COLUMN) if c.figure)


def summary_columns(records: list[CellRecord]) -> tuple[Column, ...]:
    """The summary's columns for ``records``: the task metric joins them when some cell
    was scored on labelled data, average W and energy per sample when some cell measured
    power."""
    columns = list(SUMMARY_COLUMNS)
    if any(_task_value(record) is not None for record in records):
        columns.insert(columns.index(SUMMARY_COLUMNS[-2]) + 1, METRIC_COLUMN)
    if any(record.power and record.power.avg_w is not None for record in records):
        columns[-1:-1] = POWER_COLUMNS
    return tuple(columns)


def summary_rows(
    records: list[CellRecord], columns: tuple[Column, ...] = SUMMARY_COLUMNS
) -> list[list[str]]:
    """One row per cell, a text per column. An unstable cell's CV carries a '!'."""
    return [[column.text(record) for column in columns] for record in records]


def summary_table(records: list[CellRecord], title: str) -> Table:
    caption = (
        "known ± = half-width of the 95% interval of the median (of the request rate in the "
        "throughput scenario) when the window ended, from batch medians; ! = short of the "
        "target (measure.half_width); cap = measure.max_duration_s ended it; "
        "CV! = unstable (CV above the suite's cv_threshold); samples/s = samples / wall time "
        "of the measured window; ×N = N repetitions (latency over all their times, samples/s "
        "their median; known ± the middle one's)"
    )
    columns = summary_columns(records)
    if METRIC_COLUMN in columns:
        caption += "; metric = the task metric on the --dataset's scored samples"
    if POWER_COLUMNS[0] in columns:
        caption += "; avg W and J/sample over the same window (each cell's power.source)"
    if any(record.cell.scenario in SERVING_SCENARIOS for record in records):
        caption += f". {SERVING_NOTE}"
    names = tuple(column.name for column in columns)
    return rich_table(title, caption, names, summary_rows(records, columns), "status")


def summary_markdown(records: list[CellRecord]) -> str:
    columns = summary_columns(records)
    names = tuple(column.name for column in columns)
    return markdown_table(names, summary_rows(records, columns))


SERVING_NOTE = (
    "In LoadGen's scenarios (single_stream, multi_stream, server, offline) the ms and "
    "samples/s are the runtime's own requests under LoadGen's load, not LoadGen's figures: "
    "those are in the LoadGen scenarios table"
)


SPEEDUP_COLUMNS = (
    "model",
    "runtime",
    "target",
    "scenario",
    "fp32 ms",
    "low ms",
    "speedup",
    "95% CI",
    "accuracy",
    "metric fp32→low",
    "verdict",
)


def speedup_rows(rows: list[Speedup]) -> list[list[str]]:
    """One row per low-precision cell: its fp32 and own medians, the speedup with its
    interval, the accuracy verdict and the overall verdict."""
    table = []
    for row in rows:
        measured = row.speedup is not None
        figures = (
            [
                number_text(row.fp32_median_ms),
                number_text(row.median_ms),
                f"{row.speedup:.2f}x",
                _interval(row),
            ]
            if measured
            else ["-"] * 4
        )
        table.append(
            [
                row.model,
                row.runtime,
                f"{row.device} {_requested_vs_executed(row.precision, row.executed)}",
                f"{row.scenario} b{row.batch}",
                *figures,
                row.accuracy or "-",
                metric_change(row),
                row.verdict,
            ]
        )
    return table


METRIC_NAMES = {"top1": "top-1", "miou": "mIoU", "agreement": "agreement"}
"""How the task metrics of ``accuracy.dataset`` are named in tables."""


def metric_text(name: str | None, value: float | None) -> str:
    """``top-1 91.2%``; ``-`` where there is none."""
    if name is None or value is None:
        return "-"
    return f"{METRIC_NAMES.get(name, name)} {value:.1%}"


def metric_change(row: Speedup) -> str:
    """The task metric of the fp32 cell and the low-precision one: ``top-1 91.2→90.8%``."""
    if row.metric is None or row.value is None:
        return "-"
    name = METRIC_NAMES.get(row.metric, row.metric)
    if row.fp32_value is None:
        return metric_text(row.metric, row.value)
    return f"{name} {row.fp32_value * 100:.1f}→{row.value:.1%}"


def _interval(row: Speedup) -> str:
    """The interval, marked ``(1 run)`` when it resamples one run's correlated iterations
    (too narrow) rather than ``(N reps)``."""
    if row.ci_low is None or row.ci_high is None:
        return "-"
    runs = row.interval_over or ""
    mark = f" ({runs.split('/')[0]} reps)" if "repetitions" in runs else " (1 run)"
    return f"{row.ci_low:.2f}–{row.ci_high:.2f}{mark}"


def speedup_table(rows: list[Speedup]) -> Table:
    title = "Low-precision speedup over fp32 (median fp32 / median low precision)"
    caption = (
        "95% bootstrap interval: (N reps) resamples the cells' repetitions (run --repeat 3 "
        "or more); (1 run) resamples one run's iterations, which are correlated, so it is "
        "too narrow; a speedup whose accuracy failed, or whose task metric fell past the "
        "--accuracy-budget, is no win"
    )
    return rich_table(title, caption, SPEEDUP_COLUMNS, speedup_rows(rows), "verdict")


def rich_table(
    title: str,
    caption: str,
    columns: tuple[str, ...],
    rows: list[list[str]],
    wraps: str,
    text: tuple[str, ...] | None = None,
) -> Table:
    """A left-titled table; figure columns right-aligned (all but ``text`` where given);
    only the ``wraps`` column wraps."""
    table = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
    for name in columns:
        if text is None:
            figure = name in _NUMERIC or name.endswith(("ms", "speedup"))
        else:
            figure = name not in text
        table.add_column(name, justify="right" if figure else "left", no_wrap=name != wraps)
    for row in rows:
        table.add_row(*(escape(cell) for cell in row))  # text, not markup: 'deploybench[gpu]'
    return table


def speedup_markdown(rows: list[Speedup]) -> str:
    """The speedup table as Markdown, for report.md, with what its intervals resample."""
    note = (
        "\n95% intervals: (N reps) resample the repetitions (run --repeat 3 or more); "
        "(1 run) resample one run's iterations, which are correlated: too narrow.\n"
    )
    return markdown_table(SPEEDUP_COLUMNS, speedup_rows(rows)) + note


def markdown_table(columns: tuple[str, ...], rows: list[list[str]]) -> str:
    """A Markdown table of plain text: every heading and cell goes through
    ``markdown_text``, so none can add a row, a column or markup."""
    lines = ["| " + " | ".join(map(markdown_text, columns)) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(map(markdown_text, row)) + " |")
    return "\n".join(lines) + "\n"


_LINE_BREAK = re.compile(r"\r\n|[\r\n]")
_HTML = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_MARKUP = re.compile(r"([\\`*_\[\]|~#$])")


def markdown_text(value: str) -> str:
    """``value`` as plain text in a Markdown (GFM) line or table cell, rendered as written:
    each line break becomes a space; ``&``, ``<`` and ``>`` become entities (so no HTML);
    a backslash, a backtick and ``* _ [ ] | ~ # $`` (what can start emphasis, code, a link,
    a cell, strikethrough, a heading's end or GitHub math) are backslash-escaped. For text
    after a line's start: a leading ``-``, ``+`` or ``1.`` is left as it is."""
    text = _LINE_BREAK.sub(" ", value).translate(_HTML)
    return _MARKUP.sub(r"\\\1", text)


def beside_table(beside: Beside, machine: str = "") -> Table:
    """A table of ours beside published figures for the terminal, ``machine`` in its title;
    the notes follow the caption."""
    caption = beside.caption
    if beside.notes:
        caption += f"; {beside.notes_heading.lower()}: " + "; ".join(beside.notes)
    title = f"{beside.title}: {machine}" if machine else beside.title
    return rich_table(title, caption, beside.columns, beside.rows, beside.text[-1], beside.text)


def beside_markdown(beside: Beside, machine: str = "") -> str:
    """The same as a Markdown section for report.md, ``machine`` in its heading."""
    title = markdown_text(f"{beside.title}: {machine}" if machine else beside.title)
    text = f"\n## {title}\n\n{markdown_table(beside.columns, beside.rows)}\n"
    text += f"{markdown_text(beside.caption)}\n"
    if beside.notes:
        notes = "\n".join(f"- {markdown_text(note)}" for note in beside.notes)
        text += f"\n{beside.notes_heading}:\n\n{notes}\n"
    return text
