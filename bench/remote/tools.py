"""Tools mode: cells run on the device by its own tools, driven from here over SSH, with
no Python needed there: TensorRT cells by ``trtexec`` (bench.remote.trtexec), Myriad X
cells by OpenVINO 2022.3's ``benchmark_app`` (bench.remote.myriad)."""

from __future__ import annotations

import time
from pathlib import Path

from bench.core.cell import Cell
from bench.core.errors import Unavailable
from bench.core.record import CellRecord
from bench.core.spec import PreparedModel
from bench.harness.config import BenchConfig
from bench.harness.runner import cell_record
from bench.remote.device import CellFailed, CellTimedOut, DeviceWork
from bench.remote.myriad import measure_myriad
from bench.remote.ssh import ConnectionLost, RemoteError
from bench.remote.trtexec import measure_tensorrt

MEASURES = {"tensorrt": measure_tensorrt, "openvino": measure_myriad}
"""How each runtime's cells run on a device's own tools (which ones can:
bench.remote.boards)."""


class ToolsMode(DeviceWork):
    """Measures cells on the device with its own tools (a ``Measurer`` of bench.harness.runner)."""

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
            measure = MEASURES[cell.runtime]
            measured = measure(self, cell, model, config, cache_dir, run_id, repetition, deadline)
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
