"""Promise 1 (atomic checkpoints): a process SIGKILLed while it writes checkpoints leaves a folder
that resumes from a complete checkpoint, and no completed save is lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from fad.runtime.checkpoint import find_resume_checkpoint, load_checkpoint, remove_partial_writes

# Saves checkpoints 8 MB each, as fast as it can, resuming the numbering from the folder; prints
# the iteration of every save that returned.
WRITER = """
import sys
import torch
from fad.runtime.checkpoint import find_resume_checkpoint, save_checkpoint

folder = sys.argv[1]
found = find_resume_checkpoint(folder)
i = found[1]["iteration"] if found else 0
print("ready", flush=True)
while True:
    i += 1
    payload = {"model": {"w": torch.full((2_000_000,), float(i))}, "iteration": i}
    save_checkpoint(folder, f"model_{i:07d}.pth", payload)
    print(i, flush=True)
"""


def _partial_files(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def _kill_while_saving(folder: Path, mid_write: bool) -> int:
    """Start the writer, SIGKILL it (mid-write: as soon as a temp file shows); return the last
    iteration it reported as saved."""
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(folder)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        assert proc.stdout.readline().strip().isdigit()  # one save done
        end = time.monotonic() + (10 if mid_write else 0.05)
        while time.monotonic() < end and not (mid_write and _partial_files(folder)):
            pass
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    return int(out.split()[-1]) if out.split() else 0


def test_sigkill_while_saving_leaves_a_resumable_folder(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    torn_writes = 0
    reported = 0
    for attempt in range(8):
        mid_write = attempt != 2  # one kill at an arbitrary moment, the others mid-write
        reported = max(reported, _kill_while_saving(folder, mid_write))
        torn_writes += bool(_partial_files(folder))
        for visible in folder.glob("model_*.pth"):  # no half-written checkpoint is visible
            ckpt = load_checkpoint(visible)
            assert torch.equal(ckpt["model"]["w"], torch.full((2_000_000,), ckpt["iteration"]))
        path, ckpt = find_resume_checkpoint(folder)
        assert ckpt["iteration"] >= reported  # no save that returned is lost
        pointed = (folder / "last_checkpoint").read_text().strip()
        assert (folder / pointed).is_file() and not pointed.endswith(".tmp")
        assert not path.name.startswith(".")
        if torn_writes >= 2 and attempt >= 2:
            break
    assert torn_writes >= 2, "never killed a writer mid-write"
    assert remove_partial_writes(folder) >= 1
    assert _partial_files(folder) == []
    assert find_resume_checkpoint(folder)[1]["iteration"] >= reported
