"""Threads and requests in flight per cell (bench.harness.runner.workload)."""

from __future__ import annotations

import psutil

from bench.core.cell import Cell
from bench.harness.config import config_from_dict
from bench.harness.runner import GPU_IN_FLIGHT, Workload, workload


def cell(device: str, scenario: str) -> Cell:
    return Cell("mlp", "pytorch", device, "fp32", 1, scenario)


def test_latency_uses_every_thread_for_one_request() -> None:
    config = config_from_dict({"suite": {"threads": 6}})
    load = workload(config, cell("cpu", "latency"))
    assert (load.threads, load.in_flight) == (6, 1)


def test_cpu_throughput_shares_the_threads_between_requests() -> None:
    config = config_from_dict({"suite": {"threads": 6, "in_flight": 3}})
    load = workload(config, cell("cpu", "throughput"))
    assert (load.threads, load.in_flight) == (2, 3)


def test_cpu_throughput_defaults_to_one_request_per_core() -> None:
    cores = psutil.cpu_count(logical=False) or psutil.cpu_count()
    load = workload(config_from_dict({}), cell("cpu", "throughput"))
    assert load.in_flight == max(2, cores)
    assert load.threads == max(1, cores // load.in_flight)


def test_gpu_throughput_keeps_host_threads_and_defaults_to_two_streams() -> None:
    config = config_from_dict({"suite": {"threads": 6}})
    load = workload(config, cell("cuda:0", "throughput"))
    assert (load.threads, load.in_flight) == (6, GPU_IN_FLIGHT)
    config = config_from_dict({"suite": {"threads": 6, "in_flight": 4}})
    assert workload(config, cell("cuda:0", "throughput")).in_flight == 4


def test_a_runtime_that_chooses_gets_zero_threads_and_requests_unless_set() -> None:
    latency = workload(config_from_dict({}), Cell("mlp", "openvino", "cpu", "fp32", 1, "latency"))
    assert (latency.threads, latency.in_flight) == (0, 1)
    throughput = Cell("mlp", "openvino", "cpu", "fp32", 1, "throughput")
    assert workload(config_from_dict({}), throughput) == Workload(0, 0)
    config = config_from_dict({"suite": {"threads": 4, "in_flight": 3}})
    assert workload(config, throughput) == Workload(4, 3)
