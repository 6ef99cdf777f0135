"""Expanding a suite into cells: model × runtime × device × precision × batch × scenario."""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.core.cell import SERVING_SCENARIOS, Cell
from bench.core.errors import UserError
from bench.harness.config import BenchConfig
from bench.harness.serving import loadgen_unavailable_reason
from exporters.pretrained import PretrainedRef, settle_ref
from runtimes import get_runtime
from runtimes.pytorch_train import train_unavailable_reason


@dataclass(frozen=True)
class ModelRequest:
    """A model to prepare: a zoo entry, a user factory, a pretrained model or a user ONNX
    file.

    ``shapes`` are the ``--shape`` sizes given for user models (input name → dims),
    ``ranges`` the ``--input-range`` bounds, ``inputs_file`` the ``--inputs`` arrays,
    ``weights`` a pretrained model's ``--weights`` (see exporters.pretrained).
    """

    name: str
    kind: str  # "zoo" | "factory" | "pretrained" | "onnx"
    ref: str  # zoo name, "package.module:function", "library:name" or the ONNX path
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    inputs_file: str | None = None
    weights: str | None = None

    @property
    def source(self) -> str:
        """The ``PreparedModel.source`` this request leads to (see bench.core.spec)."""
        if self.kind == "pretrained":
            library, _, name = self.ref.partition(":")
            return PretrainedRef(library, name, self.weights).source
        return "" if self.kind == "onnx" else f"{self.kind}:{self.ref}"

    def to_dict(self) -> dict:
        return {
            **asdict(self),
            "shapes": {k: list(v) for k, v in self.shapes.items()},
            "ranges": {k: list(v) for k, v in self.ranges.items()},
        }

    @classmethod
    def from_dict(cls, data: dict) -> ModelRequest:
        shapes = {str(k): tuple(int(d) for d in v) for k, v in data.get("shapes", {}).items()}
        ranges = {str(k): (float(v[0]), float(v[1])) for k, v in data.get("ranges", {}).items()}
        inputs_file, weights = data.get("inputs_file"), data.get("weights")
        return cls(
            str(data["name"]),
            str(data["kind"]),
            str(data["ref"]),
            shapes,
            ranges,
            str(inputs_file) if inputs_file is not None else None,
            str(weights) if weights is not None else None,
        )

    @classmethod
    def user_onnx(
        cls,
        path: Path,
        shapes: dict[str, tuple[int, ...]],
        ranges: dict[str, tuple[float, float]] | None = None,
        inputs_file: Path | None = None,
    ) -> ModelRequest:
        data = str(inputs_file.resolve()) if inputs_file else None
        return cls(path.stem, "onnx", str(path.resolve()), shapes, ranges or {}, data)

    @classmethod
    def user_factory(
        cls,
        factory: str,
        shapes: dict[str, tuple[int, ...]],
        ranges: dict[str, tuple[float, float]] | None = None,
    ) -> ModelRequest:
        return cls(factory.rsplit(":", 1)[-1], "factory", factory, shapes, ranges or {})

    @classmethod
    def pretrained(
        cls,
        spec: str,
        weights: str | None,
        shapes: dict[str, tuple[int, ...]],
        ranges: dict[str, tuple[float, float]] | None = None,
    ) -> ModelRequest:
        """``--model LIBRARY:NAME [--weights W]``, checked as far as is cheap (UserError)."""
        ref = settle_ref(spec, weights)
        return cls(ref.model_name, "pretrained", ref.spec, shapes, ranges or {}, None, ref.weights)


@dataclass(frozen=True)
class PlannedCell:
    """A cell and, when it cannot run here, the one-line reason it is skipped."""

    cell: Cell
    skip_reason: str | None = None


def expand(config: BenchConfig, models: list[ModelRequest]) -> list[PlannedCell]:
    """Every cell of the suite, grouped by model, each checked against its runtime.

    Unknown runtimes raise UserError; a runtime that cannot serve a cell here (not
    installed, no such device, precision not supported) marks it skipped, never fails.
    """
    suite = config.suite
    runtimes = {name: get_runtime(name) for name in suite.runtimes}
    planned: list[PlannedCell] = []
    for model in models:
        for runtime_name, device, precision, batch, scenario in itertools.product(
            suite.runtimes, suite.devices, suite.precisions, suite.batch_sizes, suite.scenarios
        ):
            cell = Cell(model.name, runtime_name, device, precision, batch, scenario)
            if scenario == "train":
                reason = train_unavailable_reason(runtimes[runtime_name], cell.target, model.source)
            else:
                reason = runtimes[runtime_name].unavailable_reason(cell.target, model.source)
            if reason is None and scenario in SERVING_SCENARIOS:
                reason = loadgen_unavailable_reason()
            planned.append(PlannedCell(cell, reason))
    return check_servable(planned)


def check_servable(planned: list[PlannedCell]) -> list[PlannedCell]:
    """``planned``, unless a LoadGen scenario was asked for and none of its cells can run
    LoadGen (not installed; a tools-mode device): that is bad input, a UserError before
    anything is measured, not a suite of skipped cells."""
    for scenario in SERVING_SCENARIOS:
        reasons = [p.skip_reason for p in planned if p.cell.scenario == scenario]
        if reasons and None not in reasons:
            why = next((r for r in reasons if r and "LoadGen" in r), None)
            if why:
                raise UserError(f"no cell can run the {scenario} scenario here: {why}")
    return planned
