"""TensorRT's Python build path against doubles of TensorRT 8.6, 10.x and 11: options →
network flags and builder-config calls, typing per version, shape profiles, the engine
and timing caches, and the precision read back from inspector JSON."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from bench.core.cell import Target
from bench.core.errors import Unavailable, UserError
from bench.core.spec import BATCH, PreparedModel, TensorSpec
from bench.harness.config import config_from_dict
from exporters.onnx_export import prepare_zoo_model
from runtimes.base import LoadOptions
from runtimes.tensorrt.build import (
    BuildPlan,
    TrtVersion,
    TypingSupport,
    build_serialized,
    engine_path,
    profile_shapes,
    resolve_typing,
    timed_build,
)
from runtimes.tensorrt.inspector import datatype, executed_precision, layer_precisions
from runtimes.tensorrt.runtime import TensorRTOptions, TensorRTRuntime
from tests.fixtures.tensorrt.fake_tensorrt import make_tensorrt

FIXTURES = Path(__file__).parent / "fixtures" / "tensorrt"
SHAPES = {"input": ((1, 1, 32, 32), (4, 1, 32, 32), (8, 1, 32, 32))}


def plan(precision: str = "fp32", typing: str = "weak", **changes: object) -> BuildPlan:
    fields = {"precision": precision, "typing": typing, "workspace_mb": 256, "shapes": SHAPES}
    return BuildPlan(**{**fields, **changes})  # type: ignore[arg-type]


def built_calls(version: str, the_plan: BuildPlan, tmp_path: Path, **fake: object) -> list:
    trt = make_tensorrt(version, **fake)  # type: ignore[arg-type]
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"onnx")
    build_serialized(trt, onnx, the_plan, None)
    return trt.calls


@pytest.mark.parametrize(
    ("version", "typing", "flags"),
    [("8.6.1", "weak", 1), ("10.3.0", "weak", 0), ("10.3.0", "strong", 2), ("11.0.0", "strong", 1)],
)
def test_network_flags_follow_the_version(
    version: str, typing: str, flags: int, tmp_path: Path
) -> None:
    """EXPLICIT_BATCH (bit 0) before 10.0 only; STRONGLY_TYPED when asked (bit 1 in 10.x,
    bit 0 in the 11 double, whose enum has no EXPLICIT_BATCH)."""
    calls = built_calls(version, plan(typing=typing), tmp_path)
    assert ("create_network", flags) in calls


@pytest.mark.parametrize(
    ("version", "precision", "typing", "set_flags"),
    [
        ("8.6.1", "fp16", "weak", ["FP16"]),
        ("10.3.0", "fp16", "weak", ["FP16"]),
        ("10.3.0", "bf16", "weak", ["BF16"]),
        ("10.3.0", "fp16", "strong", []),
        ("11.0.0", "fp16", "strong", []),
        ("8.6.1", "fp32", "weak", []),
        ("8.6.1", "int8", "weak", ["INT8"]),  # explicit quantization: Q/DQ plus the flag
        ("10.3.0", "int8", "weak", ["INT8"]),
        ("10.3.0", "int8", "strong", []),  # the Q/DQ layers' types say it all
        ("11.0.0", "int8", "strong", []),
    ],
)
def test_builder_config_per_version(
    version: str, precision: str, typing: str, set_flags: list[str], tmp_path: Path
) -> None:
    calls = built_calls(version, plan(precision, typing), tmp_path)
    assert [c[1] for c in calls if c[0] == "set_flag"] == set_flags
    assert ("clear_flag", "TF32") in calls  # an fp32 layer runs fp32, not TF32
    assert ("set_memory_pool_limit", "WORKSPACE", 256 << 20) in calls
    assert ("set", "profiling_verbosity", 2) in calls  # DETAILED: per-layer precision
    assert ("profile.set_shape", "input", *SHAPES["input"]) in calls
    assert calls.index(("add_optimization_profile",)) < calls.index(("build_serialized_network",))


def test_tf32_and_optimisation_level_when_asked(tmp_path: Path) -> None:
    calls = built_calls("10.3.0", plan(tf32=True, optimization_level=5), tmp_path)
    assert not [c for c in calls if c[0] == "clear_flag"]
    assert ("set", "builder_optimization_level", 5) in calls


def test_static_inputs_get_no_profile(tmp_path: Path) -> None:
    calls = built_calls("10.3.0", plan(), tmp_path, inputs=(("input", (2, 1, 32, 32)),))
    assert not [c for c in calls if c[0] in ("profile.set_shape", "add_optimization_profile")]


def test_dla_core_with_gpu_fallback(tmp_path: Path) -> None:
    calls = built_calls("8.6.1", plan("fp16", dla_core=1), tmp_path, dla_cores=2)
    assert ("set", "DLA_core", 1) in calls and ("set", "default_device_type", 1) in calls
    assert ("set_flag", "GPU_FALLBACK") in calls
    with pytest.raises(Unavailable, match="no DLA core 0 here"):
        built_calls("8.6.1", plan("fp16", dla_core=0), tmp_path, dla_cores=0)


def test_parse_and_build_failures_are_one_line(tmp_path: Path) -> None:
    error = "In node 3 (importConv): UNSUPPORTED_NODE: Assertion failed"
    with pytest.raises(RuntimeError, match="cannot parse model.onnx: In node 3") as parsed:
        built_calls("10.3.0", plan(), tmp_path, parse_errors=(error,))
    with pytest.raises(RuntimeError, match="could not build the engine: out of memory") as built:
        built_calls("10.3.0", plan(), tmp_path, build_error="out of memory\nmore detail")
    assert "\n" not in str(parsed.value) and "\n" not in str(built.value)


def test_timing_cache_is_read_and_written(tmp_path: Path) -> None:
    trt = make_tensorrt("10.3.0")
    onnx, cache = tmp_path / "model.onnx", tmp_path / "timing.cache"
    onnx.write_bytes(b"onnx")
    build_serialized(trt, onnx, plan(), cache)
    assert ("create_timing_cache", b"") in trt.calls and cache.read_bytes() == b"+timings"
    build_serialized(trt, onnx, plan(), cache)
    assert ("create_timing_cache", b"+timings") in trt.calls


@pytest.mark.parametrize(
    ("version", "requested", "precision", "expected"),
    [
        ("8.6.1", "auto", "fp16", "weak"),
        ("10.3.0", "auto", "bf16", "weak"),
        ("10.3.0", "strong", "fp16", "strong"),
        ("11.0.0", "auto", "fp16", "strong"),
        ("11.0.0", "auto", "fp32", "strong"),
    ],
)
def test_typing_resolves_per_version(
    version: str, requested: str, precision: str, expected: str
) -> None:
    trt = make_tensorrt(version)
    support = TypingSupport.of_module(trt)
    assert resolve_typing(support, TrtVersion.parse(version), requested, precision) == expected
    assert TypingSupport.of_version(TrtVersion.parse(version)) == support


@pytest.mark.parametrize(
    ("version", "requested", "precision", "message"),
    [
        ("8.6.1", "strong", "fp16", "no strongly typed networks (10.0 and newer): set runtime"),
        ("8.6.1", "auto", "bf16", "TensorRT 8.6.1 has no bf16"),
        ("11.0.0", "weak", "fp16", "no weak typing (BuilderFlag.FP16 was removed): set runtime"),
        ("11.0.0", "auto", "bf16", "needs a bf16 graph"),
    ],
)
def test_typing_a_version_lacks_is_unavailable_with_the_fix(
    version: str, requested: str, precision: str, message: str
) -> None:
    support = TypingSupport.of_module(make_tensorrt(version))
    with pytest.raises(Unavailable, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        resolve_typing(support, TrtVersion.parse(version), requested, precision)
    assert "\n" not in str(info.value)


def test_profile_spans_the_suite_batches_at_the_cell_batch() -> None:
    spec = TensorSpec("input", (BATCH, 3, 8, 8))
    shapes = profile_shapes((spec,), [1, 8, 32], 8)
    assert shapes == {"input": ((1, 3, 8, 8), (8, 3, 8, 8), (32, 3, 8, 8))}
    assert profile_shapes((spec,), [], 4)["input"] == ((4, 3, 8, 8),) * 3
    fixed = TensorSpec("ids", (2, 128), "int64")  # static: its shape is the model's own,
    assert profile_shapes((fixed,), [1, 2], 2) == {}  # and trtexec refuses shapes for it
    both = profile_shapes((spec, fixed), [1, 8], 8)
    assert list(both) == ["input"]


def test_engine_cache_key_covers_content_version_gpu_and_plan(tmp_path: Path) -> None:
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"graph one")
    base = engine_path(tmp_path, onnx, "10.3.0", "NVIDIA H100", plan())
    assert base == engine_path(tmp_path, onnx, "10.3.0", "NVIDIA H100", plan())
    others = {
        engine_path(tmp_path, onnx, "10.4.0", "NVIDIA H100", plan()),
        engine_path(tmp_path, onnx, "10.3.0", "Orin", plan()),
        engine_path(tmp_path, onnx, "10.3.0", "NVIDIA H100", plan("fp16")),
        engine_path(tmp_path, onnx, "10.3.0", "NVIDIA H100", plan(workspace_mb=512)),
        engine_path(tmp_path, onnx, "10.3.0", "NVIDIA H100", plan(dla_core=0)),
    }
    onnx.write_bytes(b"graph two")
    others.add(engine_path(tmp_path, onnx, "10.3.0", "NVIDIA H100", plan()))
    assert base not in others and len(others) == 6


def test_timed_build_builds_once(tmp_path: Path) -> None:
    built: list[Path] = []

    def build(partial: Path) -> None:
        built.append(partial)
        partial.write_bytes(b"engine")

    path = tmp_path / "tensorrt" / "m.engine"
    seconds, hit = timed_build(path, build)
    assert not hit and seconds > 0 and path.read_bytes() == b"engine"
    assert timed_build(path, build) == (0.0, True) and len(built) == 1
    assert not built[0].exists()  # written beside, then moved into place


def test_inspector_json_gives_the_executed_precision() -> None:
    info = json.loads((FIXTURES / "inspector_lenet5_fp16_b2.json").read_text())
    layers = layer_precisions(info)
    assert ("CaskConvolution", "fp16") in layers and ("CaskGemmConvolution", "fp32") in layers
    assert executed_precision(layers) == "fp16"  # 4 of 5 compute layers; fc3 stayed fp32
    floats = layer_precisions(
        json.loads((FIXTURES / "inspector_trt10_float_names.json").read_text())
    )
    assert executed_precision(floats) == "fp32"
    split = layer_precisions(
        json.loads((FIXTURES / "inspector_trt11_split_fields.json").read_text())
    )
    assert split == [("CaskConvolution", "fp16"), ("CaskGemmConvolution", "fp16")]


@pytest.mark.parametrize(
    "name", ["inspector_lenet5_dynamic_no_context.json", "inspector_layer_names_only.json"]
)
def test_inspector_without_types_reads_unknown(name: str) -> None:
    info = json.loads((FIXTURES / name).read_text())
    assert layer_precisions(info) == [] and executed_precision([]) == "unknown"


def test_datatype_names() -> None:
    assert datatype("Channel major FP16 format where channel % 8 == 0") == "fp16"
    assert datatype("Row major linear BFloat16 format") == "bf16"
    assert datatype("Thirty-two wide channel vectorized row major Int8 format.") == "int8"
    assert datatype("Half") == "fp16" and datatype("Float") == "fp32"
    assert datatype("N/A due to dynamic shapes") is None
    assert datatype("UInt8") is None and datatype("Int8") == "int8"


def test_options_and_dla_devices_validate() -> None:
    config = config_from_dict(
        {
            "suite": {"devices": ["dla", "dla:1", "cuda"]},
            "runtime": {"tensorrt": {"typing": "strong"}},
        }
    )
    assert config.suite.devices == ["dla:0", "dla:1", "cuda:0"]
    assert config.runtime.tensorrt == TensorRTOptions(typing="strong")
    with pytest.raises(UserError, match=r"\[runtime.tensorrt\] unknown key 'fp16'"):
        config_from_dict({"runtime": {"tensorrt": {"fp16": True}}})
    with pytest.raises(UserError, match="driver"):
        config_from_dict({"runtime": {"tensorrt": {"driver": "polygraphy"}}})


@pytest.fixture
def lenet(cache_dir: Path) -> PreparedModel:
    return prepare_zoo_model("lenet5", [1, 2], cache_dir)


def test_runtime_builds_through_the_python_api_and_caches(
    lenet: PreparedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trt = make_tensorrt("10.3.0")
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr("runtimes.tensorrt.runtime.cuda_python_installed", lambda: True)
    runtime, target = TensorRTRuntime(), Target("cuda:0", "fp16")
    options = LoadOptions(settings={"driver": "python", "typing": "strong"}, batch=2)
    with pytest.raises(Unavailable, match="no CUDA device .*: TensorRT cannot start"):
        runtime.build(lenet, target, options, tmp_path)  # the driver sees no GPU here
    assert trt.calls == []  # checked before any TensorRT object was made
    monkeypatch.setattr("runtimes.tensorrt.cuda.cuda_unavailable_reason", lambda index: None)
    first = runtime.build(lenet, target, options, tmp_path)
    engine = first.artifact
    assert not first.cache_hit and first.build_s > 0 and engine.path.is_file()
    assert engine.driver == "python" and engine.version == "10.3.0"
    assert engine.plan.typing == "strong" and engine.plan.shapes["input"][1][0] == 2
    (parsed,) = [c[1] for c in trt.calls if c[0] == "parse_from_file"]
    assert "fp16" in Path(parsed).name  # strongly typed: the graph was converted first
    again = runtime.build(lenet, target, options, tmp_path)
    assert again.cache_hit and again.artifact.path == engine.path
    assert len([c for c in trt.calls if c[0] == "build_serialized_network"]) == 1
    off = LoadOptions(
        settings={"driver": "python", "typing": "strong", "engine_cache": False}, batch=2
    )
    assert not runtime.build(lenet, target, off, tmp_path).cache_hit


def test_importing_and_asking_the_runtime_imports_no_framework() -> None:
    import subprocess

    code = (
        "import sys; from runtimes.tensorrt.runtime import TensorRTRuntime as R; "
        "from bench.core.cell import Target; R.unavailable_reason(Target('cuda:0', 'fp16'), 'x'); "
        "print(sorted(m for m in ('tensorrt', 'torch', 'onnxruntime', 'cuda.bindings') "
        "if m in sys.modules))"
    )
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert done.stdout.strip() == "[]", done.stderr


def test_the_profile_batches_are_the_suites_and_the_cells() -> None:
    assert LoadOptions(batch=8, batch_sizes=(1, 32)).profile_batches == [1, 8, 32]
    assert LoadOptions(batch=4).profile_batches == [4]


def test_an_int8_engine_builds_from_the_symmetric_qdq_copy(
    lenet: PreparedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bench.core.settings import QuantizeConfig
    from exporters.quantize import quantize

    trt = make_tensorrt("10.3.0")
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr("runtimes.tensorrt.runtime.cuda_python_installed", lambda: True)
    monkeypatch.setattr("runtimes.tensorrt.cuda.cuda_unavailable_reason", lambda index: None)
    model = replace(lenet, quantized={})
    model.quantized["s8s8"] = quantize(
        model, "s8s8", QuantizeConfig(calibration_samples=2), None, tmp_path
    )
    target = Target("cuda:0", "int8")
    assert TensorRTRuntime.quantization_scheme(target, TensorRTOptions()) == "s8s8"
    options = LoadOptions(settings={"driver": "python", "typing": "weak"}, batch=2)
    built = TensorRTRuntime().build(model, target, options, tmp_path)
    (parsed,) = [c[1] for c in trt.calls if c[0] == "parse_from_file"]
    assert parsed == str(model.quantized["s8s8"].path)
    assert ("set_flag", "INT8") in trt.calls and built.artifact.plan.precision == "int8"
    assert any(note.startswith("int8 QDQ, s8s8") for note in built.notes)
