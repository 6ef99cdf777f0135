"""The side-by-side table of machines (``python cli.py report DIR...``): one column per
machine, the rows of a vendor's comparison sheet, all measured: matrix-multiply TFLOPS,
memory and host↔device bandwidth, then per-model training and inference throughput,
low-precision speedups and energy per inference where measured."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table

from bench.core.errors import UserError
from bench.core.record import CellRecord
from bench.harness.environment import fleet_node, machine_id, machine_label, read_environment
from bench.harness.repetitions import merged
from bench.harness.results import ENVIRONMENT_FILE, RESULTS_FILE, fleet_columns, read_records
from bench.hw.records import HW_FILE, HwRecord, best_of, read_hw
from bench.hw.sheet import gpu_sheet
from bench.published import Beside
from bench.views.report import markdown_table, markdown_text
from bench.views.reproduce import reproduction
from bench.views.speedup import speedups

ABSENT = "—"
_SCENARIOS = {
    "train": "training",
    "latency": "inference (latency)",
    "throughput": "inference (throughput)",
}
_PRECISIONS = ("fp32", "tf32", "fp16", "bf16", "int8")


@dataclass
class Machine:
    """Everything the given directories hold about one machine."""

    id: str
    environment: dict[str, Any]
    sources: list[Path] = field(default_factory=list)
    hw: list[HwRecord] = field(default_factory=list)
    cells: dict[str, CellRecord] = field(default_factory=dict)
    label: str = ""

    @property
    def primary(self) -> str:
        """The device compared: the first CUDA device with a figure, else the CPU."""
        devices = [r.device for r in self.hw if r.status == "ok"]
        devices += [c.cell.device for c in self.cells.values() if c.ok]
        return next((d for d in devices if d.startswith("cuda")), "cpu")


def load_machines(dirs: list[Path]) -> list[Machine]:
    """The machines of run and ``hw`` directories, merged by hardware fingerprint, in the
    order first seen. A cell measured in several directories keeps its latest ok record.
    UserError when a directory is neither kind."""
    machines: dict[str, Machine] = {}
    for path in [column for given in dirs for column in fleet_columns(given)]:
        if not (path / ENVIRONMENT_FILE).is_file():
            raise UserError(f"{path} has no {ENVIRONMENT_FILE}: pass run or hw directories")
        if not (path / RESULTS_FILE).is_file() and not (path / HW_FILE).is_file():
            raise UserError(f"{path} has neither {RESULTS_FILE} nor {HW_FILE}")
        try:
            environment = read_environment(path / ENVIRONMENT_FILE, "pass run or hw directories")
            key = machine_id(environment)
            node = fleet_node(environment)
            key += f"@{node}" if node else ""  # fleet nodes alike in hardware stay apart
            hw = read_hw(path)
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise UserError(f"{path} holds an unreadable result ({reason})") from None
        machine = machines.setdefault(key, Machine(key, environment))
        machine.sources.append(path)
        machine.hw.extend(hw)
        for record in merged(read_records(path / RESULTS_FILE)):  # run --repeat: one per cell
            held = machine.cells.get(record.key)
            if held is None or record.ok or not held.ok:
                machine.cells[record.key] = record
    labels: dict[str, int] = {}
    for machine in machines.values():
        base = machine_label(machine.environment)
        node = fleet_node(machine.environment)
        base += f" on {node}" if node else ""
        labels[base] = labels.get(base, 0) + 1
        machine.label = base if labels[base] == 1 else f"{base} #{labels[base]}"
    return list(machines.values())


def beside_published(machine: Machine) -> list[Beside]:
    """A machine's tables beside published figures: its u39kun and Lambda-style cells,
    and the GPU sheet beside its ``hw`` figures."""
    tables = reproduction(list(machine.cells.values()))
    return tables + [gpu_sheet(machine.hw)] if machine.hw else tables


@dataclass
class Row:
    """One line of the table: its label, each machine's text and number (for the ratio)."""

    label: str
    texts: list[str]
    values: list[float | None]
    kinds: list[str | None] | None = None
    """What each number is, where a row picks the best of several (bf16, int8, …)."""

    def ratio(self) -> str:
        """Second machine / first, when both have a number of the same kind."""
        if len(self.values) != 2 or None in self.values or not self.values[0]:
            return ABSENT
        if self.kinds and self.kinds[0] != self.kinds[1]:
            return f"{ABSENT} ({self.kinds[1]} vs {self.kinds[0]})"
        return f"{self.values[1] / self.values[0]:.3g}x"  # type: ignore[operator]


