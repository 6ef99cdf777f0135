"""Building the pretrained models that ``exporters.pretrained`` names: the module (in eval
mode, returning one tensor), its input specs and its task.

Inputs: torchvision and timm image models take ``input`` (batch, 3, H, W) at the size their
weights were made for (the weights' transforms' crop size; timm's ``pretrained_cfg``
``input_size``; 224 otherwise; torchvision's video models 16 frames). A Transformers image
model takes ``pixel_values`` at its config's ``image_size``. A Transformers text model takes
the tokenizer's inputs (``input_ids``, ``token_type_ids``, ``attention_mask``, those its
model accepts), int64, 128 tokens (or ``--shape input_ids=1xL``; at most its position
table). The generated values are not encoded text: token ids are drawn uniformly below the
tokenizer's vocabulary size, every token is attended (an all-ones mask, no padding) and every
token is in segment 0 — the same for every runtime, from the run's seed.

Outputs: a classifier's logits (task ``classification``), a torchvision segmentation model's
``out`` (``segmentation``), a Transformers base model's ``last_hidden_state``
(``encoding``), else the module's output (``unknown``). torch and the libraries are
imported on call.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import inspect
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.core.errors import UserError
from bench.core.spec import BATCH, TensorSpec
from exporters.pretrained import PretrainedRef, hf_fix, not_fetched, offline, parse_source

if TYPE_CHECKING:
    from torch import nn

DEFAULT_IMAGE = 224
DEFAULT_SEQUENCE = 128
VIDEO_FRAMES = 16
_UNSUPPORTED = {
    "detection": "returns boxes per image",
    "optical_flow": "returns a list of flow fields",
    "quantization": "is quantized for PyTorch's own CPU kernels",
}


@dataclass
class Loaded:
    """A pretrained module ready to export: one tensor out, inputs in the order of
    ``inputs``."""

    module: nn.Module
    inputs: tuple[TensorSpec, ...]
    output_names: tuple[str, ...]
    task: str


def load_pretrained(source: str, shapes: dict[str, tuple[int, ...]]) -> Loaded:
    """The model a ``pretrained:`` source names, in eval mode with its weights loaded,
    its inputs sized by ``shapes`` (``--shape``) where given. UserError naming the fix
    for an unknown model or weights name, weights that do not fit, or weights neither
    cached nor downloadable."""
    ref = parse_source(source)
    load = {"torchvision": _torchvision, "timm": _timm, "hf": _hf}[ref.library]
    loaded = load(ref, shapes)
    loaded.module.eval()
    return loaded


def build_pretrained(source: str) -> nn.Module:
    """The module of ``source`` as ``load_pretrained`` builds it (for the PyTorch runtime)."""
    return load_pretrained(source, {}).module


def _close(kind: str, given: str, choices: list[str]) -> UserError:
    near = difflib.get_close_matches(given, choices, n=5, cutoff=0.5)
    hint = f"close: {', '.join(near)}" if near else f"choose one of {', '.join(choices[:20])}"
    return UserError(f"unknown {kind} '{given}': {hint}")


def _image_inputs(
    name: str, dims: tuple[int, ...], shapes: dict[str, tuple[int, ...]]
) -> tuple[TensorSpec, ...]:
    """One image input called ``name`` of ``dims`` (no batch), or as ``--shape`` sizes it."""
    unknown = sorted(set(shapes) - {name})
    if unknown:
        raise UserError(f"--shape names {', '.join(unknown)} but the model's input is {name}")
    if name in shapes:
        dims = tuple(shapes[name][1:])
    return (TensorSpec(name, (BATCH, *dims)),)


# --- torchvision ----------------------------------------------------------------------


def _torchvision(ref: PretrainedRef, shapes: dict[str, tuple[int, ...]]) -> Loaded:
    from torchvision import models

    names = models.list_models()
    if ref.name not in names:
        raise _close("torchvision model", ref.name, names)
    family = next(
        (
            f
            for f in (*_UNSUPPORTED, "segmentation", "video")
            if ref.name in models.list_models(module=getattr(models, f))
        ),
        "classification",
    )
    if family in _UNSUPPORTED:
        raise UserError(
            f"torchvision:{ref.name} {_UNSUPPORTED[family]}, not tensors ONNX can carry: "
            "wrap it in a factory (--model package.module:function) that returns tensors"
        )
    enum = models.get_model_weights(ref.name)
    if ref.weights_file is not None:
        weights = None
        module = models.get_model(ref.name, weights=None)
        _load_state_dict(module, _read_state_dict(ref.weights_file), ref)
    else:
        weights = _weights_member(enum, ref.weights or "DEFAULT", ref.name)
        _ensure_cached(weights, ref)
        module = models.get_model(ref.name, weights=weights)
    size = _crop_size(weights or enum.DEFAULT)
    dims = (3, VIDEO_FRAMES, *size) if family == "video" else (3, *size)
    if family == "segmentation":
        module = _field(module, "out")
    return Loaded(module, _image_inputs("input", dims, shapes), ("logits",), family)


def _weights_member(enum: Any, given: str, model: str) -> Any:
    """The member of the model's weights enum that ``given`` names (``IMAGENET1K_V2`` or
    ``ResNet50_Weights.IMAGENET1K_V2``); UserError listing the close names if none."""
    owner, _, member = given.rpartition(".")
    members = list(enum.__members__)
    if owner and owner != enum.__name__:
        raise UserError(
            f"--weights {given}: torchvision:{model} takes {enum.__name__}, "
            f"one of {', '.join(members)}"
        )
    if member not in enum.__members__:
        raise UserError(
            f"unknown weights '{member}' for torchvision:{model}: choose one of "
            f"{', '.join(members)}, or give a state dict file"
        )
    return enum[member]


def _crop_size(weights: Any) -> tuple[int, int]:
    """(H, W) the weights' transforms feed: the crop size, else the resize size, else 224."""
    transforms = weights.transforms()
    size = getattr(transforms, "crop_size", None) or getattr(transforms, "resize_size", None)
    if not size:
        return DEFAULT_IMAGE, DEFAULT_IMAGE
    return int(size[0]), int(size[-1])


