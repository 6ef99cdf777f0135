"""The one error type that reaches the user as a one-line message and exit code 2."""


class UserError(Exception):
    """Bad input from the user: the message is one line that names the fix."""
