"""Atomic file writes: temp file in the same folder, write, fsync, check the size, `os.replace`.

A reader (or a process killed mid-write) sees either the old file or the new one, never half.
Files get the permissions the umask gives (0666 & ~umask), as any program's plain writes do.

Temporary files are named `.NAME.fad-PID-XXXXXXXX.tmp` (NAME the target, PID the writer's):
`remove_stale_temporaries` deletes only files of exactly that form whose writer is no longer
alive, never another program's (or the user's) `*.tmp`.
"""

from __future__ import annotations

import io
import os
import re
import stat
import tempfile
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import BinaryIO

from fad.runtime.errors import FadError

_TEMP_RE = re.compile(r"^\.(?P<name>.+)\.fad-(?P<pid>\d+)-[a-z0-9_]{8}\.tmp$")


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Call `write(f)` on an in-memory file, then store its bytes at `path` atomically
    (`atomic_write_bytes`)."""
    buffer = io.BytesIO()
    write(buffer)
    atomic_write_bytes(path, buffer.getbuffer())


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes | memoryview) -> None:
    """Write `data` to a temp file next to `path`, fsync it, check that the file holds exactly
    `len(data)` bytes, then move it over `path`.

    Any OS error (a folder that cannot be made, no permission, a full disk) or a short write
    that the system did not report is a one-line FadError naming `path`; the temp file is
    removed and `path` is left as it was.
    """
    atomic_write_files([(Path(path), data)])


def atomic_write_files(files: Sequence[tuple[Path, bytes | memoryview]]) -> None:
    """Write several files that belong together: every temp file is written and checked first
    (a failure leaves all of them as they were), then they are renamed into place in the given
    order, one right after the other."""
    staged: list[tuple[Path, Path]] = []
    try:
        for path, data in files:
            staged.append((_stage(Path(path), data), Path(path)))
        for tmp, path in staged:
            try:
                os.replace(tmp, path)
            except OSError as exc:
                raise FadError(f"could not write {path}: {exc.strerror or exc}") from exc
    finally:
        for tmp, _ in staged:
            _remove_quietly(tmp)
    for folder in {path.parent for _, path in staged}:
        fsync_dir(folder)


def _stage(path: Path, data: bytes | memoryview) -> Path:
    """A complete, fsynced temp file for `path` holding `data` (its size checked)."""
    tmp = make_temporary(path)
    try:
        fd = os.open(tmp, os.O_WRONLY)
        try:
            _write_all(fd, memoryview(data).cast("B"))
            os.fsync(fd)
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        if size != len(data):
            raise FadError(
                f"could not write {path}: {size} of {len(data)} bytes reached the disk "
                "(a full disk?); the previous file is untouched"
            )
    except OSError as exc:
        _remove_quietly(tmp)
        raise FadError(f"could not write {path}: {exc.strerror or exc}") from exc
    except BaseException:
        _remove_quietly(tmp)
        raise
    return tmp


def make_temporary(path: Path) -> Path:
    """An empty temp file `.NAME.fad-PID-XXXXXXXX.tmp` next to `path` (its folder made if
    missing), with the umask's permissions; a FadError naming `path` when it cannot be made."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{path.name}.fad-{os.getpid()}-", suffix=".tmp", dir=path.parent
        )
    except OSError as exc:
        raise FadError(f"could not write {path}: {exc.strerror or exc}") from None
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
    except OSError:
        pass  # a file system without modes (e.g. FAT): keep what it gives
    finally:
        os.close(fd)
    return Path(tmp)


def _write_all(fd: int, view: memoryview) -> None:
    done = 0
    while done < len(view):
        written = os.write(fd, view[done:])
        if written <= 0:
            raise OSError(28, os.strerror(28))  # ENOSPC: nothing more fits
        done += written


def current_umask() -> int:
    """This process's umask, read without changing it (Linux's /proc), else by setting it back."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def is_own_temporary(path: Path) -> bool:
    """Whether `path` is named as `atomic_write_bytes` names its temp files."""
    return _TEMP_RE.match(Path(path).name) is not None


def remove_stale_temporaries(folder: Path, targets: Collection[str] | None = None) -> list[Path]:
    """Delete the temp files of atomic writes in `folder` whose writer was killed: regular files
    named `.NAME.fad-PID-XXXXXXXX.tmp` whose process PID is gone (and, given `targets`, whose
    NAME is one of them). Nothing else is touched. Returns the paths removed."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP_RE.match(entry.name)
        if match is None or (targets is not None and match["name"] not in targets):
            continue
        try:
            regular = stat.S_ISREG(entry.stat(follow_symlinks=False).st_mode)
        except OSError:
            continue
        if regular and not process_alive(int(match["pid"])):
            _remove_quietly(entry.path)
            removed.append(Path(entry.path))
    return removed


def process_alive(pid: int) -> bool:
    """Whether a process `pid` exists on this machine (this process counts as alive)."""
    if pid == os.getpid():
        return True
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    except OverflowError:
        return False
    return True


def check_writable_folder(folder: Path, what: str) -> None:
    """Raise a one-line FadError unless files can be created in `folder` (made later if missing).

    Its nearest existing ancestor must be a folder in which a file can be created: a probe file
    is created there and removed at once, so nothing is left behind. A symbolic link on the way
    that leads nowhere (dangling or looping) is refused. `what` names the folder in the message
    (e.g. "OUTPUT_DIR").
    """
    folder = Path(folder)
    existing = folder
    while not _exists(existing, what, folder) and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise FadError(f"{what} {folder}: {existing} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".fad-write-check.", suffix=".tmp", dir=existing)
    except OSError as exc:
        raise FadError(f"cannot write in {what} {folder}: {exc.strerror or exc}") from None
    os.close(fd)
    _remove_quietly(probe)


def _exists(path: Path, what: str, folder: Path) -> bool:
    """Whether `path` exists; a symbolic link there that resolves to nothing is a FadError."""
    try:
        os.stat(path)
        return True
    except (FileNotFoundError, NotADirectoryError):
        pass
    except OSError as exc:  # ELOOP, ENAMETOOLONG, ENOTDIR, EACCES...
        raise FadError(f"{what} {folder}: {path}: {exc.strerror or exc}") from None
    if os.path.islink(path):
        raise FadError(
            f"{what} {folder}: {path} is a symbolic link to {os.readlink(path)}, which does "
            "not exist; remove the link or make its target"
        )
    return False


def _remove_quietly(path: str | Path) -> None:
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
