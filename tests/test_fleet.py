"""``run --cluster``: a suite across a real multi-node Ray cluster on this machine
(tests/fixtures/ray_cluster.py), in both plans, with its faults: a node lost mid-cell and
the run resumed, Ctrl-C, a version mismatch, nodes of mixed hardware, no matching device,
an unreachable address. Skipped where Ray is not installed (CI installs it)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from fixtures.processes import start_cli
from fixtures.ray_cluster import LocalFleet, require_ray
from test_cli import REPO_ROOT, _env, cli, records_of, write_suite

from bench.core.cell import Cell
from bench.core.errors import UserError
from bench.fleet.cluster import Node
from bench.fleet.dispatch import NODE_LOST, resources
from bench.harness.results import FLEET_FILE, fleet_columns

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("ray")]  # one Ray test at a time

SUITE = {
    "models": ["mlp"],
    "runtimes": ["onnxruntime"],
    "devices": ["cpu"],
    "precisions": ["fp32", "fp16"],
    "scenarios": ["latency"],
}


def one_line_error(done: subprocess.CompletedProcess[str], text: str) -> None:
    assert done.returncode == 2, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and text in lines[0], done.stderr
    assert "Traceback" not in done.stderr


# --- without Ray: the pieces ------------------------------------------------------------


def test_a_cell_asks_for_its_whole_node_unless_per_gpu() -> None:
    gpus = Node("n1", "big", "10.0.0.1", cpus=32, gpus=4)
    cuda, cpu = (
        Cell("m", "pytorch", "cuda", "fp32", 1, "latency"),
        Cell("m", "pytorch", "cpu", "fp32", 1, "latency"),
    )
    assert resources(gpus, cuda, per_gpu=False) == {"num_cpus": 32, "num_gpus": 4}
    assert resources(gpus, cuda, per_gpu=True) == {"num_cpus": 8, "num_gpus": 1}
    assert resources(gpus, cpu, per_gpu=True) == {"num_cpus": 32, "num_gpus": 4}
    pinned = Cell("m", "pytorch", "cuda:2", "fp32", 1, "latency")
    assert resources(gpus, pinned, per_gpu=True) == {"num_cpus": 32, "num_gpus": 4}
    one = Node("n2", "small", "10.0.0.2", cpus=8, gpus=1)
    assert resources(one, cuda, per_gpu=True) == {"num_cpus": 8, "num_gpus": 1}


def test_a_fleet_folder_names_only_its_own_columns(tmp_path: Path) -> None:
    assert fleet_columns(tmp_path) == [tmp_path]
    (tmp_path / FLEET_FILE).write_text(json.dumps({"columns": [{"folder": "a"}, {"folder": "b"}]}))
    assert fleet_columns(tmp_path) == [tmp_path / "a", tmp_path / "b"]
    (tmp_path / FLEET_FILE).write_text(json.dumps({"columns": [{"folder": "../elsewhere"}]}))
    with pytest.raises(UserError, match="outside the run"):
        fleet_columns(tmp_path)
    (tmp_path / FLEET_FILE).write_text(json.dumps({"columns": "a"}))
    with pytest.raises(UserError, match="lists no columns"):
        fleet_columns(tmp_path)


def test_without_ray_the_fleet_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.fleet.cluster import ray_module

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(UserError, match=r"pip install 'deploybench\[fleet\]'"):
        ray_module()


def test_fleet_flags_need_a_cluster(tmp_path: Path, cache_dir: Path) -> None:
    suite = write_suite(tmp_path / "bench.toml", results_dir=str(tmp_path / "results"), **SUITE)
    one_line_error(
        cli("run", "--config", suite, "--fleet", "shard", cache_dir=cache_dir), "needs --cluster"
    )
    done = cli("run", "--config", suite, "--host", "x", "--cluster", "auto", cache_dir=cache_dir)
    one_line_error(done, "drop the --cluster flags")
    done = cli("run", "--config", suite, "--host", "x", "--executor", "ray", cache_dir=cache_dir)
    one_line_error(done, "--host chooses its executor (--remote-mode): drop --executor")


def test_an_unreachable_cluster_is_one_line(tmp_path: Path, cache_dir: Path) -> None:
    require_ray()
    results = tmp_path / "results"
    suite = write_suite(tmp_path / "bench.toml", results_dir=str(results), **SUITE)
    started = time.monotonic()
    done = cli("run", "--config", suite, "--cluster", "127.0.0.1:9", cache_dir=cache_dir)
    one_line_error(done, "no Ray cluster answers at 127.0.0.1:9")
    assert time.monotonic() - started < 30
    assert not results.exists()


# --- a two-node cluster ---------------------------------------------------------------


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFleet]:
    """alpha (the head) and beta, one CPU each."""
    require_ray()
    cluster = LocalFleet(tmp_path_factory.mktemp("fleet"))
    cluster.add("beta")
    yield cluster
    cluster.shutdown()


def fleet_cli(fleet: LocalFleet, tmp: Path, cache_dir: Path, *args: str, **suite) -> tuple:
    results = tmp / "results"
    config = write_suite(tmp / "bench.toml", results_dir=str(results), **{**SUITE, **suite})
    done = cli("run", "--config", config, "--cluster", fleet.address, *args, cache_dir=cache_dir)
    return done, results


@pytest.fixture(scope="module")
def compared(fleet: LocalFleet, tmp_path_factory: pytest.TempPathFactory, cache_dir: Path):
    """The suite run on both nodes (--fleet compare, the default): the run folder."""
    tmp = tmp_path_factory.mktemp("compared")
    done, results = fleet_cli(fleet, tmp, cache_dir, "--nodes", "alpha,beta")
    assert done.returncode == 0, done.stdout + done.stderr
    (root,) = results.iterdir()
    return root, done


def test_compare_plan_measures_the_suite_on_every_node(compared, fleet: LocalFleet) -> None:
    root, done = compared
    fleet_file = json.loads((root / FLEET_FILE).read_text())
    assert fleet_file["plan"] == "compare"
    assert [c["folder"] for c in fleet_file["columns"]] == ["alpha", "beta"]
    for name in ("alpha", "beta"):
        records = records_of(root / name)
        assert sorted(r["cell"]["precision"] for r in records) == ["fp16", "fp32"]
        assert all(r["status"] == "ok" and r["node"]["name"] == name for r in records)
        environment = json.loads((root / name / "environment.json").read_text())
        assert environment["fleet"]["node"] == name
        assert (root / "nodes" / name / "environment.json").is_file()
        # exported once, on the driver: the node holds the shipped file and no export
        shipped = list((fleet.cache(name) / "fleet").glob("*/*.onnx"))
        assert shipped and not (fleet.cache(name) / "onnx").exists()
    assert (root / "controller.json").is_file() and (root / "report.md").is_file()
    assert "[4/4] " in done.stdout and "alpha: mlp/onnxruntime/cpu/" in done.stdout


def test_report_compare_and_baseline_read_a_fleet_run(
    compared, tmp_path: Path, cache_dir: Path
) -> None:
    root, _ = compared
    report = cli("report", root, cache_dir=cache_dir)
    assert report.returncode == 0, report.stderr
    assert "AMD" in report.stdout or "on alpha" in report.stdout
    assert "on alpha" in report.stdout and "on beta" in report.stdout
    markdown = tmp_path / "compare.md"
    done = cli("compare", root, root, "--markdown", markdown, cache_dir=cache_dir)
    assert done.returncode == 0, done.stdout + done.stderr
    assert markdown.read_text().count("### deploybench compare") == 2
    one_line_error(
        cli("baseline", "save", root, tmp_path / "b.json", cache_dir=cache_dir), "fleet run of 2"
    )
    saved = cli("baseline", "save", root / "beta", tmp_path / "b.json", cache_dir=cache_dir)
    assert saved.returncode == 0, saved.stderr
    one_line_error(
        cli("run", "--resume", root / "beta", cache_dir=cache_dir), "one machine of the fleet run"
    )


def test_resuming_a_finished_fleet_run_needs_no_cluster(compared, cache_dir: Path) -> None:
    root, _ = compared
    before = {p: records_of(root / p) for p in ("alpha", "beta")}
    (root / "report.md").unlink()
    done = cli("run", "--resume", root, "--no-progress", cache_dir=cache_dir)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (root / "report.md").is_file()  # the machines side by side, written again
    assert {p: records_of(root / p) for p in ("alpha", "beta")} == before


def test_shard_plan_spreads_one_suite_over_the_nodes(
    fleet: LocalFleet, tmp_path: Path, cache_dir: Path
) -> None:
    done, results = fleet_cli(
        fleet,
        tmp_path,
        cache_dir,
        "--fleet",
        "shard",
        "--nodes",
        "alpha,beta",
        "--loadgen-duration",
        "0.3",
        scenarios=["latency", "single_stream"],
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (root,) = results.iterdir()
    assert [c.name for c in fleet_columns(root)] == ["shard"]
    records = records_of(root / "shard")
    assert len(records) == 4 and all(r["status"] == "ok" for r in records)
    assert {r["node"]["name"] for r in records} == {"alpha", "beta"}
    served = [r for r in records if r["cell"]["scenario"] == "single_stream"]
    assert all(r["loadgen"]["valid"] for r in served)  # LoadGen ran on the nodes
    assert all((root / "shard" / f).is_file() for r in served for f in r["files"])
    environment = json.loads((root / "shard" / "environment.json").read_text())
    assert environment["fleet"]["nodes"] == ["alpha", "beta"]
    summary = cli("compare", root, root / "shard", cache_dir=cache_dir)
    assert summary.returncode == 0, summary.stderr


def test_no_matching_device_is_one_line(fleet: LocalFleet, tmp_path: Path, cache_dir: Path) -> None:
    done, results = fleet_cli(fleet, tmp_path, cache_dir, "--devices", "cuda")
    one_line_error(done, "can run a cell of this suite")
    assert not results.exists() or not any(results.iterdir())
    one_line_error(fleet_cli(fleet, tmp_path, cache_dir, "--nodes", "gamma")[0], "is 'gamma'")


def test_a_node_with_another_deploybench_is_refused(
    fleet: LocalFleet, tmp_path: Path, cache_dir: Path
) -> None:
    """The driver here runs deploybench 9.9.9 (a distribution found first on its path),
    the nodes the checkout's own: the run is refused, naming a node, before any cell."""
    driver = tmp_path / "driver"
    info = driver / "deploybench-9.9.9.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: deploybench\nVersion: 9.9.9\n")
    script = driver / "cli9.py"
    script.write_text(
        f"import sys\nsys.path.insert(1, {str(REPO_ROOT)!r})\nimport cli\nsys.exit(cli.main())\n"
    )
    results = tmp_path / "results"
    config = write_suite(tmp_path / "bench.toml", results_dir=str(results), **SUITE)
    done = subprocess.run(
        [sys.executable, str(script), "run", "--config", str(config), "--cluster", fleet.address],
        cwd=REPO_ROOT,
        env=_env(cache_dir),
        capture_output=True,
        text=True,
        timeout=300,
    )
    one_line_error(done, "runs deploybench 0.1.0")
    assert "this machine 9.9.9" in done.stderr
    assert not results.exists() or not any(results.iterdir())


