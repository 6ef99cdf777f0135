"""The paired A/B gate: the paired loop (order drawn per pair, both sides fed the same
inputs, no spinning), the stop rule, confirmation of alerts, a side's crash, and ``ab``'s
one-line refusals of sides that cannot be paired."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fixtures.onnx_models import dynamic_relu, fp16_model, two_input_model
from test_cli import cli

from bench.compare.ab import FAILED, AbCell, Measurer, Stage
from bench.compare.ab_output import PAIRED, AbResult, junit, markdown
from bench.compare.pairs import WorkerPairs
from bench.compare.significance import INCONCLUSIVE, REGRESSED, UNCHANGED
from bench.core.cell import Cell
from bench.core.record import Executed
from bench.core.settings import RuntimeSettings
from bench.core.spec import PreparedModel, TensorSpec
from bench.core.timing import StopRule
from bench.harness import pairs
from bench.harness.config import AbConfig
from bench.harness.isolation import WorkerOutcome
from bench.harness.pairs import PairJob, PairTimes, measure_pair, time_pairs
from runtimes.base import Built

CELL = Cell("m", "onnxruntime", "cpu", "fp32", 1, "latency")


class Recorder:
    """A stand-in session: what was staged on it, and each launch in a shared log."""

    def __init__(self, name: str, log: list[str], options: Any = None) -> None:
        self.name, self.log, self.options = name, log, options
        self.staged: dict[str, np.ndarray] | None = None
        self.executed = Executed("fp32", "cpu", 2)

    def stage(self, feeds: dict[str, np.ndarray]) -> None:
        self.staged = feeds

    def launch(self) -> None:
        self.log.append(self.name)

    def synchronize(self) -> None:
        pass

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {}

    def close(self) -> None:
        pass


def test_each_pair_runs_both_sides_once_in_a_drawn_order() -> None:
    log: list[str] = []
    base, new = Recorder("base", log), Recorder("new", log)
    rng = np.random.default_rng(0)
    base_ns, new_ns, base_first, _ = time_pairs(base, new, StopRule(0, 400), 1000, rng)
    assert base_ns.size == new_ns.size == base_first.size == 400
    pairs_run = [tuple(log[i : i + 2]) for i in range(0, len(log), 2)]
    assert all(set(p) == {"base", "new"} for p in pairs_run)
    assert [p[0] == "base" for p in pairs_run] == base_first.tolist()
    assert 150 < base_first.sum() < 250  # about half each way
    assert (base_ns > 0).all() and (new_ns > 0).all()


def test_the_loop_stops_at_its_pair_cap() -> None:
    log: list[str] = []
    rule = StopRule(60.0, 10)  # a minute: the cap of 25 pairs ends it first
    timed = time_pairs(Recorder("b", log), Recorder("n", log), rule, 25, np.random.default_rng(1))
    assert timed[0].size == 25 and len(log) == 50


class StandIn:
    """A runtime whose sessions are Recorders; it keeps every session it made and in
    which order the sides were built."""

    sessions: list[Recorder] = []
    built: list[str] = []

    @classmethod
    def import_framework(cls) -> None:
        pass

    def build(self, model: PreparedModel, target: Any, options: Any, cache_dir: Path) -> Built:
        StandIn.built.append(model.name)
        return Built(model.name, 0.0)

    def load(self, built: Built, model: PreparedModel, target: Any, options: Any) -> Recorder:
        session = Recorder(model.name, [], options)
        StandIn.sessions.append(session)
        return session


def _model(name: str) -> PreparedModel:
    specs = (TensorSpec("x", (1, 8)),)
    return PreparedModel(name, Path(f"{name}.onnx"), specs, (), "unknown", "")


def _job(seed: int) -> PairJob:
    return PairJob(
        CELL,
        (_model("base"), _model("new")),
        (RuntimeSettings(), RuntimeSettings()),
        StopRule(0, 5),
        StopRule(0, 30),
        100,
        2,
        (1,),
        Path("."),
        seed,
    )


def test_both_sides_get_the_same_inputs_and_share_the_process_politely(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pairs, "get_runtime", lambda name: StandIn)
    orders = set()
    for seed in range(8):
        StandIn.sessions, StandIn.built = [], []
        times = measure_pair(_job(seed))
        base, new = sorted(StandIn.sessions, key=lambda s: s.name)
        assert base.staged is not None and new.staged is not None
        assert base.staged.keys() == new.staged.keys() == {"x"}
        np.testing.assert_array_equal(base.staged["x"], new.staged["x"])
        assert base.options.shared and new.options.shared  # no spinning pools
        assert base.options.threads == new.options.threads == 2
        assert times.base_ns.size == 30 and times.warmup_pairs == 5
        orders.add(tuple(StandIn.built))
    assert orders == {("base", "new"), ("new", "base")}  # which side loads first is drawn


def _pairs(ratio: float, seed: int, count: int = 80) -> PairTimes:
    rng = np.random.default_rng(seed)
    base = rng.normal(1e6, 1e4, count)
    new = base * ratio * np.exp(rng.normal(0, 0.002, count))
    executed = (Executed("fp32", "cpu", 2), Executed("fp32", "cpu", 2))
    return PairTimes(
        base.astype(np.int64), new.astype(np.int64), rng.random(count) < 0.5, executed, 5, 1.0
    )


def _measurer(settings: AbConfig, ratios: dict[str, float], **kwargs: Any) -> Measurer:
    """A Measurer whose workers return pairs of the ratio of their cell's stage."""
    jobs: dict[int, AbCell] = {}

    def make_job(cell: AbCell, seed: int) -> Any:
        jobs[seed] = cell
        return seed

    def run(seed: Any, timeout_s: float) -> WorkerOutcome:
        time.sleep(0.005)  # a worker takes time: the stage's cap counts it
        cell = jobs[seed]
        if cell.cell.model == "crashy":
            return WorkerOutcome("crashed", reason="exit code -11", phase="load (new)")
        return WorkerOutcome("ok", _pairs(ratios[cell.stages[-1].name], seed))

    return Measurer(settings, make_job, 60, run=run, **kwargs)


