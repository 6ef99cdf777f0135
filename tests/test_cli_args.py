"""Command-line argument parsing that needs no subprocess."""

from __future__ import annotations

import pytest

from cli import _devices


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
