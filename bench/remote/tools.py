"""Tools mode: cells run on the device by its own tools, driven from here over SSH, with
no Python needed there. Each tool is one module (bench.remote.device_tool) registered in
bench.remote.device_tools: TensorRT cells by ``trtexec`` (bench.remote.trtexec), Myriad X cells by
OpenVINO 2022.3's ``benchmark_app`` (bench.remote.myriad)."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.core.cell import SERVING_SCENARIOS, Cell
from bench.core.errors import Unavailable, UserError
from bench.core.record import CellRecord
from bench.core.spec import PreparedModel
from bench.harness.config import BenchConfig
from bench.harness.environment import fingerprint
from bench.harness.executor import Column
from bench.harness.plan import ModelRequest, PlannedCell, check_servable
from bench.harness.progress import Progress
from bench.harness.results import ENVIRONMENT_FILE, RUN_FILE, RunDir
from bench.harness.runner import cell_record
from bench.harness.start import Run
from bench.power.state import state_changes
from bench.remote.device import CellFailed, CellTimedOut, Device, DeviceWork
from bench.remote.device_tools import DEVICE_TOOLS, tool_for
from bench.remote.hosts import DeviceExecutor, Host
from bench.remote.probe import probe
from bench.remote.ssh import ConnectionLost, RemoteError


def tools_plan(device: Device, planned: list[PlannedCell]) -> list[PlannedCell]:
    """``planned``'s cells with the skip reasons of ``device`` in tools mode (the host's
    own are not the device's)."""
    return check_servable([PlannedCell(p.cell, tools_skip_reason(p.cell, device)) for p in planned])


def tools_skip_reason(cell: Cell, device: Device) -> str | None:
    """Why ``device`` cannot run ``cell`` with its own tools; None when it can."""
    tool = tool_for(cell)
    if tool is None:
        served = ", ".join(
            f"{t.runtime} on {' or '.join(t.device_kinds)} ({t.name})" for t in DEVICE_TOOLS
        )
        if any(t.runtime == cell.runtime for t in DEVICE_TOOLS):
            return f"tools mode runs {served}; not {cell.device}"
        return (
            f"{cell.runtime} needs deploybench on {device.name}: tools mode runs {served}; "
            "use the agent mode"
        )
    if cell.scenario == "train":
        return "tools mode runs inference only: training needs the agent mode"
    if cell.scenario in SERVING_SCENARIOS:
        return (
            f"tools mode times with {tool.name}'s own loop: MLPerf LoadGen's {cell.scenario} "
            "needs the agent mode"
        )
    return tool.skip_reason(cell, device)


class ToolsMode(DeviceWork):
    """Measures a cell on the device with its own tools (for ``ToolsExecutor``)."""

    def measure(
        self,
        cell: Cell,
        model: PreparedModel,
        config: BenchConfig,
        cache_dir: Path,
        run_id: str,
        repetition: int,
    ) -> CellRecord:
        """The cell's record, measured on the device; ConnectionLost propagates (the run
        stops there and ``--resume`` goes on)."""
        started_at = time.time()
        deadline = time.monotonic() + config.suite.cell_timeout_s
        status, reason, measured, phase = "ok", None, None, None
        try:
            tool = tool_for(cell)
            assert tool is not None  # tools_plan skipped the cells no tool serves
            measured = tool.measure(
                self, cell, model, config, cache_dir, run_id, repetition, deadline
            )
        except CellTimedOut as timeout:
            status, phase = "timeout", timeout.phase
            reason = (
                f"{timeout} within the cell timeout ({config.suite.cell_timeout_s:.0f} s); "
                "its processes on the device were stopped"
            )
        except CellFailed as failure:
            status, reason, phase = "failed", str(failure), failure.phase
        except Unavailable as exc:
            status, reason = "skipped", str(exc)
        except ConnectionLost:
            raise
        except RemoteError as exc:
            status, reason, phase = "failed", str(exc), "device"
        except Exception as exc:  # anything else: this cell failed, the run goes on
            status, reason, phase = "failed", f"{type(exc).__name__}: {exc}", "device"
        return cell_record(
            run_id, cell, status, reason, measured, model, started_at, repetition, phase
        )


