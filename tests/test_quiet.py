"""The quiet-machine checks (pyperf ``system show`` style): what is read, and the warning
each finding gives, in a run and in ``compare``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from fixtures.records import cell, timed

from bench.compare.gate import compare
from bench.compare.output import context_lines
from bench.compare.sides import side_from_records
from bench.harness.quiet import busy_processes, noise_warnings, system_state

QUIET = {
    "cpu_model": "EPYC",
    "governors": ["performance"],
    "turbo": False,
    "load_average_1m": 0.1,
    "usable_cores": 2,
    "busy_processes": [],
}


def _sysfs(root: Path, governor: str, no_turbo: str) -> Path:
    for index in range(2):
        folder = root / f"sys/devices/system/cpu/cpu{index}/cpufreq"
        folder.mkdir(parents=True)
        (folder / "scaling_governor").write_text(governor + "\n")
    pstate = root / "sys/devices/system/cpu/intel_pstate"
    pstate.mkdir(parents=True)
    (pstate / "no_turbo").write_text(no_turbo + "\n")
    return root


def test_the_governor_and_turbo_are_read_from_sysfs(tmp_path: Path) -> None:
    state = system_state("EPYC", _sysfs(tmp_path, "powersave", "0"), sample_s=0.0)
    assert state["governors"] == ["powersave"]
    assert state["turbo"] is True
    assert isinstance(state["load_average_1m"], float)


def test_a_vm_without_cpufreq_reads_as_unknown(tmp_path: Path) -> None:
    state = system_state("EPYC", tmp_path, sample_s=0.0)
    assert state["governors"] is None and state["turbo"] is None


def test_a_quiet_machine_gives_no_warning() -> None:
    assert noise_warnings(QUIET, {"cpu_model": "EPYC"}) == []


def test_each_finding_gives_its_warning() -> None:
    noisy = {
        **QUIET,
        "governors": ["powersave"],
        "turbo": True,
        "load_average_1m": 3.5,
        "busy_processes": [{"pid": 7, "name": "backup", "cpu_percent": 95.0}],
    }
    warnings = noise_warnings(noisy, {"cpu_model": "Xeon"})
    assert len(warnings) == 5, warnings
    text = "\n".join(warnings)
    for expected in ("powersave", "turbo", "load average 3.5 on 2 cores", "backup (95%)", "→ Xeon"):
        assert expected in text


def test_a_busy_process_is_found() -> None:
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        busy = busy_processes(sample_s=1.0)
    finally:
        spinner.kill()
        spinner.wait()
    assert spinner.pid in {p["pid"] for p in busy}, busy


def test_compare_says_when_a_side_was_not_quiet() -> None:
    records = [timed(cell(), [1.0, 1.1], repetition=i) for i in range(5)]
    noisy = {"system": {**QUIET, "load_average_1m": 4.0}}
    baseline = side_from_records("base", "b", {"system": QUIET}, records)
    current = side_from_records("new", "c", noisy, records)
    lines = context_lines(compare(baseline, current))
    assert any(line.startswith("current run not quiet: load average 4") for line in lines)
    assert not any(line.startswith("baseline run not quiet") for line in lines)
