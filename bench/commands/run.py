"""``cli.py run``: a suite measured by one executor (bench.commands.executors), then its
report written and printed. ``--resume`` comes back to the executor run.json names: one
path for every executor."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from bench.commands.console import console as shown
from bench.commands.execution import Display, execute, measured
from bench.commands.executors import get_executor
from bench.core.errors import UserError
from bench.harness.executor import Target
from bench.harness.overrides import OVERRIDES, overrides_from
from bench.harness.start import (
    ResumeRequest,
    RunRequest,
    executor_of,
    resumed_run,
    settle,
)
from bench.views.roofline import check_hw_dirs


def run_command(request: RunRequest, target: Target, console: Console, display: Display) -> int:
    """Read the suite once, then measure it where ``target`` says; the exit code (0: no
    cell failed, crashed or timed out; 1: some did)."""
    setup = settle(request)
    if target.host:  # a device over SSH: its mode is known once it answers
        from bench.commands.edge import edge_run

        return edge_run(setup, target, console, display)
    name = target.executor or ("ray" if setup.config.cluster.address else "local")
    executor_class = get_executor(name)
    executor_class.check_target(target, None)
    with executor_class.opened(target, setup.config, console) as executor:
        return execute(setup, executor, console, display)[1]


def resume_command(
    request: ResumeRequest, target: Target, console: Console, display: Display
) -> int:
    """Finish the run in ``request.path`` on the executor that began it (its target
    given again: resume connects to nothing a results folder names)."""
    name = executor_of(request.path)
    executor_class = get_executor(name)
    executor_class.check_target(target, request.path)
    if executor_class.hands_over:
        with executor_class.opened(target, None, console) as executor:
            return executor.hand_over_resume(request.path, console)
    run = resumed_run(request)
    with executor_class.opened(target, run.config, console) as executor:
        return measured(run, executor, console, display)


def run_verb(args: argparse.Namespace) -> int:
    """``cli.py run``: the target flags checked against each other, then a new run or
    ``--resume``."""
    console = shown()
    check_hw_dirs(args.hw)
    cluster_flags = [
        f"--{f.replace('_', '-')}" for f in ("fleet", "nodes", "per_gpu") if getattr(args, f)
    ]
    if args.host and (args.cluster or cluster_flags):
        raise UserError("--host runs on one device over SSH: drop the --cluster flags")
    if args.host and args.executor:
        raise UserError("--host chooses its executor (--remote-mode): drop --executor")
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
            if args.nodes and executor_of(args.resume) != "ray":
                _check_resume_flags(args, config_allowed=bool(args.host))
            request = ResumeRequest(
                args.resume,
                args.onnx,
                args.factory,
                args.cache_dir,
                args.inputs,
                args.weights,
                Path(args.dataset) if args.dataset else None,
            )
            return resume_command(request, target, console, display)
        return run_command(_run_request(args), target, console, display)
    except KeyboardInterrupt:  # what was kept, and how to go on, is said where it happened
        return 130


def _run_request(args: argparse.Namespace) -> RunRequest:
    return RunRequest(
        config_path=args.config,
        profile=args.profile,
        overrides=overrides_from(vars(args)),
        onnx=args.onnx,
        factory=args.factory,
        shapes=args.shape,
        ranges=args.input_range,
        inputs=args.inputs,
        cache_dir=args.cache_dir,
        weights=args.weights,
    )


def _check_resume_flags(
    args: argparse.Namespace, config_allowed: bool = False, nodes_allowed: bool = False
) -> None:
    """``--resume`` finishes a run as it was set up: a flag that would change it is an
    error, not silently dropped (``--config`` may name the ``[hosts]`` of ``--host``)."""
    given = [
        override.flag
        for override in OVERRIDES
        if override.table != "cluster"
        and override.flag != "--dataset"  # named again, as --onnx is
        and getattr(args, override.dest) is not None
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
            "(it takes --model, --onnx, --inputs, --dataset and --cache-dir)"
        )
