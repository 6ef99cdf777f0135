"""``bench.toml``: reading, profiles, validation. Every mistake becomes a one-line UserError."""

from __future__ import annotations

import copy
import re
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, create_model, field_validator

from bench.core.errors import UserError
from bench.core.metrics import DEFAULT_ALPHA, METRICS
from bench.core.settings import (
    BudgetText,
    DatasetConfig,
    LoadgenConfig,
    MeasureConfig,
    QuantizeConfig,
    RuntimeSettings,
    Strict,
)
from runtimes import RUNTIMES

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 (JetPack 6)
    import tomli as tomllib

_FORMS = {
    kind: form for runtime in RUNTIMES.values() for kind, form in runtime.device_forms.items()
}
"""Every device kind some runtime accepts (``Runtime.device_forms``), and its forms."""
_DEVICE = re.compile("^(" + "|".join(pattern for pattern, _ in _FORMS.values()) + ")$")
DEVICE_FORMS = ", ".join(text for _, text in _FORMS.values())
MAX_BATCH = 2**20
"""A batch beyond this is a typo, not a workload."""
OPSET_RANGE = (7, 23)
"""The opsets torch.onnx writes (``torch.onnx._constants``: ONNX_MIN_OPSET to ONNX_MAX_OPSET
in torch 2.9 to 2.14); the export worker checks the installed torch's own range."""


class SuiteConfig(Strict):
    """The matrix of cells and how each cell's worker runs."""

    name: str = "default"
    """The suite's name: the run folder is <time>-<name>."""
    models: list[str] = Field(default_factory=lambda: ["mlp"], min_length=1)
    """Zoo models to measure (python cli.py list names them)."""
    runtimes: list[str] = Field(default_factory=lambda: ["pytorch", "onnxruntime"], min_length=1)
    """Runtimes to measure them on: pytorch, onnxruntime, openvino, tensorrt."""
    devices: list[str] = Field(default_factory=lambda: ["cpu"], min_length=1)
    """Devices: cpu, cuda[:N], gpu[.N], npu, dla:N, myriad, auto:/hetero:/multi: lists."""
    precisions: list[Literal["fp32", "fp16", "bf16", "int8"]] = Field(
        default_factory=lambda: ["fp32"], min_length=1
    )
    """Precisions asked for: fp32, fp16, bf16, int8 (what ran is read back)."""
    batch_sizes: list[int] = Field(default_factory=lambda: [1], min_length=1)
    """Batch sizes, each its own cells."""
    scenarios: list[
        Literal[
            "latency", "throughput", "train", "single_stream", "multi_stream", "server", "offline"
        ]
    ] = Field(default_factory=lambda: ["latency"], min_length=1)
    """Latency, throughput, train, and LoadGen's single_stream, multi_stream, server, offline."""
    threads: int = Field(0, ge=0, description="intra-op threads in all; 0 = physical cores")
    in_flight: int = Field(0, ge=0, description="requests in flight (throughput); 0 = auto")
    seed: int = Field(0, ge=0, le=2**32 - 1)
    """The seed of generated weights and inputs."""
    opset: int = Field(18, ge=OPSET_RANGE[0], le=OPSET_RANGE[1])
    """The ONNX opset models are exported at."""
    cell_timeout_s: float = Field(600.0, gt=0, le=7 * 24 * 3600)
    """Seconds a cell's worker may take before it is stopped (timeout)."""
    export_timeout_s: float = Field(
        600.0, gt=0, le=7 * 24 * 3600, description="preparing a model: export, reference"
    )
    repeat: int = Field(1, ge=1, le=1000, description="worker runs per cell, interleaved")
    cache_dir: str | None = None
    """The export, engine and dataset cache (default: the platform's cache folder)."""
    results_dir: str = "results"
    """Where run folders are made."""
    power: Literal["auto", "nvml", "rapl", "jetson", "tegrastats", "none"] = Field(
        "auto", description="power source; auto = what the machine has for the cell's device"
    )
    power_sample_hz: float = Field(20.0, gt=0, le=1000, description="power readings per second")
    power_idle_s: float = Field(0.0, ge=0, le=600, description="idle baseline first; 0 = off")

    @field_validator("batch_sizes")
    @classmethod
    def _positive_batches(cls, value: list[int]) -> list[int]:
        if any(b < 1 or b > MAX_BATCH for b in value):
            raise ValueError(f"batch sizes must be 1 to {MAX_BATCH:,}")
        return value

    @field_validator("devices", mode="before")
    @classmethod
    def _known_devices(cls, value: list[str]) -> list[str]:
        if not isinstance(value, list):
            return value
        value = [str(device).lower() for device in value]
        for device in value:
            if not _DEVICE.match(device):
                raise ValueError(f"unknown device '{device}': use one of {DEVICE_FORMS}")
        return [{"cuda": "cuda:0", "dla": "dla:0"}.get(d, d) for d in value]

    @field_validator("models", "runtimes", "devices", "precisions", "batch_sizes", "scenarios")
    @classmethod
    def _without_repeats(cls, value: list) -> list:
        """A value given twice (``cuda`` and ``cuda:0`` too) names one cell, not two."""
        return list(dict.fromkeys(value))


