"""The command line's grammar: every verb and flag of ``cli.py``, each verb's handler
named as ``module:function`` of bench.commands (imported only when that verb runs, so
that ``--help`` and a bad flag cost no import of the harness)."""

from __future__ import annotations

import argparse
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


_WEIGHTS_HELP = (
    "a pretrained --model's weights: a torchvision weights name (IMAGENET1K_V2; default "
    "DEFAULT) or a state dict file (.pth, .pt, .safetensors) for torchvision: and timm:"
)


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
        "--scenarios",
        type=_csv(str),
        help="latency, throughput, train, and MLPerf LoadGen's single_stream, multi_stream, "
        "server, offline (comma-separated)",
    )
    run.add_argument(
        "--latency-bound",
        type=float,
        metavar="MS",
        help="the server scenario's bound on its p99 latency, ms ([loadgen] latency_bound_ms)",
    )
    run.add_argument(
        "--target-qps",
        type=float,
        help="the server scenario's arrival rate; 0 searches for the highest VALID one",
    )
    run.add_argument(
        "--loadgen-duration",
        type=float,
        metavar="S",
        help="the least seconds of a LoadGen run ([loadgen] min_duration_s; MLPerf: 600)",
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
        help="benchmark the PyTorch module this function returns (or FILE.py:FACTORY), or "
        "a pretrained model: torchvision:NAME, timm:NAME, hf:ORG/NAME or hf:FOLDER",
    )
    run.add_argument("--weights", metavar="NAME|FILE", help=_WEIGHTS_HELP)
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
    _add_dataset(run)
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
    run.set_defaults(handler="bench.commands.run:run_verb")

    listing = commands.add_parser(
        "list",
        help="list the reference models and the runtimes",
        description="Reference models with their size and cost, and "
        "each runtime with its devices or why it is unavailable.",
    )
    listing.set_defaults(handler="bench.commands.listing:list_verb")

    _add_export(commands)
    _add_compare(commands)
    _add_history(commands)
    _add_ab(commands)
    _add_tune(commands)
    _add_baseline(commands)
    _add_hw(commands)
    _add_report(commands)

    env = commands.add_parser(
        "env",
        help="print this machine's fingerprint (environment.json)",
        description="Print the hardware and software fingerprint as JSON.",
    )
    env.set_defaults(handler="bench.commands.env:env_verb")
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
    export.set_defaults(handler="bench.commands.export:export_verb")


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
        "--accuracy-budget",
        metavar="POINTS|PCT%",
        help="a task metric on labelled data (top-1, mIoU) that fell further has regressed: "
        "1 (one point) or 2%% (relative); default [compare] accuracy_budget, else not judged",
    )
    compare.add_argument(
        "--threshold-model",
        choices=["percentage", "t-test", "iqr"],
        help="percentage: the thresholds above for every cell (default); t-test or iqr: "
        "each cell's from its own noise over the --noise runs",
    )
    compare.add_argument(
        "--noise",
        type=Path,
        nargs="+",
        default=[],
        metavar="RUN",
        help="runs of unchanged code (results directories or baselines, e.g. main's last "
        "baselines or A/A runs) whose spread sets each cell's threshold",
    )
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
    compare.set_defaults(handler="bench.commands.compare:compare_verb")


