"""deploybench command line: parse, call into ``bench``, print, exit code.

Imports stay inside the command functions: worker processes are spawned and re-import
this module, and must not pay for anything they do not use.
"""

from __future__ import annotations

import argparse
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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cli.py",
        description="Benchmark models across inference runtimes: latency, throughput, "
        "cold start and memory, each cell in its own worker process.",
    )
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
    run.add_argument("--scenarios", type=_csv(str), help="latency, throughput or both")
    run.add_argument("--threads", type=int, help="intra-op threads in all (0 = physical cores)")
    run.add_argument("--in-flight", type=int, help="requests in flight in the throughput scenario")
    run.add_argument(
        "--cell-timeout", type=float, help="seconds before a cell is stopped as a timeout"
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
        help="size of an input of --onnx/--model (repeat per input)",
    )
    run.add_argument("--results-dir", help="where run directories are made (default: results)")
    run.add_argument(
        "--cache-dir", type=Path, help="export cache (default: the platform cache dir)"
    )
    run.add_argument(
        "--resume", type=Path, metavar="RUN_DIR", help="finish the missing cells of a run"
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.set_defaults(handler=_run)

    listing = commands.add_parser(
        "list",
        help="list the reference models and the runtimes",
        description="Reference models with their size and cost, and "
        "each runtime with its devices or why it is unavailable.",
    )
    listing.set_defaults(handler=_list)

    env = commands.add_parser(
        "env",
        help="print this machine's fingerprint (environment.json)",
        description="Print the hardware and software fingerprint as JSON.",
    )
    env.set_defaults(handler=_env)
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    names = {
        "models": "models",
        "runtimes": "runtimes",
        "devices": "devices",
        "precisions": "precisions",
        "batch_sizes": "batch_sizes",
        "scenarios": "scenarios",
        "threads": "threads",
        "in_flight": "in_flight",
        "cell_timeout": "cell_timeout_s",
        "results_dir": "results_dir",
    }
    suite = {
        key: getattr(args, arg) for arg, key in names.items() if getattr(args, arg) is not None
    }
    return {"suite": suite} if suite else {}


def _console():  # noqa: ANN202 - rich is imported only when a command prints
    from rich.console import Console

    console = Console()
    if not console.is_terminal:  # a log file or a CI page: do not squeeze tables to 80 columns
        console.width = 160
    return console


def _run(args: argparse.Namespace) -> int:
    from bench import app

    console = _console()
    if args.resume:
        run = app.resumed_run(args.resume)
    else:
        run = app.new_run(
            app.RunRequest(
                config_path=args.config,
                profile=args.profile,
                overrides=_overrides(args),
                onnx=args.onnx,
                factory=args.factory,
                shapes=args.shape,
                cache_dir=args.cache_dir,
            )
        )
    try:
        return app.execute(run, console, show_progress=not args.no_progress)
    except KeyboardInterrupt:
        console.print(
            f"\ninterrupted: every finished cell is kept in {run.run_dir.path}; "
            f"finish with: python cli.py run --resume {run.run_dir.path}"
        )
        return 130


def _list(args: argparse.Namespace) -> int:
    from bench import catalog

    console = _console()
    console.print(catalog.models_table())
    console.print(catalog.runtimes_table())
    return 0


def _env(args: argparse.Namespace) -> int:
    import json

    from bench.environment import fingerprint

    print(json.dumps(fingerprint(), indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from bench.errors import UserError

    try:
        return args.handler(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