class _RuntimeTables(Strict):
    """``[runtime.<name>]``: one table per registered runtime, its own options model."""

    def of(self, runtime: str) -> RuntimeSettings:
        """The options of ``runtime`` (a registered name)."""
        return getattr(self, runtime)


RuntimeOptions = create_model(
    "RuntimeOptions",
    __base__=_RuntimeTables,
    **{name: (runtime.options, runtime.options()) for name, runtime in RUNTIMES.items()},
)


class CompareConfig(Strict):
    """The regression gate (``compare``): a change counts when it is significant at
    ``alpha`` and larger than its metric's threshold (a fraction: 0.05 = 5%)."""

    threshold: float | None = Field(None, gt=0, lt=10)
    """Every metric without a threshold of its own; unset: the built-in ones."""
    thresholds: dict[str, float] = Field(default_factory=dict)
    """A threshold per metric by name, e.g. latency_p99 = 0.5."""
    alpha: float = Field(DEFAULT_ALPHA, gt=0, lt=0.5)
    threshold_model: Literal["percentage", "t-test", "iqr"] = "percentage"
    """``t-test``/``iqr``: each cell's threshold from its own noise over the runs given
    with ``compare --noise`` (bench.compare.noise)."""
    accuracy_budget: BudgetText = None
    """How far a task metric on labelled data may fall (``1``: one point of top-1;
    ``2%``: relative) before the cell has regressed; unset: shown, not judged."""

    @field_validator("thresholds")
    @classmethod
    def _known_metrics(cls, value: dict[str, float]) -> dict[str, float]:
        for name, threshold in value.items():
            if name not in METRICS:
                raise ValueError(f"unknown metric '{name}': use one of {', '.join(METRICS)}")
            if not 0 < threshold < 10:
                raise ValueError(f"threshold of {name} must be a fraction above 0, e.g. 0.05")
        return value


class AbConfig(Strict):
    """The paired A/B gate (``ab``): each worker loads both sides and alternates their
    requests; workers are added until the ratio's interval is within ``half_width`` (a
    fraction of the ratio) or a cell has measured for ``max_s`` seconds, at least
    ``min_workers`` of them; a change counts when the interval excludes no change and
    the ratio is beyond ``threshold``. An alert is re-measured by fresh workers
    (``confirm``) before it fails the gate."""

    threshold: float = Field(0.01, gt=0, lt=10)
    half_width: float = Field(0.005, gt=0, lt=1)
    max_s: float = Field(120.0, gt=0)
    min_workers: int = Field(3, ge=2, le=1000)
    worker_s: float = Field(4.0, gt=0)
    """Seconds a paired worker measures."""
    warmup_s: float = Field(0.5, ge=0)
    """Seconds a paired worker warms up first."""
    max_pairs: int = Field(4000, ge=10)
    """Request pairs a worker keeps at most."""
    confirm: bool = True


class HostConfig(Strict):
    """``[hosts.NAME]``: a device reached over SSH (``run --host NAME``).

    ``address`` is ``[user@]host[:port]`` or an alias of the ssh config; ``mode`` picks how
    cells run there: ``tools`` (the device's own trtexec and benchmark_app, no Python
    needed), ``agent`` (deploybench installed there runs them) or ``auto`` (agent where
    ``deploybench`` answers, else tools). ``workdir`` holds the copied models, engines
    and runs on the device. ``trtexec`` and ``benchmark_app`` are the tools' paths there
    where they are not found by themselves (on PATH; trtexec also in JetPack's
    /usr/src/tensorrt/bin): benchmark_app in the virtual environment OpenVINO 2022.3's
    install guide makes, say. ``openvino_setupvars`` is the 2022.3 archive's setupvars.sh,
    sourced before benchmark_app (its MYRIAD plugin is the archive's; the PyPI wheel has
    none), where it is not in /opt/intel/openvino_2022* or ~/intel/openvino_2022*.
    ``power_interval_ms`` is tegrastats' interval."""

    address: str
    mode: Literal["auto", "tools", "agent"] = "auto"
    workdir: str = "~/.cache/deploybench-remote"
    deploybench: str = Field("deploybench", min_length=1, description="the command, on the device")
    trtexec: str | None = None
    benchmark_app: str | None = None
    openvino_setupvars: str | None = None
    ssh_config: str | None = None
    """An ssh config file (ssh -F)."""
    ssh_options: list[str] = Field(default_factory=list)
    """More ssh -o options, e.g. ProxyJump=gateway."""
    connect_timeout_s: float = Field(10.0, gt=0, le=600)
    """Seconds to connect before giving up."""
    power_interval_ms: int = Field(100, ge=10, le=10_000)

    @field_validator("workdir", "trtexec", "benchmark_app", "openvino_setupvars")
    @classmethod
    def _plain_path(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"~?[A-Za-z0-9_./-]+", value):
            raise ValueError("must be a plain path (letters, digits, _ . / - and ~)")
        return value


