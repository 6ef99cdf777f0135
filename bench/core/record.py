"""The cell record: one line of ``results.jsonl``, typed.

Every figure a cell produces has one field here, and every reader (the summary table,
repetitions, compare, report, roofline, machines) reads it through that field. A record
written by an older deploybench reads back field for field: ``to_dict`` writes exactly the
keys that were read or set (unknown keys too), so a stored line round-trips unchanged.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer

from bench.core.cell import Cell
from bench.core.stats import Summary
from bench.core.timing import LoopRecord

SCHEMA_VERSION = 1
FAILED_STATUSES = ("failed", "crashed", "timeout")


@dataclass
class Executed:
    """What actually ran, read back from the runtime, never echoed from the request."""

    precision: str
    device: str
    threads: int | None = None
    provider: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


class Section(BaseModel):
    """A part of a record. Keys it does not declare are kept as they were (a newer
    writer's figures, a runtime's own details); ``to_dict`` writes only the keys that
    were read or set, so that a stored record round-trips unchanged."""

    model_config = ConfigDict(extra="allow")

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


class ExecutedFigures(Section):
    """``executed``: what ran (precision, device, threads, provider) as read back from the
    runtime, the requests kept in flight, and the runtime's own details beside them."""

    precision: str | None = None
    device: str | None = None
    threads: int | None = None
    in_flight: int | None = None
    provider: str | None = None

    @classmethod
    def of(cls, executed: Executed, in_flight: int) -> ExecutedFigures:
        return cls(
            precision=executed.precision,
            device=executed.device,
            threads=executed.threads,
            in_flight=in_flight,
            provider=executed.provider,
            **executed.details,
        )


class Throughput(Section):
    """``throughput``: samples and requests per second over the measured window (never
    1 / mean latency), the window, and how many requests it and the warm-up held."""

    samples_per_s: float | None = None
    requests_per_s: float | None = None
    window_s: float | None = None
    requests: int | None = None
    warmup_requests: int | None = None
    capped: bool | None = None

    @classmethod
    def of(cls, loop: LoopRecord, batch: int) -> Throughput:
        window_s = loop.window_ns / 1e9
        return cls(
            samples_per_s=loop.completed * batch / window_s if window_s > 0 else None,
            requests_per_s=loop.completed / window_s if window_s > 0 else None,
            window_s=window_s,
            requests=loop.completed,
            warmup_requests=loop.warmup_count,
            capped=loop.capped,
        )


class Window(Section):
    """``window``: how the measured window and the warm-up before it ended
    (bench.core.stopping). ``stop`` is ``early`` (the figure's 95% interval narrowed to
    ±``target`` before the fixed window ended), ``window`` (the fixed window: its minimum
    time and count met, or no target) or ``cap`` (``measure.max_duration_s``);
    ``half_width`` is the interval's half-width when the window ended, relative to the
    figure (``figure``: ``median`` latency, or the ``rate`` of requests in the throughput
    scenario), from ``batches`` parts of the window; None where too few requests (or
    another program's loop: trtexec) gave none. ``warmup_s`` and ``warmup_stop``
    (``settled``, ``window``, ``cap``) say the same of the warm-up."""

    stop: str | None = None
    half_width: float | None = None
    target: float | None = None
    figure: str | None = None
    batches: int | None = None
    warmup_s: float | None = None
    warmup_stop: str | None = None

    @classmethod
    def of(cls, loop: LoopRecord) -> Window:
        return cls(
            stop=loop.stop,
            half_width=loop.half_width,
            target=loop.target,
            figure=loop.figure,
            batches=loop.batches,
            warmup_s=None if loop.warmup_ns is None else loop.warmup_ns / 1e9,
            warmup_stop=loop.warmup_stop,
        )


class Power(Section):
    """``power``: the source read and, over the measured window, average and peak watts
    and energy per request, per sample and its inverse; or ``unavailable`` with the
    reason (see bench.power.meter for every key)."""

    source: str | None = None
    unavailable: str | None = None
    avg_w: float | None = None
    peak_w: float | None = None
    energy_j: float | None = None
    j_per_request: float | None = None
    j_per_sample: float | None = None
    samples_per_j: float | None = None


