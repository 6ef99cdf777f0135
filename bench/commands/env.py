"""``cli.py env``: this machine's fingerprint, as environment.json holds it, and a warning
where the installed PyTorch does not suit the machine (bench.harness.install)."""

from __future__ import annotations

import argparse
import json
import sys

from bench.core.devices import cuda_device_count
from bench.harness.environment import fingerprint
from bench.harness.install import install_warnings, torch_build


def env_verb(args: argparse.Namespace) -> int:
    print(json.dumps(fingerprint(), indent=2))
    for warning in install_warnings(cuda_device_count(), torch_build()):
        print(f"warning: {warning}", file=sys.stderr)
    return 0
