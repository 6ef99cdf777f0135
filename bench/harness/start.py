"""Starting and resuming a run: everything the user gave is checked (one-line errors,
before any cell runs), then the run directory and its files are made, or an earlier one
is taken up again without trusting what it names."""

from __future__ import annotations

import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from bench.core.errors import UserError
from bench.core.spec import BATCH, PreparedModel, TensorSpec
from bench.harness.config import BenchConfig, load_config
from bench.harness.dataset import Dataset, check_dataset, load_dataset
from bench.harness.environment import fingerprint
from bench.harness.overrides import OVERRIDES
from bench.harness.plan import ModelRequest, PlannedCell, expand
from bench.harness.results import ENVIRONMENT_FILE, FLEET_FILE, RUN_FILE, SUITE_FILE, RunDir
from exporters.cache import default_cache_dir
from exporters.onnx_file import (
    inspect_onnx,
    load_inputs_file,
    parse_range_args,
    parse_shape_args,
)
from exporters.pretrained import is_pretrained
from exporters.zoo import get_entry
from runtimes import RUNTIMES


@dataclass
class RunRequest:
    """A ``run`` as the user asked for it (paths unresolved, overrides not yet applied)."""

    config_path: Path
    profile: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    onnx: Path | None = None
    factory: str | None = None
    shapes: list[str] = field(default_factory=list)
    ranges: list[str] = field(default_factory=list)
    inputs: Path | None = None
    cache_dir: Path | None = None
    weights: str | None = None


@dataclass
class Run:
    """A run ready to execute: its directory, its resolved suite and its cells."""

    run_dir: RunDir
    config: BenchConfig
    models: list[ModelRequest]
    planned: list[PlannedCell]
    cache_dir: Path
    resumed: bool = False
    dataset: Dataset | None = None
    """The labelled data the cells are scored on (``--dataset``), read once."""


@dataclass(frozen=True)
class Setup:
    """A new run resolved from everything the user gave, checked, nothing written yet:
    the suite file read once with the profile and flags over it (``config``, immutable,
    passed down from here), the models and the cache."""

    request: RunRequest
    config: BenchConfig
    models: list[ModelRequest]
    cache_dir: Path
    dataset: Dataset | None = None


def settle(request: RunRequest) -> Setup:
    """Validate everything the user gave (one-line errors, before anything is written)
    and read the suite once."""
    overrides = {key: dict(value) for key, value in request.overrides.items()}
    shapes = parse_shape_args(request.shapes)
    ranges = parse_range_args(request.ranges)
    _check_user_model_flags(request, overrides, bool(shapes), bool(ranges))
    known: dict[str, tuple[TensorSpec, ...]] = {}  # inputs read already, by model
    if request.onnx:
        if "batch_sizes" in overrides.get("suite", {}):
            raise UserError(
                "--batch-sizes does not apply to --onnx: the batch is the first input's "
                "leading size, given with --shape"
            )
        data = load_inputs_file(request.inputs) if request.inputs else None
        model = ModelRequest.user_onnx(request.onnx, shapes, ranges, request.inputs)
        inspected = inspect_onnx(request.onnx, shapes, ranges, data)
        known[model.name] = inspected.inputs
        overrides.setdefault("suite", {}).update(_onnx_suite(request.onnx, inspected))
    elif request.factory and is_pretrained(request.factory):
        model = ModelRequest.pretrained(request.factory, request.weights, shapes, ranges)
        overrides.setdefault("suite", {}).setdefault("name", model.name)
    elif request.factory:
        model = ModelRequest.user_factory(request.factory, shapes, ranges)
        overrides.setdefault("suite", {}).setdefault("name", model.name)
    config = load_config(request.config_path, request.profile, overrides)
    _check_dataset_flags(overrides.get("dataset", {}), config.dataset.path)
    if config.quantize.calibration_data:  # read now: a bad file is one line before any cell
        data = Path(config.quantize.calibration_data).resolve()  # --resume may run elsewhere
        load_inputs_file(data, "--calibration-data")
        quantize = config.quantize.model_copy(update={"calibration_data": str(data)})
        config = config.model_copy(update={"quantize": quantize})
    largest = {BATCH: max(config.suite.batch_sizes)}
    if request.onnx or request.factory:
        models = [model]
        if model.kind == "factory" and shapes:  # float32 unless its examples say otherwise
            specs = tuple(TensorSpec(n, (BATCH, *d[1:])) for n, d in shapes.items())
            what = f"the --shape inputs at batch {largest[BATCH]}"
            _check_fits(specs, largest, what, "give smaller --shape sizes")
    else:
        models = []
        for name in config.suite.models:
            entry = get_entry(name)
            what, fix = f"{name}'s inputs at this batch", "give smaller --batch-sizes"
            _check_fits(entry.inputs, largest, what, fix)
            models.append(ModelRequest(entry.name, "zoo", name))
    cache_dir = usable_cache_dir(
        request.cache_dir or Path(config.suite.cache_dir or default_cache_dir())
    )
    config, dataset = read_dataset(config, models, known)
    return Setup(request, config, models, cache_dir, dataset)