class ColdStart(Section):
    """``cold_start``: seconds to start the worker, import the framework, export (and
    whether the export cache served it), build and load, then the first request (or, in
    the train scenario, the first step) in milliseconds; for an int8 cell, the seconds
    calibrating its QDQ copy took (and whether the cache served it)."""

    worker_start_s: float | None = None
    import_s: float | None = None
    export_s: float | None = None
    export_cache_hit: bool | None = None
    build_s: float | None = None
    build_cache_hit: bool | None = None
    load_s: float | None = None
    first_inference_ms: float | None = None
    first_step_ms: float | None = None
    calibrate_s: float | None = None
    calibrate_cache_hit: bool | None = None


class Memory(Section):
    """``memory``: the worker's peak resident set once the framework was imported, and at
    the end of the cell (MB)."""

    after_import_mb: float | None = None
    peak_rss_mb: float | None = None


HOST_BOUND_BELOW = 0.5
"""A GPU cell whose device computed less than this share of the wall time is host-bound:
the GPU mostly waited for the host (kernel launches, Python), as trtexec warns when the
enqueue time exceeds the GPU compute time."""


class DeviceMetrics(Section):
    """``device_metrics``: device-side figures where a runtime has them (peak device
    memory, the latency split into host→device, compute and device→host …), and from the
    device time per request (CUDA events: TensorRT's whole split, copies included, or
    PyTorch's forward) the share of the measured window the device was busy
    (``device_busy``) and whether that makes the cell ``host_bound``. PyTorch's events
    span the whole forward, so launch gaps inside it count as busy: what this catches
    there is host time between requests."""

    peak_allocated_mb: float | None = None
    compute_ms: float | None = None
    device_busy: float | None = None
    host_bound: bool | None = None

    @classmethod
    def of(cls, figures: dict[str, Any], loop: LoopRecord) -> DeviceMetrics:
        """The runtime's ``figures``, with the busy share where they hold a device time:
        device ms per request × requests ÷ the window's ms. With several requests in
        flight on several streams it can pass 1."""
        metrics = cls(**figures)
        device_ms = figures.get("latency_ms", metrics.compute_ms)  # the split's sum, if any
        if isinstance(device_ms, (int, float)) and loop.window_ns > 0 and loop.completed:
            metrics.device_busy = device_ms * loop.completed / (loop.window_ns / 1e6)
            metrics.host_bound = metrics.device_busy < HOST_BOUND_BELOW
        return metrics


class TaskAccuracy(Section):
    """``accuracy.dataset``: the cell scored on labelled data (``--dataset``). ``metric``:
    ``top1`` for a classifier, ``miou`` (mean IoU over the classes present) for
    segmentation, else ``agreement`` (cosine similarity with the reference outputs, also
    where the data has no labels); ``value`` from 0 to 1, ``reference_value`` the
    reference's on the same samples; ``top5`` beside them for a classifier of five classes
    or more. ``samples`` scored; ``labels_outside`` counts labels beyond the model's classes
    (left out of the metric, not counted wrong); ``dataset`` and ``split`` say what was
    scored, ``digest`` is the scored samples' and labels' content (two runs scored the
    same data where it is equal); ``unavailable`` why there is no metric."""

    dataset: str | None = None
    digest: str | None = None
    split: str | None = None
    samples: int | None = None
    metric: str | None = None
    value: float | None = None
    reference_value: float | None = None
    top5: float | None = None
    reference_top5: float | None = None
    labels_outside: int | None = None
    unavailable: str | None = None


class Accuracy(Section):
    """``accuracy``: the cell's first outputs against the reference on the same input,
    and the verdict under the requested precision's tolerance. ``reference`` says what
    made the reference (PyTorch FP32, or ONNX Runtime on the CPU for an ONNX file);
    ``unavailable`` why there is no verdict. With ``--dataset`` the figures are over every
    scored sample against the reference's outputs on them, and ``dataset`` holds the task
    metric."""

    reference: str | None = None
    unavailable: str | None = None
    max_abs_error: float | None = None
    max_rel_error: float | None = None
    scaled_error: float | None = None
    cosine_similarity: float | None = None
    top1_agreement: float | None = None
    tolerance: str | None = None
    verdict: str | None = None
    dataset: TaskAccuracy | None = None