def test_shard_refuses_nodes_of_different_hardware(
    fleet: LocalFleet, tmp_path: Path, cache_dir: Path
) -> None:
    fleet.add("delta", cores={0})  # one usable core: another machine
    try:
        done, _ = fleet_cli(
            fleet, tmp_path, cache_dir, "--fleet", "shard", "--nodes", "alpha,delta"
        )
    finally:
        fleet.kill("delta")
    one_line_error(done, "differ in hardware")


def test_per_gpu_runs_one_cell_per_gpu_and_whole_node_cells_alone(fleet: LocalFleet) -> None:
    """The dispatch loop and the Ray resources it asks for, with a stand-in cell body on
    a node offering two (Ray-only) GPUs: cells on cuda overlap, one per GPU, with
    --per-gpu; a CPU cell overlaps nothing; without --per-gpu nothing overlaps."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from bench.core.record import CellRecord
    from bench.fleet.cluster import live_nodes
    from bench.fleet.dispatch import Dispatch, Machine, Pending
    from bench.harness.executor import Column
    from bench.harness.results import RunDir

    fleet.add("gpus", num_cpus=2, num_gpus=2)
    ray.init(address=fleet.address, log_to_driver=False, logging_level="ERROR")
    try:
        node = next(n for n in live_nodes() if n.name == "gpus")

        @ray.remote(max_retries=0)
        def body(cell: Cell) -> dict:
            start = time.time()
            time.sleep(0.5)
            gpus = ",".join(str(g) for g in ray.get_gpu_ids())
            return CellRecord.new("r", cell, "ok", f"{start} {time.time()} {gpus}").to_dict()

        def submit(pending, where, asked):  # noqa: ANN001, ANN202
            strategy = NodeAffinitySchedulingStrategy(where.id, soft=False)
            return body.options(scheduling_strategy=strategy, **asked).remote(pending.cell)

        def spans(per_gpu: bool, folder: Path) -> dict[str, tuple[float, float, str]]:
            folder.mkdir()
            cells = [
                Cell("m", "pytorch", d, "fp32", b, "latency")
                for d, b in (("cuda", 1), ("cuda", 2), ("cpu", 1))
            ]
            pending = [Pending(c, 0, frozenset({node.id})) for c in cells]
            machine = Machine("gpus", Column(RunDir(folder), []), [node], pending)
            got: dict[str, tuple[float, float, str]] = {}
            dispatch = Dispatch("r", [machine], submit, per_gpu, lambda *a: None, lambda n: None)
            for _column, record in dispatch.records():
                start, end, gpus = (record.reason.split(" ") + [""])[:3]
                got[f"{record.cell.device}/b{record.cell.batch}"] = (float(start), float(end), gpus)
            return got

        def overlap(a: tuple, b: tuple) -> bool:
            return a[0] < b[1] and b[0] < a[1]

        shared = spans(True, fleet.root / "per-gpu")
        assert overlap(shared["cuda/b1"], shared["cuda/b2"])
        assert {shared["cuda/b1"][2], shared["cuda/b2"][2]} == {"0", "1"}
        assert not overlap(shared["cpu/b1"], shared["cuda/b1"])
        assert not overlap(shared["cpu/b1"], shared["cuda/b2"])
        alone = spans(False, fleet.root / "whole")
        keys = list(alone)
        assert not any(overlap(alone[a], alone[b]) for a in keys for b in keys if a < b)
    finally:
        ray.shutdown()
        fleet.kill("gpus")


def _cell_workers(cache: Path | None = None) -> list[psutil.Process]:
    """The cell worker processes that nodes' raylets started (through a Ray worker); with
    ``cache``, those of the node whose export cache it is (in their environment)."""
    found = []
    for raylet in psutil.Process().children(recursive=True):
        try:
            if raylet.name() != "raylet":
                continue
            for child in raylet.children(recursive=True):
                if "serve_job" not in " ".join(child.cmdline()):
                    continue
                if cache is None or child.environ().get("DEPLOYBENCH_CACHE_DIR") == str(cache):
                    found.append(child)
        except psutil.Error:
            continue
    return found


def _popen(fleet: LocalFleet, tmp: Path, cache_dir: Path, *args: str, **suite) -> tuple:
    """``cli.py run --cluster`` started in the background, with Ctrl-C as a terminal
    gives it (whatever this process's own SIGINT handling), and a traceback on SIGABRT."""
    results = tmp / "results"
    config = write_suite(tmp / "bench.toml", results_dir=str(results), **{**SUITE, **suite})
    command = ["run", "--config", config, "--cluster", fleet.address, *args]
    process = start_cli(command, _env(cache_dir), "-X", "faulthandler")
    return process, results


def _finish(process: subprocess.Popen, timeout: float) -> tuple[str, str]:
    """Its output once it exits; on a hang, its threads' tracebacks in the failure."""
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGABRT)
        out, err = process.communicate()
        pytest.fail(f"cli.py did not exit within {timeout} s:\n{out[-2000:]}\n{err[-6000:]}")


