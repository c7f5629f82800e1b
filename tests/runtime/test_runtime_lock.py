"""A run owns its folder: a second process is refused, a dead holder leaves nothing stuck."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys

import pytest

from fad.errors import FadError
from fad.runtime.lock import LOCK_NAME, own_folder

HOLDER = """
import sys
from fad.runtime.lock import own_folder
owner = own_folder(sys.argv[1])
print("held", flush=True)
sys.stdin.read()
"""


def _hold_in_another_process(folder) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(folder)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_process_is_refused_and_a_killed_holder_leaves_nothing_stuck(tmp_path):
    folder = tmp_path / "run"
    holder = _hold_in_another_process(folder)
    try:
        with pytest.raises(FadError, match=rf"run is in use by another fad run \(pid {holder.pid}"):
            own_folder(folder)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    owner = own_folder(folder)  # the kernel dropped the dead holder's lock
    assert (folder / LOCK_NAME).read_text().startswith(f"pid {os.getpid()} ")
    owner.release()
    assert folder.is_dir() and not (folder / LOCK_NAME).exists()


def test_ownership_is_reentrant_in_one_process_and_ends_with_its_last_owner(tmp_path):
    first = own_folder(tmp_path)
    second = own_folder(tmp_path / ".")  # the same folder, spelt otherwise
    first.release()
    assert (tmp_path / LOCK_NAME).exists()
    del second
    gc.collect()
    assert not (tmp_path / LOCK_NAME).exists()
    holder = _hold_in_another_process(tmp_path)  # free for another process again
    holder.communicate("")


def test_a_released_folder_that_ownership_made_is_removed_when_left_empty(tmp_path):
    owner = own_folder(tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b" / LOCK_NAME).is_file()
    owner.release()
    assert list(tmp_path.iterdir()) == []
    kept = own_folder(tmp_path / "c")
    (tmp_path / "c" / "config.yaml").write_text("SEED: 0\n")
    kept.release()
    assert [p.name for p in (tmp_path / "c").iterdir()] == ["config.yaml"]
