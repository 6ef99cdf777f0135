"""The documentation site: every flag and configuration key described (the references
are generated from them), the site built with warnings as errors, and every link between
its pages landing on a page and an anchor that exist."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCS = REPO_ROOT / "docs"
sys.path.insert(0, str(DOCS / "_ext"))

from deploybench_docs import config_keys, undocumented_keys  # noqa: E402

from bench.commands.parser import build_parser  # noqa: E402


def _flags(parser: argparse.ArgumentParser, prog: str) -> list[tuple[str, argparse.Action]]:
    """Every option and positional of ``parser`` and its verbs, named as typed."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for verb in action._choices_actions:  # the verbs themselves: their help
                found.append((f"{prog} {verb.dest}", verb))
            for name, sub in action.choices.items():
                found += _flags(sub, f"{prog} {name}")
        elif not isinstance(action, argparse._HelpAction):
            name = "/".join(action.option_strings) or action.dest
            found.append((f"{prog} {name}", action))
    return found


def test_every_flag_says_what_it_does() -> None:
    """The command-line reference is the parser's help: a flag without help would be an
    empty line in it."""
    missing = [
        name
        for name, action in _flags(build_parser(), "cli.py")
        if not action.help or action.help == argparse.SUPPRESS or not action.help.strip()
    ]
    assert missing == [], f"flags with no help (add help=...): {', '.join(missing)}"


def test_every_configuration_key_says_what_it_sets() -> None:
    """The configuration reference is the schema's own descriptions: a key added without
    one (an attribute docstring, a Field description, or its table's docstring naming it
    as ``key``) is named here."""
    assert undocumented_keys() == [], "keys with no description: " + ", ".join(undocumented_keys())
    tables = {key.table for key in config_keys()}
    assert {"suite", "measure", "dataset", "loadgen", "runtime.openvino", "hosts.NAME"} <= tables


class _Links(HTMLParser):
    """The ids and the local links of one built page."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(str(values["id"]))
        href = values.get("href")
        if tag == "a" and href and not re.match(r"^[a-z]+:|^#$|^//", href):
            self.links.append(href)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    build = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html"]
        + [str(DOCS), str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr[-4000:]
    return out


@pytest.mark.e2e
def test_the_site_builds_and_every_internal_link_lands(site: Path) -> None:
    pages: dict[Path, _Links] = {}
    for page in site.rglob("*.html"):
        parsed = _Links()
        parsed.feed(page.read_text(encoding="utf-8"))
        pages[page.resolve()] = parsed
    broken = []
    for page, parsed in pages.items():
        if "_modules" in page.parts or page.name in ("genindex.html", "search.html"):
            continue
        for href in parsed.links:
            target, _, anchor = href.partition("#")
            landing = (page.parent / target).resolve() if target else page
            if landing.suffix != ".html":
                continue  # an image or a download Sphinx copied
            if landing not in pages:
                broken.append(f"{page.relative_to(site)} → {href}: no such page")
            elif anchor and anchor not in pages[landing].ids:
                broken.append(f"{page.relative_to(site)} → {href}: no such anchor")
    assert broken == [], "\n".join(broken)


@pytest.mark.e2e
def test_the_references_are_the_codes_own(site: Path) -> None:
    cli = (site / "reference" / "cli.html").read_text(encoding="utf-8")
    for name, _ in _flags(build_parser(), "cli.py"):
        flag = name.rsplit(" ", 1)[1].split("/")[-1]
        if flag.startswith("--"):  # an option's own entry, not a longer flag's prefix
            assert f"<kbd>{flag}</kbd>" in cli, f"{name} is not in the command-line reference"
    config = (site / "reference" / "config.html").read_text(encoding="utf-8")
    tables = config.split('<p class="rubric">')
    for key in config_keys():
        table = next((t for t in tables if t.startswith(f"[{key.table}]<")), "")
        assert f'<span class="pre">{key.name}</span>' in table, f"[{key.table}] {key.name}"
    from exporters.zoo import ZOO

    zoo = (site / "zoo.html").read_text(encoding="utf-8")
    assert all(name in zoo for name in ZOO), "a zoo model is missing from zoo.html"
