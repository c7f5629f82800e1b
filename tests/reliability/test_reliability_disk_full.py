"""Promise 12 (disk): a full disk while `fad train` saves its second checkpoint is a clear one-line
error; the first checkpoint, the `last_checkpoint` pointer and the folder are as before (no
temporary file left), and the run resumes from the first checkpoint."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from fad.config import load_config
from fad.engine.train import run_training as train
from fad.errors import FadError
from fad.runtime import atomic
from fad.runtime.checkpoint import find_resume_checkpoint


@pytest.mark.parametrize("fault", ["write", "replace"])
def test_disk_full_at_the_second_checkpoint(fault, shapes_config, fast_opts, monkeypatch):
    cfg = load_config(shapes_config, fast_opts + ["SOLVER.MAX_ITER", "3"])
    out = Path(cfg.OUTPUT_DIR)
    real_replace, real_fsync = os.replace, os.fsync
    state = {"saves": 0, "first": None}

    def replace(src, dst):
        if str(dst).endswith(".pth"):
            state["saves"] += 1
            if state["saves"] == 2 and fault == "replace":
                raise OSError(errno.ENOSPC, "No space left on device")
        real_replace(src, dst)
        if str(dst).endswith(".pth") and state["first"] is None:
            state["first"] = Path(dst).read_bytes()

    def fsync(fd):
        name = os.readlink(f"/proc/self/fd/{fd}")
        if fault == "write" and state["saves"] == 1 and ".pth." in name:
            raise OSError(errno.ENOSPC, "No space left on device")  # the data did not fit
        real_fsync(fd)

    monkeypatch.setattr(atomic.os, "replace", replace)
    monkeypatch.setattr(atomic.os, "fsync", fsync)
    with pytest.raises(FadError) as err:
        train(cfg, skip_test=True)
    message = str(err.value)
    assert message == f"could not write {out / 'model_0000002.pth'}: No space left on device"
    assert sorted(p.name for p in out.iterdir() if "pth" in p.name) == ["model_0000001.pth"]
    assert (out / "model_0000001.pth").read_bytes() == state["first"]
    assert (out / "last_checkpoint").read_text().strip() == "model_0000001.pth"
    assert find_resume_checkpoint(out)[1]["iteration"] == 1
