"""deploybench command line: parse, call into ``bench``, print, exit code.

Imports stay inside the command functions, so that a command pays only for what it
uses.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any, NoReturn


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def _csv(kind: type) -> Any:
    def parse(text: str) -> list:
        try:
            return [kind(item) for item in text.split(",") if item]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated list, got '{text}'"
            ) from None

    return parse


def _devices(text: str) -> list[str]:
    """Devices separated by ';', or by ',' where a combined device (``hetero:gpu,cpu``)
    keeps the plain names that follow it."""
    if ";" in text:
        return [item for item in text.split(";") if item]
    devices: list[str] = []
    for item in (part for part in text.split(",") if part):
        combined = bool(devices) and devices[-1].lower().startswith(("auto:", "hetero:", "multi:"))
        if combined and ":" not in item and not item.lower().startswith("cuda"):
            devices[-1] += f",{item}"
        else:
            devices.append(item)
    return devices


class _Version(argparse.Action):
    """``--version``, its package metadata read only when asked (not on every start)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(
            option_strings, argparse.SUPPRESS, nargs=0, default=argparse.SUPPRESS, **kwargs
        )

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        print(f"deploybench {_version()}")
        parser.exit(0)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("deploybench")
    except PackageNotFoundError:
        return "unknown (not installed: pip install -e .)"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cli.py",
        description="Benchmark models across inference runtimes: latency, throughput, "
        "cold start and memory, each cell in its own worker process.",
    )
    parser.add_argument("--version", action=_Version, help="print the version and exit")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = commands.add_parser(
        "run",
        help="run a suite (bench.toml by default)",
        description="Run a suite; results land in results/<run-id>/.",
    )
    run.add_argument(
        "--config", type=Path, default=Path("bench.toml"), help="suite file (default: bench.toml)"
    )
    run.add_argument("--profile", help="a [profiles.NAME] table of the suite file, e.g. smoke")
    run.add_argument(
        "--models", type=_csv(str), help="comma-separated zoo models (overrides the suite)"
    )
    run.add_argument(
        "--runtimes", type=_csv(str), help="comma-separated runtimes, e.g. pytorch,onnxruntime"
    )
    run.add_argument(
        "--devices",
        type=_devices,
        help="comma-separated devices: cpu, cuda:N, gpu, npu, hetero:gpu,cpu "
        "(a hetero:/auto:/multi: list takes the names after it; ';' also separates)",
    )
    run.add_argument("--precisions", type=_csv(str), help="comma-separated precisions (fp32)")
    run.add_argument("--batch-sizes", type=_csv(int), help="comma-separated batch sizes")
    run.add_argument(
        "--scenarios", type=_csv(str), help="latency, throughput, train (comma-separated)"
    )
    run.add_argument("--threads", type=int, help="intra-op threads in all (0 = physical cores)")
    run.add_argument("--in-flight", type=int, help="requests in flight in the throughput scenario")
    run.add_argument(
        "--cell-timeout",
        type=float,
        help="seconds a cell's worker may take, every phase (build, load, timed loop) "
        "included, before it is stopped as a timeout",
    )
    run.add_argument(
        "--export-timeout",
        type=float,
        help="seconds preparing a model may take (export, reference outputs; default 600)",
    )
    run.add_argument(
        "--power",
        help="power source: auto (what the machine has for the cell's device), nvml, rapl, "
        "jetson, tegrastats or none",
    )
    run.add_argument(
        "--repeat",
        type=int,
        metavar="N",
        help="run each cell in N separate workers, the suite repeated N times (for compare)",
    )
    run.add_argument(
        "--onnx", type=Path, help="benchmark this ONNX file instead of the suite's models"
    )
    run.add_argument(
        "--model",
        dest="factory",
        metavar="PACKAGE.MODULE:FACTORY",
        help="benchmark the PyTorch module this function returns",
    )
    run.add_argument(
        "--shape",
        action="append",
        default=[],
        metavar="NAME=1x3x224x224",
        help="size of an input of --onnx/--model (repeat per input; inputs sharing a "
        "named dynamic dimension take its size from one)",
    )
    run.add_argument(
        "--input-range",
        action="append",
        default=[],
        metavar="NAME=LO:HI",
        help="draw an input's values in [LO, HI) (default: floats in [-1, 1), indices below "
        "the rows of the table they index, else [0, 100))",
    )
    run.add_argument(
        "--inputs",
        type=Path,
        metavar="FILE.npz",
        help="feed --onnx these arrays, one per input by name (numpy.savez)",
    )
    run.add_argument(
        "--calibration-data",
        metavar="FILE.npz",
        help="int8 cells calibrate on these arrays (one per input, samples on the first axis) "
        "instead of generated inputs",
    )
    run.add_argument(
        "--calibration-samples", type=int, metavar="N", help="samples int8 calibration runs"
    )
    run.add_argument(
        "--quantize-method",
        choices=["minmax", "entropy", "percentile"],
        help="how int8 calibration picks activation ranges (default: minmax)",
    )
    run.add_argument("--results-dir", help="where run directories are made (default: results)")
    run.add_argument(
        "--cache-dir", type=Path, help="export cache (default: the platform cache dir)"
    )
    run.add_argument(
        "--resume",
        type=Path,
        metavar="RUN_DIR",
        help="finish the missing cells of a run (give its --model, --onnx, --inputs again)",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument(
        "--hw",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="hw result for the roofline (default: a matching one in the results dir)",
    )
    run.add_argument("--name", help="the suite's name (names the run folder)")
    run.add_argument(
        "--executor",
        metavar="NAME",
        help="where the cells are measured, by its registry name (default: local; --host "
        "and --cluster choose theirs)",
    )
    _add_edge_flags(run)
    _add_fleet_flags(run)
    run.set_defaults(handler=_run)

    listing = commands.add_parser(
        "list",
        help="list the reference models and the runtimes",
        description="Reference models with their size and cost, and "
        "each runtime with its devices or why it is unavailable.",
    )
    listing.set_defaults(handler=_list)

    _add_export(commands)
    _add_compare(commands)
    _add_baseline(commands)
    _add_hw(commands)
    _add_report(commands)

    env = commands.add_parser(
        "env",
        help="print this machine's fingerprint (environment.json)",
        description="Print the hardware and software fingerprint as JSON.",
    )
    env.set_defaults(handler=_env)
    return parser


def _add_edge_flags(run: argparse.ArgumentParser) -> None:
    edge = run.add_argument_group("a device over SSH (Jetson, a Myriad X host, any Linux box)")
    edge.add_argument(
        "--host",
        metavar="NAME|[USER@]HOST[:PORT]",
        help="run the suite on this device: a [hosts.NAME] table of the suite file, an "
        "address, or an alias of your ssh config",
    )
    edge.add_argument(
        "--remote-mode",
        choices=["auto", "tools", "agent"],
        help="tools: the device's own trtexec/tegrastats/benchmark_app; agent: deploybench "
        "installed there; auto (default): agent where deploybench answers",
    )
    edge.add_argument(
        "--power-modes",
        type=_csv(int),
        metavar="ID,ID",
        help="run the suite under each nvpmodel mode (ids), then restore the board's mode",
    )
    edge.add_argument(
        "--jetson-clocks",
        type=_csv(_on_off),
        metavar="on,off",
        help="run the suite with jetson_clocks on and/or off, then restore the clocks",
    )


def _add_fleet_flags(run: argparse.ArgumentParser) -> None:
    fleet = run.add_argument_group("a fleet of machines on Ray (pip install 'deploybench[fleet]')")
    fleet.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="run on this Ray cluster: auto (the one this machine joined), HOST:PORT of its "
        "head, or ray://HOST:PORT (default: [cluster] address of the suite file)",
    )
    fleet.add_argument(
        "--fleet",
        choices=["compare", "shard"],
        help="compare (default): the suite on every node, one machine per column; shard: one "
        "suite's cells spread over nodes of one hardware fingerprint",
    )
    fleet.add_argument(
        "--nodes",
        type=_csv(str),
        metavar="NAME,NAME",
        help="these nodes only (name, address or node-id prefix); with --resume, the nodes "
        "that may finish it",
    )
    fleet.add_argument(
        "--per-gpu",
        action="store_true",
        default=None,
        help="on multi-GPU nodes, one CUDA cell per GPU at once (default: one cell per node)",
    )


