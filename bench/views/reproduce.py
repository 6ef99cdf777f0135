"""Our figures beside published benchmark rows: u39kun's per-batch times (VGG16, ResNet-152,
DenseNet-161 at batch 16, eval and train, fp32 and fp16) for every GPU of its table, and
a Lambda-style ResNet-50 training throughput (fp32 against mixed precision).

A table appears where the run holds the matching cells (``--profile u39kun`` or
``--profile lambda``); each says what differs between our measurement and theirs.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from bench.core.record import CellRecord
from bench.published import U39KUN, Beside, read_table, source

U39KUN_MODELS = ("vgg16", "resnet152", "densenet161")
U39KUN_BATCH = 16
U39KUN_PASSES = {"eval": "latency", "train": "train"}
"""u39kun's passes and the scenarios that time the same thing here."""
HALF = ("fp16", "bf16")
"""The 16-bit precisions, fp16 first: u39kun's 16-bit is fp16."""
LAMBDA_MODEL = "resnet50"

COLUMNS = (
    "model",
    "pass",
    "who",
    "fp32 ms",
    "16-bit ms",
    "16-bit speedup (means)",
    "ours / theirs fp32",
    "ours / theirs 16-bit",
)
LAMBDA_COLUMNS = ("model", "batch", "device", "fp32 img/s", "mixed img/s", "mixed", "speedup")


@dataclass(frozen=True)
class ReproRow:
    """One line: ours or a published machine, per-batch mean ms in fp32 and 16-bit."""

    model: str
    pass_: str
    who: str
    fp32_ms: float | None
    half_ms: float | None
    ours_fp32_ms: float | None = None
    ours_half_ms: float | None = None

    @property
    def speedup(self) -> float | None:
        return _ratio(self.fp32_ms, self.half_ms)

    def cells(self) -> list[str]:
        ours = self.ours_fp32_ms is not None or self.ours_half_ms is not None
        return [
            self.model,
            self.pass_,
            self.who,
            _number(self.fp32_ms),
            _number(self.half_ms),
            _times(self.speedup),
            _times(_ratio(self.ours_fp32_ms, self.fp32_ms)) if ours else "",
            _times(_ratio(self.ours_half_ms, self.half_ms)) if ours else "",
        ]


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _mean_ms(records: list[CellRecord]) -> float | None:
    """The per-batch mean (u39kun's statistic), the median over repetitions."""
    means = [r.latency_ms.mean for r in records if r.latency_ms is not None]
    return statistics.median(means) if means else None


def _matching(records: list[CellRecord]) -> list[CellRecord]:
    """Our ok PyTorch cells of u39kun's models at its batch, in one of its passes."""
    return [
        r
        for r in records
        if r.status == "ok"
        and r.cell.runtime == "pytorch"
        and r.cell.model in U39KUN_MODELS
        and r.cell.batch == U39KUN_BATCH
        and r.cell.scenario in U39KUN_PASSES.values()
    ]


def _ours(
    records: list[CellRecord], model: str, scenario: str
) -> dict[str, dict[str, list[CellRecord]]]:
    """Our matching cells of ``model`` in ``scenario``, by device, then by precision."""
    found: dict[str, dict[str, list[CellRecord]]] = {}
    for record in _matching(records):
        cell = record.cell
        if cell.model == model and cell.scenario == scenario:
            found.setdefault(cell.device, {}).setdefault(cell.precision, []).append(record)
    return found


def _published(model: str, pass_: str) -> dict[str, dict[str, float]]:
    """u39kun's ms of ``model`` in ``pass_`` by machine ("GPU (framework)"), by precision."""
    by_machine: dict[str, dict[str, float]] = {}
    for line in read_table(U39KUN):
        if line["model"] == model:
            machine = f"{line['gpu']} ({line['framework']})"
            by_machine.setdefault(machine, {})[line["precision"]] = float(line[f"{pass_}_ms"])
    return by_machine


def u39kun_rows(records: list[CellRecord]) -> list[ReproRow]:
    """For each model, pass and device we ran: our row (fp16, else bf16, as the 16-bit
    column), then each published machine's row with our time over theirs. Empty when the
    run has none of u39kun's cells."""
    rows = []
    for model in U39KUN_MODELS:
        for pass_, scenario in U39KUN_PASSES.items():
            for device, ours in sorted(_ours(records, model, scenario).items()):
                half = next((p for p in HALF if p in ours), None)
                fp32_ms = _mean_ms(ours.get("fp32", []))
                half_ms = _mean_ms(ours[half]) if half else None
                who = f"ours ({device}{f', {half}' if half else ''})"
                rows.append(ReproRow(model, pass_, who, fp32_ms, half_ms))
                rows.extend(
                    ReproRow(
                        model, pass_, machine, ms.get("fp32"), ms.get("fp16"), fp32_ms, half_ms
                    )
                    for machine, ms in _published(model, pass_).items()
                )
    return rows