def test_a_stage_stops_once_the_half_width_is_reached() -> None:
    settings = AbConfig(min_workers=3, half_width=0.01)
    cell = AbCell(CELL, "m")
    _measurer(settings, {"first": 1.0}).stage([cell], "first")
    stage = cell.first
    assert stage is not None and len(stage.workers) == 3  # min_workers, already narrow
    assert stage.estimate is not None and stage.estimate.half_width <= 0.01
    assert stage.verdict == UNCHANGED and not stage.capped


def test_a_stage_that_cannot_reach_the_half_width_stops_at_its_cap() -> None:
    settings = AbConfig(min_workers=2, half_width=1e-9, max_s=0.1)
    cell = AbCell(CELL, "m")
    measurer = _measurer(settings, {"first": 1.0})
    measurer.stage([cell], "first")
    stage = cell.first
    assert stage is not None and stage.capped and stage.seconds >= 0.1
    assert len(stage.workers) < 40
    assert stage.to_dict()["capped"] is True


def test_an_alert_is_confirmed_by_fresh_workers_before_it_fails_the_gate() -> None:
    settings = AbConfig(min_workers=3, half_width=0.01)
    confirmed, unconfirmed = AbCell(CELL, "m"), AbCell(CELL, "m")
    _measurer(settings, {"first": 1.05, "confirmation": 1.05}).gate([confirmed])
    _measurer(settings, {"first": 1.05, "confirmation": 1.0}).gate([unconfirmed])
    assert confirmed.first.verdict == REGRESSED and confirmed.verdict == REGRESSED
    assert unconfirmed.first.verdict == REGRESSED and unconfirmed.verdict == INCONCLUSIVE
    assert confirmed.confirmation is not None and len(confirmed.confirmation.workers) >= 3
    assert confirmed.to_dict()["confirmed"] is True
    assert unconfirmed.to_dict()["confirmed"] is False
    result = AbResult("a", "b", PAIRED, "why", settings.model_dump(), [confirmed, unconfirmed])
    document = result.to_dict()
    assert document["gate"] == "fail" and document["design"] == PAIRED
    assert document["cost"]["confirmation_workers"] >= 6
    assert "confirmation of alerts" in markdown(result)