def _add_ab(commands: Any) -> None:
    ab = commands.add_parser(
        "ab",
        help="the paired regression gate: two models or settings measured side by side",
        description="Measure BASE and NEW (each an ONNX file, a zoo model or a factory "
        "package.module:function) in the same workers, their requests alternated in random "
        "order, on every latency cell of the suite, until the ratio's interval is narrow "
        "enough; an alert is measured again by fresh workers before it fails the gate. Two "
        "deploybench checkouts cannot share a process: they are run in interleaved rounds "
        "instead, and the output says so. Exit code 0: nothing regressed; 1: a cell "
        "regressed (confirmed) or failed; 2: bad input.",
    )
    ab.add_argument(
        "base", help="the base side: ONNX file, zoo model, factory or deploybench checkout"
    )
    ab.add_argument("new", help="the new side, in the same forms")
    ab.add_argument(
        "--config", type=Path, default=Path("bench.toml"), help="suite file (default: bench.toml)"
    )
    ab.add_argument("--profile", help="a [profiles.NAME] table of the suite file")
    ab.add_argument("--runtimes", type=_csv(str), help="comma-separated runtimes")
    ab.add_argument("--devices", type=_devices, help="comma-separated devices")
    ab.add_argument("--precisions", type=_csv(str), help="comma-separated precisions")
    ab.add_argument("--batch-sizes", type=_csv(int), help="comma-separated batch sizes")
    ab.add_argument("--threads", type=int, help="intra-op threads of each side")
    ab.add_argument("--cell-timeout", type=float, help="seconds one paired worker may take")
    ab.add_argument("--results-dir", help="where the ab-<time> folder is made (default: results)")
    ab.add_argument("--cache-dir", type=Path, help="export cache (default: the platform's)")
    for side in ("base", "new"):
        ab.add_argument(
            f"--{side}-option",
            action="append",
            default=[],
            metavar="RUNTIME.KEY=VALUE",
            help=f"a runtime option of the {side} side only, e.g. "
            "onnxruntime.graph_optimization=basic (repeatable)",
        )
    ab.add_argument(
        "--new-precision",
        choices=["fp32", "fp16", "bf16"],
        help="run the new side in this precision in every cell: a paired speedup, e.g. "
        "ab resnet18 resnet18 --precisions fp32 --new-precision fp16",
    )
    ab.add_argument(
        "--shape", action="append", default=[], metavar="NAME=1x3x224x224", help="input size"
    )
    ab.add_argument(
        "--input-range", action="append", default=[], metavar="NAME=LO:HI", help="input values"
    )
    ab.add_argument(
        "--threshold", metavar="PCT", help="smallest change that counts (default: [ab], 1%%)"
    )
    ab.add_argument(
        "--half-width",
        metavar="PCT",
        help="stop a cell once its interval is this narrow (default: [ab], 0.5%%)",
    )
    ab.add_argument(
        "--max-time", type=float, metavar="S", help="seconds a cell may measure, a stage"
    )
    ab.add_argument(
        "--no-confirm", action="store_true", help="do not measure alerts again before failing"
    )
    ab.add_argument("--markdown", type=Path, metavar="FILE", help="write a Markdown summary")
    ab.add_argument("--json", type=Path, metavar="FILE", help="write the verdicts as JSON")
    ab.add_argument("--junit", type=Path, metavar="FILE", help="write JUnit XML")
    ab.add_argument("--no-progress", action="store_true", help="print only the stage ends")
    ab.set_defaults(handler="bench.commands.ab:ab_verb")


def _add_dataset(command: argparse.ArgumentParser) -> None:
    """The flags of labelled data (``[dataset]``), the same on ``run`` and ``tune``."""
    command.add_argument(
        "--dataset",
        metavar="FILE.npz|FOLDER",
        help="score every cell on this labelled data: an .npz of arrays named as the "
        "model's inputs plus 'labels', or an image folder (one folder per class)",
    )
    command.add_argument(
        "--dataset-preset",
        metavar="NAME",
        help="how an image folder's images become inputs: imagenet, imagenet-v2, inception, "
        "cifar10, mnist, mnist32",
    )
    command.add_argument(
        "--dataset-samples",
        type=int,
        metavar="N",
        help="samples scored (default 500; 0 = all not held out for int8 calibration)",
    )
    command.add_argument(
        "--accuracy-budget",
        metavar="POINTS|PCT%",
        help="how far the metric may fall below the FP32 reference: 1 (one point of "
        "top-1) or 2%% (relative); gates the speedup table and tune",
    )