def _add_export(commands: Any) -> None:
    export = commands.add_parser(
        "export",
        help="write what a device's own trtexec needs, to copy by hand",
        description="Per model of the suite: the ONNX file at an opset the device's TensorRT "
        "parses, each batch's seeded inputs as --loadInputs files, the reference outputs, a "
        "manifest, and commands.sh with the trtexec commands to run on the device.",
    )
    export.add_argument(
        "--tensorrt",
        required=True,
        metavar="VERSION",
        help="the device's TensorRT, e.g. 8.2.1 (its trtexec banner: [TensorRT v8201])",
    )
    export.add_argument("--out", type=Path, required=True, metavar="DIR", help="where to write")
    export.add_argument(
        "--config", type=Path, default=Path("bench.toml"), help="suite file (default: bench.toml)"
    )
    export.add_argument("--profile", help="a [profiles.NAME] table of the suite file")
    export.add_argument("--models", type=_csv(str), help="comma-separated zoo models")
    export.add_argument("--precisions", type=_csv(str), help="fp32, fp16, bf16")
    export.add_argument("--batch-sizes", type=_csv(int), help="comma-separated batch sizes")
    export.add_argument("--opset", type=int, help="default: the highest the TensorRT parses")
    export.add_argument(
        "--trtexec",
        default="/usr/src/tensorrt/bin/trtexec",
        help="trtexec's path on the device (default: JetPack's)",
    )
    export.add_argument("--cache-dir", type=Path, help="export cache (default: the platform's)")
    export.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    from bench.commands.export import ExportRequest, export_command

    request = ExportRequest(
        args.config,
        args.profile,
        args.models,
        args.precisions,
        args.batch_sizes,
        args.tensorrt,
        args.opset,
        args.out,
        args.trtexec,
        args.cache_dir,
    )
    return export_command(request, _console())