class ToolsExecutor(DeviceExecutor):
    """A device over SSH, its cells run by its own tools: the models exported here at an
    opset its TensorRT parses, the plan cut to what its tools measure, its power state
    read again at the end."""

    name = "ssh-tools"
    mode = "tools"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.stops = f"the cell on {self.host.name} was stopped"
        self.said: list[str] = []

    def adjust(self, config: BenchConfig, models: list[ModelRequest]) -> BenchConfig:
        """The suite exported at an opset every tool it runs here reads: the lowest of
        their caps (a user's ONNX file above TensorRT's is refused in one line). A
        ``--dataset`` is refused: the tools time requests, they score no data."""
        if config.dataset.path is not None:
            raise UserError(
                f"tools mode runs {self.host.name}'s own tools, which score no --dataset: "
                "use the agent mode (deploybench on the device) or run it here"
            )
        caps = {
            tool.name: cap
            for tool in DEVICE_TOOLS
            if tool.runtime in config.suite.runtimes
            and tool.found(self.device)
            and (cap := tool.max_opset(self.device))
        }
        if "trtexec" in caps:  # a user's file is not exported again: it must parse as is
            for model in models:
                if model.kind == "onnx":
                    self._check_onnx_opset(Path(model.ref), caps["trtexec"])
        if not caps or config.suite.opset <= min(caps.values()):
            return config
        name, cap = min(caps.items(), key=lambda item: item[1])
        self.said.append(
            f"exporting at ONNX opset {cap}, not {config.suite.opset}: the highest "
            f"{name} on {self.host.name} reads"
        )
        return config.model_copy(update={"suite": config.suite.model_copy(update={"opset": cap})})

    def columns(self, run: Run, console: Console) -> list[Column]:
        for line in self.said:
            console.print(line)
        if run.resumed:
            self._check_same_power_mode(run)
        else:
            record_remote(run.run_dir, self.host, self.device, self.mode)
        return [Column(run.run_dir, tools_plan(self.device, run.planned))]

    def measure(
        self, run: Run, ready: Iterator, progress: Progress
    ) -> Iterator[tuple[Column, CellRecord]]:
        with tempfile.TemporaryDirectory(prefix="deploybench-edge-") as scratch:
            tools = ToolsMode(
                self.ssh, self.device, self.host.config, Path(scratch), run.config.suite.power
            )
            for todo in ready:
                record = tools.measure(
                    todo.cell,
                    todo.model,
                    run.config,
                    run.cache_dir,
                    run.run_dir.run_id,
                    todo.repetition,
                )
                yield todo.column, record

    def end_state(self, column: Column) -> tuple[list[str], list[str]]:
        """Read the device's power state again and record how it changed over the run."""
        environment_file = column.run_dir.path / ENVIRONMENT_FILE
        environment = json.loads(environment_file.read_text())
        start = environment.get("power", {}).get("state") or {}
        end = probe(self.ssh, self.host.config).jetson
        changes = state_changes(start, {"jetson": end}) if start.get("jetson") else []
        environment["power"]["end"] = {"jetson": end}
        environment["power"]["changes"] = changes
        environment_file.write_text(json.dumps(environment, indent=2, default=str) + "\n")
        return changes, []

    def _check_onnx_opset(self, path: Path, highest: int) -> None:
        from exporters.onnx_file import written_opset

        opset = written_opset(path) or 0
        if opset > highest:
            raise UserError(
                f"{path.name} is ONNX opset {opset}, and TensorRT {self.device.tensorrt} on "
                f"{self.host.name} parses up to opset {highest}: export it again at opset "
                f"{highest} or lower"
            )

    def _check_same_power_mode(self, run: Run) -> None:
        """UserError when the board is in another power mode (or jetson_clocks state)
        than the run began in: its remaining cells would measure another machine."""
        environment = run.run_dir.read_json(ENVIRONMENT_FILE)
        start = ((environment.get("power") or {}).get("state") or {}).get("jetson")
        if not start or not self.device.jetson:
            return
        changes = state_changes({"jetson": start}, {"jetson": self.device.jetson})
        if changes:
            mode = (start.get("nvpmodel") or {}).get("id")
            raise UserError(
                f"{run.run_dir.path} was measured in another power state than "
                f"{self.host.name} is in now ({'; '.join(changes)}): set it back first (sudo "
                f"nvpmodel -m {mode}; jetson_clocks as it was), then resume"
            )


def record_remote(run_dir: RunDir, host: Host, device: Device, mode: str) -> None:
    """The device's fingerprint as the run's environment.json (with this machine, the
    controller, beside it), and the host in run.json for ``--resume``."""
    environment = device.environment()
    here = fingerprint()
    environment["remote"].update(
        mode=mode,
        address=host.config.address,
        controller={"cpu": here["cpu"]["model"], "libraries": here["libraries"]},
    )
    run_dir.write_json(ENVIRONMENT_FILE, environment)
    stored = run_dir.read_json(RUN_FILE)
    stored["remote"] = {"host": host.name, "address": host.config.address, "mode": mode}
    run_dir.write_json(RUN_FILE, stored)
