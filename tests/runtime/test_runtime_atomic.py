"""Atomic writes: the umask's permissions, short writes caught, only fad's own stale temporary
files cleaned up, symbolic links that lead nowhere refused."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from fad.errors import FadError
from fad.runtime import atomic
from fad.runtime.atomic import (
    atomic_write_bytes,
    atomic_write_text,
    check_writable_folder,
    is_own_temporary,
    remove_stale_temporaries,
)

KILLED_WRITER = """
import os, signal, sys
from pathlib import Path
from fad.runtime import atomic

def dying(fd, view):
    os.write(fd, bytes(view[:1000]))
    os.kill(os.getpid(), signal.SIGKILL)

atomic._write_all = dying
atomic.atomic_write_bytes(Path(sys.argv[1]) / "model_0000001.pth", b"x" * 100000)
"""


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_files_get_the_permissions_the_umask_gives(tmp_path, umask):
    previous = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "config.yaml", "SEED: 0\n")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "config.yaml").stat().st_mode) == 0o666 & ~umask


def test_a_short_write_the_system_does_not_report_is_refused_and_the_old_file_kept(
    tmp_path, monkeypatch
):
    target = tmp_path / "picture.jpg"
    target.write_bytes(b"old picture")
    real_write = os.write

    def lying_write(fd, data):  # a full disk that drops the tail without an error
        real_write(fd, bytes(data[: len(data) // 2]))
        return len(data)

    monkeypatch.setattr(atomic.os, "write", lying_write)
    with pytest.raises(FadError, match=r"could not write .*picture.jpg: 500 of 1000 bytes"):
        atomic_write_bytes(target, b"n" * 1000)
    monkeypatch.undo()
    assert target.read_bytes() == b"old picture"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["picture.jpg"]


def test_cleanup_removes_only_fads_own_temporaries_of_dead_writers(tmp_path):
    subprocess.run([sys.executable, "-c", KILLED_WRITER, str(tmp_path)], check=False)
    (killed,) = [p for p in tmp_path.iterdir() if is_own_temporary(p)]
    assert killed.name.startswith(".model_0000001.pth.fad-") and killed.stat().st_size == 1000
    live = tmp_path / f".log.txt.fad-{os.getppid()}-abcdefgh.tmp"  # a live writer's
    keep = ["notes.tmp", ".draft.txt.tmp", ".model.pth.1a2b3c4d.tmp", "x.fad-1-abcdefgh.tmp"]
    for name in keep:
        (tmp_path / name).write_text("the user's")
    live.write_text("in progress")
    folder_like = tmp_path / ".a.fad-999999999-abcdefgh.tmp"
    folder_like.mkdir()
    assert remove_stale_temporaries(tmp_path) == [killed]
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {*keep, live.name, folder_like.name}
    assert all((tmp_path / name).read_text() == "the user's" for name in keep)


def test_cleanup_can_be_limited_to_some_targets(tmp_path):
    dead = 2**22 + 12345  # above the default pid_max: never a live process
    for name in ("model.onnx", "model.onnx.json", "other.onnx"):
        (tmp_path / f".{name}.fad-{dead}-abcdefgh.tmp").write_text("partial")
    removed = remove_stale_temporaries(tmp_path, {"model.onnx", "model.onnx.json"})
    assert sorted(p.name.split(".fad-")[0] for p in removed) == [".model.onnx", ".model.onnx.json"]
    assert [p.name for p in tmp_path.iterdir()] == [f".other.onnx.fad-{dead}-abcdefgh.tmp"]


def test_symbolic_links_that_lead_nowhere_are_one_line_errors(tmp_path):
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    with pytest.raises(
        FadError, match="dangling is a symbolic link to .*nowhere, which does not exist"
    ):
        check_writable_folder(dangling / "run", "OUTPUT_DIR")
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(FadError, match="loop: Too many levels of symbolic links"):
        check_writable_folder(loop, "OUTPUT_DIR")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dangling", "loop"]


def test_a_folder_reached_through_a_working_link_is_fine(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    check_writable_folder(tmp_path / "link" / "new", "OUTPUT_DIR")
    atomic_write_text(tmp_path / "link" / "new" / "a.txt", "a")
    assert (tmp_path / "real" / "new" / "a.txt").read_text() == "a"
