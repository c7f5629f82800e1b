"""A run owns its output folder: an exclusive `flock` on `FOLDER/.fad-lock`.

The kernel drops an flock when its process dies, however it dies (SIGKILL included), so a
crashed run never leaves its folder stuck; a second run into a folder that a live one holds is
refused in one line naming the holder (pid, host, command). Within one process ownership is
re-entrant (the demo's stages, a test that trains twice): the folder is released when the last
owner is released or garbage-collected, and the lock file removed then.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import socket
import sys
import time
import weakref
from pathlib import Path

from fad.runtime.atomic import current_umask
from fad.runtime.errors import FadError

LOCK_NAME = ".fad-lock"
log = logging.getLogger("fad")


class _Lock:
    """The flock this process holds on one folder, shared by its owners."""

    def __init__(self, key: str, fd: int, path: Path, created: list[Path]) -> None:
        self.key = key
        self.fd = fd
        self.path = path
        self.created = created  # folders made to hold the lock, removed again if left empty
        self.owners = 0

    def release(self) -> None:
        self.owners -= 1
        if self.owners > 0:
            return
        _HELD.pop(self.key, None)
        try:
            os.unlink(self.path)  # while still locked: a waiting run re-checks the inode
        except OSError:
            pass
        os.close(self.fd)
        for folder in reversed(self.created):
            try:
                os.rmdir(folder)  # only when empty: a refused run leaves nothing behind
            except OSError:
                break


_HELD: dict[str, _Lock] = {}


class FolderOwner:
    """Ownership of a folder until `release()` (or until this object is garbage-collected)."""

    def __init__(self, lock: _Lock) -> None:
        lock.owners += 1
        self.folder = lock.path.parent
        self._release = weakref.finalize(self, lock.release)

    def release(self) -> None:
        self._release()


def own_folder(folder: Path, what: str = "OUTPUT_DIR") -> FolderOwner:
    """Make `folder` (if missing) and take it for this process; a FadError naming the holder
    when another live process has it. `what` names the folder in messages."""
    folder = Path(folder)
    key = os.path.realpath(folder)
    lock = _HELD.get(key)
    if lock is None:
        lock = _acquire(folder, key, what)
        _HELD[key] = lock
    return FolderOwner(lock)


def _missing_parents(folder: Path) -> list[Path]:
    missing = []
    while not folder.exists() and folder.parent != folder:
        missing.append(folder)
        folder = folder.parent
    return list(reversed(missing))


def _acquire(folder: Path, key: str, what: str) -> _Lock:
    created = _missing_parents(folder)
    path = folder / LOCK_NAME
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FadError(f"cannot make {what} {folder}: {exc.strerror or exc}") from None
    for _ in range(100):  # a holder that releases removes the file: lock the one in place
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666 & ~current_umask())
        except OSError as exc:
            raise FadError(f"cannot lock {what} {folder}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise FadError(
                    f"{what} {folder} is in use by another fad run ({_holder(path)}); wait for "
                    "it to finish or choose another folder"
                ) from None
            log.warning("cannot lock %s %s (%s): running without a lock", what, folder, exc)
            return _Lock(key, os.open(os.devnull, os.O_RDONLY), path, [])
        if _same_file(fd, path):
            _describe_holder(fd)
            return _Lock(key, fd, path, created)
        os.close(fd)
    raise FadError(f"cannot lock {what} {folder}: its lock file keeps changing")


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except OSError:
        return False


def _describe_holder(fd: int) -> None:
    """Write who holds the lock into the lock file (for the message of a refused run)."""
    text = (
        f"pid {os.getpid()} on {socket.gethostname()}, since "
        f"{time.strftime('%Y-%m-%d %H:%M:%S')}: {' '.join(sys.argv)[:300]}\n"
    )
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, text.encode("utf-8", "replace"), 0)
    except OSError:
        pass


def _holder(path: Path) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read(400).strip()
    except OSError:
        text = ""
    return text.splitlines()[0] if text else "a process that holds " + str(path)