class Serving(Section):
    """``loadgen``: an MLPerf LoadGen cell's run as LoadGen judged it (bench.harness.serving).
    ``valid`` and ``why`` not (LoadGen's words); ``scenario`` in LoadGen's name; the
    Server's ``target_qps`` (the Offline query's expected rate), ``scheduled_qps`` and
    ``completed_qps`` (samples/s); per-sample latency percentiles in ms (``latency_ms``:
    p50 … p99.9, mean, min, max), per query too in MultiStream (``query_latency_ms``);
    ``early_stopping`` (LoadGen's text) and its percentile estimate; the limits the run
    had (``min_duration_s``, ``min_query_count``, ``target_latency_ms`` at
    ``target_percentile``) and what it did (``query_count``, ``duration_s``); ``errors``
    LoadGen logged. ``search``: a Server peak search's runs (``probes``, the latency-vs-
    load curve), ``peak_qps`` and its method. An INVALID run keeps its figures beside
    ``valid = false``: no reader takes them for a result."""

    scenario: str | None = None
    valid: bool | None = None
    why: list[str] | None = None
    target_qps: float | None = None
    scheduled_qps: float | None = None
    completed_qps: float | None = None
    latency_ms: dict[str, float] | None = None
    query_latency_ms: dict[str, float] | None = None
    early_stopping: str | None = None
    early_stopping_ms: float | None = None
    min_duration_s: float | None = None
    min_query_count: int | None = None
    query_count: int | None = None
    samples_per_query: int | None = None
    target_latency_ms: float | None = None
    target_percentile: float | None = None
    duration_s: float | None = None
    errors: list[str] | None = None
    search: dict[str, Any] | None = None


class Training(Section):
    """``training``: the loss at the first and last timed step of a train cell (in place
    of an accuracy check), the steps taken and the FLOPs of a step per forward pass."""

    loss: str | None = None
    loss_first: float | None = None
    loss_last: float | None = None
    steps: int | None = None
    flop_factor: int | None = None


class ModelInfo(Section):
    """``model``: where the model came from and what it costs per sample."""

    source: str | None = None
    task: str | None = None
    params: int | None = None
    flops_per_sample: int | None = None
    onnx: str | None = None
    inputs: list[dict[str, Any]] | None = None
    """Each input as fed: name, shape, dtype and where its values came from (range)."""


class RepetitionSummary(Section):
    """One repetition of a merged cell (``run --repeat``): its status and median."""

    repetition: int = 0
    status: str | None = None
    median_ms: float | None = None


