"""Exceptions that the harness turns into a clear status instead of a traceback."""


class UserError(Exception):
    """Bad input from the user: the message is one line that names the fix."""


class Unavailable(Exception):
    """Raised inside a worker when a runtime finds, once loaded, that it cannot serve the
    cell here (a precision the device lacks, say): the cell is ``skipped`` with this reason."""


class TargetLost(UserError):
    """The machine that measures the cells went away mid-run (a device's SSH connection):
    the run stops there, and what was measured is kept for ``--resume``."""
