"""``cli.py env``: this machine's fingerprint, as environment.json holds it."""

from __future__ import annotations

import argparse
import json

from bench.harness.environment import fingerprint


def env_verb(args: argparse.Namespace) -> int:
    print(json.dumps(fingerprint(), indent=2))
    return 0
