"""Promise 15 (folders): a run owns its OUTPUT_DIR; nothing is written before every check has
passed; a clean-up deletes only fad's own temporary files of a killed writer."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fad.cli import main
from fad.config import load_config
from fad.engine.train import run_training as train
from fad.errors import FadError
from fad.modeling.build import build_detector
from fad.runtime.checkpoint import save_checkpoint

USER_FILES = {"notes.tmp": "my notes", ".draft.md.tmp": "a draft", ".x.1a2b3c4d.tmp": "mine"}


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir() if p.is_file()
    }


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return
        if proc.poll() is not None:
            raise AssertionError(f"the first run ended early: {proc.communicate()[1]}")
        time.sleep(0.2)
    raise AssertionError(f"{path} never appeared")


@pytest.mark.slow
def test_a_second_run_into_a_busy_folder_is_refused_and_a_killed_run_leaves_it_free(
    shapes_config, fast_opts, capsys
):
    out = Path(fast_opts[fast_opts.index("OUTPUT_DIR") + 1])
    args = ["train", "--config-file", str(shapes_config), "--skip-test", *fast_opts]
    first = subprocess.Popen(
        [sys.executable, "-m", "fad", *args, "SOLVER.MAX_ITER", "1000"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        _wait_for(out / "model_0000001.pth", first)
        config = (out / "config.yaml").read_text()
        assert main([*args, "SEED", "7", "SOLVER.MAX_ITER", "2"]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"fad train: error: OUTPUT_DIR {out} is in use by another fad run")
        assert f"(pid {first.pid} on " in err and err.count("\n") == 1
        assert (out / "config.yaml").read_text() == config and "SEED: 0" in config
        assert "SEED: 7" not in (out / "log.txt").read_text()
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    done = max(int(p.stem.split("_")[1]) for p in out.glob("model_0*.pth"))
    assert main([*args, "SOLVER.MAX_ITER", str(done + 1)]) == 0  # not stuck after a SIGKILL
    assert f"at iteration {done}" in (out / "log.txt").read_text()


def _foreign_checkpoint(out: Path, cfg) -> Path:
    model = build_detector(cfg, 5, load_weights=False)
    payload = {"model": model.state_dict(), "iteration": 2, "optimizer": {}}
    return save_checkpoint(out, "model_0000002.pth", payload | {"scheduler": {}, "rng": {}})


def test_a_checkpoint_of_another_model_is_refused_before_config_and_log_are_touched(
    shapes_config, fast_opts
):
    cfg = load_config(shapes_config, fast_opts + ["MODEL.FCOS.NUM_CONVS", "2"])
    out = Path(cfg.OUTPUT_DIR)
    _foreign_checkpoint(out, cfg)
    (out / "config.yaml").write_text("the config of the run that wrote the checkpoint\n")
    (out / "log.txt").write_text("its log\n")
    before = _snapshot(out)
    with pytest.raises(FadError, match="does not match the model"):
        train(load_config(shapes_config, fast_opts + ["SOLVER.MAX_ITER", "3"]), skip_test=True)
    assert _snapshot(out) == before
    assert sorted(p.name for p in out.iterdir()) == sorted(before)  # no lock file left


@pytest.mark.parametrize("weight", ["unsafe", "folder"])
def test_an_unusable_model_weight_is_refused_before_anything_is_written(
    weight, shapes_config, fast_opts, tmp_path
):
    class Payload:
        def __reduce__(self):
            return (print, ("not run",))

    path = tmp_path / "weights.pth"
    if weight == "unsafe":
        torch.save({"model": {}, "x": Payload()}, path)
    else:
        path.mkdir()
    cfg = load_config(shapes_config, fast_opts + ["MODEL.WEIGHT", str(path)])
    out = Path(cfg.OUTPUT_DIR)
    out.mkdir()
    (out / "config.yaml").write_text("an earlier run's config\n")
    (out / "log.txt").write_text("an earlier run's log\n")
    before = _snapshot(out)
    with pytest.raises(FadError, match="MODEL.WEIGHT"):
        train(cfg, skip_test=True)
    assert _snapshot(out) == before and sorted(p.name for p in out.iterdir()) == sorted(before)


def test_a_refused_run_leaves_no_output_dir_behind(shapes_config, fast_opts, tmp_path):
    path = tmp_path / "weights.pth"
    path.mkdir()
    out = tmp_path / "new" / "run"
    cfg = load_config(
        shapes_config, fast_opts + ["MODEL.WEIGHT", str(path), "OUTPUT_DIR", str(out)]
    )
    with pytest.raises(FadError, match="MODEL.WEIGHT"):
        train(cfg, skip_test=True)
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("where", ["current_folder", "symlinked"])
def test_a_run_never_deletes_the_users_tmp_files(
    where, shapes_config, fast_opts, tmp_path, monkeypatch
):
    folder = tmp_path / "work"
    folder.mkdir()
    for name, text in USER_FILES.items():
        (folder / name).write_text(text)
    if where == "current_folder":
        monkeypatch.chdir(folder)
        output_dir = ""
    else:
        output_dir = str(tmp_path / "link")
        (tmp_path / "link").symlink_to(folder)
    opts = fast_opts + ["SOLVER.MAX_ITER", "1", "OUTPUT_DIR", output_dir]
    train(load_config(shapes_config, opts), skip_test=True)
    assert {name: (folder / name).read_text() for name in USER_FILES} == USER_FILES
    assert (folder / "model_final.pth").is_file()
