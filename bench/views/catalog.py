"""What ``list`` shows: the reference models with their counted size and cost, and each
runtime with the devices it can use here or the reason it cannot run."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from rich.markup import escape
from rich.table import Table

from bench.core.cell import Target
from bench.core.spec import BATCH
from exporters.zoo import ZOO, ZooEntry
from runtimes import RUNTIMES


def model_cost(entry: ZooEntry) -> tuple[int, int]:
    """(parameters, FLOPs per sample) of a zoo model, counted on the meta device: no
    weights are initialised and no arithmetic is done."""
    import torch

    from exporters.flops import count_flops_per_sample, count_params
    from exporters.source import resolve_callable

    with torch.device("meta"):
        module = resolve_callable(entry.builder)().eval()
        example = tuple(
            torch.empty(spec.concrete_shape({BATCH: 1}), dtype=getattr(torch, spec.dtype))
            for spec in entry.inputs
        )
    return count_params(module), count_flops_per_sample(module, example)


def models_table() -> Table:
    table = Table(
        title="Reference models (seeded random weights, no downloads)",
        title_justify="left",
        caption="B = batch; GFLOPs per sample, counted by torch.utils.flop_counter",
        caption_justify="left",
    )
    for name, justify in (
        ("model", "left"),
        ("task", "left"),
        ("input", "left"),
        ("Mparams", "right"),
        ("GFLOPs", "right"),
    ):
        table.add_column(name, justify=justify, no_wrap=True)
    for entry in ZOO.values():
        params, flops = model_cost(entry)
        shapes = ", ".join(
            "x".join("B" if d == BATCH else str(d) for d in spec.shape) for spec in entry.inputs
        )
        table.add_row(entry.name, entry.task, shapes, f"{params / 1e6:.2f}", f"{flops / 1e9:.3f}")
    return table


def runtimes_table() -> Table:
    table = Table(title="Runtimes", title_justify="left")
    for name in ("runtime", "version", "devices here", "unavailable"):
        table.add_column(name)
    for runtime in RUNTIMES.values():
        if not runtime.installed():
            table.add_row(
                runtime.name,
                "-",
                "-",
                escape(f"{runtime.package} is not installed: {runtime.install_hint}"),
            )
            continue
        try:
            installed = version(runtime.package)
        except PackageNotFoundError:
            installed = "?"
        devices = runtime.devices()
        missing = [
            f"{kind}: {reason}"
            for kind in ("cuda", "gpu", "npu")
            if kind in runtime.device_forms
            and not any(d.startswith(kind) for d in devices)
            and (reason := runtime.device_unavailable_reason(Target(kind, "fp32")))
        ]
        table.add_row(runtime.name, installed, ", ".join(devices), escape("; ".join(missing)))
    return table


def gpu_stack_table() -> Table:
    """The NVIDIA GPU stack here: each part found, or the command that installs it."""
    from runtimes.tensorrt.stack import gpu_stack

    table = Table(title="GPU stack", title_justify="left")
    for name in ("component", "here", "missing: fix"):
        table.add_column(name)
    for item in gpu_stack():
        found, fix = escape(item.found or "-"), "" if item.found else escape(item.fix)
        table.add_row(item.component, found, fix)
    return table
