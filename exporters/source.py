"""Build a PyTorch module from a model source: a zoo name, a user factory function or a
pretrained model.

A source is ``zoo:<name>``, ``factory:<package.module:function>`` or
``pretrained:<library>:<name>[?weights=...]`` (see ``exporters.pretrained``). A factory takes no
arguments and returns a module, or ``(module, example_inputs)`` where the example is a
tensor or a tuple of tensors. Every problem with a user factory is a one-line UserError.
torch is imported only by the functions that build or read modules.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from bench.core.errors import UserError
from bench.core.spec import BATCH, TensorSpec
from exporters.pretrained import PRETRAINED_PREFIX
from exporters.zoo import get_entry

if TYPE_CHECKING:
    import torch
    from torch import nn

ZOO_PREFIX = "zoo:"
FACTORY_PREFIX = "factory:"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def builder_path(source: str) -> str:
    """The ``package.module:function`` that builds ``source`` (zoo builder or user factory)."""
    if source.startswith(ZOO_PREFIX):
        return get_entry(source.removeprefix(ZOO_PREFIX)).builder
    if source.startswith(FACTORY_PREFIX):
        return source.removeprefix(FACTORY_PREFIX)
    if source.startswith(PRETRAINED_PREFIX):
        return "exporters.pretrained_load:build_pretrained"
    raise UserError(
        f"unknown model source '{source}': expected zoo:<name> or factory:<package.module:function>"
    )


def resolve_callable(path: str) -> Callable[[], Any]:
    """The callable named by ``package.module:function`` or ``path/to/file.py:function``;
    UserError naming the fix if none."""
    module_name, sep, attr = path.rpartition(":")
    if not sep or not module_name or not attr:
        raise UserError(f"--model expects package.module:function, got '{path}'")
    try:
        if module_name.endswith(".py"):
            module = _module_from_file(Path(module_name))
        else:
            module = importlib.import_module(module_name)
    except UserError:
        raise
    except Exception as exc:  # a user module may fail to import in any way
        raise UserError(
            f"cannot import '{module_name}' for --model {path} ({_first_line(exc)}): "
            "check the module is importable from the current directory or PYTHONPATH"
        ) from exc
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise UserError(
                f"'{module_name}' has no attribute '{attr}': --model expects "
                "package.module:function naming a function defined there"
            )
        target = getattr(target, part)
    if not callable(target):
        raise UserError(f"--model {path} names a {type(target).__name__}, not a function")
    return target


def _module_from_file(path: Path) -> ModuleType:
    """The module of a factory's file, imported under a name of its own (its path's
    digest), so that two checkouts' ``models.py`` can live in one process (the paired
    A/B worker); its folder comes first on the import path while it loads. Its own
    imports of sibling modules are still shared by name: give such sides as ONNX files."""
    if not path.is_file():
        raise UserError(f"--model {path}: no such file: give an existing .py file")
    resolved = path.resolve()
    name = f"_factory_{hashlib.sha256(str(resolved).encode()).hexdigest()[:12]}_{path.stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, resolved)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, str(resolved.parent))
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    finally:
        sys.path.remove(str(resolved.parent))
    return module


def _as_example(value: Any, path: str) -> tuple[torch.Tensor, ...]:
    import torch

    if isinstance(value, torch.Tensor):
        return (value,)
    items = tuple(value) if isinstance(value, (tuple, list)) else ()
    if items and all(isinstance(item, torch.Tensor) for item in items):
        return items
    raise UserError(
        f"factory {path} returned example inputs of type {type(value).__name__}: "
        "return (module, tensor) or (module, (tensor, ...))"
    )


def build_module(source: str, seed: int) -> tuple[nn.Module, tuple[torch.Tensor, ...] | None]:
    """The module for ``source`` in eval mode, with weights fixed by ``seed``.

    Returns ``(module, example_inputs)``; the example is None for zoo models (their input
    specs live in the zoo), pretrained models (``exporters.pretrained_load``) and
    factories that return only a module.
    """
    import torch
    from torch import nn

    if source.startswith(PRETRAINED_PREFIX):
        from exporters.pretrained_load import build_pretrained

        torch.manual_seed(seed)
        return build_pretrained(source), None
    path = builder_path(source)
    factory = resolve_callable(path)
    torch.manual_seed(seed)
    try:
        built = factory()
    except UserError:
        raise
    except Exception as exc:  # user code: report it on one line, keep the traceback chained
        raise UserError(f"factory {path} raised {_first_line(exc)}: fix the factory") from exc
    example = None
    if isinstance(built, tuple) and len(built) == 2 and isinstance(built[0], nn.Module):
        built, example = built[0], _as_example(built[1], path)
    if not isinstance(built, nn.Module):
        raise UserError(
            f"factory {path} returned {type(built).__name__}: return a torch.nn.Module "
            "or (module, example_inputs)"
        )
    return built.eval(), example


def module_loader(source: str, seed: int) -> Callable[[], Any] | None:
    """What the PyTorch runtime builds its module with (``LoadOptions.module``): a call
    returning the module of ``source`` seeded with ``seed``, as exported; None for a user
    ONNX file (``source`` empty), which has no module. torch is imported on call."""
    if not source:
        return None
    return lambda: build_module(source, seed)[0]


def factory_input_specs(
    example_inputs: tuple[torch.Tensor, ...] | None, shapes: dict[str, tuple[int, ...]]
) -> tuple[TensorSpec, ...]:
    """Input specs for a factory model, from its example tensors or from ``--shape``.

    Example inputs are named ``input`` (one) or ``input0``, ``input1``... and keep their
    dtype; integer examples bound generated values to the example's own range. ``shapes``
    overrides example shapes by name, or alone gives float32 inputs. Dimension 0 is always
    the symbolic batch axis. UserError naming ``--shape`` when neither is given.
    """
    import torch

    if example_inputs is None:
        if not shapes:
            raise UserError(
                "the factory returned no example inputs: give input shapes with "
                "--shape NAME=1x3x224x224 or return (module, example_inputs)"
            )
        return tuple(TensorSpec(name, (BATCH, *shape[1:])) for name, shape in shapes.items())
    count = len(example_inputs)
    names = ["input"] if count == 1 else [f"input{i}" for i in range(count)]
    unknown = sorted(set(shapes) - set(names))
    if unknown:
        raise UserError(
            f"--shape names {', '.join(unknown)} but the factory's inputs are "
            f"{', '.join(names)}: use those names"
        )
    specs = []
    for name, tensor in zip(names, example_inputs, strict=True):
        shape = shapes.get(name, tuple(tensor.shape))
        if len(shape) == 0:
            raise UserError(f"input '{name}' is a scalar: inputs need a leading batch dimension")
        dtype = str(tensor.dtype).removeprefix("torch.")
        bounds: dict[str, float | str] = {}
        if not tensor.is_floating_point() and tensor.dtype != torch.bool and tensor.numel():
            bounds = {"low": int(tensor.min()), "high": int(tensor.max()) + 1}
            bounds["origin"] = "the range of the factory's example"
        specs.append(TensorSpec(name, (BATCH, *shape[1:]), dtype, **bounds))
    return tuple(specs)
