"""Pretrained models from torchvision, timm and Hugging Face Transformers: what ``--model``
names, checked cheaply, and the identity of its weights.

``--model`` forms (``--weights`` beside them):

- ``torchvision:NAME``: weights by enum member (``IMAGENET1K_V2``, ``DEFAULT`` when none is
  given, or ``ResNet50_Weights.IMAGENET1K_V2``), from torch hub's checkpoint cache
  (``$TORCH_HOME/hub/checkpoints``), or a state dict file (``--weights FILE``);
- ``timm:NAME``: timm's pretrained weights (a tag in the name picks them,
  ``resnet50.a1_in1k``) from its Hugging Face hub cache, or a state dict file;
- ``hf:ORG/NAME`` or ``hf:FOLDER``: a Transformers model (``from_pretrained``) from the hub
  cache or a folder written by ``save_pretrained``; the folder is the weights.

Offline: ``HF_HUB_OFFLINE=1`` keeps all three to their caches (timm and Transformers read it
themselves; torchvision's checkpoints are not downloaded either). Weights not in the cache
that cannot be fetched are a one-line UserError naming where to put them.

A pretrained model's ``PreparedModel.source`` is ``pretrained:<library>:<name>`` with
``?weights=<weights>`` after it where weights are named (``exporters.pretrained_load``
builds the module from it). Nothing here imports torch or the libraries: the checks use
``importlib.util.find_spec`` and ``huggingface_hub``'s cache lookup.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path

from bench.core.digest import file_digest
from bench.core.errors import UserError

PRETRAINED_PREFIX = "pretrained:"
_WEIGHTS_MARK = "?weights="

PACKAGES = {"torchvision": "torchvision", "timm": "timm", "hf": "transformers"}
"""The library a ``--model LIBRARY:NAME`` prefix names, by prefix."""

_EXAMPLES = {"torchvision": "resnet50", "timm": "resnet18", "hf": "ORG/NAME or hf:/path/to/folder"}
INSTALL = "pip install 'deploybench[pretrained]'"
WEIGHT_SUFFIXES = (".pth", ".pt", ".safetensors", ".bin", ".ckpt")
"""A ``--weights`` value ending so is a file, whether it exists or not."""

OFFLINE_ENV = "HF_HUB_OFFLINE"
_HUB_ID = re.compile(r"^[\w.-]+(/[\w.-]+)?$")
_ENUM_WEIGHTS = re.compile(r"^([A-Za-z0-9_]+\.)?[A-Za-z0-9_]+$")


def offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) asks for the caches only,
    read as huggingface_hub reads it."""
    value = os.environ.get(OFFLINE_ENV) or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.upper() in ("1", "ON", "YES", "TRUE")


@dataclass(frozen=True)
class PretrainedRef:
    """A pretrained model as named: its library prefix (``torchvision``, ``timm``, ``hf``),
    its name (a hub id, or an absolute folder for ``hf``) and its weights (an enum member
    name, an absolute file path, or None)."""

    library: str
    name: str
    weights: str | None = None

    @property
    def spec(self) -> str:
        """What ``--model`` takes: ``torchvision:resnet50``."""
        return f"{self.library}:{self.name}"

    @property
    def source(self) -> str:
        """The ``PreparedModel.source`` that rebuilds this model."""
        weights = f"{_WEIGHTS_MARK}{self.weights}" if self.weights else ""
        return f"{PRETRAINED_PREFIX}{self.spec}{weights}"

    @property
    def model_name(self) -> str:
        """The name results show: the last part of the name (``bert-base-uncased``)."""
        return Path(self.name.removeprefix("hf-hub:")).name or self.name

    @property
    def weights_file(self) -> Path | None:
        """The state dict file of ``--weights FILE``, else None."""
        return Path(self.weights) if self.weights and Path(self.weights).is_absolute() else None


def is_pretrained(spec: str) -> bool:
    """Whether a ``--model`` value names a pretrained model (``torchvision:``, ``timm:``,
    ``hf:``) rather than a ``package.module:function`` factory."""
    return spec.partition(":")[0] in PACKAGES


def parse_source(source: str) -> PretrainedRef:
    """The model a ``pretrained:...`` source names (as ``PretrainedRef.source`` wrote it)."""
    spec, _, weights = source.removeprefix(PRETRAINED_PREFIX).partition(_WEIGHTS_MARK)
    library, _, name = spec.partition(":")
    return PretrainedRef(library, name, weights or None)


