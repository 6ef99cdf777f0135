"""CPU package energy from powercap fixture trees: packages only, wrap-around, root-only."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from bench.power import rapl
from bench.power.rapl import RaplSource, rapl_domains
from bench.power.source import PowerUnavailable

TREES = Path(__file__).resolve().parent / "fixtures" / "power" / "rapl"


def tree(name: str, tmp_path: Path) -> Path:
    """A writable copy of a fixture tree (the tests move its counters)."""
    return Path(shutil.copytree(TREES / name, tmp_path / name))


def set_energy(root: Path, zone: str, microjoules: int) -> None:
    (root / "sys/class/powercap" / zone / "energy_uj").write_text(f"{microjoules}\n")


def test_a_two_socket_server_sums_both_packages_and_not_their_dram(tmp_path: Path) -> None:
    root = tree("xeon-2s", tmp_path)
    source = RaplSource(root)
    assert [d.name for d in source.packages] == ["package-0", "package-1"]
    assert source.describe()["not_added"] == ["intel-rapl:0:0 dram", "intel-rapl:1:0 dram"]
    assert source.read() == 0.0  # energy since the source was opened
    set_energy(root, "intel-rapl:0", 43217865012 + 2_000_000)
    set_energy(root, "intel-rapl:1", 41876120044 + 3_500_000)
    set_energy(root, "intel-rapl:0:0", 9876543210 + 50_000_000)  # dram: must not count
    assert source.read() == pytest.approx(5.5)


def test_psys_and_the_mmio_duplicate_are_not_added_to_the_package(tmp_path: Path) -> None:
    root = tree("client-psys", tmp_path)
    packages, others = rapl_domains(root)
    assert [(d.path.name, d.name) for d in packages] == [("intel-rapl:0", "package-0")]
    assert sorted(d.name for d in others) == ["core", "psys", "uncore"]
    source = RaplSource(root)
    set_energy(root, "intel-rapl:0", 5123456789 + 1_000_000)
    set_energy(root, "intel-rapl:1", 9123456789 + 9_000_000)  # psys covers the platform
    assert source.read() == pytest.approx(1.0)


def test_amd_packages_read_under_the_intel_rapl_names(tmp_path: Path) -> None:
    root = tree("amd-epyc", tmp_path)
    source = RaplSource(root)
    set_energy(root, "intel-rapl:0", 1234567890 + 750_000)
    assert source.read() == pytest.approx(0.75)
    assert source.describe()["measures"] == "CPU package energy: package-0"


def test_a_counter_that_wraps_is_unwrapped(tmp_path: Path) -> None:
    root = tree("amd-epyc", tmp_path)
    maximum = 65532610987
    set_energy(root, "intel-rapl:0", maximum - 1_000_000)  # 1 J before the wrap
    source = RaplSource(root)
    set_energy(root, "intel-rapl:0", 2_000_000)  # wrapped, then 2 J more
    assert source.read() == pytest.approx(3.0)
    set_energy(root, "intel-rapl:0", 4_000_000)
    assert source.read() == pytest.approx(5.0)


def test_no_powercap_says_so(tmp_path: Path) -> None:
    with pytest.raises(PowerUnavailable, match="no RAPL counters"):
        RaplSource(tmp_path)


def test_only_sub_domains_is_no_package(tmp_path: Path) -> None:
    root = tree("xeon-2s", tmp_path)
    for zone in ("intel-rapl:0", "intel-rapl:1"):
        shutil.rmtree(root / "sys/class/powercap" / zone)
    with pytest.raises(PowerUnavailable, match="no RAPL package domain"):
        RaplSource(root)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_a_root_only_counter_says_how_to_allow_it(tmp_path: Path) -> None:
    root = tree("xeon-2s", tmp_path)
    (root / "sys/class/powercap/intel-rapl:0/energy_uj").chmod(0)
    with pytest.raises(PowerUnavailable) as caught:
        RaplSource(root)
    assert "readable by root only" in str(caught.value)
    assert "chmod o+r /sys/class/powercap/intel-rapl:*/energy_uj" in str(caught.value)


def test_permission_denied_becomes_the_root_only_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same path as above where the tests run as root: the read itself is refused."""
    root = tree("xeon-2s", tmp_path)

    def refuse(self: rapl.RaplDomain) -> int:
        raise PermissionError(13, "Permission denied", str(self.path / "energy_uj"))

    monkeypatch.setattr(rapl.RaplDomain, "energy_uj", refuse)
    with pytest.raises(PowerUnavailable) as caught:
        RaplSource(root)
    message = str(caught.value)
    assert message.startswith("energy_uj is readable by root only")
    assert "udev rule" in message
    assert "\n" not in message