def test_no_confirmation_is_measured_without_an_alert_or_when_turned_off() -> None:
    calm = AbCell(CELL, "m")
    _measurer(AbConfig(), {"first": 1.0}).gate([calm])
    assert calm.confirmation is None
    alert = AbCell(CELL, "m")
    _measurer(AbConfig(confirm=False), {"first": 1.05}).gate([alert])
    assert alert.confirmation is None and alert.verdict == REGRESSED


def test_a_crashed_side_fails_its_cell_by_name_and_the_others_go_on() -> None:
    crashy = AbCell(Cell("crashy", "onnxruntime", "cpu", "fp32", 1, "latency"), "crashy")
    fine = AbCell(CELL, "m")
    said: list[str] = []
    _measurer(AbConfig(), {"first": 1.0}, say=said.append).gate([crashy, fine])
    assert crashy.verdict == FAILED and "load (new)" in (crashy.reason or "")
    assert fine.verdict == UNCHANGED
    result = AbResult("a", "b", PAIRED, "why", AbConfig().model_dump(), [crashy, fine])
    assert result.failed and 'type="failed"' in junit(result)
    assert any("crashed in load (new)" in line for line in said)


def test_stage_figures_round_trip_to_json() -> None:
    stage = Stage("first", target=0.005)
    for seed in range(3):
        times = _pairs(1.02, seed)
        stage.add(WorkerPairs(times.base_ns, times.new_ns, times.base_first), 1.5, 0.01)
    document = json.loads(json.dumps(stage.to_dict()))
    assert document["estimate"]["workers"] == 3
    assert document["estimate"]["ratio"] == pytest.approx(1.02, abs=0.003)
    assert document["seconds"] == 4.5