def _on_off(text: str) -> str:
    if text not in ("on", "off"):
        raise ValueError(text)
    return text


def _add_compare(commands: Any) -> None:
    compare = commands.add_parser(
        "compare",
        help="the regression gate: compare a run against a baseline",
        description="Compare CURRENT against BASELINE (each a results directory or a "
        "baseline file), cell by cell. A metric regressed when the change is significant "
        "(Mann-Whitney U over repetitions) and beyond its threshold. Exit code 0: nothing "
        "regressed; 1: a cell regressed or newly fails; 2: bad input.",
    )
    compare.add_argument("baseline", type=Path, help="results directory or baseline file")
    compare.add_argument("current", type=Path, help="results directory or baseline file")
    compare.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="[METRIC=]PCT",
        help="smallest change that counts, e.g. 5%% or latency_p99=10%% (repeatable; "
        "default: the suite's [compare] table, else 10%%, latency_p99 50%%, memory 5%%)",
    )
    compare.add_argument("--alpha", type=float, help="significance level (default 0.05)")
    compare.add_argument(
        "--allow-different-hardware",
        action="store_true",
        help="compare runs from different CPUs/GPUs/boards/power modes (compares machines)",
    )
    compare.add_argument(
        "--config", type=Path, help="suite file whose [compare] table to use (default: bench.toml)"
    )
    compare.add_argument("--markdown", type=Path, metavar="FILE", help="write a Markdown summary")
    compare.add_argument("--json", type=Path, metavar="FILE", help="write the comparison as JSON")
    compare.add_argument("--junit", type=Path, metavar="FILE", help="write JUnit XML")
    compare.add_argument(
        "--html", type=Path, metavar="FILE", help="write a self-contained HTML page"
    )
    compare.add_argument(
        "--github-benchmark",
        type=Path,
        metavar="FILE",
        help="write CURRENT in github-action-benchmark's customSmallerIsBetter format",
    )
    compare.set_defaults(handler=_compare)


def _add_baseline(commands: Any) -> None:
    baseline = commands.add_parser(
        "baseline",
        help="save a run as a baseline file for compare",
        description="Baselines hold what compare needs (per-repetition summaries, the "
        "environment), small enough to commit.",
    )
    actions = baseline.add_subparsers(dest="action", required=True, parser_class=_Parser)
    save = actions.add_parser("save", help="save RUN_DIR as a baseline file")
    save.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    save.add_argument("file", type=Path, metavar="FILE", help="e.g. results/baselines/main.json")
    save.set_defaults(handler=_baseline_save)