def settle_ref(spec: str, weights: str | None) -> PretrainedRef:
    """The model ``--model spec --weights weights`` names, with paths made absolute;
    UserError naming the fix for what can be checked without importing torch: the form,
    the library installed, a weights file or model folder present, a hub model cached
    when offline. Names and enum members are checked where the model is built."""
    library, _, name = spec.partition(":")
    if not name:
        raise UserError(
            f"--model {spec}: name the model after '{library}:', e.g. "
            f"{library}:{_EXAMPLES[library]}"
        )
    package = PACKAGES[library]
    if importlib.util.find_spec(package) is None:
        fix = "pip install torchvision" if package == "torchvision" else INSTALL
        raise UserError(f"{package} is not installed: {fix}")
    if library == "hf":
        if weights:
            raise UserError(
                "--weights does not apply to hf: models: the model's folder holds its "
                "weights: give --model hf:/path/to/folder"
            )
        return PretrainedRef(library, _hf_name(name))
    if weights is None:
        return PretrainedRef(library, name, "DEFAULT" if library == "torchvision" else None)
    path = Path(weights).expanduser()
    if path.is_file() or path.suffix in WEIGHT_SUFFIXES or os.sep in weights:
        if not path.is_file():
            raise UserError(
                f"--weights {weights}: no such file: give a state dict saved with "
                "torch.save(model.state_dict(), FILE) or safetensors"
            )
        return PretrainedRef(library, name, str(path.resolve()))
    if library == "timm":
        raise UserError(
            f"--weights {weights}: timm takes a weights file; choose its pretrained weights "
            f"by a tag in the name, e.g. --model timm:{name}.a1_in1k"
        )
    if not _ENUM_WEIGHTS.match(weights):
        raise UserError(
            f"--weights {weights}: give a weights name (IMAGENET1K_V2, DEFAULT) or a file"
        )
    return PretrainedRef(library, name, weights)


def _hf_name(name: str) -> str:
    """A hub id as given, or a local folder made absolute; UserError when the folder
    holds no model or a hub id is not cached while offline."""
    path = Path(name).expanduser()
    if path.exists() or name.startswith((".", "/", "~")) or not _HUB_ID.match(name):
        if not (path / "config.json").is_file():
            raise UserError(
                f"--model hf:{name}: no config.json in {path}: give a folder written by "
                "save_pretrained, or a hub id ORG/NAME"
            )
        return str(path.resolve())
    if offline() and _hub_snapshot(name) is None:
        raise not_fetched(f"hf:{name}", None, hf_fix(name))
    return name


def _hub_snapshot(repo_id: str) -> Path | None:
    """The cached snapshot folder of ``repo_id`` (holding its config.json), or None."""
    if importlib.util.find_spec("huggingface_hub") is None:
        return None
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, "config.json")
    return Path(found).parent if isinstance(found, str) else None


def weights_identity(ref: PretrainedRef) -> str:
    """What makes these weights these (for the export cache key), without torch: a
    file's or folder's SHA-256, a hub snapshot's commit, or the library version with the
    weights' name (torchvision's enum members, timm's tags are fixed per release)."""
    if ref.weights_file is not None:
        return f"file {file_digest(ref.weights_file)}"
    if ref.library == "hf":
        if Path(ref.name).is_absolute():
            return f"folder {_folder_digest(Path(ref.name))}"
        return f"hub {ref.name}@{_hub_commit(ref.name)}"
    package = PACKAGES[ref.library]
    return f"{package} {importlib.metadata.version(package)} {ref.name} {ref.weights or ''}"


def _folder_digest(folder: Path) -> str:
    """16 hex digits of the SHA-256 over every file under ``folder`` (hidden ones left
    out): each one's relative path and content digest."""
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    listing = ",".join(f"{p.relative_to(folder)}:{file_digest(p)}" for p in files)
    return hashlib.sha256(listing.encode()).hexdigest()[:16]


def _hub_commit(repo_id: str) -> str:
    """The commit of ``repo_id``'s snapshot: the cached one offline, else the hub's
    (fetching its config.json); UserError when neither is to be had."""
    if importlib.util.find_spec("huggingface_hub") is None:
        raise UserError(f"huggingface_hub is not installed: {INSTALL}")
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo_id, "config.json")).parent.name
    except Exception as exc:  # offline, no network, no such repo: all the user's to fix
        raise not_fetched(f"hf:{repo_id}", exc, hf_fix(repo_id)) from None


def hf_fix(repo_id: str) -> str:
    """How to get a hub model onto a machine that cannot download it."""
    return (
        f"run once with network (or hf download {repo_id}) to fill the Hugging Face cache, "
        "or give --model hf:FOLDER written by save_pretrained"
    )


def not_fetched(what: str, exc: BaseException | None, fix: str) -> UserError:
    """The one line for weights that are not in the library's cache and could not be
    downloaded (``exc``; None when offline forbade trying), naming the ``fix``."""
    if offline() or exc is None:
        why = f"{OFFLINE_ENV}=1"
    else:
        lines = str(exc).strip().splitlines()
        why = f"the download failed ({type(exc).__name__}: {lines[0][:160] if lines else ''})"
    return UserError(f"{what}: not in the library's cache, and {why}: {fix}")
