"""The user-facing error type (defined on the ground floor, `fad.runtime.errors`)."""

from fad.runtime.errors import FadError

__all__ = ["FadError"]