@pytest.mark.parametrize(
    "sides,expected",
    [
        (("missing.onnx", "{relu}"), "no such ONNX file"),
        (("{relu}", "{corrupt}"), "corrupt"),
        (("{half}", "{two}"), "cannot be paired"),
        (("{relu}", "not-a-model"), "is not an ONNX file, a zoo model"),
    ],
)
def test_sides_that_cannot_be_paired_are_one_line_and_exit_2(
    tmp_path: Path, cache_dir: Path, sides: tuple[str, str], expected: str
) -> None:
    files = {
        "relu": dynamic_relu(tmp_path / "relu.onnx"),
        "two": two_input_model(tmp_path / "two.onnx", batch=1),
        "half": fp16_model(tmp_path / "half.onnx"),
        "corrupt": tmp_path / "corrupt.onnx",
    }
    files["corrupt"].write_bytes(b"not a protobuf")
    base, new = (side.format(**files) for side in sides)
    shape = ["--shape", "x=1x16"] if "relu" in base else []
    done = cli(
        "ab", base, new, *shape, "--runtimes", "onnxruntime",
        "--results-dir", tmp_path / "results", cache_dir=cache_dir, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert expected in done.stderr.lower() or expected in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert not (tmp_path / "results").exists()  # refused before any measurement


@pytest.mark.e2e
def test_ab_measures_two_onnx_files_paired_and_says_so(tmp_path: Path, cache_dir: Path) -> None:
    base = dynamic_relu(tmp_path / "relu.onnx")
    new = dynamic_relu(tmp_path / "relu_new.onnx")
    out = tmp_path / "ab.json"
    done = cli(
        "ab", base, new, "--shape", "x=1x16", "--runtimes", "onnxruntime",
        "--precisions", "fp32", "--max-time", "4", "--results-dir", tmp_path / "results",
        "--json", out, "--no-progress", cache_dir=cache_dir, timeout=180,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stdout + done.stderr
    assert "design: paired in one worker" in done.stdout
    document = json.loads(out.read_text())
    assert document["design"] == PAIRED
    (cell,) = document["cells"]
    assert cell["key"] == "relu→relu_new/onnxruntime/cpu/fp32/b1/latency"
    first = cell["stages"][0]
    assert first["estimate"]["workers"] >= 2 and first["estimate"]["pairs"] >= 40
    assert cell["executed"]["base"]["precision"] == cell["executed"]["new"]["precision"]
    (run,) = (tmp_path / "results").iterdir()
    lines = (run / "workers.jsonl").read_text().splitlines()
    assert len(lines) == sum(len(s["worker_ratios"]) for s in cell["stages"])


@pytest.mark.slow
def test_two_checkouts_are_run_in_interleaved_rounds_and_say_so(
    tmp_path: Path, cache_dir: Path
) -> None:
    suite = tmp_path / "bench.toml"
    suite.write_text(
        "[suite]\nname = 'tiny'\nmodels = ['mlp']\nruntimes = ['onnxruntime']\n"
        "precisions = ['fp32']\nscenarios = ['latency']\n"
        "[measure]\nwarmup_s = 0.05\nwarmup_min_iters = 5\nmin_duration_s = 0.05\n"
        "min_iters = 20\n[ab]\nmax_s = 1\n"
    )
    out = tmp_path / "gate.json"
    repo = Path(__file__).resolve().parent.parent
    done = cli(
        "ab", repo, repo, "--config", suite, "--results-dir", tmp_path / "results",
        "--json", out, "--markdown", tmp_path / "gate.md", cache_dir=cache_dir, timeout=600,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stdout + done.stderr
    assert "design: interleaved processes" in done.stdout
    document = json.loads(out.read_text())
    assert document["design"] == "interleaved processes"
    (cell,) = document["cells"]
    (change,) = [c for c in cell["changes"] if c["metric"] == "latency_median"]
    assert change["n_baseline"] == change["n_current"] == 5  # the least that can decide
    rounds = sorted(p.name for p in (tmp_path / "results").glob("ab-*/*-*"))
    assert rounds == sorted(f"{side}-{n}" for side in ("base", "new") for n in range(1, 6))
    assert "interleaved processes" in (tmp_path / "gate.md").read_text()


def test_a_paired_speedup_runs_the_new_side_in_its_own_precision() -> None:
    job = replace(_job(0), new_precision="fp16")
    assert job.target(0).precision == "fp32" and job.target(1).precision == "fp16"
    assert _job(0).target(1).precision == "fp32"
    cell = AbCell(CELL, "m", new_precision="fp16")
    assert cell.key == "m/onnxruntime/cpu/fp32→fp16/b1/latency"
    assert cell.to_dict()["new_precision"] == "fp16"
    assert AbCell(CELL, "other").key == "m→other/onnxruntime/cpu/fp32/b1/latency"
    executed = {"precision": "fp32", "device": "cpu", "threads": 2}
    cell.executed = {"base": executed, "new": executed}  # ONNX Runtime's CPU: FP16 runs in FP32
    result = AbResult("m", "m", PAIRED, "why", AbConfig().model_dump(), [cell])
    assert "executed base fp32, new fp32" in markdown(result)


FACTORY = """import torch
from torch import nn


def build():
    layers = [nn.Linear(256, 256) for _ in range({layers})]
    return nn.Sequential(*layers), torch.zeros(1, 256)
"""


@pytest.mark.e2e
def test_two_checkouts_factories_of_one_name_share_a_paired_worker(
    tmp_path: Path, cache_dir: Path
) -> None:
    for checkout, layers in (("base", 1), ("new", 4)):
        (tmp_path / checkout).mkdir()
        (tmp_path / checkout / "models.py").write_text(FACTORY.format(layers=layers))
    out = tmp_path / "ab.json"
    done = cli(
        "ab", tmp_path / "base/models.py:build", tmp_path / "new/models.py:build",
        "--runtimes", "pytorch", "--precisions", "fp32", "--max-time", "0.5", "--no-confirm",
        "--results-dir", tmp_path / "results", "--json", out, cache_dir=cache_dir, timeout=180,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stdout + done.stderr
    (cell,) = json.loads(out.read_text())["cells"]
    assert cell["status"] == "ok", cell
    assert cell["stages"][0]["estimate"]["ratio"] > 1.5  # four layers against one
