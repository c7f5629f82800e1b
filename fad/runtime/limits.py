"""Budgets on what fad reads, so that no input (from disk or the command line) can make it hang,
exhaust memory or print half a megabyte: sizes, nesting depths, node counts, pixels.

Every file is read only when it is a regular file (a named pipe would block forever, a folder or
a device is never what was meant), and only up to its budget. Going over a budget is a one-line
FadError naming the file (or, for images in training and prediction, a counted skip).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from fad.runtime.errors import FadError

MAX_CONFIG_BYTES = 1 << 20  # a config YAML (the shipped ones are 2-3 KB)
MAX_CONFIG_NODES = 100_000  # YAML nodes of a config, an alias counted each time it is used
MAX_OVERRIDE_CHARS = 10_000  # one KEY or VALUE on the command line
MAX_ANNOTATION_BYTES = 4 << 30  # a COCO json (COCO 2017 train: 448 MB) or a VOC XML
MAX_NESTING = 100  # brackets, YAML or json levels
MAX_IMAGE_PIXELS = 8192 * 8192  # an image (decoded: 200 MB as RGB, 800 MB as floats)
MAX_INPUT_SIDE = 4096  # an image side the detector is given (INPUT.*_SIZE_*, export sizes)
SHOWN_CHARS = 80  # of a bad value, in an error message


def shown(value: object) -> str:
    """`repr(value)`, cut to SHOWN_CHARS characters, for one-line error messages."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else f"{text[: SHOWN_CHARS - 5]} ...{text[-2:]}"


def check_regular_file(path: str | os.PathLike[str], what: str) -> os.stat_result:
    """`os.stat(path)` when `path` is a regular file (a link to one counts); else a one-line
    FadError: not found, a folder, a named pipe, a device, a link that leads nowhere."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        kind = "a symbolic link that leads nowhere" if os.path.islink(path) else "not found"
        raise FadError(f"{what} {path}: {kind}") from None
    except OSError as exc:
        raise FadError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise FadError(f"{what} {path} is {_kind(info.st_mode)}, not a regular file")
    return info


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a special file"


def read_regular_file(path: str | os.PathLike[str], limit: int, what: str) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; a one-line FadError otherwise."""
    size = check_regular_file(path, what).st_size
    if size > limit:
        raise FadError(f"{what} {path} is {_bytes(size)}, more than the {_bytes(limit)} allowed")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # never blocks, even if swapped for a pipe
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise FadError(f"{what} {path} is not a regular file")
            data = f.read(limit + 1)
    except OSError as exc:
        raise FadError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise FadError(f"{what} {path} is more than the {_bytes(limit)} allowed")
    return data


def decode_text(data: bytes, path: str | os.PathLike[str], what: str) -> str:
    """UTF-8 text of a file's `data`; other bytes are a one-line FadError naming the position."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise FadError(
            f"{what} {path}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start})"
        ) from None


def read_text_file(path: str | os.PathLike[str], limit: int, what: str) -> str:
    """`read_regular_file` decoded as UTF-8."""
    return decode_text(read_regular_file(path, limit, what), Path(path), what)


def _bytes(count: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count} bytes"