def _ensure_cached(weights: Any, ref: PretrainedRef) -> None:
    """The checkpoint of ``weights`` in torch hub's cache: there already, or downloaded
    (unless offline); UserError naming where it goes when it cannot be had."""
    import torch.hub

    url = weights.url
    path = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
    if path.is_file():
        return
    what = f"torchvision:{ref.name} weights {weights}"
    fix = f"download {url} to {path}, or give --weights FILE"
    if offline():
        raise not_fetched(what, None, fix)
    path.parent.mkdir(parents=True, exist_ok=True)
    found = torch.hub.HASH_REGEX.search(path.name)
    try:
        torch.hub.download_url_to_file(url, str(path), found.group(1) if found else None, False)
    except Exception as exc:  # no network, a proxy, a bad hash: the user's to fix
        raise not_fetched(what, exc, fix) from None


def _read_state_dict(path: Path) -> dict[str, Any]:
    """The tensors of a state dict file (torch.save or safetensors), unwrapped from a
    ``{"state_dict": ...}`` / ``{"model": ...}`` checkpoint and a ``module.`` prefix."""
    import torch

    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except ModuleNotFoundError:
        raise UserError(f"safetensors is not installed: pip install safetensors ({path})") from None
    except Exception as exc:  # a pickle of a whole module, a damaged file
        raise UserError(
            f"cannot read {path} as a state dict ({type(exc).__name__}): save "
            "model.state_dict() with torch.save or safetensors"
        ) from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise UserError(f"{path} holds a {type(state).__name__}, not a state dict")
    if state and all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return state


def _load_state_dict(module: nn.Module, state: dict[str, Any], ref: PretrainedRef) -> None:
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        detail = next((line.strip() for line in str(exc).splitlines()[1:] if line.strip()), "")
        raise UserError(
            f"--weights {ref.weights} does not fit {ref.spec} ({detail[:200]}): give the "
            "state dict of that model"
        ) from None


# --- timm -----------------------------------------------------------------------------


def _timm(ref: PretrainedRef, shapes: dict[str, tuple[int, ...]]) -> Loaded:
    import timm

    architecture = ref.name.partition(".")[0]
    if not ref.name.startswith("hf-hub:") and not timm.is_model(architecture):
        raise _close("timm model", ref.name, timm.list_models())
    overlay = {"file": str(ref.weights_file)} if ref.weights_file else None
    try:
        module = timm.create_model(ref.name, pretrained=True, pretrained_cfg_overlay=overlay)
    except OSError as exc:  # not cached, not downloadable
        fix = "run once with network to fill the Hugging Face cache, or give --weights FILE"
        raise not_fetched(f"timm:{ref.name}", exc, fix) from None
    except RuntimeError as exc:  # weights that do not fit, no pretrained weights
        line = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise UserError(f"timm:{ref.name}: {line}: check the name and --weights") from None
    dims = tuple(module.pretrained_cfg.get("input_size") or (3, DEFAULT_IMAGE, DEFAULT_IMAGE))
    task = "classification" if getattr(module, "num_classes", 0) else "unknown"
    return Loaded(module, _image_inputs("input", dims, shapes), ("logits",), task)


# --- Hugging Face Transformers --------------------------------------------------------


def _hf(ref: PretrainedRef, shapes: dict[str, tuple[int, ...]]) -> Loaded:
    with _no_progress_bars():
        return _hf_loaded(ref, shapes)


@contextlib.contextmanager
def _no_progress_bars() -> Iterator[None]:
    """Transformers' loading bars left out of a run's output while the block runs."""
    from transformers.utils import logging

    shown = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if shown:
            logging.enable_progress_bar()


