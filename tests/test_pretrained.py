"""Pretrained models (``--model torchvision:/timm:/hf:``) on weight files and a tiny
``save_pretrained`` folder made here: no network, no library cache touched.

The loaders run in this process; the slow tests export, and run ``cli.py`` end to end.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import subprocess
import sys
import urllib.error
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.core.errors import UserError
from exporters.pretrained import PretrainedRef, settle_ref, weights_identity
from exporters.pretrained_load import load_pretrained

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

REPO_ROOT = Path(__file__).resolve().parent.parent
WORDS = ["the", "a", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "hello", "world"]
SENTENCES = ["the quick brown fox", "hello world", "a lazy dog jumps over the fox"]


def _source(spec: str, weights: str | Path | None = None) -> str:
    return settle_ref(spec, str(weights) if weights is not None else None).source


def _same(module: Any, loaded: Any, *inputs: Any) -> None:
    with torch.no_grad():
        want, got = module(*inputs), loaded(*inputs)
    assert torch.equal(want, got)


# --- loading local weights ------------------------------------------------------------


@pytest.mark.parametrize("form", ["pth", "wrapped", "safetensors"])
def test_torchvision_loads_a_state_dict_file(form: str, tmp_path: Path) -> None:
    from torchvision.models import resnet18

    torch.manual_seed(3)
    module = resnet18(weights=None).eval()
    state = module.state_dict()
    path = tmp_path / f"resnet18.{'safetensors' if form == 'safetensors' else 'pth'}"
    if form == "safetensors":
        from safetensors.torch import save_file

        save_file(state, path)
    elif form == "wrapped":  # a training checkpoint of a DataParallel model
        torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    else:
        torch.save(state, path)
    loaded = load_pretrained(_source("torchvision:resnet18", path), {})
    assert loaded.task == "classification"
    assert [(s.name, s.shape) for s in loaded.inputs] == [("input", ("batch", 3, 224, 224))]
    _same(module, loaded.module, torch.randn(1, 3, 64, 64))  # any size: a quick check


def test_torchvision_weights_by_name_come_from_torch_hubs_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkpoint already in $TORCH_HOME/hub/checkpoints is used offline, as is (a
    stand-in here: the file named as the weights' URL names it)."""
    from torchvision.models import ResNet18_Weights, resnet18

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.manual_seed(6)
    module = resnet18(weights=None).eval()
    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(module.state_dict(), checkpoints / Path(ResNet18_Weights.IMAGENET1K_V1.url).name)
    loaded = load_pretrained(_source("torchvision:resnet18", "IMAGENET1K_V1"), {})
    assert loaded.inputs[0].shape == ("batch", 3, 224, 224)  # the weights' crop size
    _same(module, loaded.module, torch.randn(1, 3, 64, 64))


def test_timm_loads_a_weights_file(tmp_path: Path) -> None:
    timm = pytest.importorskip("timm")
    torch.manual_seed(4)
    module = timm.create_model("test_vit").eval()
    path = tmp_path / "test_vit.pth"
    torch.save(module.state_dict(), path)
    loaded = load_pretrained(_source("timm:test_vit", path), {"input": (1, 3, 96, 96)})
    assert loaded.task == "classification"
    assert [(s.name, s.shape) for s in loaded.inputs] == [("input", ("batch", 3, 96, 96))]
    assert load_pretrained(_source("timm:test_vit", path), {}).inputs[0].shape[2:] == (160, 160)
    _same(module, loaded.module, torch.randn(1, 3, 160, 160))


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """A two-layer BERT classifier (hidden 32) and its tokenizer, ``save_pretrained`` to a
    folder: the model in memory and the folder."""
    transformers = pytest.importorskip("transformers")
    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    tokenizer = transformers.BertTokenizerFast(str(vocab))
    config = transformers.BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=3,
    )
    torch.manual_seed(5)
    model = transformers.BertForSequenceClassification(config).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder, model


