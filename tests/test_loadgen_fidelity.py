"""scripts/loadgen_fidelity.py (the LoadGen fidelity figures of docs/serving.md) runs at
tiny settings, so that it cannot rot: its figures have their shape and are sane (positive,
finite ratios); the targets themselves are for the real settings on a quiet machine."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

pytest.importorskip("mlperf_loadgen")
pytestmark = pytest.mark.e2e  # its cells run in worker processes

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "loadgen_fidelity.py"


def script_main():
    spec = importlib.util.spec_from_file_location("loadgen_fidelity", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module.main


def test_the_script_measures_all_four_figures(
    tmp_path: Path, cache_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "fidelity.json"
    argv = ["--models", "lenet5", "--runtimes", "onnxruntime", "--batch", "8"]
    argv += ["--duration", "0.3", "--repeat", "1", "--search-runs", "3", "--slots", "2"]
    argv += ["--search-cells", "lenet5:onnxruntime:10"]
    argv += ["--cache-dir", str(cache_dir), "--out", str(out)]
    assert script_main()(argv) == 0
    figures = json.loads(out.read_text())
    assert figures["machine"]["cores"] >= 1 and figures["machine"]["cpu"]
    for part, figure in (("stream", "p90 ms"), ("offline", "samples/s")):
        (agreement,) = figures[part]
        assert agreement["figure"] == figure
        assert agreement["cell"].startswith("lenet5 onnxruntime fp32")
        values = agreement["ours"] + agreement["loadgen"] + agreement["record"]
        assert len(values) == 3 and all(v > 0 for v in values), agreement
        assert math.isfinite(agreement["gap"]) and agreement["noise"] == 0  # one run each
    overhead = figures["overhead"]
    assert [o["batch"] for o in overhead["offline"]] == [1, 8]
    for offline in overhead["offline"]:
        assert offline["service_ms"] >= overhead["sleep_ms"]  # a sleep lasts at least that
        assert 0 < offline["qps"] <= 1.05 * offline["ideal_qps"]
        assert math.isfinite(offline["overhead_us"]) and offline["share"] < 1
    assert 0 < overhead["queue_knee_qps"] <= overhead["server_ideal_qps"]
    assert overhead["half_load_p50_ms"] >= overhead["half_load_request_p50_ms"] > 0
    methods = {d["method"]: d for d in figures["search"]}
    assert set(methods) == {"bisect", "loadgen"}
    assert 1 <= methods["bisect"]["runs"] <= 3 and methods["loadgen"]["runs"] >= 1
    assert all(d["search_s"] > 0 and d["cell_s"] > 0 for d in methods.values())
    text = out.with_suffix(".txt").read_text()
    assert text.startswith("# python scripts/loadgen_fidelity.py --models lenet5")
    printed = capsys.readouterr().out
    for title in ("a. SingleStream p90", "b. Offline", "c. the harness's cost", "d. the Server"):
        assert title in text and title in printed