def _cell(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    try:
        return Cell.from_dict(value)
    except (KeyError, TypeError, ValueError) as exc:  # pydantic reports ValueErrors
        raise ValueError(f"not a cell ({type(exc).__name__}: {exc})") from None


StoredCell = Annotated[Cell, BeforeValidator(_cell), PlainSerializer(Cell.to_dict)]


class Measured(Section):
    """What a worker measured for one cell: the figures of its timed window, cold start,
    memory, accuracy and the raw per-request times."""

    executed: ExecutedFigures | None = None
    latency_ms: Summary | None = None
    unstable: bool | None = None
    throughput: Throughput | None = None
    window: Window | None = None
    power: Power | None = None
    cold_start: ColdStart | None = None
    memory: Memory | None = None
    device_metrics: DeviceMetrics | None = None
    accuracy: Accuracy | None = None
    training: Training | None = None
    loadgen: Serving | None = None
    notes: list[str] | None = None
    raw_times_ms: list[float] | None = None
    traceback: str | None = None
    attached: dict[str, str] | None = None
    """Files to keep beside the record (LoadGen's logs), name → text: the run folder
    writes them under ``cells/`` and stores their paths in ``files`` instead."""
    files: list[str] | None = None
    """The files kept beside the record, relative to the run folder."""

    @classmethod
    def timed(
        cls,
        executed: Executed,
        loop: LoopRecord,
        batch: int,
        cv_threshold: float,
        power: dict[str, Any],
        **sections: Any,
    ) -> Measured:
        """A timed cell's figures (inference or training): what ran, the latency summary
        and whether it is unstable, throughput and power over the same window, how the
        window ended, the raw times, and ``sections`` (cold start, memory, accuracy …) as
        given (a LoadGen cell gives its own throughput)."""
        summary = Summary.from_ns(loop.times_ns)
        figures: dict[str, Any] = {
            "executed": ExecutedFigures.of(executed, loop.in_flight),
            "latency_ms": summary,
            "unstable": summary.cv > cv_threshold,
            "throughput": Throughput.of(loop, batch),
            "window": Window.of(loop),
            "power": Power(**power),
        }
        return cls(**{**figures, **sections, "raw_times_ms": [t / 1e6 for t in loop.times_ns]})

    def sections(self) -> dict[str, Any]:
        """The sections that were set, as typed values."""
        return {name: getattr(self, name) for name in self.model_fields_set}


_HEAD = (
    "schema_version",
    "run_id",
    "key",
    "cell",
    "status",
    "reason",
    "phase",
    "requested",
    "model",
)
_TAIL = ("started_at", "finished_at", "repetition", "repetitions")


class CellRecord(Measured):
    """One line of results.jsonl: a cell, its status (``ok``, ``skipped``, ``failed``,
    ``crashed``, ``timeout``) and reason, and what was measured. ``repetition`` numbers
    the worker runs of a cell (``run --repeat``); a record merged from several carries
    ``repetitions``."""

    schema_version: int = SCHEMA_VERSION
    run_id: str = ""
    key: str
    cell: StoredCell
    status: str
    reason: str | None = None
    phase: str | None = None
    """Where a cell that did not end ``ok`` stopped: export, build, load, timed loop …"""
    requested: dict[str, Any] | None = None
    model: ModelInfo | None = None
    started_at: float | None = None
    finished_at: float | None = None
    repetition: int = 0
    repetitions: list[RepetitionSummary] | None = None
    node: dict[str, Any] | None = None
    """Where a fleet run measured the cell: the Ray node's name, id and address, and the
    GPUs Ray gave it."""

    @classmethod
    def new(
        cls,
        run_id: str,
        cell: Cell,
        status: str,
        reason: str | None = None,
        measured: Measured | None = None,
        model: ModelInfo | None = None,
        started_at: float | None = None,
        repetition: int = 0,
        phase: str | None = None,
    ) -> CellRecord:
        """The record of a cell that just ended (its time of ending is now)."""
        finished_at = time.time()
        where = {"phase": phase} if phase else {}
        return cls(
            schema_version=SCHEMA_VERSION,
            run_id=run_id,
            key=cell.key,
            cell=cell,
            status=status,
            reason=reason,
            **where,
            requested={"precision": cell.precision, "device": cell.device},
            model=model,
            **(measured.sections() if measured else {}),
            started_at=started_at or finished_at,
            finished_at=finished_at,
            repetition=repetition,
        )

    def to_dict(self) -> dict[str, Any]:
        """The record as results.jsonl holds it: what the cell is first, then its figures,
        then when it ran."""
        data = super().to_dict()
        head = {name: data.pop(name) for name in _HEAD if name in data}
        tail = {name: data.pop(name) for name in _TAIL if name in data}
        return {**head, **data, **tail}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CellRecord:
        """A stored record; pydantic's ValidationError (a ValueError) when it is none."""
        return cls.model_validate(data)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def failed(self) -> bool:
        """Failed, crashed or timed out (a skipped cell did not fail)."""
        return self.status in FAILED_STATUSES

    @property
    def executed_precision(self) -> str:
        """The precision that ran (read back), else the one asked for."""
        return (self.executed and self.executed.precision) or self.cell.precision

    @property
    def median_ms(self) -> float | None:
        return self.latency_ms.median if self.latency_ms else None

    @property
    def samples_per_s(self) -> float | None:
        return self.throughput.samples_per_s if self.throughput else None

    @property
    def verdict(self) -> str | None:
        """The accuracy verdict (pass, warn, fail), None where there was no check."""
        return self.accuracy.verdict if self.accuracy else None

    @property
    def scored(self) -> TaskAccuracy | None:
        """The task metric on labelled data (``--dataset``), None where none was scored."""
        return self.accuracy.dataset if self.accuracy else None

    @property
    def j_per_sample(self) -> float | None:
        return self.power.j_per_sample if self.power else None

    @property
    def host_bound(self) -> bool:
        """Whether this GPU cell's device mostly waited for the host (DeviceMetrics)."""
        return bool(self.device_metrics and self.device_metrics.host_bound)

    @property
    def flop_factor(self) -> int:
        """FLOPs per sample relative to one forward pass: a training step's factor (3),
        1 for inference."""
        return (self.training and self.training.flop_factor) or 1