def _add_hw(commands: Any) -> None:
    hw = commands.add_parser(
        "hw",
        help="microbenchmark this machine: matrix multiply per dtype, STREAM, host<->device",
        description="Dense matrix-multiply TFLOP/s per dtype (2*M*N*K), STREAM copy/scale/"
        "add/triad bandwidth on arrays of 4x the last-level cache, cache sizes, and on a GPU "
        "pinned host<->device, device-to-device and peer-to-peer copies, per device; then "
        "the seed lecture's GPU sheet (P100, V100) beside ours. Each matrix size's time is "
        "projected from a small probe first: a size whose figure would take longer than the "
        "cap is recorded as capped, with the projected time, and not run. Results land in "
        "results/<stamp>-hw/ (hw.json).",
    )
    hw.add_argument("--devices", type=_csv(str), help="cpu, cuda (every GPU) or cuda:N")
    hw.add_argument(
        "--dtypes", type=_csv(str), help="matrix-multiply dtypes: fp64,fp32,tf32,fp16,bf16,int8"
    )
    hw.add_argument("--sizes", type=_csv(int), help="square matrix sizes, e.g. 1024,2048,4096")
    thoroughness = hw.add_mutually_exclusive_group()
    thoroughness.add_argument(
        "--quick", action="store_true", help="one size, 3 repeats, a 5 s cap per figure"
    )
    thoroughness.add_argument(
        "--thorough",
        action="store_true",
        help="the large sizes too (CPU up to 4096, GPU 2048-8192), a 120 s cap per figure",
    )
    hw.add_argument(
        "--max-s",
        type=float,
        metavar="S",
        help="cap on one figure's projected seconds (default 10; quick 5, thorough 120)",
    )
    hw.add_argument(
        "--stream-mib", type=int, metavar="MIB", help="STREAM array size (default: 4x the LLC)"
    )
    hw.add_argument("--results-dir", type=Path, default=Path("results"), help="default: results")
    hw.set_defaults(handler=_hw)


def _add_report(commands: Any) -> None:
    report = commands.add_parser(
        "report",
        help="machines side by side from run and hw result directories",
        description="One column per machine (directories from one machine merge by their "
        "hardware fingerprint): measured TFLOPS and bandwidth, per-model training and "
        "inference throughput, speedups, energy; a ratio column for two machines; then each "
        "machine's roofline (achieved FLOP/s and share of the measured peak).",
    )
    report.add_argument("dirs", type=Path, nargs="+", metavar="DIR", help="run or hw directory")
    report.add_argument(
        "--hw", type=Path, action="append", default=[], metavar="DIR", help="an hw directory"
    )
    report.add_argument("--markdown", type=Path, metavar="FILE", help="also write Markdown")
    report.add_argument(
        "--html", type=Path, metavar="FILE", help="also write a self-contained HTML page"
    )
    report.set_defaults(handler=_report)


def _check_resume_flags(
    args: argparse.Namespace, config_allowed: bool = False, nodes_allowed: bool = False
) -> None:
    """``--resume`` finishes a run as it was set up: a flag that would change it is an
    error, not silently dropped (``--config`` may name the ``[hosts]`` of ``--host``)."""
    from bench.core.errors import UserError
    from bench.harness.overrides import OVERRIDES

    given = [
        override.flag
        for override in OVERRIDES
        if override.table != "cluster" and getattr(args, override.dest) is not None
    ]
    given += [
        flag
        for flag, value in (
            ("--profile", args.profile),
            ("--shape", args.shape),
            ("--input-range", args.input_range),
            ("--fleet", args.fleet),
            ("--nodes", None if nodes_allowed else args.nodes),
            ("--per-gpu", args.per_gpu),
        )
        if value
    ]
    if args.config != Path("bench.toml") and not config_allowed:
        given.append("--config")
    if given:
        raise UserError(
            f"--resume finishes a run as it was set up: drop {', '.join(given)} "
            "(it takes --model, --onnx, --inputs and --cache-dir)"
        )


def _console():  # noqa: ANN202 - rich is imported only when a command prints
    from rich.console import Console

    console = Console()
    if not console.is_terminal:  # a log file or a CI page: do not squeeze tables to 80 columns
        console.width = 160
    return console


