"""A TensorRT engine run by the trtexec binary.

How a trtexec cell fits the Session contract: the timed loops are trtexec's own
(``run_latency`` and ``run_throughput`` run it once with ``--exportTimes`` and turn the
trace into the same LoopRecord the harness's loops make); ``infer`` runs one request on
the given inputs (``--loadInputs``, ``--exportOutput``) for the accuracy check; ``launch``
and the request slots each run a whole trtexec request, which works but is never timed.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.core.cell import Target
from bench.core.spec import PreparedModel
from bench.core.timing import LoopRecord, StopRule
from runtimes.base import Session
from runtimes.tensorrt.build import EngineFile, TrtVersion
from runtimes.tensorrt.inspector import layer_precisions
from runtimes.tensorrt.session import engine_executed, split_summary
from runtimes.tensorrt.trtexec_driver import (
    RunSettings,
    input_files,
    layer_info_flags,
    one_request_flags,
    read_outputs,
    read_trace,
    run_flags,
    run_trtexec,
    trace_record,
    warmup_queries,
)

_SLACK_S = 120.0  # engine load and process start on top of the timed window


class TrtexecSession(Session):
    def __init__(
        self,
        engine_file: EngineFile,
        model: PreparedModel,
        target: Target,
        trtexec: Path,
        cuda_graph: bool = False,
        data_transfers: bool = False,
    ) -> None:
        self._engine = engine_file
        self._trtexec = trtexec
        self._version = TrtVersion.parse(engine_file.version)
        self._run = RunSettings(
            shapes={name: shapes[1] for name, shapes in engine_file.plan.shapes.items()},
            cuda_graph=cuda_graph,
            data_transfers=data_transfers,
            dla_core=target.device_index if target.device_kind == "dla" else None,
        )
        self._scratch = tempfile.TemporaryDirectory(prefix="deploybench-trtexec-")
        self._dir = Path(self._scratch.name)
        self._feeds: dict[str, np.ndarray] = {}
        self._metrics: dict[str, Any] = {}
        self.inputs = model.inputs
        self.outputs = model.outputs
        info = self._dir / "layers.json"
        flags = run_flags(
            self._version, engine_file.path, self._run, StopRule(0, 1), StopRule(0, 1)
        )
        run_trtexec(trtexec, [*flags, *layer_info_flags(info)], _SLACK_S, self._dir)
        layers = layer_precisions(json.loads(info.read_text()))
        self.executed = engine_executed(
            target,
            layers,
            engine_file,
            self._run.cuda_graph,
            self._run.data_transfers,
            trtexec=str(trtexec),
        )

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with tempfile.TemporaryDirectory(dir=self._dir) as scratch:
            directory = Path(scratch)
            inputs = input_files(
                {s.name: feeds[s.name] for s in self.inputs}, directory, self._version
            )
            output = directory / "outputs.json"
            shapes = {spec.name: tuple(np.shape(feeds[spec.name])) for spec in self.inputs}
            run = dataclasses.replace(self._run, shapes=shapes)  # any batch in the profile
            flags = one_request_flags(run, self._engine.path, inputs, output)
            run_trtexec(self._trtexec, flags, _SLACK_S, directory)
            return read_outputs(output)

    def stage(self, feeds: dict[str, np.ndarray]) -> None:
        self._feeds = feeds

    def launch(self) -> None:
        """One whole trtexec request (process start and engine load included): works,
        and is why the timed loops are trtexec's own."""
        self.infer(self._feeds)

    def request_slots(self, feeds: dict[str, np.ndarray], count: int) -> list[Callable[[], None]]:
        return [lambda: self.infer(feeds) for _ in range(count)]

    def run_latency(
        self, feeds: dict[str, np.ndarray], warmup: StopRule, measure: StopRule
    ) -> LoopRecord:
        """trtexec's own loop, one stream: one request at a time."""
        return self._timed(1, warmup, measure)

    def run_throughput(
        self, feeds: dict[str, np.ndarray], in_flight: int, warmup: StopRule, measure: StopRule
    ) -> LoopRecord:
        """trtexec's own loop with ``in_flight`` streams (0: 2, one per stream), each with
        its own execution context."""
        return self._timed(in_flight or 2, warmup, measure)

    def _timed(self, streams: int, warmup: StopRule, measure: StopRule) -> LoopRecord:
        times = self._dir / f"times-{streams}.json"
        run = dataclasses.replace(self._run, streams=streams)
        flags = run_flags(self._version, self._engine.path, run, warmup, measure)
        flags.append(f"--exportTimes={times}")
        timeout = min(measure.max_s, 24 * 3600) + warmup.min_s + _SLACK_S
        output = run_trtexec(self._trtexec, flags, timeout, self._dir)
        record, splits = trace_record(read_trace(times), warmup.min_s * 1000, measure, streams)
        if record.warmup_count == 0 and (reported := warmup_queries(output)) is not None:
            record.warmup_count = reported  # the trace left its warm-up requests out
        self._metrics = split_summary(splits, "trtexec --exportTimes")
        return record

    def device_metrics(self) -> dict[str, Any]:
        return dict(self._metrics)

    def close(self) -> None:
        self._scratch.cleanup()
