"""User text (model, suite and machine names, failure reasons, labels, environment
strings) in Markdown and JUnit output: it is shown as written and can add no row, column,
line, HTML or markup."""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from fixtures.records import cell, ended, timed
from markdown_it import MarkdownIt  # rich's Markdown parser: CommonMark plus GFM tables

from bench.compare import output
from bench.compare.gate import compare
from bench.compare.sides import side_from_records
from bench.core.record import CellRecord
from bench.views.machines import Machine, Row, machines_markdown
from bench.views.report import COLUMNS, markdown_text, summary_markdown
from bench.views.roofline import COLUMNS as ROOFLINE_COLUMNS
from bench.views.roofline import RooflineRow, roofline_markdown

HOSTILE_MODEL = "<img src=x onerror=alert(1)>|x"
HOSTILE_REASON = "boom\n```\n| injected | row |"
HOSTILE_SUITE = "<script>alert(1)</script> **bold** [link](http://x) _it_ ~~gone~~ #1 $x$"
CELL_SEPARATOR = re.compile(r"(?<!\\)\|")
UNESCAPED_MARKUP = re.compile(r"(?<!\\)[`*_\[\]~$]")
RENDER = MarkdownIt("commonmark").enable(["table", "strikethrough"])


def records() -> list[CellRecord]:
    ok = timed(cell(HOSTILE_MODEL, "onnxruntime", "cuda:0"), [1.0, 1.2, 1.1])
    failed = ended(cell("resnet18", "tensorrt", "cuda:0"), "failed", HOSTILE_REASON)
    return [ok, failed]


def assert_table(text: str, columns: int, rows: int) -> None:
    """Every table line has ``columns`` cells (between unescaped '|') and no line more."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    assert len(lines) == rows + 2
    assert all(len(CELL_SEPARATOR.split(line)) == columns + 2 for line in lines), lines


def assert_inert(text: str) -> None:
    """No HTML tag from user text, and no unescaped code, emphasis, link or math mark."""
    assert "<img" not in text and "<script" not in text
    assert not UNESCAPED_MARKUP.search(text), UNESCAPED_MARKUP.search(text)


def rendered_text(markdown: str) -> str:
    """What a reader sees: the rendered HTML without its tags, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", RENDER.render(markdown)))


@pytest.mark.parametrize(
    "plain", ["mlp", "resnet18", "cpu", "cuda:0", "fp16→fp32", "latency b1", "1,234", "12.5 -"]
)
def test_plain_names_are_left_as_they_are(plain: str) -> None:
    assert markdown_text(plain) == plain


def test_the_escape_rules() -> None:
    assert markdown_text("a\r\nb\rc\nd") == "a b c d"
    assert markdown_text("<a href='x'>&</a>") == "&lt;a href='x'&gt;&amp;&lt;/a&gt;"
    assert markdown_text(r"\ ` * _ [ ] | ~ # $") == r"\\ \` \* \_ \[ \] \| \~ \# \$"
    assert markdown_text(r"a\|b") == r"a\\\|b"  # the backslash cannot unescape the '|'


def test_a_hostile_name_and_reason_stay_in_their_cells() -> None:
    text = summary_markdown(records())
    assert_table(text, columns=len(COLUMNS), rows=2)
    assert_inert(text)
    assert "&lt;img src=x onerror=alert(1)&gt;\\|x" in text
    assert "boom \\`\\`\\` \\| injected \\| row \\|" in text


def test_the_rendered_table_shows_the_text_as_written() -> None:
    markdown = summary_markdown(records())
    rendered = RENDER.render(markdown)
    assert rendered.count("<tr>") == 3
    assert all(row.count("<td>") == len(COLUMNS) for row in rendered.split("<tr>")[2:])
    assert not re.search(r"<(img|script|code|strong|em|a|s|del)\b", rendered)
    seen = rendered_text(markdown)
    assert HOSTILE_MODEL in seen
    assert "failed: boom ``` | injected | row |" in seen


def test_the_report_heading_is_one_line_of_text() -> None:
    name = f"{HOSTILE_SUITE}\nsecond"
    heading = f"# {markdown_text(f'{name} ({HOSTILE_REASON})')}"  # as bench.commands.run writes it
    assert len(heading.splitlines()) == 1
    assert_inert(heading)
    rendered = RENDER.render(heading)
    assert rendered.startswith("<h1>") and rendered.count("<") == 2  # <h1> and </h1>
    assert rendered_text(heading).strip() == " ".join(f"{name} ({HOSTILE_REASON})".splitlines())


def test_compare_markdown_escapes_names_labels_and_environment() -> None:
    env = {"python": "3.11", "git": {"commit": "a" * 40, "dirty": False}}
    hostile_env = {"python": "3.12 <b>|</b>\n- fake item", "git": {"commit": "`x` <i>"}}
    base = side_from_records("base <script>", "run|1", env, records())
    current = side_from_records("**current**\n# title", "run_2", hostile_env, records())
    comparison = compare(base, current)
    text = output.markdown(comparison)
    table, detail = text.split("<details><summary>every metric</summary>")
    assert_table(table, columns=len(output.COLUMNS), rows=2)
    changes = sum(len(c.changes) for c in comparison.cells)
    assert_table(detail, columns=len(output.COLUMNS), rows=changes)
    assert_inert(text)
    assert text.count("<") == 4  # only <details><summary>…</summary> … </details>
    items = [line for line in text.splitlines() if line.startswith("- ")]
    assert any("3.12 &lt;b&gt;\\|&lt;/b&gt; - fake item" in item for item in items)
    assert any("\\*\\*current\\*\\* \\# title" in item for item in items)
    assert not any(line.startswith(("# ", "- fake")) for line in text.splitlines())
    seen = rendered_text(text)
    assert "base <script> (run run|1)" in seen and "3.12 <b>|</b> - fake item" in seen


def test_junit_replaces_characters_xml_forbids() -> None:
    of = cell("bad\x00name\x1b[31m", "onnxruntime")
    side = side_from_records("run", "run", {}, [timed(of, [1.0, 1.1, 1.2])])
    root = ET.fromstring(output.junit(compare(side, side)))
    (case,) = root.iter("testcase")
    assert "bad\ufffdname\ufffd[31m" in case.get("name", "")


def test_machine_labels_and_roofline_cells_are_escaped() -> None:
    machines = [
        Machine("a", {}, [Path("runs/a|b")], label="GPU <b>|</b>"),
        Machine("b", {}, [Path("runs/c")], label="CPU *fast*"),
    ]
    text = machines_markdown(machines, [Row("TFLOPS | fake", ["1.0", "2.0"], [1.0, 2.0])])
    assert_table(text, columns=4, rows=1)
    assert "GPU &lt;b&gt;\\|&lt;/b&gt;" in text and "CPU \\*fast\\*" in text
    assert "<" not in text and "Sources: GPU &lt;b&gt;\\|&lt;/b&gt;: a\\|b;" in text
    assert_inert(text)
    row = RooflineRow(
        HOSTILE_MODEL, "ort", "cpu", "fp32", "latency", 1, 10.0, 1e9, 1, 0.01, None, "none", None
    )
    roofline = roofline_markdown([row])
    assert_table(roofline, columns=len(ROOFLINE_COLUMNS), rows=1)
    assert_inert(roofline)
