"""The one exception type the CLI turns into a one-line error message and a non-zero exit."""


class FadError(Exception):
    """A user-facing error: bad input (file, line, key) that the CLI reports in one line."""
