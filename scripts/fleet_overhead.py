"""What Ray costs, and what sharding gains, on local clusters (``ray.cluster_utils``: a
raylet per node, all on this machine).

1. Overhead: ``cli.py run --profile smoke`` locally, then on a one-node cluster
   (``--cluster ADDRESS --fleet shard``: join, probe, export here, ship through the object
   store, one Ray task per cell), then locally again. Per-cell overhead: (wall time on the
   cluster - the local runs' mean) / cells. Each cell's median on the cluster must agree
   with the local ones within the machine's noise (the spread of the two local runs).
2. Sharding: the same suite sharded over 1, 2 and 4 nodes (each offering Ray one CPU, a
   fresh cluster each), its wall time. The nodes share this machine's cores, so beyond
   its core count they only contend: this shows the dispatch, not a fleet's speedup.

Run it on an otherwise idle machine with Ray installed (pip install 'deploybench[fleet]'):
    python scripts/fleet_overhead.py [--profile smoke] [--nodes 1,2,4]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from local_agreement import print_agreement  # noqa: E402

from bench.harness.results import fleet_columns, read_records  # noqa: E402


def run_suite(args: list[str], results: Path, cluster: str | None) -> tuple[float, str]:
    """Wall seconds of one ``cli.py run`` (on ``cluster`` when given), and its output."""
    argv = [sys.executable, str(ROOT / "cli.py"), "run", *args, "--results-dir", str(results)]
    argv += ["--no-progress"] + (["--cluster", cluster, "--fleet", "shard"] if cluster else [])
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise SystemExit(f"cli.py run failed:\n{done.stdout}\n{done.stderr}")
    return wall, done.stdout


def medians(results: Path) -> dict[str, float]:
    """Each ok cell's median ms in the one run under ``results`` (a fleet run's column)."""
    (run,) = results.iterdir()
    (column,) = fleet_columns(run)
    return {
        r.key: r.median_ms
        for r in read_records(column / "results.jsonl")
        if r.ok and r.median_ms is not None
    }


def cluster(nodes: int, cpus: int, scratch: Path):  # noqa: ANN201 - ray's Cluster
    from ray.cluster_utils import Cluster

    env = {"DEPLOYBENCH_CACHE_DIR": str(scratch / "node-cache")}
    made = Cluster(
        initialize_head=True, head_node_args={"num_cpus": cpus, "env_vars": env, "node_name": "n0"}
    )
    for index in range(1, nodes):
        made.add_node(num_cpus=cpus, env_vars=env, node_name=f"n{index}")
    made.wait_for_nodes()
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "bench.toml")
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--nodes", default="1,2,4", help="node counts to shard over")
    args = parser.parse_args()
    suite = ["--config", str(args.config)] + (["--profile", args.profile] if args.profile else [])
    cores = len(os.sched_getaffinity(0))

    with tempfile.TemporaryDirectory(prefix="fleet-overhead-", dir="/tmp") as scratch:
        work = Path(scratch)
        walls, runs = {}, {}
        one = cluster(1, cores, work)
        try:
            for name, address in (("local 1", None), ("on Ray", one.address), ("local 2", None)):
                results = work / name.replace(" ", "-")
                walls[name], output = run_suite(suite, results, address)
                runs[name] = medians(results)
                if address:
                    probed = re.search(r"probed in ([\d.]+) s", output)
                    probe_s = float(probed.group(1)) if probed else float("nan")
        finally:
            one.shutdown()
        sharded = {}
        for count in (int(n) for n in args.nodes.split(",")):
            made = cluster(count, 1, work)
            try:
                results = work / f"shard-{count}"
                sharded[count], _ = run_suite(suite, results, made.address)
                (run,) = results.iterdir()
                (column,) = fleet_columns(run)
                used = {r.node["name"] for r in read_records(column / "results.jsonl") if r.node}
            finally:
                made.shutdown()
            sharded[count] = (sharded[count], len(used))

    print_agreement(runs, walls, "on Ray", "Ray")
    print(f"joining the one-node cluster and probing it: {probe_s:.1f} s of that, once a run")
    base = sharded[min(sharded)][0]
    for count, (wall, used) in sorted(sharded.items()):
        print(
            f"sharded over {count} nodes ({used} measured, {cores} cores here): {wall:.1f} s "
            f"wall, {base / wall:.2f}x the {min(sharded)}-node run"
        )


if __name__ == "__main__":
    main()