def test_hf_loads_a_saved_folder_with_its_tokenizers_inputs(tiny_bert: tuple[Path, Any]) -> None:
    from transformers import AutoTokenizer

    folder, model = tiny_bert
    loaded = load_pretrained(_source(f"hf:{folder}"), {})
    assert (loaded.task, loaded.output_names) == ("classification", ("logits",))
    names = ["input_ids", "token_type_ids", "attention_mask"]
    assert [s.name for s in loaded.inputs] == names
    assert {s.shape for s in loaded.inputs} == {("batch", 64)}  # the position table's size
    vocabulary = len(WORDS) + 5
    assert (loaded.inputs[0].dtype, loaded.inputs[0].low, loaded.inputs[0].high) == (
        "int64",
        0,
        vocabulary,
    )
    assert (loaded.inputs[2].low, loaded.inputs[2].high) == (1, 2)  # every token attended
    tokens = AutoTokenizer.from_pretrained(folder)(
        SENTENCES, padding="max_length", max_length=16, return_tensors="pt"
    )
    with torch.no_grad():
        want = model(**tokens).logits
        got = loaded.module(*(tokens[name] for name in names))
    assert torch.equal(want, got)
    short = load_pretrained(_source(f"hf:{folder}"), {"attention_mask": (1, 16)})
    assert {s.shape for s in short.inputs} == {("batch", 16)}


def test_hf_base_model_gives_its_hidden_states(tiny_bert: tuple[Path, Any], tmp_path) -> None:
    from transformers import BertModel

    folder, model = tiny_bert
    base = BertModel(model.config).eval()
    base.save_pretrained(tmp_path)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json"):
        (tmp_path / name).write_bytes((folder / name).read_bytes())
    loaded = load_pretrained(_source(f"hf:{tmp_path}"), {})
    assert (loaded.task, loaded.output_names) == ("encoding", ("last_hidden_state",))
    ids = torch.randint(0, 10, (2, 8))
    mask, types = torch.ones_like(ids), torch.zeros_like(ids)
    with torch.no_grad():
        want = base(input_ids=ids, token_type_ids=types, attention_mask=mask).last_hidden_state
        assert torch.equal(loaded.module(ids, types, mask), want)


# --- the names and the cache key ------------------------------------------------------


def test_a_source_names_library_model_and_weights(tmp_path: Path) -> None:
    path = tmp_path / "w.pth"
    path.write_bytes(b"x")
    ref = settle_ref("torchvision:resnet18", str(path))
    assert ref == PretrainedRef("torchvision", "resnet18", str(path.resolve()))
    assert ref.source == f"pretrained:torchvision:resnet18?weights={path.resolve()}"
    assert settle_ref("torchvision:resnet50", None).weights == "DEFAULT"
    assert settle_ref("hf:org/name", None).model_name == "name"


def test_the_weights_identity_follows_the_weights(tmp_path: Path) -> None:
    """Different weights never share an export cache entry: a file by its content, a
    folder by its files, a name with its library's version."""
    one, two, same = tmp_path / "1.pth", tmp_path / "2.pth", tmp_path / "3.pth"
    one.write_bytes(b"one")
    two.write_bytes(b"two")
    same.write_bytes(b"one")

    def identity(spec: str, weights: str | None = None) -> str:
        return weights_identity(settle_ref(spec, weights))

    assert identity("timm:resnet18", str(one)) != identity("timm:resnet18", str(two))
    assert identity("timm:resnet18", str(one)) == identity("timm:resnet18", str(same))
    v1, v2 = identity("torchvision:resnet50", "IMAGENET1K_V1"), identity("torchvision:resnet50")
    assert v1 != v2
    assert importlib.metadata.version("torchvision") in v1
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    before = identity(f"hf:{folder}")
    (folder / "model.safetensors").write_bytes(b"weights")
    assert identity(f"hf:{folder}") != before


# --- bad input: one line, exit code 2 -------------------------------------------------


BAD_INPUTS = [
    ("timm missing", ["--model", "timm:resnet18"], r"timm is not installed: pip install '"),
    ("transformers missing", ["--model", "hf:org/name"], "transformers is not installed"),
    ("hf takes no --weights", ["--model", "hf:org/name", "--weights", "x.pth"], "hf:/path"),
    ("no weights file", ["--model", "timm:resnet18", "--weights", "absent.pth"], "no such file"),
    ("timm weights by name", ["--model", "timm:resnet18", "--weights", "A1"], "by a tag"),
    ("weights without a model", ["--models", "mlp", "--weights", "DEFAULT"], "--weights applies"),
    ("a folder without a model", ["--model", "hf:./tests"], "no config.json"),
    ("nothing after the prefix", ["--model", "torchvision:"], "name the model"),
    ("hub model offline", ["--model", "hf:deploybench-test/absent"], "HF_HUB_OFFLINE=1"),
]


