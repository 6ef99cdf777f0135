"""The ground floor: errors, the timing loop, statistics, device probes, model and tensor
specs, the typed cell record, the worker job and the settings they carry.

Everything else stands on this package, and it imports nothing else of the project (a
contract in pyproject.toml, checked by tests/test_layers.py).
"""
