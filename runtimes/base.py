"""The runtime contract: build (slow, cacheable) apart from load (cheap), and a Session.

A runtime module imports its framework lazily, inside methods, so that listing runtimes,
planning a suite or running another runtime's cell never pays for it. A runtime declares
everything the rest of the program asks of it: its options model (``[runtime.<name>]`` in
bench.toml), the devices it accepts, the precisions it runs and the libraries whose
versions it reports.
"""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from bench.core.cell import Target
from bench.core.errors import Unavailable
from bench.core.record import Executed
from bench.core.settings import RuntimeSettings
from bench.core.spec import PreparedModel, Quantized, TensorSpec
from bench.core.timing import LoopRecord, StopRule, time_latency, time_throughput

CPU = ("cpu", "cpu")
CUDA = (r"cuda(:\d+)?", "cuda, cuda:N")


@dataclass(frozen=True)
class LoadOptions:
    """What a session is loaded with: intra-op threads (0 = runtime default), how many
    requests it must be able to keep in flight (0 = the runtime's own optimum, for runtimes
    whose ``chooses_in_flight`` is set), the scenario, the runtime's options (its
    ``Runtime.options`` model, or a dict of its fields), the cell's batch (what a runtime
    that builds for fixed shapes, TensorRT, optimises for) and the suite's batch sizes
    (what its shape profile spans; empty: the cell's batch only). ``module`` builds the
    PyTorch module the ONNX file was exported from (``exporters.source.module_loader``;
    None for an ONNX file): the runtimes that run modules take it from here. ``shared``:
    another session of the same process runs between this one's requests (the paired
    A/B loop), so its thread pool must not spin while it waits."""

    threads: int = 0
    in_flight: int = 1
    scenario: str = "latency"
    settings: RuntimeSettings | dict[str, Any] = field(default_factory=dict)
    batch: int = 1
    batch_sizes: tuple[int, ...] = ()
    module: Callable[[], Any] | None = None
    shared: bool = False

    @property
    def profile_batches(self) -> list[int]:
        """The batch sizes a shape profile spans: the suite's, and the cell's own."""
        return sorted({*self.batch_sizes, self.batch})


@dataclass
class Built:
    """The output of ``Runtime.build``: an artifact path or an in-memory object, and how
    long building took (a cold-start figure)."""

    artifact: Any
    build_s: float
    cache_hit: bool = False
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Shipped:
    """What ``Runtime.ship`` wrote: the artifact a deployment takes from a measured cell.

    ``files``: the files written, relative to the folder, the model file the snippet loads
    first. ``settings``: what the session was loaded with, as JSON-ready values (providers
    and thread counts, a compile config, an engine's build plan). ``snippet``: the source
    of a ``run.py`` for that folder that loads the file with exactly those settings and
    runs one request on random inputs of the model's shapes and dtypes, printing each
    output's name and shape; it defines ``load()`` and ``infer(loaded, feeds)`` so that a
    caller can import it and check it against the session (see ``runtimes.shipping``).
    ``version``: the framework version that made the file (a compiled blob or an engine
    runs only there). ``notes``: what a deployer must know that the settings do not say."""

    files: tuple[str, ...]
    settings: dict[str, Any]
    snippet: str
    version: str
    notes: tuple[str, ...] = ()


