"""What SSH costs: a suite run here, and the same suite run on this machine as a device
reached over a loopback ``--host`` (a throwaway sshd on 127.0.0.1, tests/fixtures/sshd.py).

1. Agent mode: ``cli.py run --profile smoke`` locally, then with ``--host`` (deploybench on
   the "device" runs it, its progress streams back, its run folder is copied here), then
   locally again. Per-cell overhead: (wall time over SSH - the local runs' mean) / cells.
   The timing happens on the device, so each cell's median over SSH must agree with the
   local ones within the machine's noise: the spread between the two local runs.
2. Tools mode's transport: one guarded command over the run's master connection, timed
   N times; a TensorRT cell makes three such commands and one copy back.

Run it on an otherwise idle machine (needs /usr/sbin/sshd):
    python scripts/edge_overhead.py [--profile smoke] [--calls 50]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from local_agreement import print_agreement  # noqa: E402

from bench.harness.results import read_records  # noqa: E402
from bench.remote.ssh import Address, Ssh  # noqa: E402
from exporters.cache import default_cache_dir  # noqa: E402
from tests.fixtures.sshd import SshServer  # noqa: E402


def run_suite(config: Path, profile: str | None, results: Path, host: str | None) -> float:
    """Wall seconds of one ``cli.py run`` (through ``host`` when given)."""
    argv = [sys.executable, str(ROOT / "cli.py"), "run", "--config", str(config)]
    argv += ["--profile", profile] if profile else []
    argv += ["--results-dir", str(results), "--no-progress"]
    argv += ["--host", host] if host else []
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise SystemExit(f"cli.py run failed:\n{done.stdout}\n{done.stderr}")
    return wall


def medians(results: Path) -> dict[str, float]:
    """Each ok cell's median ms in the one run folder under ``results``."""
    (run,) = results.iterdir()
    return {
        r.key: r.median_ms
        for r in read_records(run / "results.jsonl")
        if r.ok and r.median_ms is not None
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "bench.toml")
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--calls", type=int, default=50, help="guarded commands timed")
    args = parser.parse_args()
    profile = args.profile or None

    with tempfile.TemporaryDirectory(prefix="edge-overhead-", dir="/tmp") as scratch:
        work = Path(scratch)
        environment = {
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
            "HOME": str(work / "home"),
            "DEPLOYBENCH_CACHE_DIR": str(
                os.environ.get("DEPLOYBENCH_CACHE_DIR") or default_cache_dir()
            ),  # fmt: skip
        }
        (work / "home").mkdir()
        with SshServer(work / "sshd", environment, alias="loop") as server:
            config = work / "suite.toml"
            config.write_text(
                args.config.read_text()
                + f'\n[hosts.loop]\naddress = "loop"\nssh_config = "{server.ssh_config}"\n'
                'mode = "agent"\n'
            )
            walls, runs = {}, {}
            for name, host in (("local 1", None), ("over SSH", "loop"), ("local 2", None)):
                results = work / name.replace(" ", "-")
                walls[name] = run_suite(config, profile, results, host)
                runs[name] = medians(results)
            ssh = Ssh(Address("loop"), server.ssh_config)
            ssh.run("true", 30, "warming the master connection")
            calls = []
            for _ in range(args.calls):
                start = time.perf_counter()
                ssh.run("true", 30, "a no-op")
                calls.append((time.perf_counter() - start) * 1e3)
            ssh.close()

    print_agreement(runs, walls, "over SSH", "SSH")
    calls.sort()
    print(
        f"tools mode: one guarded command over the master connection: median "
        f"{statistics.median(calls):.1f} ms, p90 {calls[int(0.9 * (len(calls) - 1))]:.1f} ms "
        f"({len(calls)} calls); a TensorRT cell makes 3 and one copy back"
    )


if __name__ == "__main__":
    main()
