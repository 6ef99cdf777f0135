"""environment.json's power state: start, end, and the changes flagged between them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from bench.power import state
from bench.power.state import power_state, record_end_state, state_changes

BOARDS = Path(__file__).resolve().parent / "fixtures" / "power" / "jetson"


@pytest.fixture(autouse=True)
def no_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # the same answer on a GPU host


def test_a_jetson_state_from_its_tree() -> None:
    found = power_state(BOARDS / "xavier-nx-jp5")
    assert found["gpus"] == {
        "unavailable": "nvidia-ml-py is not installed: pip install nvidia-ml-py"
    }
    assert found["jetson"]["model"] == "NVIDIA Jetson Xavier NX Developer Kit"
    assert found["jetson"]["nvpmodel"] == {
        "name": "MODE_20W_6CORE",
        "id": 8,
        "from": "/var/lib/nvpmodel/status",
    }


def test_a_power_mode_and_jetson_clocks_change_are_flagged() -> None:
    start = power_state(BOARDS / "nano-jp4")
    end = json.loads(json.dumps(start))
    end["jetson"]["nvpmodel"] = {"name": "5W", "id": 1, "from": "/var/lib/nvpmodel/status"}
    end["jetson"]["jetson_clocks"]["on"] = False
    assert state_changes(start, end) == [
        "nvpmodel mode changed from MAXN (0) to 5W (1)",
        "jetson_clocks changed from True to False",
    ]
    assert state_changes(start, start) == []


def test_the_same_mode_read_another_way_is_no_change() -> None:
    """``nvpmodel -q`` at one end and the status file at the other: the same mode."""
    start = power_state(BOARDS / "nano-jp4")
    end = json.loads(json.dumps(start))
    end["jetson"]["nvpmodel"]["from"] = "nvpmodel -q"
    assert state_changes(start, end) == []


def test_the_end_state_is_added_to_environment_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    environment = tmp_path / "environment.json"
    start = power_state(BOARDS / "agx-orin-jp6")
    environment.write_text(json.dumps({"cpu": {"model": "x"}, "power": {"state": start}}))
    end = json.loads(json.dumps(start))
    end["jetson"]["nvpmodel"]["id"], end["jetson"]["nvpmodel"]["name"] = 2, "MODE_30W"
    monkeypatch.setattr(state, "power_state", lambda root: end)
    changes = record_end_state(environment)
    assert changes == ["nvpmodel mode changed from MAXN (0) to MODE_30W (2)"]
    written = json.loads(environment.read_text())
    assert written["cpu"] == {"model": "x"}  # the rest is kept
    assert written["power"]["end"] == end
    assert written["power"]["changes"] == changes


def test_no_start_state_means_no_comparison(tmp_path: Path) -> None:
    environment = tmp_path / "environment.json"
    environment.write_text(json.dumps({"cpu": {}}))
    assert record_end_state(environment, root=tmp_path) == []
    assert json.loads(environment.read_text())["power"]["changes"] == []
    assert record_end_state(tmp_path / "missing.json") == []
