"""Tables the documentation takes from the code, never kept by hand: every key of
``bench.toml`` from the configuration's schema (``{config-keys}``) and the reference zoo
from its registry (``{zoo-table}``). Each is a table node built from the live objects, so
a key or a model added to the code is in the next build, and one without a description
is named by ``undocumented_keys`` (the docs test fails on it)."""

from __future__ import annotations

import re
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from docutils import nodes
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

from bench.core.spec import BATCH
from bench.harness.config import BenchConfig


@dataclass(frozen=True)
class Key:
    """A key of the suite file: its table, name, type, default and description."""

    table: str
    name: str
    kind: str
    default: str
    description: str


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The settings model a field's annotation is, if it is one (a table of its own)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _kind(annotation: Any) -> str:
    text = str(annotation).replace("typing.", "").replace("NoneType", "None")
    text = re.sub(r"<class '([\w.]+)'>", lambda m: m.group(1).rpartition(".")[2], text)
    return re.sub(r"\b[\w.]+\.(\w+)", r"\1", text)


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        return repr(field.default_factory())  # type: ignore[call-arg]
    return "" if field.is_required() else repr(field.default)


def _described(model: type[BaseModel], name: str, field: FieldInfo) -> str:
    """The key's own description (its docstring or Field description), else the sentence
    of its table's docstring that names it as ``name``; empty where neither says more
    than three words besides the key's name."""
    text = " ".join((field.description or "").split())
    if not text:
        doc = " ".join((model.__doc__ or "").split())
        sentences = re.split(r"(?<=\.)\s+(?=[A-Z`(])", doc)
        text = next((s.replace("``", "`") for s in sentences if f"``{name}``" in s), "")
    words = re.findall(r"[A-Za-z]{2,}", text.replace(name, ""))
    return text if len(words) >= 3 else ""


def config_keys(model: type[BaseModel] = BenchConfig, table: str = "") -> Iterator[Key]:
    """Every key of ``model`` (a table of bench.toml) and of the tables under it; a
    runtime's options table is named ``runtime.<name>``."""
    for name, field in model.model_fields.items():
        inner = _model_of(field.annotation)
        where = f"{table}.{name}" if table else name
        if inner is not None:
            yield from config_keys(inner, where)
            continue
        origin = typing.get_origin(field.annotation)
        if origin is dict:
            value_type = typing.get_args(field.annotation)[1]
            value_model = _model_of(value_type)
            if value_model is not None:  # [hosts.NAME]: a table per entry
                yield from config_keys(value_model, f"{where}.NAME")
                continue
        if table:
            yield Key(
                table,
                name,
                _kind(field.annotation),
                _default(field),
                _described(model, name, field),
            )


def undocumented_keys() -> list[str]:
    """The keys with no description of their own and none in their table's docstring."""
    return [f"[{k.table}] {k.name}" for k in config_keys() if not k.description]


def _table(headings: list[str], rows: list[list[str]], code: int = 0) -> nodes.table:
    """A table of text; its first ``code`` columns as literals (names, types, values)."""
    table = nodes.table()
    group = nodes.tgroup(cols=len(headings))
    table += group
    for _ in headings:
        group += nodes.colspec(colwidth=1)
    head = nodes.thead()
    group += head
    head += _row(headings)
    body = nodes.tbody()
    group += body
    for row in rows:
        body += _row(row, code)
    return table


def _row(cells: list[str], code: int = 0) -> nodes.row:
    row = nodes.row()
    for index, text in enumerate(cells):
        entry = nodes.entry()
        paragraph = nodes.paragraph()
        if index < code and text:
            paragraph += nodes.literal(text=text)
        else:  # `code` in a description as a literal
            for part, piece in enumerate(re.split(r"`([^`]+)`", text)):
                paragraph += nodes.literal(text=piece) if part % 2 else nodes.Text(piece)
        entry += paragraph
        row += entry
    return row


class ConfigKeys(SphinxDirective):
    """``{config-keys}``: a table per table of bench.toml, every key with its type,
    default and description."""

    def run(self) -> list[nodes.Node]:
        keys = list(config_keys())
        out: list[nodes.Node] = []
        for table in dict.fromkeys(k.table for k in keys):
            section = nodes.rubric(text=f"[{table}]")
            rows = [[k.name, k.kind, k.default, k.description] for k in keys if k.table == table]
            out += [section, _table(["key", "type", "default", "what it sets"], rows, code=3)]
        return out


def _shape(shape: tuple) -> str:
    """``N×3×224×224``: the batch axis as N."""
    return "×".join("N" if dim == BATCH else str(dim) for dim in shape)


class ZooTable(SphinxDirective):
    """``{zoo-table}``: the reference models from the zoo's registry, with their
    parameters and FLOPs per sample counted as ``cli.py list`` counts them (on the meta
    device: no weights, no arithmetic)."""

    def run(self) -> list[nodes.Node]:
        from bench.views.catalog import model_cost
        from exporters.zoo import ZOO

        rows = []
        for entry in ZOO.values():
            params, flops = model_cost(entry)
            inputs = ", ".join(f"{s.name}: {_shape(s.shape)}" for s in entry.inputs)
            cost = [f"{params / 1e6:.2f}", f"{flops / 1e9:.3f}"]
            rows.append([entry.name, entry.description, entry.task, inputs, *cost])
        headings = ["model", "what it is", "task", "inputs", "Mparams", "GFLOPs"]
        return [_table(headings, rows, code=1)]


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("config-keys", ConfigKeys)
    app.add_directive("zoo-table", ZooTable)
    return {"version": "1", "parallel_read_safe": True}
