"""The one error type users see: a single line that names the fix."""


class UserError(Exception):
    """Bad input from the user; the CLI prints the message on one line and exits with status 2."""
