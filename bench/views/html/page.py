"""One self-contained HTML page: inline CSS, charts as inline SVG, and one small inline
script (sorting a table by a column) that the page's Content-Security-Policy allows by its
hash. Nothing is fetched: the policy forbids every other script, any network request and
inline event handlers, so a page opens offline from disk, prints, and runs no injected
code even if a text were ever left unescaped. Every text passes through ``text()``."""

from __future__ import annotations

import base64
import hashlib
import html
from collections.abc import Sequence
from dataclasses import dataclass, field

SORT_SCRIPT = """
document.querySelectorAll("table.sortable").forEach((table) => {
  const headings = table.querySelectorAll("thead th");
  headings.forEach((th) => {
    th.addEventListener("click", () => {
      const column = th.cellIndex;
      const body = table.tBodies[0];
      const ascending = th.dataset.order !== "ascending";
      headings.forEach((h) => delete h.dataset.order);
      th.dataset.order = ascending ? "ascending" : "descending";
      const key = (row) => {
        const cell = row.cells[column];
        const value = cell.dataset.value;
        return value === undefined ? cell.textContent : Number(value);
      };
      const rows = Array.from(body.rows).sort((a, b) => {
        const x = key(a), y = key(b);
        const numbers = typeof x === "number" && typeof y === "number";
        const order = numbers ? x - y : String(x).localeCompare(String(y));
        return ascending ? order : -order;
      });
      rows.forEach((row) => body.appendChild(row));
    });
  });
});
"""
STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px;
  padding: 0 1em; color: #1d1d1f; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 3px 7px; text-align: left; vertical-align: top; }
td { white-space: nowrap; } td:last-child { white-space: normal; }
th { background: #f3f3f3; } td.figure { text-align: right; font-variant-numeric: tabular-nums; }
table.sortable th { cursor: pointer; } th[data-order="ascending"]::after { content: " ▲"; }
th[data-order="descending"]::after { content: " ▼"; }
tr.failed td { background: #fde8e8; } tr.skipped td { color: #777; background: #f6f6f6; }
tr.unstable td { background: #fff6dd; } tr.regressed td, tr.fail td { background: #fde8e8; }
tr.improved td { background: #e6f6e6; } tr.inconclusive td { background: #fff6dd; }
figure { margin: 1em 0; } figcaption, p.note { color: #555; font-size: 13px; }
figure svg { max-width: 100%; height: auto; }
dl { display: grid; grid-template-columns: max-content auto; gap: 2px 1em; }
dt { font-weight: 600; } dd { margin: 0; } .verdict-fail { color: #b00020; font-weight: 700; }
.verdict-pass { color: #1b7f3b; font-weight: 700; }
@media print { body { max-width: none; } h2 { break-after: avoid; }
  figure, tr { break-inside: avoid; } }
"""


def text(value: object) -> str:
    """``value`` as HTML text: ``& < > " '`` become entities, so no text is markup."""
    return html.escape(str(value), quote=True)


def _script_hash(script: str) -> str:
    digest = hashlib.sha256(script.encode()).digest()
    return "sha256-" + base64.b64encode(digest).decode()


POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    f"script-src '{_script_hash(SORT_SCRIPT)}'"
)
"""Only the sort script runs; nothing is loaded from anywhere."""


@dataclass(frozen=True)
class Cell:
    """A table cell: its text, and the number it sorts by (figures are right-aligned)."""

    text: str
    value: float | None = None


@dataclass
class Page:
    """A page built in order: headings, paragraphs, tables, figures, definition lists."""

    title: str
    parts: list[str] = field(default_factory=list)

    def heading(self, title: str, level: int = 2, anchor: str | None = None) -> None:
        ident = f' id="{text(anchor)}"' if anchor else ""
        self.parts.append(f"<h{level}{ident}>{text(title)}</h{level}>")

    def paragraph(self, body: str, css: str = "note") -> None:
        self.parts.append(f'<p class="{css}">{text(body)}</p>')

    def items(self, lines: Sequence[str]) -> None:
        if lines:
            self.parts.append("<ul>" + "".join(f"<li>{text(i)}</li>" for i in lines) + "</ul>")

    def table(
        self,
        columns: Sequence[str],
        rows: Sequence[Sequence[str | Cell]],
        *,
        row_classes: Sequence[str] | None = None,
        caption: str | None = None,
        ident: str | None = None,
    ) -> None:
        """A sortable table (click a heading). A ``Cell`` with a value sorts by it."""
        head = "".join(f"<th>{text(c)}</th>" for c in columns)
        body = []
        for index, row in enumerate(rows):
            css = row_classes[index] if row_classes else ""
            cells = "".join(_cell(value) for value in row)
            body.append(f'<tr class="{text(css)}">{cells}</tr>' if css else f"<tr>{cells}</tr>")
        ident_attr = f' id="{text(ident)}"' if ident else ""
        caption_html = f"<caption>{text(caption)}</caption>" if caption else ""
        self.parts.append(
            f'<table class="sortable"{ident_attr}>{caption_html}<thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>"
        )

    def figure(self, svg: str, caption: str, ident: str) -> None:
        """An inline SVG chart (made by bench.views.html.charts, its texts escaped there)."""
        self.parts.append(
            f'<figure id="figure-{text(ident)}">{svg}<figcaption>{text(caption)}</figcaption>'
            "</figure>"
        )

    def definitions(self, pairs: Sequence[tuple[str, str]]) -> None:
        items = "".join(f"<dt>{text(k)}</dt><dd>{text(v)}</dd>" for k, v in pairs)
        self.parts.append(f"<dl>{items}</dl>")

    def raw(self, fragment: str) -> None:
        """A fragment this package made (a verdict badge): never user text."""
        self.parts.append(fragment)

    def render(self) -> str:
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{text(self.title)}</title><style>{STYLE}</style></head><body>"
            + "\n".join(self.parts)
            + f"<script>{SORT_SCRIPT}</script></body></html>\n"
        )


def _cell(value: str | Cell) -> str:
    if isinstance(value, Cell):
        if value.value is None:
            return f'<td class="figure">{text(value.text)}</td>'
        return f'<td class="figure" data-value="{value.value!r}">{text(value.text)}</td>'
    return f"<td>{text(value)}</td>"
