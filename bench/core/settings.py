"""Settings that cross the worker boundary as typed values: how long to measure, which
power source to read, and the base of every runtime's own options model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from bench.core.budget import AccuracyBudget
from bench.core.timing import StopRule


class Strict(BaseModel):
    """A table of ``bench.toml``: unknown keys are errors, values are frozen, a number is
    finite and of its field's type (``true`` is no batch size)."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        allow_inf_nan=False,
        use_attribute_docstrings=True,
    )


class RuntimeSettings(Strict):
    """The base of a runtime's options model (``[runtime.<name>]`` in ``bench.toml``): each
    runtime declares its own subclass as ``Runtime.options``. ``program_fields`` name the
    options that choose a program to execute: ``--resume`` does not take those from a
    results folder."""

    program_fields: ClassVar[tuple[str, ...]] = ()


class MeasureConfig(Strict):
    """When warm-up and measurement end (bench.core.stopping).

    Fixed windows, like trtexec and benchmark_app: warm-up until both ``warmup_s`` and
    ``warmup_min_iters`` are met, then measure until both ``min_duration_s`` and
    ``min_iters`` are. With ``half_width`` above 0 each may end sooner: the warm-up once
    its last batches agree within ±``settle``, the measured window once its figure's 95%
    interval is within ±``half_width`` of it. ``max_duration_s`` caps either, so that a
    very slow cell still ends. ``half_width = 0`` gives the fixed windows alone (before
    early stopping the cap was 60 s). The defaults were chosen by measurement
    (scripts/stop_rule.py, docs/measured.md)."""

    warmup_s: float = Field(1.0, ge=0)
    warmup_min_iters: int = Field(10, ge=0)
    min_duration_s: float = Field(3.0, ge=0)
    min_iters: int = Field(50, ge=1)
    max_duration_s: float = Field(5.0, gt=0)
    half_width: float = Field(0.01, ge=0, lt=1)
    settle: float = Field(0.05, gt=0, lt=1)
    cv_threshold: float = Field(0.10, gt=0)
    """A cell whose coefficient of variation is above this is marked unstable."""

    def warmup_rule(self) -> StopRule:
        """When warm-up ends (capped like the measurement)."""
        settle = self.settle if self.half_width > 0 else 0.0
        return StopRule(self.warmup_s, self.warmup_min_iters, self.max_duration_s, settle=settle)

    def measurement_rule(self) -> StopRule:
        """When the measured window ends."""
        return StopRule(
            self.min_duration_s, self.min_iters, self.max_duration_s, half_width=self.half_width
        )


class QuantizeConfig(Strict):
    """``[quantize]``: how an int8 cell's QDQ model is made from the FP32 one (post-training
    static quantization, per-channel weights). Calibration runs ``calibration_samples``
    samples through the FP32 model: the model's own seeded generated inputs (other seeds
    than the accuracy check's), or the arrays of ``calibration_data`` (an ``.npz`` with one
    array per input, samples on the first axis). ``method`` sets how the activation ranges
    are chosen from what calibration saw."""

    calibration_samples: int = Field(32, ge=1, le=100_000)
    method: Literal["minmax", "entropy", "percentile"] = "minmax"
    calibration_data: str | None = None


def _checked_budget(value: str | None) -> str | None:
    if value is not None:
        AccuracyBudget.parse(value)  # ValueError naming the forms: one line from config
    return value


def _as_text(value: object) -> object:
    """A number as written in TOML (``budget = 1``) as the text of its points."""
    return f"{value:g}" if isinstance(value, int | float) and not isinstance(value, bool) else value


BudgetText = Annotated[str | None, BeforeValidator(_as_text), AfterValidator(_checked_budget)]
"""An accuracy budget as written (``1``, ``"1pt"``, ``"2%"``), checked as it is read."""