def _add_tune(commands: Any) -> None:
    tune = commands.add_parser(
        "tune",
        help="choose the configuration to ship: runtime, precision, batch, requests in flight",
        description="Measure one model's configurations (runtimes × devices × precisions × "
        "batch sizes × requests in flight) under constraints: the p99 latency bound (or a "
        "VALID LoadGen Server run at --target-qps), the accuracy verdict, peak memory and "
        "power. A configuration over a limit rules out every larger one of its runtime "
        "and precision unmeasured; a large space is searched with Optuna within --budget. "
        "Writes the decision, every rejected configuration with its reason, the Pareto "
        "front (report.html) and the artifact to ship (the model file the runtime loaded, "
        "manifest.json, run.py). Exit code 0: chosen; 1: nothing met the constraints (the "
        "closest are listed); 2: bad input.",
    )
    tune.add_argument("model", nargs="?", help="a zoo model (or give --onnx / --model)")
    tune.add_argument(
        "--config", type=Path, default=Path("bench.toml"), help="suite file (default: bench.toml)"
    )
    tune.add_argument("--profile", help="a [profiles.NAME] table of the suite file")
    tune.add_argument("--onnx", type=Path, help="tune this ONNX file")
    tune.add_argument(
        "--model",
        dest="factory",
        metavar="PACKAGE.MODULE:FACTORY",
        help="tune the PyTorch module this function returns (or FILE.py:FACTORY), or a "
        "pretrained model: torchvision:NAME, timm:NAME, hf:ORG/NAME or hf:FOLDER",
    )
    tune.add_argument("--weights", metavar="NAME|FILE", help=_WEIGHTS_HELP)
    tune.add_argument(
        "--shape", action="append", default=[], metavar="NAME=1x3x224x224", help="input size"
    )
    tune.add_argument(
        "--input-range", action="append", default=[], metavar="NAME=LO:HI", help="input values"
    )
    tune.add_argument("--runtimes", type=_csv(str), help="runtimes to try (default: the suite's)")
    tune.add_argument("--devices", type=_devices, help="devices to try (default: the suite's)")
    tune.add_argument(
        "--precisions", type=_csv(str), help="precisions to try, e.g. fp32,fp16,bf16,int8"
    )
    tune.add_argument("--batch-sizes", type=_csv(int), help="batch sizes to try, e.g. 1,4,16")
    tune.add_argument(
        "--in-flight",
        dest="in_flight_values",
        type=_csv(int),
        default=[1, 2, 4],
        metavar="N,N",
        help="requests in flight to try (default: 1,2,4); 1 is the latency scenario",
    )
    tune.add_argument("--threads", type=int, help="intra-op threads in all (0 = physical cores)")
    tune.add_argument(
        "--latency-bound",
        type=float,
        metavar="MS",
        help="the p99 latency bound, ms (default: [loadgen] latency_bound_ms, 10)",
    )
    tune.add_argument(
        "--target-qps",
        type=float,
        help="instead of closed-loop p99: each configuration must serve this Poisson rate "
        "with a VALID LoadGen Server run under the bound",
    )
    tune.add_argument(
        "--loadgen-duration",
        type=float,
        metavar="S",
        help="the least seconds of each --target-qps LoadGen run ([loadgen] min_duration_s)",
    )
    _add_dataset(tune)
    tune.add_argument("--max-memory", type=float, metavar="MB", help="peak resident memory")
    tune.add_argument(
        "--max-watts", type=float, metavar="W", help="average power, where it is measured"
    )
    tune.add_argument(
        "--ignore-accuracy", action="store_true", help="ship even a failed accuracy verdict"
    )
    tune.add_argument(
        "--search",
        choices=["auto", "grid"],
        default="auto",
        help="auto (default): a grid up to 48 configurations, Optuna beyond; grid: always",
    )
    tune.add_argument(
        "--budget", type=int, default=40, help="measurements an Optuna search may make"
    )
    tune.add_argument("--no-artifact", action="store_true", help="choose, but write no artifact")
    tune.add_argument("--results-dir", help="where the <time>-tune-<model> folder is made")
    tune.add_argument("--cache-dir", type=Path, help="export cache (default: the platform's)")
    tune.add_argument(
        "--host", metavar="NAME|[USER@]HOST[:PORT]", help="tune on this device over SSH"
    )
    tune.add_argument("--cluster", metavar="ADDRESS", help="tune on a node of this Ray cluster")
    tune.add_argument(
        "--node", metavar="NAME", help="the cluster's node to tune on (name, address or id)"
    )
    tune.set_defaults(handler="bench.commands.tune:tune_verb")


def _add_history(commands: Any) -> None:
    history = commands.add_parser(
        "history",
        help="trends and change points over a series of runs (main's history in CI)",
        description="Per cell, the trend of each metric over RUN ... (results directories or "
        "baseline files, oldest first; a folder of them is taken oldest first by start "
        "time) and its change points (ruptures PELT). Exit code 0: the newest run starts "
        "no regression; 1: it starts one beyond the threshold; 2: bad input.",
    )
    history.add_argument(
        "runs",
        type=Path,
        nargs="+",
        metavar="RUN",
        help="results directory, baseline file or a folder of them",
    )
    history.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="[METRIC=]PCT",
        help="smallest change that counts, as for compare (repeatable; default: the "
        "suite's [compare] table, else 10%%, latency_p99 50%%, memory 5%%)",
    )
    history.add_argument(
        "--config", type=Path, help="suite file whose [compare] table to use (default: bench.toml)"
    )
    history.add_argument("--markdown", type=Path, metavar="FILE", help="write a Markdown summary")
    history.add_argument("--json", type=Path, metavar="FILE", help="write the history as JSON")
    history.add_argument(
        "--html", type=Path, metavar="FILE", help="write a self-contained HTML page"
    )
    history.set_defaults(handler="bench.commands.history:history_verb")


def _add_baseline(commands: Any) -> None:
    baseline = commands.add_parser(
        "baseline",
        help="save a run as a baseline file for compare",
        description="Baselines hold what compare needs (per-repetition summaries, the "
        "environment), small enough to commit.",
    )
    actions = baseline.add_subparsers(dest="action", required=True, parser_class=_Parser)
    save = actions.add_parser("save", help="save RUN_DIR as a baseline file")
    save.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="the run folder to save")
    save.add_argument("file", type=Path, metavar="FILE", help="e.g. results/baselines/main.json")
    save.set_defaults(handler="bench.commands.compare:baseline_save_verb")


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
    hw.set_defaults(handler="bench.commands.hw:hw_verb")


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
    report.set_defaults(handler="bench.commands.report:report_verb")
