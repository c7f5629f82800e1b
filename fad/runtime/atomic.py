"""Atomic file writes: temp file in the same folder, flush, fsync, `os.replace`.

A reader (or a process killed mid-write) sees either the old file or the new one, never half.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from fad.runtime.errors import FadError


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Call `write(f)` on a temp file next to `path`, then move it over `path` atomically.

    Any OS error (a folder that cannot be made, no permission, a full disk) is a one-line
    FadError naming `path`; the temp file is removed and `path` is left as it was.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise FadError(f"could not write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        _remove_quietly(tmp)
        raise FadError(f"could not write {path}: {exc.strerror or exc}") from exc
    except BaseException:
        _remove_quietly(tmp)
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def check_writable_folder(folder: Path, what: str) -> None:
    """Raise a one-line FadError unless files can be created in `folder` (made later if missing).

    Its nearest existing ancestor must be a folder in which a file can be created: a probe file
    is created there and removed at once, so nothing is left behind. `what` names the folder in
    the message (e.g. "OUTPUT_DIR").
    """
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise FadError(f"{what} {folder}: {existing} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".fad-write-check.", suffix=".tmp", dir=existing)
    except OSError as exc:
        raise FadError(f"cannot write in {what} {folder}: {exc.strerror or exc}") from None
    os.close(fd)
    _remove_quietly(probe)


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def fsync_dir(folder: Path) -> None:
    """fsync a folder, so a rename or a new file in it survives a crash (best effort)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
