"""Thresholds from each cell's own noise (bench.compare.noise): derived from a history of
runs of unchanged code, used per cell by the gate, and named in its output."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from test_compare_gate import cli, repeated, side, write_run

from bench.compare import output
from bench.compare.gate import compare
from bench.compare.noise import FLOOR, IQR, T_TEST, noise_thresholds
from bench.compare.significance import REGRESSED, UNCHANGED
from bench.compare.thresholds import Thresholds

QUIET, NOISY = 0.002, 0.06
"""Run-to-run spread of the two cells of the history (the median's relative drift)."""


def history(runs: int = 6) -> list:
    """Runs of unchanged code: cell ``m`` drifts little between runs, cell ``n`` a lot."""
    rng = np.random.default_rng(7)
    made = []
    for index in range(runs):
        quiet = 1.0 * math.exp(rng.normal(0, QUIET))
        noisy = 2.0 * math.exp(rng.normal(0, NOISY))
        made.append(side(repeated("m", quiet, seed=index) + repeated("n", noisy, seed=index)))
    return made


def _by_cell(derived: list) -> dict[str, float]:
    return {t.key.split("/")[0]: t.value for t in derived if t.metric == "latency_median"}


def test_a_quiet_cell_gets_a_tight_threshold_and_a_noisy_one_a_wide_one() -> None:
    runs = history()
    derived = _by_cell(noise_thresholds(runs, T_TEST))
    assert derived["m"] == FLOOR  # a 0.2% drift: the floor
    assert derived["n"] > 0.08
    medians = [
        float(np.median([r["latency_median"] for r in s.cells[k].repetitions]))
        for s in runs
        for k in s.cells
        if k.startswith("n/")
    ]
    logs = np.log(medians)
    expected = math.expm1(stats.t.ppf(0.99, 5) * logs.std(ddof=1) * math.sqrt(1 + 1 / 6))
    assert derived["n"] == pytest.approx(expected)
    iqr = _by_cell(noise_thresholds(runs, IQR))
    assert iqr["m"] == FLOOR and iqr["n"] > FLOOR


def test_cells_with_too_short_a_history_keep_their_percentage() -> None:
    assert noise_thresholds(history(2), T_TEST) == []
    thresholds = Thresholds(cells=tuple(noise_thresholds(history(), T_TEST)))
    assert thresholds.for_cell("other/cell", "latency_median") == (0.10, "percentage")


def test_the_gate_decides_each_cell_by_its_own_threshold_and_says_which() -> None:
    base = side(repeated("m", 1.0) + repeated("n", 2.0), label="base")
    slower = side(repeated("m", 1.04, seed=9) + repeated("n", 2.1, seed=9), label="new")
    fixed = compare(base, slower, Thresholds())
    assert {c.key.split("/")[0]: c.verdict for c in fixed.cells} == {
        "m": UNCHANGED,  # +4%: real, but under the 10% percentage
        "n": UNCHANGED,
    }
    own = Thresholds(cells=tuple(noise_thresholds(history(), T_TEST)))
    noisy = compare(base, slower, own)
    verdicts = {c.key.split("/")[0]: c for c in noisy.cells}
    assert verdicts["m"].verdict == REGRESSED  # +4% on a cell that drifts 0.2%
    assert verdicts["n"].verdict == UNCHANGED  # +5% on a cell that drifts 6%
    decided = verdicts["m"].decisive
    assert decided is not None and decided.threshold_model == "t-test over 6 runs"
    assert decided.to_dict()["threshold_model"] == "t-test over 6 runs"
    text = "\n".join(output.context_lines(noisy))
    assert "threshold model: per-cell noise (t-test over 6 runs)" in text
    assert "(t-test over 6 runs)" in output.markdown(noisy)
    assert "threshold model: percentage" in "\n".join(output.context_lines(fixed))


def test_compare_takes_the_model_and_the_history_from_the_command_line(tmp_path: Path) -> None:
    paths = [write_run(tmp_path / f"h{i}", s_records) for i, s_records in enumerate(_records())]
    base, new = paths[0], write_run(tmp_path / "new", repeated("m", 1.04, seed=9))
    out = tmp_path / "gate.json"
    done = cli(
        "compare", base, new, "--threshold-model", "t-test", "--noise", *paths, "--json", out
    )
    assert done.returncode == 1, done.stdout + done.stderr
    (cell,) = json.loads(out.read_text())["cells"]
    assert cell["verdict"] == REGRESSED
    models = {c["threshold_model"] for c in cell["changes"] if c["metric"] == "latency_median"}
    assert models == {"t-test over 5 runs"}


def _records() -> list:
    rng = np.random.default_rng(1)
    return [repeated("m", math.exp(rng.normal(0, QUIET)), seed=i) for i in range(5)]


@pytest.mark.parametrize(
    "flags,expected",
    [
        (("--threshold-model", "t-test"), "give at least 3 with --noise"),
        (("--noise", "{base}"), "--noise needs a threshold model"),
        (("--threshold-model", "z-score"), "invalid choice"),
    ],
)
def test_a_model_without_its_history_is_a_one_line_error(
    tmp_path: Path, flags: tuple[str, ...], expected: str
) -> None:
    base = write_run(tmp_path / "base", repeated("m", 1.0))
    done = cli("compare", base, base, *(f.format(base=base) for f in flags))
    assert done.returncode == 2, done.stdout + done.stderr
    assert expected in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