_HW_ROWS = (
    ("training TFLOPS (best fp16/bf16 matrix multiply)", "matmul", ("fp16", "bf16"), False),
    ("inference TFLOPS (best fp16/bf16; int8 in TOPS)", "matmul", ("fp16", "bf16", "int8"), False),
    ("FP64 TFLOPS (matrix multiply)", "matmul", ("fp64",), False),
    ("FP32 TFLOPS (matrix multiply)", "matmul", ("fp32",), False),
    ("TF32 TFLOPS (matrix multiply)", "matmul", ("tf32",), False),
    ("memory bandwidth GB/s (STREAM copy)", "stream", ("copy",), False),
    ("STREAM triad GB/s", "stream", ("triad",), False),
    ("host→device GB/s (pinned)", "transfer", ("h2d",), False),
    ("device→host GB/s (pinned)", "transfer", ("d2h",), False),
    ("host CPU STREAM triad GB/s", "stream", ("triad",), True),
)


def machine_rows(machines: list[Machine]) -> list[Row]:
    """The whole table: what each machine is, its measured hardware figures on its
    compared device, then its model cells."""
    rows = [
        Row(
            "device compared",
            [f"{m.primary}: {_device_name(m)}" for m in machines],
            [None] * len(machines),
        ),
        Row(
            "host CPU",
            [str((m.environment.get("cpu") or {}).get("model")) for m in machines],
            [None] * len(machines),
        ),
    ]
    for label, kind, names, on_host in _HW_ROWS:
        found = [best_of(m.hw, kind, "cpu" if on_host else m.primary, names) for m in machines]
        if on_host and all(m.primary == "cpu" for m in machines):
            continue
        texts = [_hw_text(r, names, m, kind) for r, m in zip(found, machines, strict=True)]
        kinds = [r.name if r else None for r in found]
        rows.append(Row(label, texts, [r.best if r else None for r in found], kinds))
    caches = [_cache_mib(m) for m in machines]
    rows.append(Row("last-level cache MiB", [_num(c) for c in caches], caches))
    return rows + _model_rows(machines)


def _device_name(machine: Machine) -> str:
    for record in machine.hw:
        if record.device == machine.primary and record.details.get("device_name"):
            return str(record.details["device_name"])
    return machine_label(machine.environment) if machine.primary != "cpu" else "CPU"


def _hw_text(record: HwRecord | None, names: tuple, machine: Machine, kind: str) -> str:
    if record is None:
        absent = [r for r in machine.hw if r.kind == kind and r.name in names]
        return "unavailable" if absent and machine.primary in {r.device for r in absent} else ABSENT
    return _num(record.best) + (f" ({record.name})" if len(names) > 1 else "")


def _cache_mib(machine: Machine) -> float | None:
    for record in machine.hw:
        if record.kind == "stream" and record.device == machine.primary and record.status == "ok":
            cache = record.details.get("cache_bytes")
            return cache / 2**20 if cache else None
    return None


def _num(value: float | None) -> str:
    if value is None:
        return ABSENT
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _chosen_cells(machine: Machine) -> dict[tuple, CellRecord]:
    """One ok cell per (model, runtime, batch, scenario, precision), from the compared
    device when it has one."""
    chosen: dict[tuple, CellRecord] = {}
    for record in machine.cells.values():
        cell = record.cell
        if not record.ok:
            continue
        key = (cell.model, cell.runtime, cell.batch, cell.scenario, cell.precision)
        if key not in chosen or cell.device == machine.primary:
            chosen[key] = record
    return chosen