def u39kun_differences(records: list[CellRecord]) -> list[str]:
    """What differs between our measurement and u39kun's, read from the records."""
    mine = _matching(records)
    if not mine:
        return []
    executed = [r.executed for r in mine if r.executed is not None]
    providers = sorted({e.provider for e in executed if e.provider})
    details: dict[str, Any] = {}
    for e in executed:
        details.update({k: v for k, v in e.model_dump().items() if v is not None})
    frameworks = sorted(
        {
            f"{line['framework']} (CUDA {line['cuda']}, cuDNN {line['cudnn']})"
            for line in read_table(U39KUN)
        }
    )
    cuda = f"CUDA {details['cuda']}, cuDNN {details['cudnn']}" if "cuda" in details else "CPU"
    counts = [r.latency_ms.count for r in mine if r.latency_ms is not None]
    warmups = [r.throughput.warmup_requests or 0 for r in mine if r.throughput is not None]
    autotune = details.get("cudnn_benchmark")
    lines = [
        f"framework: ours {'; '.join(providers)} ({cuda}); theirs {'; '.join(frameworks)}",
        f"timing: ours the mean of {_span(counts)} passes after {_span(warmups)} warm-up "
        "passes; theirs the mean of 20 passes after 20 warm-up passes; both synchronise the "
        "device around each pass",
        "eval 16-bit: both convert the model to fp16 (.half()); a bf16 row ran bf16",
        "train: ours is forward, cross-entropy, backward and an SGD step, 16-bit as autocast "
        "mixed precision with a gradient scaler; theirs is forward, out.sum(), backward "
        "(the input takes a gradient too), no optimizer step, 16-bit as a .half() model",
        "cuDNN autotuner: theirs on (cudnn.benchmark)"
        + ("" if autotune is None else f"; ours {'on' if autotune else 'off'}"),
        "weights: random in both (torchvision's initialisation; ours seeded, BatchNorm "
        "statistics calibrated)",
    ]
    if not any(r.cell.device.startswith("cuda") for r in mine):
        lines.append("device: ours ran on a CPU; every published row is a GPU")
    return lines


def _span(values: list[int]) -> str:
    low, high = min(values, default=0), max(values, default=0)
    return str(low) if low == high else f"{low} to {high}"


def lambda_rows(records: list[CellRecord]) -> list[list[str]]:
    """ResNet-50 training throughput per device and batch: fp32, the mixed precision
    beside it (fp16, else bf16) and the speedup."""
    cells: dict[tuple[str, int], dict[str, list[CellRecord]]] = {}
    for record in records:
        cell = record.cell
        if record.status == "ok" and cell.model == LAMBDA_MODEL and cell.scenario == "train":
            key = (cell.device, cell.batch)
            cells.setdefault(key, {}).setdefault(cell.precision, []).append(record)
    rows = []
    for (device, batch), by_precision in sorted(cells.items()):
        fp32 = _images_per_s(by_precision.get("fp32", []))
        half = next((p for p in HALF if p in by_precision), None)
        mixed = _images_per_s(by_precision[half]) if half else None
        rows.append(
            [
                LAMBDA_MODEL,
                str(batch),
                device,
                _number(fp32),
                _number(mixed),
                f"{half} autocast" if half else "-",
                _times(_ratio(mixed, fp32)),
            ]
        )
    return rows


def _images_per_s(records: list[CellRecord]) -> float | None:
    rates = [r.throughput.samples_per_s for r in records if r.throughput is not None]
    rates = [rate for rate in rates if rate is not None]
    return statistics.median(rates) if rates else None


LAMBDA_NOTE = (
    "images/s over whole training steps (forward, loss, backward, SGD step) on synthetic "
    "data, as Lambda's ResNet-50 training benchmarks count them; this project keeps no "
    "published Lambda figures, so none is shown beside ours"
)


def reproduction(records: list[CellRecord]) -> list[Beside]:
    """The u39kun table (with what differs) and the Lambda-style table, each where the
    run has its cells."""
    tables = []
    rows = u39kun_rows(records)
    if rows:
        tables.append(
            Beside(
                "u39kun",
                "u39kun: per-batch mean ms at batch 16",
                COLUMNS,
                [row.cells() for row in rows],
                f"published: {source(U39KUN)}",
                COLUMNS[:3],
                tuple(u39kun_differences(records)),
            )
        )
    lambda_ = lambda_rows(records)
    if lambda_:
        tables.append(
            Beside(
                "lambda",
                "ResNet-50 training (Lambda-style)",
                LAMBDA_COLUMNS,
                lambda_,
                LAMBDA_NOTE,
                LAMBDA_COLUMNS[:3],
            )
        )
    return tables