@pytest.mark.parametrize(
    ("args", "expected"), [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS]
)
def test_bad_input_is_one_line_and_exit_code_2(
    args: list[str],
    expected: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Checked before anything is written, without torch (``cli.main`` in this process;
    a library counts as missing where the case says so)."""
    import cli as command_line

    missing = re.match(r"(\w+) is not installed", expected)
    if missing:
        find_spec = importlib.util.find_spec
        hidden = missing.group(1)
        monkeypatch.setattr(
            importlib.util,
            "find_spec",
            lambda name, *a: None if name == hidden else find_spec(name, *a),
        )
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(REPO_ROOT)
    results = tmp_path / "results"
    code = command_line.main(["run", *args, "--results-dir", str(results), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert re.search(expected, err[0]), err[0]
    assert not results.exists()


def test_unknown_names_list_the_close_ones(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"unknown torchvision model 'resnet5': close: resnet50"):
        load_pretrained(_source("torchvision:resnet5"), {})
    with pytest.raises(UserError, match=r"'IMAGENET1K_V3' .*choose one of IMAGENET1K_V1, DEFAULT"):
        load_pretrained(_source("torchvision:resnet18", "IMAGENET1K_V3"), {})
    with pytest.raises(UserError, match="takes ResNet18_Weights"):
        load_pretrained(_source("torchvision:resnet18", "ResNet50_Weights.IMAGENET1K_V1"), {})
    with pytest.raises(UserError, match="returns boxes per image"):
        load_pretrained(_source("torchvision:fasterrcnn_resnet50_fpn"), {})
    pytest.importorskip("timm")
    with pytest.raises(UserError, match=r"unknown timm model 'resnet10x': close: resnet10t"):
        load_pretrained(_source("timm:resnet10x"), {})


def test_weights_that_do_not_fit_name_the_mismatch(tmp_path: Path) -> None:
    from torchvision.models import resnet18

    path = tmp_path / "ten.pth"
    torch.save(resnet18(weights=None, num_classes=10).state_dict(), path)
    with pytest.raises(UserError, match=r"does not fit torchvision:resnet18 \(size mismatch"):
        load_pretrained(_source("torchvision:resnet18", path), {})
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot read .* as a state dict"):
        load_pretrained(_source("torchvision:resnet18", tmp_path / "junk.pth"), {})


def test_uncached_weights_without_network_name_where_they_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An empty torch hub cache and a download that fails (or offline): the line names the
    URL, the file it belongs in and --weights FILE."""

    def no_network(*args: Any, **kwargs: Any) -> None:
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    source = _source("torchvision:resnet18", "IMAGENET1K_V1")
    checkpoint = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    with pytest.raises(UserError) as failed:
        load_pretrained(source, {})
    line = str(failed.value)
    assert "\n" not in line
    assert "the download failed (URLError" in line
    assert f"to {checkpoint}, or give --weights FILE" in line
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match="not in the library's cache, and HF_HUB_OFFLINE=1"):
        load_pretrained(source, {})


# --- exported and run -----------------------------------------------------------------


@pytest.mark.slow
def test_different_weights_never_share_an_export(tmp_path: Path) -> None:
    from exporters.onnx_export import prepare_pretrained_model

    timm = pytest.importorskip("timm")
    paths = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        paths.append(tmp_path / f"{seed}.pth")
        torch.save(timm.create_model("test_vit").state_dict(), paths[-1])
    cache = tmp_path / "cache"
    first, second = (
        prepare_pretrained_model(_source("timm:test_vit", p), {}, [1], cache) for p in paths
    )
    again = prepare_pretrained_model(_source("timm:test_vit", paths[0]), {}, [1, 2], cache)
    assert first.onnx_path != second.onnx_path
    assert not first.cache_hit and not second.cache_hit
    assert again.cache_hit and again.onnx_path == first.onnx_path
    assert (again.task, [s.shape for s in again.inputs]) == (
        "classification",
        [("batch", 3, 160, 160)],
    )