def _model_rows(machines: list[Machine]) -> list[Row]:
    chosen = [_chosen_cells(m) for m in machines]
    keys = sorted({k for c in chosen for k in c}, key=_order)
    gains = [{_speedup_key(s): s for s in speedups(list(c.values()))} for c in chosen]
    rows, energy_rows = [], []
    for key in keys:
        model, runtime, batch, scenario, precision = key
        name = f"{model} {runtime} b{batch} {_SCENARIOS.get(scenario, scenario)} {precision}"
        records = [c.get(key) for c in chosen]
        samples = [r.samples_per_s if r else None for r in records]
        texts = [
            _num(v) + _elsewhere(r, m) if v else ABSENT
            for v, r, m in zip(samples, records, machines, strict=True)
        ]
        rows.append(Row(f"{name} samples/s", texts, samples))
        if precision != "fp32":
            found = [g.get(key) for g in gains]
            values = [s.speedup if s and s.verdict != "accuracy failed" else None for s in found]
            texts = [_speedup_text(s) for s in found]
            rows.append(Row(f"{name} speedup over fp32", texts, values))
        if scenario != "train":
            energy = [r.j_per_sample if r else None for r in records]
            energy_rows.append(Row(f"{name} J/inference", [_num(e) for e in energy], energy))
    measured = [row for row in energy_rows if any(v is not None for v in row.values)]
    if energy_rows and not measured:
        count = len(machines)
        measured = [Row("energy per inference (J)", [ABSENT] * count, [None] * count)]
    return rows + measured


def _order(key: tuple) -> tuple:
    model, runtime, batch, scenario, precision = key
    scenarios = list(_SCENARIOS)
    return (
        model,
        runtime,
        batch,
        scenarios.index(scenario) if scenario in scenarios else 9,
        _PRECISIONS.index(precision) if precision in _PRECISIONS else 9,
    )


def _speedup_key(row: Any) -> tuple:
    return (row.model, row.runtime, row.batch, row.scenario, row.precision)


def _speedup_text(row: Any) -> str:
    if row is None or row.speedup is None:
        return ABSENT
    if row.verdict == "accuracy failed":
        return "accuracy failed"
    return f"{row.speedup:.2f}x" + (" (host-bound)" if "host-bound" in row.verdict else "")


def _elsewhere(record: CellRecord | None, machine: Machine) -> str:
    device = record.cell.device if record else machine.primary
    return "" if device == machine.primary else f" ({device})"


def machines_table(machines: list[Machine], rows: list[Row]) -> Table:
    table = Table(
        title="Machines side by side (measured)",
        title_justify="left",
        caption=caption(machines),
        caption_justify="left",
    )
    table.add_column("", no_wrap=True)
    for machine in machines:
        table.add_column(machine.label, justify="right")
    if len(machines) == 2:
        table.add_column(f"{machines[1].label} / {machines[0].label}", justify="right")
    for row in rows:
        table.add_row(row.label, *row.texts, *([row.ratio()] if len(machines) == 2 else []))
    return table


def machines_markdown(machines: list[Machine], rows: list[Row]) -> str:
    """The same table as Markdown, with the sources under it (labels and names escaped)."""
    header = ["", *(m.label for m in machines)]
    if len(machines) == 2:
        header.append(f"{machines[1].label} / {machines[0].label}")
    cells = [
        [row.label, *row.texts, *([row.ratio()] if len(machines) == 2 else [])] for row in rows
    ]
    return markdown_table(tuple(header), cells) + f"\n{markdown_text(caption(machines))}\n"


def caption(machines: list[Machine]) -> str:
    sources = "; ".join(f"{m.label}: {', '.join(p.name for p in m.sources)}" for m in machines)
    return (
        "TFLOPS = best dense matrix multiply (2·M·N·K) measured by cli.py hw; "
        f"{ABSENT} = not measured; speedup = median fp32 / median low precision. "
        f"Sources: {sources}"
    )