def _wait_for(condition, timeout: float = 120) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.2)


def test_ctrl_c_stops_the_cells_on_the_nodes(
    fleet: LocalFleet, tmp_path: Path, cache_dir: Path
) -> None:
    process, results = _popen(
        fleet,
        tmp_path,
        cache_dir,
        "--nodes",
        "alpha,beta",
        "--no-progress",
        measure={"min_duration_s": 60, "max_duration_s": 120},
    )
    try:
        _wait_for(lambda: len(_cell_workers()) >= 2)
        process.send_signal(signal.SIGINT)
        out, err = _finish(process, 120)
    finally:
        process.kill()
    assert process.returncode == 130, out + err
    assert "interrupted: the cells in flight were stopped" in out
    _wait_for(lambda: not _cell_workers(), timeout=20)
    (root,) = results.iterdir()
    assert "--resume" in out and str(root) in out


def test_a_node_lost_mid_cell_is_crashed_and_resume_finishes(
    fleet: LocalFleet, tmp_path: Path, cache_dir: Path
) -> None:
    fleet.add("epsilon")
    process, results = _popen(
        fleet,
        tmp_path,
        cache_dir,
        "--nodes",
        "alpha,epsilon",
        "--no-progress",
        scenarios=["latency", "throughput"],
        measure={"min_duration_s": 1.0},
    )
    try:
        lost = lambda: next(results.iterdir()) / "epsilon" / "results.jsonl"  # noqa: E731
        _wait_for(
            lambda: (
                results.is_dir()
                and any(results.iterdir())
                and lost().is_file()
                and lost().stat().st_size > 0
            )
        )
        _wait_for(lambda: _cell_workers(fleet.cache("epsilon")))  # its next cell is in flight
        fleet.kill("epsilon")
        out, err = _finish(process, 180)
    finally:
        process.kill()
    assert process.returncode == 1, out + err
    (root,) = results.iterdir()
    assert "epsilon left the cluster" in out
    assert f"--resume {root} --cluster {fleet.address}" in out
    crashed = [r for r in records_of(root / "epsilon") if r["status"] == "crashed"]
    assert len(crashed) == 1 and crashed[0]["reason"].startswith(NODE_LOST)
    assert len(records_of(root / "alpha")) == 4
    assert len(records_of(root / "epsilon")) < 4

    refused = cli("run", "--resume", root, cache_dir=cache_dir)
    one_line_error(refused, f"add --cluster {fleet.address}")
    fleet.add("epsilon")  # back, or a machine of the same hardware under that name
    try:
        resumed = cli(
            "run",
            "--resume",
            root,
            "--cluster",
            fleet.address,
            "--no-progress",
            cache_dir=cache_dir,
        )
    finally:
        fleet.kill("epsilon")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    records = records_of(root / "epsilon")
    assert len(records) == 4 and all(r["status"] == "ok" for r in records)
    assert all(r["node"]["name"] == "epsilon" for r in records)
    assert len(records_of(root / "alpha")) == 4


@pytest.mark.slow
def test_tune_measures_on_the_node_it_names(
    fleet: LocalFleet, tmp_path: Path, cache_dir: Path
) -> None:
    config = write_suite(tmp_path / "bench.toml", results_dir=str(tmp_path / "results"), **SUITE)
    done = cli(
        "tune", "mlp", "--config", config, "--cluster", fleet.address, "--node", "beta",
        "--precisions", "fp32", "--in-flight", "1,2", "--latency-bound", "100",
        "--no-artifact", cache_dir=cache_dir,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    (folder,) = (tmp_path / "results").glob("*-tune-*")
    data = json.loads((folder / "tune.json").read_text())
    assert data["measurements"] == 2 and data["chosen"]["status"] == "met"
    nodes = {
        r["node"]["name"] for run in (folder / "runs").iterdir() for r in records_of(run / "beta")
    }
    assert nodes == {"beta"}