def _hf_loaded(ref: PretrainedRef, shapes: dict[str, tuple[int, ...]]) -> Loaded:
    import transformers

    try:
        config = transformers.AutoConfig.from_pretrained(ref.name)
        architecture = (getattr(config, "architectures", None) or [""])[0]
        if architecture.endswith("ForSequenceClassification"):
            auto, field, task = transformers.AutoModelForSequenceClassification, "logits", None
        elif architecture.endswith("ForImageClassification"):
            auto, field, task = transformers.AutoModelForImageClassification, "logits", None
        else:
            auto, field, task = transformers.AutoModel, "last_hidden_state", "encoding"
        model = auto.from_pretrained(ref.name, config=config).float()
    except OSError as exc:  # not cached, not downloadable, no such repository
        raise not_fetched(f"hf:{ref.name}", exc, hf_fix(ref.name)) from None
    except ValueError as exc:  # a model type this transformers does not know
        line = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise UserError(f"hf:{ref.name}: {line}: check its config.json and transformers") from None
    task = task or "classification"
    main = getattr(model, "main_input_name", "input_ids")
    if main == "pixel_values":
        size = getattr(config, "image_size", DEFAULT_IMAGE)
        height, width = (size, size) if isinstance(size, int) else tuple(size)
        dims = (getattr(config, "num_channels", 3), height, width)
        inputs = _image_inputs(main, dims, shapes)
    elif main == "input_ids":
        inputs = _text_inputs(ref, config, model, shapes)
    else:
        raise UserError(
            f"hf:{ref.name} takes {main}: text (input_ids) and image (pixel_values) models "
            "are supported; wrap others in a factory (--model package.module:function)"
        )
    module = _field(model, field, tuple(spec.name for spec in inputs))
    return Loaded(module, inputs, (field,), task)


def _text_inputs(
    ref: PretrainedRef, config: Any, model: Any, shapes: dict[str, tuple[int, ...]]
) -> tuple[TensorSpec, ...]:
    """The tokenizer's inputs that the model takes, ``L`` tokens each (module docstring)."""
    import transformers

    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(ref.name)
    except (OSError, ValueError) as exc:
        raise UserError(
            f"hf:{ref.name}: no tokenizer to load ({type(exc).__name__}): save it beside the "
            "model with tokenizer.save_pretrained(FOLDER)"
        ) from None
    accepted = inspect.signature(model.forward).parameters
    names = [n for n in tokenizer.model_input_names if n in accepted]
    names.sort(key=lambda n: n != "input_ids")
    unknown = sorted(set(shapes) - set(names))
    if unknown:
        raise UserError(f"--shape names {', '.join(unknown)} but the inputs are {', '.join(names)}")
    longest = getattr(config, "max_position_embeddings", None) or DEFAULT_SEQUENCE
    lengths = {dims[-1] for dims in shapes.values()}
    if len(lengths) > 1 or any(len(dims) != 2 for dims in shapes.values()):
        raise UserError("--shape gives a text model's inputs as NAME=1xL, one L for all")
    length = lengths.pop() if lengths else min(DEFAULT_SEQUENCE, longest)
    if length > longest:
        raise UserError(f"--shape: hf:{ref.name} takes at most {longest} tokens")
    vocabulary = min(len(tokenizer), getattr(config, "vocab_size", None) or len(tokenizer))
    values = {
        "input_ids": (0, vocabulary, "the tokenizer's vocabulary"),
        "attention_mask": (1, 2, "every token, no padding"),
    }
    return tuple(
        TensorSpec(name, (BATCH, length), "int64", *values.get(name, (0, 1, "one segment")))
        for name in names
    )


@functools.cache
def _wrappers() -> dict[int, type]:
    """Modules that return one tensor of a model's output, by input count: a fixed
    signature per count, as torch.export needs."""
    from torch import nn

    class Field(nn.Module):
        """``field`` of what ``model`` returns (its inputs passed by name where ``names``
        are given)."""

        def __init__(self, model: nn.Module, field: str, names: tuple[str, ...]):
            super().__init__()
            self.model, self.field, self.names = model, field, names

        def output(self, *inputs: Any) -> Any:
            if self.names:
                return self.model(**dict(zip(self.names, inputs, strict=True)))[self.field]
            return self.model(*inputs)[self.field]

    class One(Field):
        def forward(self, x0: Any) -> Any:
            return self.output(x0)

    class Two(Field):
        def forward(self, x0: Any, x1: Any) -> Any:
            return self.output(x0, x1)

    class Three(Field):
        def forward(self, x0: Any, x1: Any, x2: Any) -> Any:
            return self.output(x0, x1, x2)

    class Four(Field):
        def forward(self, x0: Any, x1: Any, x2: Any, x3: Any) -> Any:
            return self.output(x0, x1, x2, x3)

    return {1: One, 2: Two, 3: Three, 4: Four}


def _field(model: nn.Module, field: str, names: tuple[str, ...] = ()) -> nn.Module:
    """``model`` returning only its output ``field`` (a ModelOutput's or a dict's)."""
    wrappers = _wrappers()
    count = max(len(names), 1)
    if count not in wrappers:
        raise UserError(f"the model takes {count} inputs ({', '.join(names)}): at most 4 here")
    return wrappers[count](model, field, names)