def _cli(*args: str | Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "cli.py", *map(str, args)],
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_text_is_tokenised_by_the_models_own_tokenizer(
    tiny_bert: tuple[Path, Any], tmp_path: Path
) -> None:
    from scripts.text_dataset import main

    folder, _ = tiny_bert
    lines = tmp_path / "texts.tsv"
    lines.write_text("0\tthe quick brown fox\n2\thello world\n1\tthe lazy dog jumps\n")
    out = tmp_path / "texts.npz"
    assert main([f"hf:{folder}", str(lines), str(out), "--length", "16"]) == 0
    data = np.load(out)
    assert list(data["labels"]) == [0, 2, 1]
    assert data["input_ids"].shape == (3, 16) and data["input_ids"].dtype == np.int64
    ids = {w: WORDS.index(w) + 5 for w in WORDS}  # after [PAD] [UNK] [CLS] [SEP] [MASK]
    assert list(data["input_ids"][1][:4]) == [2, ids["hello"], ids["world"], 3]  # CLS .. SEP
    assert list(data["attention_mask"][1][:5]) == [1, 1, 1, 1, 0]  # then padding
    bad = tmp_path / "bad.tsv"
    bad.write_text("zero\tthe dog\n")
    assert main([f"hf:{folder}", str(bad), str(out)]) == 2


@pytest.mark.slow
@pytest.mark.e2e
def test_a_saved_hf_folder_runs_end_to_end(tiny_bert: tuple[Path, Any], tmp_path: Path) -> None:
    from scripts.text_dataset import main

    folder, _ = tiny_bert
    lines = tmp_path / "texts.tsv"  # scored on text its own tokenizer encodes
    lines.write_text("".join(f"{i % 3}\t{' '.join(WORDS[i : i + 4])}\n" for i in range(8)))
    dataset = tmp_path / "texts.npz"
    assert main([f"hf:{folder}", str(lines), str(dataset), "--length", "64"]) == 0
    results = tmp_path / "results"
    proc = _cli(
        "run",
        "--dataset",
        dataset,
        "--model",
        f"hf:{folder}",
        "--runtimes",
        "onnxruntime",
        "--precisions",
        "fp32",
        "--scenarios",
        "latency",
        "--profile",
        "smoke",
        "--results-dir",
        results,
        "--cache-dir",
        tmp_path / "cache",
        "--no-progress",
        env={"HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = results.iterdir()
    (record,) = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert record["status"] == "ok", record.get("reason")
    assert record["model"]["task"] == "classification"
    assert record["model"]["source"] == f"pretrained:hf:{folder}"
    assert record["accuracy"]["verdict"] == "pass"
    scored = record["accuracy"]["dataset"]
    assert scored["metric"] == "top1" and scored["samples"] == 8
    assert scored["value"] == pytest.approx(scored["reference_value"])
    assert "Loading weights" not in proc.stderr


@pytest.mark.slow
@pytest.mark.e2e
def test_uncached_weights_offline_end_the_run_in_one_line(tmp_path: Path) -> None:
    results = tmp_path / "results"
    proc = _cli(
        "run",
        "--model",
        "torchvision:resnet18",
        "--runtimes",
        "onnxruntime",
        "--results-dir",
        results,
        "--cache-dir",
        tmp_path / "cache",
        "--no-progress",
        env={"HF_HUB_OFFLINE": "1", "TORCH_HOME": str(tmp_path / "torch")},
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "not in the library's cache, and HF_HUB_OFFLINE=1" in lines[0]
    assert not results.exists() or not any(results.iterdir())


def test_resume_loads_no_weights_that_are_not_named_again(tmp_path: Path) -> None:
    from bench.harness.config import BenchConfig
    from bench.harness.plan import ModelRequest
    from bench.harness.start import ResumeRequest, resumed_run

    weights = tmp_path / "w.pth"
    weights.write_bytes(b"weights")
    model = ModelRequest.pretrained("timm:resnet18", str(weights), {})
    assert ModelRequest.from_dict(model.to_dict()) == model
    run = tmp_path / "run"
    run.mkdir()
    config = BenchConfig.model_validate({"suite": {"runtimes": ["onnxruntime"]}})
    stored = {"config": config.model_dump(), "models": [model.to_dict()]}
    (run / "run.json").write_text(json.dumps(stored))
    for given in ({}, {"factory": "timm:resnet18"}, {"factory": "timm:resnet34"}):
        with pytest.raises(UserError, match=f"add --model timm:resnet18 --weights {weights}"):
            resumed_run(ResumeRequest(run, **given))
    again = ResumeRequest(run, factory="timm:resnet18", weights=str(weights), cache_dir=tmp_path)
    assert resumed_run(again).models == [model]