class DatasetConfig(Strict):
    """``[dataset]``: labelled data every cell is scored on (bench.harness.dataset).
    ``path``: an ``.npz`` of arrays named as the model's inputs (samples on the first axis)
    plus ``labels``, or an ImageFolder tree (one folder of images per class) read with
    ``preset`` (resize, crop, normalise). The samples are shuffled with ``seed``; in a run
    with int8 cells and no ``[quantize] calibration_data`` file, the first
    ``calibration_samples`` of them calibrate those cells and are never scored; then at
    most ``samples`` are scored (0: all the rest). ``ignore_index``: the label
    segmentation leaves out (VOC's 255).
    ``budget``: how far the metric may fall below the FP32 reference (``1``: one point
    of top-1; ``2%``: relative), gating the speedup table and ``tune``."""

    path: str | None = Field(None, min_length=1)
    preset: str | None = None
    samples: int = Field(500, ge=0)
    seed: int = Field(0, ge=0)
    ignore_index: int = 255
    budget: BudgetText = None

    def accuracy_budget(self) -> AccuracyBudget | None:
        """The parsed ``budget``, None where none was given."""
        return AccuracyBudget.parse(self.budget) if self.budget is not None else None


MLPERF_SEEDS = (1780908523862526354, 14771362308971278857, 18209322760996052031)
"""LoadGen's seeds in MLPerf Inference's mlperf.conf: the sample library's, the sample
indices' and the Server schedule's."""


class LoadgenConfig(Strict):
    """``[loadgen]``: how MLPerf LoadGen runs the ``single_stream``, ``multi_stream``,
    ``server`` and ``offline`` cells (bench.harness.serving). MLPerf's own values (its
    mlperf.conf) are named where ours differ; ours are shorter, for a table in minutes.

    ``min_duration_s`` and ``min_query_count``: a run lasts at least this long and issues
    at least this many queries (MLPerf: 600 s; 662 queries in MultiStream, 24,576 samples
    in ResNet-50's Offline). ``latency_bound_ms``: the Server bound on the
    ``server_percentile`` latency (MLPerf: 10 ms by default, ResNet-50 15 ms, BERT 130 ms).
    ``target_qps``: the Server's Poisson arrival rate; 0 searches for the highest rate
    whose run is VALID (``search``: ``bisect``, our bisection over LoadGen runs that keeps
    each probe's latencies for the load curve, or ``loadgen``, LoadGen's own
    FindPeakPerformance), to within ``search_precision`` of the rate, in at most
    ``search_runs`` runs. ``samples_per_query``: MultiStream's query size (MLPerf: 8).
    ``sample_count``: the sample library's size (MLPerf's ResNet-50: 1024). Seeds:
    MLPerf's published ones by default."""

    min_duration_s: float = Field(10.0, gt=0, le=7 * 24 * 3600)
    min_query_count: int = Field(100, ge=1)
    latency_bound_ms: float = Field(10.0, gt=0)
    server_percentile: float = Field(0.99, gt=0, lt=1)
    single_stream_percentile: float = Field(0.90, gt=0, lt=1)
    """SingleStream's reported latency percentile (MLPerf: 90th)."""
    multi_stream_percentile: float = Field(0.99, gt=0, lt=1)
    """MultiStream's reported latency percentile (MLPerf: 99th)."""
    target_qps: float = Field(0.0, ge=0)
    search: Literal["bisect", "loadgen"] = "bisect"
    search_precision: float = Field(0.05, gt=0, lt=1)
    search_runs: int = Field(8, ge=2, le=64)
    samples_per_query: int = Field(8, ge=1)
    sample_count: int = Field(1024, ge=1)
    qsl_seed: int = Field(MLPERF_SEEDS[0], ge=0, lt=2**64)
    """LoadGen's sample library seed."""
    sample_index_seed: int = Field(MLPERF_SEEDS[1], ge=0, lt=2**64)
    """LoadGen's sample index seed."""
    schedule_seed: int = Field(MLPERF_SEEDS[2], ge=0, lt=2**64)
    """LoadGen's Server schedule seed."""


@dataclass(frozen=True)
class PowerSettings:
    """``suite.power`` (auto, a source name or none), the sampling rate for polled
    sources, and the seconds of idle baseline before the cell (0 = none)."""

    source: str = "auto"
    sample_hz: float = 20.0
    idle_s: float = 0.0