class ClusterConfig(Strict):
    """``[cluster]``: a Ray cluster to run the suite on (``run --cluster``).

    ``address`` is ``auto`` (the cluster this machine belongs to, as ``ray start`` left
    it), ``HOST:PORT`` (its head's GCS port, 6379 unless changed) or ``ray://HOST:PORT``
    (Ray Client); set here, ``run`` goes to the cluster without ``--cluster``. ``plan``:
    ``compare`` runs the suite on every chosen node, one machine per column; ``shard``
    spreads one suite's cells over nodes of one hardware fingerprint. ``nodes`` chooses
    nodes by name, address or node-id prefix (default: every node that offers Ray a
    CPU). ``per_gpu`` lets a multi-GPU node measure one cell per GPU at once (default:
    one cell per node at a time)."""

    address: str | None = Field(None, min_length=1)
    plan: Literal["compare", "shard"] = "compare"
    nodes: list[str] = Field(default_factory=list)
    per_gpu: bool = False
    connect_timeout_s: float = Field(10.0, gt=0, le=600)
    """Seconds to join the cluster before giving up."""


class BenchConfig(Strict):
    """A whole ``bench.toml`` after a profile has been applied."""

    suite: SuiteConfig = SuiteConfig()
    measure: MeasureConfig = MeasureConfig()
    runtime: RuntimeOptions = RuntimeOptions()
    compare: CompareConfig = CompareConfig()
    ab: AbConfig = AbConfig()
    quantize: QuantizeConfig = QuantizeConfig()
    loadgen: LoadgenConfig = LoadgenConfig()
    dataset: DatasetConfig = DatasetConfig()
    hosts: dict[str, HostConfig] = Field(default_factory=dict)
    cluster: ClusterConfig = ClusterConfig()


def load_config(
    path: Path, profile: str | None = None, overrides: dict[str, Any] | None = None
) -> BenchConfig:
    """Read ``path``, apply ``[profiles.<profile>]`` and then ``overrides`` (``{"suite":
    {...}, "measure": {...}}``), and validate. Raises UserError with one line on any fault."""
    if not path.is_file():
        raise UserError(f"config file not found: {path} (pass --config PATH)")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: malformed TOML: {exc}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text: save the suite file as UTF-8") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read it ({exc.strerror})") from None
    return config_from_dict(raw, profile, overrides, origin=str(path))


def config_from_dict(
    raw: dict[str, Any],
    profile: str | None = None,
    overrides: dict[str, Any] | None = None,
    origin: str = "bench.toml",
) -> BenchConfig:
    """Validate an already-parsed configuration (see ``load_config``)."""
    data = copy.deepcopy(raw)
    profiles = data.pop("profiles", {})
    if not isinstance(profiles, dict):
        raise UserError(f"{origin}: [profiles] must be a table of [profiles.NAME] tables")
    if profile is not None:
        if profile not in profiles:
            names = ", ".join(sorted(profiles)) or "none defined"
            raise UserError(f"{origin}: unknown profile '{profile}' (profiles: {names})")
        if not isinstance(profiles[profile], dict):
            raise UserError(f"{origin}: [profiles.{profile}] must be a table of settings")
        data = _merge(data, profiles[profile])
    data = _merge(data, overrides or {})
    try:
        return BenchConfig.model_validate(data)
    except ValidationError as exc:
        raise UserError(f"{origin}: {_first_error(exc)}") from None


def profile_names(path: Path) -> list[str]:
    """The profiles a config file defines (empty when it cannot be read)."""
    try:
        return sorted(tomllib.loads(path.read_text()).get("profiles", {}))
    except (OSError, tomllib.TOMLDecodeError):
        return []


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    location = tuple(p for p in error["loc"] if not isinstance(p, int))
    table = ".".join(str(p) for p in location[:-1])
    key = location[-1] if location else ""
    where = f"[{table}] " if table else ""
    if error["type"] == "extra_forbidden":
        model = _model_at(location[:-1])
        allowed = ", ".join(model.model_fields) if model else ""
        return f"{where}unknown key '{key}' (allowed: {allowed})"
    return f"{where}{key}: {error['msg'].removeprefix('Value error, ')}"


def _model_at(location: tuple) -> type[BaseModel] | None:
    model: type[BaseModel] = BenchConfig
    for part in location:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model
