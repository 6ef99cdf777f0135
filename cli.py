"""deploybench command line: parse (bench.commands.parser), hand the verb to its command
in bench.commands, turn a bad input into one line and exit code 2.

Each verb's module is imported only when that verb runs, so that a command pays only for
what it uses.
"""

from __future__ import annotations

import importlib
import signal
import sys

from bench.commands.parser import build_parser


def main(argv: list[str] | None = None) -> int:
    import logging

    logging.basicConfig(format="warning: %(message)s", level=logging.WARNING, force=True)
    args = build_parser().parse_args(argv)
    from bench.core.errors import UserError
    from bench.core.lifetime import stop_on_terminate, terminated

    module, _, function = args.handler.partition(":")
    try:
        with stop_on_terminate():  # SIGTERM stops a run as Ctrl-C does
            code = getattr(importlib.import_module(module), function)(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # a verb with nothing to keep: no traceback, just stop
        code = 130
    return 128 + signal.SIGTERM if code == 130 and terminated() else code


if __name__ == "__main__":
    sys.exit(main())
