"""The layers of the code, checked by import-linter's contracts in pyproject.toml: the
ground imports nothing else of the project; runtimes, exporters and power import only
the ground; the harness stands on those, the features on the harness, the verbs on top;
and no package's modules import each other in a cycle."""

from __future__ import annotations

import argparse
import ast
import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT = [
    sys.executable,
    "-c",
    "from importlinter.cli import lint_imports_command; lint_imports_command()",
]


def lint(tree: Path) -> subprocess.CompletedProcess[str]:
    """import-linter on the packages under ``tree`` with this project's contracts."""
    environment = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [*LINT, "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=tree,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_project_keeps_its_layers() -> None:
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        ("bench/core/errors.py", "from runtimes import RUNTIMES", "bench.core is not allowed"),
        (
            "runtimes/base.py",
            "from bench.harness.config import BenchConfig",
            "runtimes is not allowed",
        ),
        ("exporters/zoo.py", "import runtimes.base", "exporters is not allowed"),
        ("bench/harness/train.py", "import bench.harness.worker", "No cycles between the modules"),
        ("bench/commands/run.py", "import scripts.suite_time", "bench.commands is not allowed"),
        ("bench/harness/runner.py", "import bench.fleet.driver", "bench.harness is not allowed"),
    ],
)
def test_an_import_against_the_layers_breaks_the_contracts(
    tmp_path: Path, module: str, line: str, broken: str
) -> None:
    for package in ("bench", "exporters", "runtimes", "scripts"):
        ignore = shutil.ignore_patterns("__pycache__")
        shutil.copytree(ROOT / package, tmp_path / package, ignore=ignore)
    with open(tmp_path / module, "a", encoding="utf-8") as handle:
        handle.write(f"\n{line}  # noqa\n")
    result = lint(tmp_path)
    assert result.returncode != 0
    assert broken in result.stdout


def test_cli_py_hands_each_verb_to_bench_commands_and_imports_nothing_else() -> None:
    """cli.py is one module, which import-linter cannot take as a root package: its own
    imports are read here. Outside the standard library it imports bench.commands only
    (the parser at the top, the verb's module by name when it runs) and bench.core."""
    tree = ast.parse((ROOT / "cli.py").read_text())
    imported = {
        alias.name if isinstance(node, ast.Import) else node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    ours = {name for name in imported if name and name.split(".")[0] not in sys.stdlib_module_names}
    assert ours and all(name.startswith(("bench.commands", "bench.core")) for name in ours), ours
    handlers = {parser.get_default("handler") for parser in _subparsers()} - {None}
    assert handlers and all(h.startswith("bench.commands.") for h in handlers), handlers
    for handler in handlers:  # each names a function that is there
        module, _, function = handler.partition(":")
        assert callable(getattr(importlib.import_module(module), function)), handler


def _subparsers() -> list:
    from bench.commands.parser import build_parser

    def walk(parser) -> list:  # noqa: ANN001
        found = []
        for action in parser._actions:  # noqa: SLF001
            if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
                for child in action.choices.values():
                    found += [child, *walk(child)]
        return found

    return walk(build_parser())


def test_a_worker_imports_no_framework_before_its_runtime_asks() -> None:
    """An ONNX Runtime or OpenVINO cell must not pay for torch (ARCHITECTURE: a worker
    imports only what its cell measures): the worker, the registry and the record do not
    import it, nor does the module loader until it is called."""
    code = (
        "import sys, bench.harness.worker, bench.harness.train, runtimes, bench.core.record; "
        "from exporters.source import module_loader; module_loader('zoo:mlp', 0); "
        "sys.exit(sorted({'torch', 'onnxruntime', 'openvino'} & set(sys.modules)) or None)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
