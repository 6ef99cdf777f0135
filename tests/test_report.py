"""The summary and speedup tables: what ran is shown, a mismatch with the request too."""

from __future__ import annotations

from fixtures.records import cell, ended, timed

from bench.core.record import Accuracy, CellRecord
from bench.views.report import COLUMNS, summary_markdown, summary_rows

TIMES = [9.12, 9.0, 9.3, 8.9, 11.0]


def record(requested: str, executed: str) -> CellRecord:
    of = cell("resnet18", "openvino", "cpu", requested)
    return timed(of, TIMES, executed=executed, accuracy=Accuracy(verdict="pass"))


def test_a_precision_mismatch_shows_request_and_execution() -> None:
    (row,) = summary_rows([record("fp32", "bf16")])
    target = row[COLUMNS.index("target")]
    assert target == "cpu fp32→bf16"


def test_a_matching_precision_is_shown_once() -> None:
    (row,) = summary_rows([record("fp16", "fp16")])
    assert row[COLUMNS.index("target")] == "cpu fp16"
    assert row[COLUMNS.index("accuracy")] == "pass"
    assert row[COLUMNS.index("median ms")] == "9.12"
    assert row[COLUMNS.index("samples/s")] == f"{5 / (sum(TIMES) / 1e3):,.0f}"  # 106


def test_a_skipped_cell_shows_its_reason() -> None:
    skipped = ended(cell("resnet18", "openvino"), "skipped", "no GPU")
    (row,) = summary_rows([skipped])
    assert row[COLUMNS.index("status")] == "skipped: no GPU"
    assert row[COLUMNS.index("median ms")] == "-"


def test_markdown_has_a_header_and_a_row_per_cell() -> None:
    lines = summary_markdown([record("fp32", "fp32"), record("bf16", "bf16")]).splitlines()
    assert lines[0].startswith("| model | runtime | target")
    assert len(lines) == 4
    assert all(line.count("|") == len(COLUMNS) + 1 for line in lines)
