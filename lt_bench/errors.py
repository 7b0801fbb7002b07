"""The errors users see: a single line that names the fix."""


class UserError(Exception):
    """Bad input from the user; the CLI prints the message on one line and exits with status 2."""


class UnreadableImage(UserError):
    """An image file of a dataset cannot be opened or decoded; the message names the file and the
    split-list line it comes from."""