def _run(args: argparse.Namespace) -> int:
    from bench.commands.run import Display, resume_command, run_command
    from bench.core.errors import UserError
    from bench.harness import start
    from bench.harness.executor import Target
    from bench.views.roofline import check_hw_dirs

    console = _console()
    check_hw_dirs(args.hw)
    cluster_flags = [
        f"--{f.replace('_', '-')}" for f in ("fleet", "nodes", "per_gpu") if getattr(args, f)
    ]
    if args.host and (args.cluster or cluster_flags or args.executor):
        raise UserError("--host runs on one device over SSH: drop the --cluster flags")
    for flag in ("remote_mode", "power_modes", "jetson_clocks"):
        if getattr(args, flag) is not None and not args.host:
            raise UserError(f"--{flag.replace('_', '-')} needs --host (a device over SSH)")
    target = Target(
        executor=args.executor,
        host=args.host,
        remote_mode=args.remote_mode,
        cluster=args.cluster,
        nodes=tuple(args.nodes or ()),
        config_path=args.config,
        power_modes=tuple(str(mode) for mode in args.power_modes or ()),
        clocks=tuple(args.jetson_clocks or ()),
        cluster_flags=tuple(cluster_flags),
    )
    display = Display(not args.no_progress, tuple(args.hw))
    try:
        if args.resume:
            if args.host and (args.power_modes or args.jetson_clocks):
                raise UserError("--resume finishes one run: drop --power-modes and --jetson-clocks")
            _check_resume_flags(args, config_allowed=bool(args.host), nodes_allowed=True)
            if args.nodes and start.executor_of(args.resume) != "ray":
                _check_resume_flags(args, config_allowed=bool(args.host))
            request = start.ResumeRequest(
                args.resume, args.onnx, args.factory, args.cache_dir, args.inputs
            )
            return resume_command(request, target, console, display)
        return run_command(_run_request(args), target, console, display)
    except KeyboardInterrupt:  # what was kept, and how to go on, is said where it happened
        return 130


def _run_request(args: argparse.Namespace) -> Any:
    from bench.harness import start
    from bench.harness.overrides import overrides_from

    return start.RunRequest(
        config_path=args.config,
        profile=args.profile,
        overrides=overrides_from(vars(args)),
        onnx=args.onnx,
        factory=args.factory,
        shapes=args.shape,
        ranges=args.input_range,
        inputs=args.inputs,
        cache_dir=args.cache_dir,
    )


def _list(args: argparse.Namespace) -> int:
    from bench.views import catalog

    console = _console()
    console.print(catalog.models_table())
    console.print(catalog.runtimes_table())
    console.print(catalog.gpu_stack_table())
    return 0


def _compare(args: argparse.Namespace) -> int:
    from bench.commands.compare import CompareRequest, run_compare

    request = CompareRequest(
        baseline=args.baseline,
        current=args.current,
        config=args.config,
        thresholds=args.threshold,
        alpha=args.alpha,
        allow_different_hardware=args.allow_different_hardware,
        markdown=args.markdown,
        json=args.json,
        junit=args.junit,
        html=args.html,
        github_benchmark=args.github_benchmark,
    )
    return run_compare(request, _console())


def _baseline_save(args: argparse.Namespace) -> int:
    from bench.commands.compare import save_baseline

    return save_baseline(args.run_dir, args.file)


def _hw(args: argparse.Namespace) -> int:
    from bench.commands.hw import hw_command
    from bench.hw.suite import hw_options

    mode = "quick" if args.quick else "thorough" if args.thorough else "default"
    options = hw_options(args.devices, args.dtypes, args.sizes, mode, args.stream_mib, args.max_s)
    return hw_command(options, args.results_dir, _console())


def _report(args: argparse.Namespace) -> int:
    from bench.views.machines_report import machines_report

    return machines_report(args.dirs, args.hw, args.markdown, _console(), args.html)


def _env(args: argparse.Namespace) -> int:
    import json

    from bench.harness.environment import fingerprint

    print(json.dumps(fingerprint(), indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    import logging

    logging.basicConfig(format="warning: %(message)s", level=logging.WARNING, force=True)
    args = build_parser().parse_args(argv)
    from bench.core.errors import UserError
    from bench.core.lifetime import stop_on_terminate, terminated

    try:
        with stop_on_terminate():  # SIGTERM stops a run as Ctrl-C does
            code = args.handler(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a verb with nothing to keep: no traceback, just stop
        code = 130
    return 128 + signal.SIGTERM if code == 130 and terminated() else code


if __name__ == "__main__":
    sys.exit(main())