def read_dataset(
    config: BenchConfig,
    models: list[ModelRequest],
    known: dict[str, tuple[TensorSpec, ...]] | None = None,
) -> tuple[BenchConfig, Dataset | None]:
    """The suite's dataset read, with its path made absolute (``--resume`` may run from
    elsewhere) and checked against every model whose inputs are known before it is
    prepared (``known``: read already, by model name; zoo models; ONNX files); the rest
    are checked as they are prepared."""
    if config.dataset.path is None:
        return config, None
    path = Path(config.dataset.path).resolve()
    config = config.model_copy(
        update={"dataset": config.dataset.model_copy(update={"path": str(path)})}
    )
    calibrates = "int8" in config.suite.precisions and not config.quantize.calibration_data
    calibration = config.quantize.calibration_samples if calibrates else 0
    dataset = load_dataset(config.dataset, calibration)
    for model in models:
        inputs = (known or {}).get(model.name)
        if inputs is None and model.kind == "zoo":
            inputs = get_entry(model.ref).inputs
        elif inputs is None and model.kind == "onnx":
            inputs = inspect_onnx(Path(model.ref), model.shapes, model.ranges).inputs
        if inputs is not None:
            check_dataset(dataset, inputs, model.name)
    return config, dataset


def new_run(setup: Setup, executor: str = "local") -> Run:
    """Create the run directory and its files for ``setup``, measured by ``executor``
    (its registry name, kept in run.json for ``--resume``)."""
    config, models, cache_dir = setup.config, setup.models, setup.cache_dir
    planned = expand(config, models)
    run_dir = RunDir.create(Path(config.suite.results_dir), config.suite.name)
    run_dir.write_json(
        RUN_FILE,
        {
            "run_id": run_dir.run_id,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "argv": sys.argv,
            "profile": setup.request.profile,
            "executor": executor,
            "config": config.model_dump(),
            "models": [m.to_dict() for m in models],
            "cache_dir": str(cache_dir),
        },
    )
    if setup.request.config_path.is_file():
        shutil.copyfile(setup.request.config_path, run_dir.path / SUITE_FILE)
    run_dir.write_json(ENVIRONMENT_FILE, fingerprint())
    return Run(run_dir, config, models, planned, cache_dir, dataset=setup.dataset)


def _check_dataset_flags(given: dict[str, Any], path: str | None) -> None:
    """The flags of labelled data go with a dataset (``--dataset`` or ``[dataset] path``)."""
    if path is None and given:
        named = {o.key: o.flag for o in OVERRIDES if o.table == "dataset"}
        flags = ", ".join(named.get(key, key) for key in given)
        raise UserError(f"{flags} applies to a run scored on labelled data: give --dataset")


