"""``run --host`` end to end: a real sshd on 127.0.0.1 in front of a fake device whose
JetPack tools are stand-ins that run the models for real (tests/fixtures/edge)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest

import cli
from bench.harness.results import ENVIRONMENT_FILE, RESULTS_FILE, RUN_FILE
from tests.fixtures.edge.devices import device_path
from tests.fixtures.edge.host import start_edge_host
from tests.fixtures.edge.myriad import BENCHMARK_APP

pytestmark = pytest.mark.e2e


def _records(results: Path) -> dict[str, dict]:
    (run,) = results.iterdir()
    lines = (run / RESULTS_FILE).read_text().splitlines()
    return {r["key"]: r for r in map(json.loads, lines)}


def _run_dir(results: Path) -> Path:
    (run,) = results.iterdir()
    return run


def test_tools_mode_on_an_orin(ssh_server, tmp_path: Path, capsys) -> None:
    edge = start_edge_host(ssh_server, tmp_path, "agx-orin-jp6")
    suite = edge.write_suite(
        'models = ["mlp"]\nruntimes = ["tensorrt", "onnxruntime"]\n'
        'devices = ["cuda:0", "dla:0"]\nprecisions = ["fp32", "fp16"]',
        host='mode = "tools"',
    )
    code = cli.main(["run", "--config", str(suite), "--host", "jetson", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "NVIDIA Jetson AGX Orin" in out and "TensorRT 10.3.0" in out and "tools mode" in out
    records = _records(edge.results)
    gpu = records["mlp/tensorrt/cuda:0/fp32/b1/latency"]
    assert gpu["status"] == "ok"
    assert gpu["executed"]["host"] == "jetson" and gpu["executed"]["tensorrt"] == "10.3.0"
    assert gpu["accuracy"]["verdict"] == "pass"
    assert gpu["latency_ms"]["count"] >= 10 and gpu["throughput"]["samples_per_s"] > 0
    power = gpu["power"]
    assert power["source"] == "tegrastats" and power["samples_in_window"] >= 2
    assert 1 < power["avg_w"] < 100 and power["samples_per_j"] > 0
    assert gpu["cold_start"]["build_s"] > 0 and gpu["cold_start"]["build_cache_hit"] is False
    dla = records["mlp/tensorrt/dla:0/fp16/b1/latency"]
    assert dla["status"] == "ok" and dla["executed"]["device"] == "dla:0"
    assert dla["executed"]["precision"] == "fp16"
    assert records["mlp/tensorrt/dla:0/fp32/b1/latency"]["reason"].startswith("a DLA core runs")
    ort = records["mlp/onnxruntime/cuda:0/fp32/b1/latency"]
    assert ort["status"] == "skipped" and "agent mode" in ort["reason"]
    run = _run_dir(edge.results)
    environment = json.loads((run / ENVIRONMENT_FILE).read_text())
    jetson = environment["power"]["state"]["jetson"]
    assert jetson["model"] == "NVIDIA Jetson AGX Orin Developer Kit"
    assert jetson["nvpmodel"]["name"] == "MAXN" and jetson["release"]["jetpack_major"] == "6"
    assert environment["libraries"]["tensorrt"] == "10.3.0"
    assert environment["remote"]["mode"] == "tools" and environment["power"]["changes"] == []
    assert json.loads((run / RUN_FILE).read_text())["remote"]["host"] == "jetson"
    assert not any(edge.home.iterdir())  # the device's disk (models, engines) is its own

    # the board in another power mode: resuming would measure another machine
    nvpmodel = edge.root / "usr/sbin/nvpmodel"
    env = {**os.environ, "DEPLOYBENCH_DEVICE_ROOT": str(edge.root), "PATH": device_path(edge.root)}
    subprocess.run([str(nvpmodel), "-m", "2"], env=env, check=True, capture_output=True)
    argv = ["run", "--resume", str(run), "--host", "jetson", "--config", str(suite)]
    assert cli.main(argv) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {run} was measured in another power state than jetson is in now (nvpmodel "
        "mode changed from MAXN (0) to MODE_30W (2)): set it back first (sudo nvpmodel -m 0; "
        "jetson_clocks as it was), then resume"
    )


@pytest.mark.slow  # test_remote's export test runs TensorRT 8.2's flags and opset in the suite
def test_tools_mode_on_a_nano_exports_at_the_opset_tensorrt_8_2_parses(
    ssh_server, tmp_path: Path, capsys
) -> None:
    """TensorRT 8.2 takes opset 13 and the flags of its day; the stand-in refuses
    anything else, as the real parser and option parser do."""
    edge = start_edge_host(ssh_server, tmp_path, "nano-jp46")
    suite = edge.write_suite(
        'models = ["mlp"]\nruntimes = ["tensorrt"]\ndevices = ["cuda:0", "dla:0"]\n'
        'precisions = ["fp16"]',
        host='mode = "tools"',
    )
    code = cli.main(["run", "--config", str(suite), "--host", "jetson", "--no-progress"])
    assert code == 0, capsys.readouterr().out
    records = _records(edge.results)
    cell = records["mlp/tensorrt/cuda:0/fp16/b1/latency"]
    assert cell["status"] == "ok" and cell["executed"]["tensorrt"] == "8.2.1"
    assert cell["power"]["measures"].startswith("board power, POM_5V_IN")  # JetPack 4's rail
    model = onnx.load(cell["model"]["onnx"], load_external_data=False)
    assert [o.version for o in model.opset_import if o.domain == ""] == [13]
    dla = records["mlp/tensorrt/dla:0/fp16/b1/latency"]
    assert dla["status"] == "skipped" and "0 DLA cores" in dla["reason"]


def test_an_onnx_file_above_the_devices_opset_is_one_line(
    ssh_server, tmp_path: Path, capsys
) -> None:
    edge = start_edge_host(ssh_server, tmp_path, "nano-jp46")
    suite = edge.write_suite('runtimes = ["tensorrt"]\ndevices = ["cuda:0"]', host='mode = "tools"')
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])],
    )
    path = tmp_path / "relu.onnx"
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)]), path)
    argv = ["run", "--config", str(suite), "--host", "jetson", "--onnx", str(path)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "error: relu.onnx is ONNX opset 18, and TensorRT 8.2.1 on jetson parses up to "
        "opset 13: export it again at opset 13 or lower"
    )
    assert not edge.results.exists() or not any(edge.results.iterdir())

    # its own tools score no dataset: the agent mode does
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 13)]), path)
    data = tmp_path / "data.npz"
    np.savez(data, x=np.zeros((40, 4), np.float32), labels=np.arange(40) % 4)
    assert cli.main([*argv, "--dataset", str(data)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: tools mode runs jetson's own tools, which score no --dataset")
    assert not edge.results.exists() or not any(edge.results.iterdir())


@pytest.mark.slow
def test_agent_mode_runs_deploybench_on_the_device(ssh_server, tmp_path: Path, capsys) -> None:
    """The device runs this checkout itself (its deploybench command is on the session's
    PATH); progress streams back line by line and the run folder is copied here."""
    edge = start_edge_host(ssh_server, tmp_path, "agx-orin-jp6")
    suite = edge.write_suite('models = ["mlp"]\nruntimes = ["onnxruntime"]')
    data = tmp_path / "mnist.npz"  # goes to the device with the run
    rng = np.random.default_rng(0)
    np.savez(data, input=rng.random((40, 784), np.float32), labels=np.arange(40) % 10)
    argv = ["run", "--config", str(suite), "--host", "jetson", "--loadgen-duration", "0.3"]
    argv += ["--dataset", str(data), "--dataset-samples", "5"]
    code = cli.main([*argv, "--scenarios", "latency,single_stream"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "agent mode" in out and "jetson> [1/2] mlp/onnxruntime/cpu/fp32/b1/latency: ok" in out
    records = _records(edge.results)
    assert {r["status"] for r in records.values()} == {"ok"} and len(records) == 2
    run = _run_dir(edge.results)
    scored = records["mlp/onnxruntime/cpu/fp32/b1/latency"]["accuracy"]
    assert scored["reference"] == "pytorch fp32 on mnist" and scored["dataset"]["samples"] == 5
    served = records["mlp/onnxruntime/cpu/fp32/b1/single_stream"]
    assert served["loadgen"]["valid"] and all((run / f).is_file() for f in served["files"])
    stored = json.loads((run / RUN_FILE).read_text())["remote"]
    assert stored["mode"] == "agent" and stored["run_dir"].startswith(str(edge.home))
    environment = json.loads((run / ENVIRONMENT_FILE).read_text())
    assert environment["remote"]["host"] == "jetson" and "git" in environment
    # resumed, the device is given its own copy of the dataset again (it reads no file
    # a results folder names)
    assert stored["resume"][0] == "--dataset" and stored["resume"][1].endswith("mnist.npz")
    resume = ["run", "--resume", str(run), "--host", "jetson", "--config", str(suite)]
    assert cli.main(resume) == 0, capsys.readouterr().out


@pytest.mark.slow
def test_a_myriad_x_stick_through_benchmark_app(ssh_server, tmp_path: Path, capsys) -> None:
    edge = start_edge_host(ssh_server, tmp_path, myriad_stick=True)
    suite = edge.write_suite(
        'models = ["mlp"]\nruntimes = ["openvino"]\ndevices = ["myriad"]\n'
        'precisions = ["fp32", "fp16"]\nscenarios = ["latency", "throughput"]',
        host=f'mode = "tools"\nbenchmark_app = "{edge.root / BENCHMARK_APP}"',
    )
    code = cli.main(["run", "--config", str(suite), "--host", "jetson", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0, out
    records = _records(edge.results)
    assert records["mlp/openvino/myriad/fp32/b1/latency"]["reason"].startswith(
        "a Myriad X runs fp16 only"
    )
    for scenario in ("latency", "throughput"):
        cell = records[f"mlp/openvino/myriad/fp16/b1/{scenario}"]
        assert cell["status"] == "ok", cell
        assert cell["executed"]["device"] == "myriad" and cell["executed"]["precision"] == "fp16"
        latency = cell["latency_ms"]
        assert latency["min"] <= latency["median"] <= latency["max"] and latency["p99"] is None
        assert cell["throughput"]["samples_per_s"] > 0
        assert "writes no outputs" in cell["accuracy"]["unavailable"]


def test_a_device_behind_a_jump_host(ssh_server, tmp_path: Path, capsys) -> None:
    """The user's own ssh config decides how the device is reached: here a Host entry
    whose ProxyJump goes through another (the same sshd, as a stand-in gateway)."""
    edge = start_edge_host(ssh_server, tmp_path, "xavier-nx-jp51")
    config = edge.server.ssh_config.read_text()
    block = config[config.index(f"Host {edge.server.alias}") :]
    behind = block.replace(f"Host {edge.server.alias}", "Host behind", 1)
    jumped = tmp_path / "ssh_config_jump"
    jumped.write_text(f"{config}\n{behind}    ProxyJump {edge.server.alias}\n")
    suite = edge.write_suite('runtimes = ["pytorch"]\nmodels = ["mlp"]')  # skipped: no export
    hosts = f'[hosts.behind]\naddress = "behind"\nssh_config = "{jumped}"\nmode = "tools"\n'
    suite.write_text(f"{suite.read_text()}\n{hosts}")
    assert cli.main(["run", "--config", str(suite), "--host", "behind", "--no-progress"]) == 0
    assert "behind: NVIDIA Jetson Xavier NX" in capsys.readouterr().out
    assert edge.server.log_text().count("Accepted publickey") >= 2  # the jump, then the device
    (cell,) = _records(edge.results).values()
    assert cell["status"] == "skipped" and "agent mode" in cell["reason"]


@pytest.mark.slow
def test_tune_on_a_device_in_agent_mode(ssh_server, tmp_path: Path, capsys) -> None:
    """Each configuration is handed over to deploybench on the device; its run folder
    comes back into the tune folder."""
    edge = start_edge_host(ssh_server, tmp_path, "agx-orin-jp6")
    suite = edge.write_suite('models = ["mlp"]\nruntimes = ["onnxruntime"]')
    argv = ["tune", "mlp", "--config", str(suite), "--host", "jetson", "--in-flight", "1,2"]
    code = cli.main([*argv, "--precisions", "fp32", "--latency-bound", "100", "--no-artifact"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "agent mode" in out and "chosen: onnxruntime cpu fp32 b1" in out
    (folder,) = edge.results.glob("*-tune-*")
    data = json.loads((folder / "tune.json").read_text())
    assert data["measurements"] == 2
    runs = list((folder / "runs").iterdir())
    environments = [json.loads((run / ENVIRONMENT_FILE).read_text()) for run in runs]
    assert len(runs) == 2 and all(e["remote"]["host"] == "jetson" for e in environments)
