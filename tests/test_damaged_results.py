"""Damaged results folders: every command that reads one (``run --resume``, ``report``,
``baseline save``, ``compare``) says what is wrong on one line and exits with 2, for each
kind of damage; a torn last line (a write cut short by a power cut) is skipped with a
warning, never an error. The commands run in this process (``cli.main``), so that an
uncaught exception fails the test with its traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixtures.records import cell, ended, timed

import cli
from bench.harness.config import BenchConfig
from bench.harness.plan import ModelRequest

RECORD = timed(cell("mlp"), [1.0, 1.1, 0.9, 1.0, 1.2]).to_dict()
GOOD_LINE = json.dumps(RECORD).encode()

# results.jsonl lines that no writer of ours makes: each must be a one-line error
DAMAGED_LINES: dict[str, bytes] = {
    "bare number": b"42",
    "no key": b'{"status": "ok"}',
    "invalid UTF-8": b'{"key": "caf\xe9", "status": "ok"}',
    "a list": b"[1, 2, 3]",
    "null": b"null",
    "a string": b'"results"',
    "cell of the wrong type": b'{"key": "k", "cell": 5, "status": "ok"}',
    "not JSON": b"results of the run, see the wiki",
    "a number too long to read": b"1" * 5000,
    "nested too deep": b"[" * 100_000 + b"]" * 100_000,
}
# environment.json or run.json contents that are no JSON object
DAMAGED_FILES: dict[str, bytes] = {
    "bare number": b"7",
    "invalid UTF-8": b'{"cpu": "\xff\xfe"}',
    "not JSON": b"{cpu: epyc",
    "a list": b"[]",
}


def _run_dir(root: Path, lines: list[bytes], name: str = "run") -> Path:
    """A run directory as ``run`` writes it, holding ``lines`` as its results.jsonl."""
    path = root / name
    path.mkdir(parents=True)
    config = BenchConfig.model_validate(
        {"suite": {"models": ["mlp"], "runtimes": ["onnxruntime"], "name": "t"}}
    )
    run = {
        "run_id": name,
        "config": config.model_dump(),
        "models": [ModelRequest("mlp", "zoo", "mlp").to_dict()],
        "cache_dir": str(root / "elsewhere"),
    }
    (path / "run.json").write_text(json.dumps(run))
    (path / "environment.json").write_text(json.dumps({"cpu": {"model": "test cpu"}}))
    (path / "results.jsonl").write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def _commands(run_dir: Path, tmp_path: Path) -> dict[str, list[str]]:
    other = _run_dir(tmp_path / "other", [GOOD_LINE])
    return {
        "run --resume": ["run", "--resume", str(run_dir), "--no-progress"],
        "report": ["report", str(run_dir)],
        "baseline save": ["baseline", "save", str(run_dir), str(tmp_path / "base.json")],
        "compare": ["compare", str(other), str(run_dir)],
    }


def _one_line_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code = cli.main(argv)
    captured = capsys.readouterr()
    assert code == 2, f"{argv}: exit {code}\n{captured.out}\n{captured.err}"
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    return lines[0]


@pytest.mark.parametrize("command", ["run --resume", "report", "baseline save", "compare"])
@pytest.mark.parametrize("damage", list(DAMAGED_LINES))
def test_a_damaged_results_line_is_one_line_and_exit_2(
    damage: str, command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = _run_dir(tmp_path, [GOOD_LINE, DAMAGED_LINES[damage], GOOD_LINE])
    line = _one_line_error(_commands(run_dir, tmp_path)[command], capsys)
    assert "results.jsonl line 2" in line, line


@pytest.mark.parametrize(
    ("file", "command"),
    [
        (file, command)
        for file in ("environment.json", "run.json")
        for command in ("run --resume", "report", "baseline save", "compare")
        if (file, command) != ("run.json", "report")  # report reads no run.json
    ],
)
@pytest.mark.parametrize("damage", list(DAMAGED_FILES))
def test_a_damaged_run_file_is_one_line_and_exit_2(
    file: str,
    damage: str,
    command: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run_dir = _run_dir(tmp_path, [GOOD_LINE])
    (run_dir / file).write_bytes(DAMAGED_FILES[damage])
    line = _one_line_error(_commands(run_dir, tmp_path)[command], capsys)
    assert file in line, line


@pytest.mark.parametrize("command", ["report", "baseline save", "compare"])
def test_a_torn_last_line_is_skipped_with_a_warning(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    failed = ended(cell("mlp", runtime="openvino"), "failed").to_dict()
    run_dir = _run_dir(tmp_path, [GOOD_LINE, json.dumps(failed).encode()])
    with open(run_dir / "results.jsonl", "ab") as handle:
        handle.write(GOOD_LINE[: len(GOOD_LINE) // 2])  # the power went mid-write
    code = cli.main(_commands(run_dir, tmp_path)[command])
    captured = capsys.readouterr()
    assert code in (0, 1), captured.err  # compare: 1, the openvino cell failed
    assert "line 3" in captured.err and "cut short" in captured.err, captured.err
    assert "Traceback" not in captured.err


def test_nul_bytes_after_a_crash_count_as_a_torn_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file system that lost a write after a crash may leave zeros where it was."""
    run_dir = _run_dir(tmp_path, [GOOD_LINE])
    with open(run_dir / "results.jsonl", "ab") as handle:
        handle.write(b"\0" * 300)
    assert cli.main(["baseline", "save", str(run_dir), str(tmp_path / "b.json")]) == 0
    assert "cut short" in capsys.readouterr().err


NESTED_DAMAGE = {
    "measure settings a list": ("run.json", ["config", "measure"], [1, 2]),
    "suite a string": ("run.json", ["config", "suite"], "fast"),
    "power a list": ("environment.json", ["power"], ["x"]),
    "cpu a number": ("environment.json", ["cpu"], 5),
    "gpus a string": ("environment.json", ["gpus"], "H200"),
    "git commit a number": ("environment.json", ["git"], {"commit": 7, "dirty": True}),
}


@pytest.mark.parametrize("command", ["run --resume", "report", "baseline save", "compare"])
@pytest.mark.parametrize("damage", list(NESTED_DAMAGE))
def test_damage_inside_a_run_file_is_never_a_traceback(
    damage: str, command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A field of the wrong kind deep in a file: read as unknown, or one line and exit 2."""
    run_dir = _run_dir(tmp_path, [GOOD_LINE])
    file, path, value = NESTED_DAMAGE[damage]
    document = json.loads((run_dir / file).read_text())
    target = document
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value
    (run_dir / file).write_text(json.dumps(document))
    argv = _commands(run_dir, tmp_path)[command]
    if command == "run --resume":
        argv = [*argv, "--cache-dir", str(tmp_path / "cache")]
    code = cli.main(argv)  # an uncaught exception fails the test with its traceback
    err = capsys.readouterr().err
    assert code in (0, 1, 2), err
    if code == 2:
        assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err


@pytest.mark.parametrize("torn", [b"{", b'{"', b'{"schema_version": 1, "run_id": "r'])
def test_any_start_of_a_record_counts_as_torn(
    torn: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = _run_dir(tmp_path, [GOOD_LINE])
    with open(run_dir / "results.jsonl", "ab") as handle:
        handle.write(torn)
    assert cli.main(["baseline", "save", str(run_dir), str(tmp_path / "b.json")]) == 0
    assert "line 2 is a record cut short" in capsys.readouterr().err