class Session(ABC):
    """A loaded model that can run requests.

    ``infer`` is host in, host out (for accuracy checks). The timed path stages inputs
    once, then calls ``launch`` + ``synchronize``; a synchronous runtime does the work in
    ``launch`` and nothing in ``synchronize``.
    """

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    executed: Executed

    @abstractmethod
    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one request and return every output as a host numpy array."""

    @abstractmethod
    def stage(self, feeds: dict[str, np.ndarray]) -> None:
        """Prepare ``feeds`` once for repeated ``launch`` calls (device upload, binding)."""

    @abstractmethod
    def launch(self) -> None:
        """Start one request on the staged inputs."""

    def synchronize(self) -> None:  # noqa: B027 - synchronous runtimes need nothing here
        """Wait until the launched request has finished."""

    @abstractmethod
    def request_slots(self, feeds: dict[str, np.ndarray], count: int) -> list[Callable[[], None]]:
        """``count`` independent callables, each running one whole request on ``feeds``
        (``count`` 0 only for a runtime that ``chooses_in_flight``: its own optimum).

        The default ``run_throughput`` calls them from ``count`` threads at once.
        """

    def run_latency(
        self, feeds: dict[str, np.ndarray], warmup: StopRule, measure: StopRule
    ) -> LoopRecord:
        """One request at a time on ``feeds`` through warm-up and the measured window.

        The default stages ``feeds``, times ``launch`` + ``synchronize`` and then tells
        ``keep_measured`` how many requests the measured window held; a runtime whose timed
        loop is another program's (trtexec) overrides this.
        """
        self.stage(feeds)
        record = time_latency(self.launch, self.synchronize, warmup, measure)
        self.keep_measured(record.completed)
        return record

    def keep_measured(self, count: int) -> None:  # noqa: B027 - most sessions keep nothing
        """The last ``count`` requests of the latency loop were the measured ones: a
        session that records figures per request (device-side times) keeps only those."""

    def device_metrics(self) -> dict[str, Any]:
        """Device-side figures of the last timed loop (the latency split into host→device,
        compute and device→host, peak device memory); empty where there are none."""
        return {}

    def run_throughput(
        self, feeds: dict[str, np.ndarray], in_flight: int, warmup: StopRule, measure: StopRule
    ) -> LoopRecord:
        """Keep ``in_flight`` requests on ``feeds`` in flight through warm-up and the measured
        window (see ``bench.core.timing.time_throughput`` for the window's rules).

        The default drives ``request_slots`` from one thread each; a runtime with its own
        asynchronous API (OpenVINO's AsyncInferQueue) overrides this and reports the number
        of requests it actually kept in flight in ``LoopRecord.in_flight``.
        """
        return time_throughput(self.request_slots(feeds, in_flight), warmup, measure)

    def close(self) -> None:  # noqa: B027 - most sessions free everything on garbage collection
        """Release what the session holds."""


class Runtime(ABC):
    """One inference runtime. Subclasses set ``name``, ``package`` and the devices and
    precisions they can serve."""

    name: ClassVar[str]
    package: ClassVar[str]
    install_hint: ClassVar[str]
    precisions: ClassVar[tuple[str, ...]] = ("fp32",)
    device_forms: ClassVar[dict[str, tuple[str, str]]] = {"cpu": CPU, "cuda": CUDA}
    """Each device kind the runtime serves: the pattern of its names and how to write them
    (the suite's devices are checked against every runtime's forms)."""
    chooses_in_flight: ClassVar[bool] = False
    """True when the runtime knows its own best number of requests in flight."""
    options: ClassVar[type[RuntimeSettings]] = RuntimeSettings
    """The runtime's options model: ``[runtime.<name>]`` in bench.toml."""
    libraries: ClassVar[tuple[str, ...]] = ()
    """Distributions whose versions change the runtime's numbers (environment.json)."""

    @classmethod
    def settings_of(cls, options: LoadOptions) -> Any:
        """The cell's options as this runtime's own model (a dict of its fields is read
        into it; an unknown field is an error)."""
        return cls.options.model_validate(options.settings)

    @classmethod
    def quantization_scheme(cls, target: Target, settings: RuntimeSettings) -> str:
        """Which QDQ copy an int8 cell of this runtime runs (``QUANTIZATION_SCHEMES``):
        ``u8s8`` for CPU runtimes; a runtime that takes symmetric int8 only says ``s8s8``."""
        return "u8s8"

    @classmethod
    def quantized(
        cls, model: PreparedModel, target: Target, settings: RuntimeSettings
    ) -> Quantized:
        """The QDQ copy an int8 cell runs (``bench.harness.runner`` made it before the cell)."""
        scheme = cls.quantization_scheme(target, settings)
        if scheme not in model.quantized:
            why = model.not_quantized.get(scheme, "not made")
            raise RuntimeError(f"no {scheme} QDQ copy of {model.name}: {why}")
        return model.quantized[scheme]

    @classmethod
    def installed(cls) -> bool:
        return importlib.util.find_spec(cls.package) is not None

    @classmethod
    def import_framework(cls) -> None:
        """Import the wrapped package, so that its cost is timed apart from build and load."""
        importlib.import_module(cls.package)

    @classmethod
    def unavailable_reason(cls, target: Target, source: str) -> str | None:
        """One line saying why this runtime cannot serve ``target`` for a model whose
        ``PreparedModel.source`` is ``source`` (None when it can).

        Cheap by contract: it may look for packages and devices, never load a model.
        """
        if not cls.installed():
            return f"{cls.package} is not installed: {cls.install_hint}"
        if target.device_kind not in cls.device_forms:
            kinds = ", ".join(cls.device_forms)
            return f"{cls.name} runs on {kinds} devices, not {target.device}"
        if target.precision not in cls.precisions:
            runs = ", ".join(cls.precisions)
            return f"{cls.name} has no {target.precision} path here (it runs {runs})"
        return cls.device_unavailable_reason(target)

    @classmethod
    @abstractmethod
    def device_unavailable_reason(cls, target: Target) -> str | None:
        """Why ``target.device`` cannot be used here (None when it can)."""

    @classmethod
    @abstractmethod
    def devices(cls) -> list[str]:
        """Devices this runtime can use on this machine (may import the framework)."""

    @abstractmethod
    def build(
        self, model: PreparedModel, target: Target, options: LoadOptions, cache_dir: Path
    ) -> Built:
        """Turn the prepared model into what ``load`` needs (engine, graph, module)."""

    @abstractmethod
    def load(
        self, built: Built, model: PreparedModel, target: Target, options: LoadOptions
    ) -> Session:
        """A session on the built artifact, ready to run."""

    def ship(
        self,
        built: Built,
        model: PreparedModel,
        target: Target,
        options: LoadOptions,
        out_dir: Path,
    ) -> Shipped:
        """Write into ``out_dir`` the file that ``load`` made a session of from ``built``,
        and say how to load it as the session was (see ``Shipped``). A runtime without
        this step skips the shipping job with that reason."""
        raise Unavailable(f"{self.name} cannot ship its artifact: it has no Runtime.ship")
