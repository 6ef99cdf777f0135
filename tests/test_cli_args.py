"""Command-line argument parsing that needs no subprocess."""

from __future__ import annotations

import pytest

from bench.commands.parser import _devices


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cpu,cuda:1", ["cpu", "cuda:1"]),
        ("hetero:gpu,cpu", ["hetero:gpu,cpu"]),
        ("cpu,hetero:gpu,cpu", ["cpu", "hetero:gpu,cpu"]),
        ("auto:gpu,cpu;cpu", ["auto:gpu,cpu", "cpu"]),
        ("multi:gpu,npu,cuda:0", ["multi:gpu,npu", "cuda:0"]),
        ("CPU,GPU", ["CPU", "GPU"]),
    ],
)
def test_devices_keep_combined_device_lists_whole(text: str, expected: list[str]) -> None:
    assert _devices(text) == expected


ALL_OVERRIDES = [
    "--models", "mlp,lenet5", "--runtimes", "onnxruntime", "--devices", "hetero:gpu,cpu;cpu",
    "--precisions", "fp32,fp16", "--batch-sizes", "1,8", "--scenarios", "latency",
    "--threads", "2", "--in-flight", "3", "--cell-timeout", "90", "--export-timeout", "120.5",
    "--power", "none", "--repeat", "4", "--results-dir", "out", "--name", "x",
    "--calibration-data", "c.npz", "--calibration-samples", "16",
    "--quantize-method", "entropy", "--cluster", "auto", "--fleet", "shard",
    "--nodes", "a,b", "--per-gpu", "--latency-bound", "15", "--target-qps", "0",
    "--loadgen-duration", "2.5", "--dataset", "d.npz", "--dataset-preset", "imagenet",
    "--dataset-samples", "0", "--accuracy-budget", "2%",
]  # fmt: skip


def test_every_override_is_a_run_flag_and_its_flags_read_back_the_same() -> None:
    """The one table of suite-file flags (bench.harness.overrides) matches the parser, and
    the flags it writes for another machine (agent mode) parse to the same overrides."""
    from bench.harness.overrides import OVERRIDES, flags_for, overrides_from
    from cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["run", *ALL_OVERRIDES])
    overrides = overrides_from(vars(args))
    assert sum(len(keys) for keys in overrides.values()) == len(OVERRIDES)
    assert overrides["suite"]["devices"] == ["hetero:gpu,cpu", "cpu"]
    assert overrides["suite"]["cell_timeout_s"] == 90.0
    assert overrides["loadgen"] == {
        "latency_bound_ms": 15.0, "target_qps": 0.0, "min_duration_s": 2.5
    }  # fmt: skip
    assert overrides["cluster"] == {
        "address": "auto", "plan": "shard", "nodes": ["a", "b"], "per_gpu": True
    }  # fmt: skip
    assert overrides["dataset"] == {
        "path": "d.npz", "preset": "imagenet", "samples": 0, "budget": "2%"
    }  # fmt: skip
    written = flags_for(overrides)
    assert overrides_from(vars(parser.parse_args(["run", *written]))) == overrides
    assert "--per-gpu" in written and "True" not in written
    assert overrides_from(vars(parser.parse_args(["run"]))) == {}