def _check_user_model_flags(
    request: RunRequest, overrides: dict[str, Any], shapes: bool, ranges: bool
) -> None:
    """The flags of a user model go with one of --onnx and --model, never with --models."""
    if request.onnx and request.factory:
        raise UserError("give either --onnx or --model, not both")
    user_model = "--onnx" if request.onnx else "--model" if request.factory else None
    if user_model and "models" in overrides.get("suite", {}):
        raise UserError(f"give either --models or {user_model}, not both")
    if request.inputs and not request.onnx:
        raise UserError("--inputs applies to --onnx only: give the ONNX file with --onnx")
    if request.weights and not (request.factory and is_pretrained(request.factory)):
        raise UserError(
            "--weights applies to --model torchvision:NAME or timm:NAME only "
            "(hf: takes a folder as the model)"
        )
    if not user_model and (shapes or ranges):
        flag = "--shape" if shapes else "--input-range"
        raise UserError(f"{flag} applies to --onnx or --model only")


def usable_cache_dir(path: Path) -> Path:
    """``path``, made if missing; UserError when it is a file or cannot be written."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        writable = os.access(path, os.W_OK | os.X_OK)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UserError(
            f"cannot use {path} as the cache ({reason}): pass a writable folder with --cache-dir"
        ) from None
    if not writable:
        raise UserError(
            f"cannot write to the cache {path}: pass a writable folder with --cache-dir"
        )
    return path


@dataclass
class ResumeRequest:
    """``run --resume``: the run folder, and what the user gives again on the command line."""

    path: Path
    onnx: Path | None = None
    factory: str | None = None
    cache_dir: Path | None = None
    inputs: Path | None = None
    weights: str | None = None
    dataset: Path | None = None


def resumed_run(request: ResumeRequest) -> Run:
    """The run in ``request.path``, to finish the cells it has no result for.

    A results folder is data, maybe someone else's: resuming imports no factory and reads
    no file that its ``run.json`` names unless the user names the same one again
    (``--model``, ``--onnx``, ``--inputs``), runs no program its options name, and writes
    only to the run folder's own files and the current cache (``--cache-dir``, else the
    default; never the stored one)."""
    path = request.path
    run_dir = RunDir.existing(path)
    try:
        stored = run_dir.read_json(RUN_FILE)
        measure = stored["config"].get("measure")
        if isinstance(measure, dict):  # stored before early stopping: its fixed windows
            measure.setdefault("half_width", 0.0)
        config = BenchConfig.model_validate(stored["config"])
        models = [ModelRequest.from_dict(m) for m in stored["models"]]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:  # pydantic: ValueError
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"{path / RUN_FILE} is unreadable ({reason}): start a new run") from None
    column = stored.get("fleet")
    if isinstance(column, dict):
        raise UserError(
            f"{path} is one machine of the fleet run {path.parent}: finish that with "
            f"python cli.py run --resume {path.parent} --cluster ADDRESS"
        )
    for model in models:
        _check_named_again(model, request, path / RUN_FILE)
    for name in config.suite.runtimes:
        options = config.runtime.of(name) if name in RUNTIMES else None
        for option in options.program_fields if options else ():
            if getattr(options, option) is not None:
                raise UserError(
                    f"{path / RUN_FILE} sets runtime.{name}.{option}: resume runs no program "
                    "a results folder names; start a new run from your suite file"
                )
    _check_dataset_named_again(config.dataset.path, request.dataset, path / RUN_FILE)
    config, dataset = read_dataset(config, models)
    cache_dir = usable_cache_dir(request.cache_dir or default_cache_dir())
    planned = expand(config, models)
    return Run(run_dir, config, models, planned, cache_dir, resumed=True, dataset=dataset)


def _check_dataset_named_again(stored: str | None, given: Path | None, source: Path) -> None:
    """UserError unless the dataset the run scored on is the one given again with
    ``--dataset`` (resume reads no file a results folder names); none given for a run
    that had none."""
    if stored is None:
        if given is not None:
            raise UserError(f"{source} scored no dataset: --resume takes no --dataset for it")
        return
    if given is None or str(given.resolve()) != stored:
        raise UserError(
            f"{source} names the dataset {stored}: resume reads no file a results folder "
            f"names; add --dataset {stored}"
        )


def executor_of(path: Path) -> str:
    """The registry name of the executor that measured the run in ``path``: a device's
    (``ssh-tools``, ``ssh-agent``: run.json's ``remote``), a cluster's (``ray``: a
    fleet.json beside it), else as run.json says (``local`` before it said)."""
    stored = RunDir.existing(path).read_json(RUN_FILE)
    remote = stored.get("remote")
    if isinstance(remote, dict):
        return f"ssh-{remote.get('mode', 'tools')}"
    if (path / FLEET_FILE).is_file():
        return "ray"
    name = stored.get("executor", "local")
    return name if isinstance(name, str) else "local"


def _check_named_again(model: ModelRequest, request: ResumeRequest, source: Path) -> None:
    """UserError unless the user model ``model`` is the one given again on the command
    line; zoo models are the project's own and need nothing."""
    if model.kind == "factory" and request.factory != model.ref:
        raise UserError(
            f"{source} names the factory {model.ref}: resume imports no code a results "
            f"folder names; if you trust it, add --model {model.ref}"
        )
    if model.kind == "onnx":
        given = request.onnx.resolve() if request.onnx else None
        if given is None or str(given) != model.ref:
            raise UserError(
                f"{source} names the ONNX file {model.ref}: resume reads no file a results "
                f"folder names; add --onnx {model.ref}"
            )
        given = request.inputs.resolve() if request.inputs else None
        if model.inputs_file and (given is None or str(given) != model.inputs_file):
            raise UserError(
                f"{source} names the inputs {model.inputs_file}: resume reads no file a "
                f"results folder names; add --inputs {model.inputs_file}"
            )
    if model.kind == "pretrained":
        _check_pretrained_again(model, request, source)
    if model.kind not in ("zoo", "factory", "pretrained", "onnx"):
        raise UserError(f"{source} names a model of unknown kind '{model.kind}': start a new run")


def _check_pretrained_again(model: ModelRequest, request: ResumeRequest, source: Path) -> None:
    """UserError unless the pretrained ``model`` (and its ``--weights``) is given again:
    resume loads no weights a results folder names."""
    given = None
    if request.factory and is_pretrained(request.factory):
        given = ModelRequest.pretrained(request.factory, request.weights, {})
    if given is None or (given.ref, given.weights) != (model.ref, model.weights):
        weights = f" --weights {model.weights}" if model.weights else ""
        raise UserError(
            f"{source} names the pretrained model {model.ref}{weights}: resume loads no "
            f"weights a results folder names; if you trust them, add --model {model.ref}"
            f"{weights}"
        )


def _check_fits(specs: tuple[TensorSpec, ...], sizes: dict[str, int], what: str, fix: str) -> None:
    """UserError when one request's inputs would not fit in this machine's memory (it
    names a dynamic dimension with no size first, as ``--shape`` asks)."""
    total = sum(
        math.prod(spec.concrete_shape(sizes)) * np.dtype(spec.dtype).itemsize for spec in specs
    )
    memory = psutil.virtual_memory().total
    if total > memory:
        raise UserError(
            f"{what} take {total / 2**30:,.1f} GiB a request, more than this machine's "
            f"{memory / 2**30:,.1f} GiB: {fix}"
        )


def _onnx_suite(path: Path, prepared: PreparedModel) -> dict[str, Any]:
    """Suite settings for a user ONNX file (as inspected): every dynamic size must be
    given, the inputs must fit in memory, and the batch of its cells is the first input's
    leading size."""
    _check_fits(prepared.inputs, {}, f"the inputs of {path.name}", "give smaller --shape sizes")
    leading = prepared.inputs[0].shape[0] if prepared.inputs and prepared.inputs[0].shape else 1
    return {"name": prepared.name, "batch_sizes": [int(leading)]}
