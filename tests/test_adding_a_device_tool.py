"""Adding a device tool takes one file and one registry line (docs/contributing.md, "Adding a device
tool"): on a scratch copy of the code, tests/fixtures/npu_tool.py is dropped into
bench/remote/ and registered, and nothing else is touched; the device's probe then runs its section
and reads what it found, tools mode plans its cells, names it in the device's
description and measures its cells through it, with records built as every cell's are,
while the Myriad X tool keeps its own cells."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures.scratch import registry_change, scratch_checkout

ROOT = Path(__file__).resolve().parent.parent
REGISTRY = "bench/remote/device_tools.py"

SCRIPT = """
import json, tempfile
from pathlib import Path
from bench.commands.edge import describe
from bench.core.cell import Cell
from bench.core.spec import PreparedModel
from bench.harness.config import HostConfig, config_from_dict
from bench.harness.plan import PlannedCell
from bench.remote.probe import parse_probe
from bench.remote import probe as probing
from bench.remote.tools import ToolsMode, tools_plan


def probe_script():
    class Recorder:
        name = "stick-host"
        def run(self, script, timeout_s, what, check=True):
            self.script = script
            return type("Done", (), {"stdout": ""})()
    ssh = Recorder()
    probing.probe(ssh, HostConfig(address="h"))
    return ssh.script


text = "@@model\\n\\n@@whoami\\n0\\n@@benchmark_app\\n/opt/ba\\n@@npu\\naccel0\\n"
text += "@@setupvars\\n/opt/intel/openvino_2022/setupvars.sh\\n"
device = parse_probe("stick-host", text)
bare = parse_probe("stick-host", text.replace("@@npu", "@@other"))
cells = [Cell("mlp", "openvino", d, p, 1, "latency")
         for d in ("npu", "myriad", "cpu") for p in ("fp16", "fp32")]
plan = {p.cell.key: p.skip_reason for p in tools_plan(device, [PlannedCell(c) for c in cells])}
model = PreparedModel(
    name="mlp", onnx_path=Path("m.onnx"), inputs=(), outputs=(), task="regression", source="zoo"
)
config = config_from_dict({"suite": {"models": ["mlp"]}})
with tempfile.TemporaryDirectory() as scratch:
    tools = ToolsMode(None, device, HostConfig(address="h"), Path(scratch), "none")
    record = tools.measure(cells[0], model, config, Path(scratch), "run", 0)
print(json.dumps({
    "plan": plan,
    "bare": tools_plan(bare, [PlannedCell(cells[0])])[0].skip_reason,
    "describe": describe(device),
    "record": record.to_dict(),
    "section": "section npu;" in probe_script(),
}))
"""


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the code with the NPU tool added."""
    folder = tmp_path_factory.mktemp("checkout")
    return scratch_checkout(
        folder,
        "npu_tool.py",
        "bench/remote",
        REGISTRY,
        [
            (
                "from bench.remote.myriad import MyriadBenchmarkApp\n",
                "from bench.remote.myriad import MyriadBenchmarkApp\n"
                "from bench.remote.npu_tool import NpuBenchmarkApp\n",
            ),
            ("(Trtexec, MyriadBenchmarkApp)", "(Trtexec, MyriadBenchmarkApp, NpuBenchmarkApp)"),
        ],
    )


def test_the_registry_entry_is_the_only_change(checkout: Path) -> None:
    changed = registry_change(checkout, REGISTRY)
    assert changed == [
        "+from bench.remote.npu_tool import NpuBenchmarkApp",
        "-DEVICE_TOOLS: tuple[type[DeviceTool], ...] = (Trtexec, MyriadBenchmarkApp)",
        "+DEVICE_TOOLS: tuple[type[DeviceTool], ...] = (Trtexec, MyriadBenchmarkApp, "
        "NpuBenchmarkApp)",
    ]


def test_a_new_tool_plans_describes_and_measures_its_cells(checkout: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=checkout, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    plan = seen["plan"]
    assert plan["mlp/openvino/npu/fp16/b1/latency"] is None
    assert plan["mlp/openvino/npu/fp32/b1/latency"] == "the NPU runs fp16 here"
    assert plan["mlp/openvino/myriad/fp16/b1/latency"] is None  # the Myriad X tool's still
    assert "fp16 only" in plan["mlp/openvino/myriad/fp32/b1/latency"]
    assert "openvino on npu (benchmark_app)" in plan["mlp/openvino/cpu/fp16/b1/latency"]
    assert seen["bare"] == "no NPU on stick-host (/dev/accel)"  # its own probe section read
    assert seen["section"]  # and sent to the device in the probe's one command
    assert seen["describe"].endswith("benchmark_app, benchmark_app (NPU)")
    record = seen["record"]
    assert record["status"] == "ok" and record["key"] == "mlp/openvino/npu/fp16/b1/latency"
    assert "benchmark_app -d NPU on stick-host: mlp/openvino/npu/fp16/b1/latency" in str(record)
