"""bench.toml: defaults, profiles, overrides and one-line errors that name the fault."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.core.errors import UserError
from bench.harness.config import (
    DEVICE_FORMS,
    BenchConfig,
    config_from_dict,
    load_config,
    profile_names,
)
from exporters.zoo import ZOO
from runtimes import RUNTIMES

REPO_BENCH_TOML = Path(__file__).resolve().parent.parent / "bench.toml"


def _error(raw: dict, profile: str | None = None, overrides: dict | None = None) -> str:
    with pytest.raises(UserError) as caught:
        config_from_dict(raw, profile, overrides)
    message = str(caught.value)
    assert "\n" not in message, message
    return message


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_defaults_follow_trtexec_and_benchmark_app() -> None:
    config = config_from_dict({})
    assert config.suite.models == ["mlp"]
    assert config.suite.runtimes == ["pytorch", "onnxruntime"]
    assert config.suite.devices == ["cpu"]
    assert config.suite.precisions == ["fp32"]
    assert config.suite.batch_sizes == [1]
    assert config.suite.scenarios == ["latency"]
    assert config.measure.warmup_s == 1.0
    assert config.measure.warmup_min_iters == 10
    assert config.measure.min_duration_s == 3.0
    assert config.measure.min_iters == 50
    assert config.runtime.onnxruntime.graph_optimization == "all"
    assert config == BenchConfig()


def test_cuda_is_cuda_0() -> None:
    config = config_from_dict({"suite": {"devices": ["cpu", "cuda", "cuda:1"]}})
    assert config.suite.devices == ["cpu", "cuda:0", "cuda:1"]


def test_profile_merges_deeply_and_overrides_come_last() -> None:
    raw = {
        "suite": {"name": "base", "models": ["mlp"], "batch_sizes": [1], "threads": 3},
        "measure": {"warmup_s": 2.0, "min_iters": 40, "max_duration_s": 9.0},
        "profiles": {
            "quick": {
                "suite": {"name": "quick", "models": ["lenet5"]},
                "measure": {"min_iters": 5},
            }
        },
    }
    base = config_from_dict(raw)
    assert (base.suite.name, base.suite.models, base.measure.min_iters) == ("base", ["mlp"], 40)

    quick = config_from_dict(raw, "quick")
    assert quick.suite.name == "quick"
    assert quick.suite.models == ["lenet5"]
    assert quick.measure.min_iters == 5
    # keys the profile does not name keep the file's values, table by table
    assert quick.suite.threads == 3
    assert quick.suite.batch_sizes == [1]
    assert quick.measure.warmup_s == 2.0
    assert quick.measure.max_duration_s == 9.0

    overridden = config_from_dict(raw, "quick", {"suite": {"models": ["resnet18"]}})
    assert overridden.suite.models == ["resnet18"]  # the command line wins over the profile
    assert overridden.suite.name == "quick"  # ...and leaves the rest of the profile alone
    assert overridden.measure.min_iters == 5


def test_profiles_are_not_applied_unless_asked() -> None:
    raw = {"profiles": {"quick": {"suite": {"models": ["lenet5"]}}}}
    assert config_from_dict(raw).suite.models == ["mlp"]


def test_merging_does_not_change_the_raw_dict() -> None:
    raw = {"suite": {"models": ["mlp"]}, "profiles": {"p": {"suite": {"models": ["lenet5"]}}}}
    config_from_dict(raw, "p", {"suite": {"threads": 2}})
    assert raw == {
        "suite": {"models": ["mlp"]},
        "profiles": {"p": {"suite": {"models": ["lenet5"]}}},
    }


def test_unknown_top_level_key_lists_the_tables() -> None:
    message = _error({"sutie": {}})
    assert "unknown key 'sutie'" in message
    assert "allowed: suite, measure, runtime" in message


@pytest.mark.parametrize(
    ("raw", "table", "key", "allowed"),
    [
        ({"suite": {"modles": ["mlp"]}}, "[suite]", "modles", ["models", "batch_sizes"]),
        ({"measure": {"warmup": 1}}, "[measure]", "warmup", ["warmup_s", "min_iters"]),
        (
            {"runtime": {"onnxruntime": {"graph": "all"}}},
            "[runtime.onnxruntime]",
            "graph",
            ["graph_optimization"],
        ),
        ({"runtime": {"tensorflow": {}}}, "[runtime]", "tensorflow", ["onnxruntime", "pytorch"]),
    ],
)
def test_unknown_nested_key_names_its_table_and_the_allowed_keys(
    raw: dict, table: str, key: str, allowed: list[str]
) -> None:
    message = _error(raw)
    assert table in message
    assert f"unknown key '{key}'" in message
    for name in allowed:
        assert name in message.split("allowed:", 1)[1]


def test_unknown_key_inside_a_profile_is_reported() -> None:
    message = _error({"profiles": {"p": {"measure": {"min_iter": 3}}}}, "p")
    assert "unknown key 'min_iter'" in message
    assert "min_iters" in message


def test_unknown_profile_lists_the_profiles() -> None:
    message = _error({"profiles": {"smoke": {}, "full": {}}}, "smok")
    assert "unknown profile 'smok'" in message
    assert "full, smoke" in message
    assert "none defined" in _error({}, "smoke")


def test_a_profile_that_is_not_a_table_is_a_one_line_error() -> None:
    message = _error({"profiles": {"smoke": "fast"}}, "smoke")
    assert "smoke" in message


@pytest.mark.parametrize("device", ["tpu", "cuda:x", "cuda0", "gpu0", "hetero:"])
def test_bad_device(device: str) -> None:
    message = _error({"suite": {"devices": ["cpu", device]}})
    assert f"unknown device '{device}'" in message
    # every runtime's device forms (Runtime.device_forms), each kind once
    assert "use one of cpu, cuda, cuda:N, dla:N, gpu, gpu.N, npu, auto, auto:D1,D2" in message


def test_device_forms_and_runtime_tables_come_from_the_registry() -> None:
    config = config_from_dict({})
    for name, runtime in RUNTIMES.items():
        assert type(config.runtime.of(name)) is runtime.options
        for kind in runtime.device_forms:
            assert kind in DEVICE_FORMS
    with pytest.raises(UserError, match=r"\[runtime.openvino\] unknown key 'compile'"):
        config_from_dict({"runtime": {"openvino": {"compile": "default"}}})


def test_batch_size_zero() -> None:
    message = _error({"suite": {"batch_sizes": [1, 0]}})
    assert "batch_sizes" in message
    assert "must be 1 to" in message


def test_bad_scenario_names_the_choices() -> None:
    message = _error({"suite": {"scenarios": ["latency", "burst"]}})
    assert "scenarios" in message
    assert "'latency'" in message and "'throughput'" in message


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"suite": {"precisions": ["fp8"]}}, "precisions"),
        ({"suite": {"models": []}}, "models"),
        ({"measure": {"min_iters": 0}}, "min_iters"),
        ({"measure": {"warmup_s": -1}}, "warmup_s"),
        ({"suite": {"cell_timeout_s": 0}}, "cell_timeout_s"),
        ({"runtime": {"onnxruntime": {"graph_optimization": "max"}}}, "graph_optimization"),
    ],
)
def test_bad_values_name_the_field(raw: dict, field: str) -> None:
    assert field in _error(raw)


def test_errors_name_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "suite.toml", "[suite]\nbatch_sizes = [0]\n")
    with pytest.raises(UserError, match=r"suite\.toml: \[suite\] batch_sizes"):
        load_config(path)


def test_malformed_toml_gives_the_line_and_column(tmp_path: Path) -> None:
    path = _write(tmp_path / "bench.toml", '[suite]\nname = "x"\nmodels = [\n\n[measure\n')
    with pytest.raises(UserError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "\n" not in message
    assert str(path) in message
    assert "malformed TOML" in message
    assert "line 5" in message and "column" in message


def test_missing_config_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(UserError) as caught:
        load_config(missing)
    message = str(caught.value)
    assert "\n" not in message
    assert "not found" in message and str(missing) in message
    assert "--config" in message


def test_load_config_reads_file_profile_and_overrides(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "bench.toml",
        "[suite]\nmodels = ['mlp']\n[measure]\nmin_iters = 7\n"
        "[profiles.p]\nsuite.models = ['lenet5']\nmeasure.warmup_s = 0.5\n",
    )
    config = load_config(path, "p", {"suite": {"batch_sizes": [2, 4]}})
    assert config.suite.models == ["lenet5"]
    assert config.suite.batch_sizes == [2, 4]
    assert config.measure.min_iters == 7
    assert config.measure.warmup_s == 0.5
    assert profile_names(path) == ["p"]
    assert profile_names(tmp_path / "missing.toml") == []


def test_repo_bench_toml_and_every_profile_validate() -> None:
    profiles = profile_names(REPO_BENCH_TOML)
    assert {"smoke", "full"} <= set(profiles)
    for profile in [None, *profiles]:
        config = load_config(REPO_BENCH_TOML, profile)
        unknown = [m for m in config.suite.models if m not in ZOO]
        assert not unknown, f"profile {profile}: models not in the zoo: {unknown}"


def test_repo_default_suite_is_small_and_the_smoke_profile_is_smaller() -> None:
    default = load_config(REPO_BENCH_TOML)
    smoke = load_config(REPO_BENCH_TOML, "smoke")
    assert default.suite.devices == ["cpu"]  # runs on any laptop
    assert smoke.measure.min_duration_s < default.measure.min_duration_s
    assert cell_count(smoke) < cell_count(default)


def cell_count(config: BenchConfig) -> int:
    suite = config.suite
    return (
        len(suite.models)
        * len(suite.runtimes)
        * len(suite.devices)
        * len(suite.precisions)
        * len(suite.batch_sizes)
        * len(suite.scenarios)
    )


def test_device_names_are_case_insensitive_and_cover_openvino_devices() -> None:
    devices = ["CPU", "GPU.1", "NPU", "AUTO", "HETERO:GPU,CPU", "cuda"]
    config = config_from_dict({"suite": {"devices": devices}})
    assert config.suite.devices == ["cpu", "gpu.1", "npu", "auto", "hetero:gpu,cpu", "cuda:0"]
