"""Promise 12 (interrupts): Ctrl-C (SIGINT) or SIGTERM during training writes a checkpoint of the
completed iterations and exits non-zero with a resume hint; a signal in the middle of an iteration
waits for its end, so the stopped-and-resumed run is bit-identical to an uninterrupted one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import fad.modeling.fcos.detector as fcos_module
from fad.config import load_config
from fad.engine.loop import LoopHooks, run_loop
from fad.engine.train import run_training as train
from fad.errors import FadError
from fad.runtime.checkpoint import find_resume_checkpoint, load_checkpoint

HINT = "run the same command again to resume"


def _signal_during_loss(monkeypatch, at_call: int, signum: int, times: int = 1) -> None:
    """Send `signum` to this process `times` times from inside the `at_call`-th loss computation."""
    real = fcos_module.fcos_losses
    calls = {"n": 0}

    def signalling(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == at_call:
            for _ in range(times):
                os.kill(os.getpid(), signum)
        return real(*args, **kwargs)

    monkeypatch.setattr(fcos_module, "fcos_losses", signalling)


def test_sigterm_mid_iteration_checkpoints_and_resumes_bit_identically(
    shapes_config, fast_opts, tmp_path, monkeypatch
):
    opts = fast_opts + ["SOLVER.CHECKPOINT_PERIOD", "100"]
    straight = load_config(
        shapes_config, opts + ["SOLVER.MAX_ITER", "3", "OUTPUT_DIR", str(tmp_path / "a")]
    )
    train(straight, skip_test=True)

    stopped = load_config(
        shapes_config, opts + ["SOLVER.MAX_ITER", "3", "OUTPUT_DIR", str(tmp_path / "b")]
    )
    with monkeypatch.context() as patch:
        _signal_during_loss(patch, 2, signal.SIGTERM)
        with pytest.raises(FadError) as err:
            train(stopped, skip_test=True)
    message = str(err.value)
    assert "interrupted at iteration 2" in message and HINT in message
    assert "model_0000002.pth" in message  # iteration 2 finished although the signal came inside
    assert load_checkpoint(tmp_path / "b" / "model_0000002.pth")["iteration"] == 2
    assert not (tmp_path / "b" / "model_final.pth").exists()

    result = train(stopped, skip_test=True)  # the same command again
    assert result["train"]["iterations"] == 1
    assert "resuming from" in (tmp_path / "b" / "log.txt").read_text()
    a = load_checkpoint(tmp_path / "a" / "model_final.pth")
    b = load_checkpoint(tmp_path / "b" / "model_final.pth")
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key


def _loop(step, max_iter: int = 5):
    saved: list[int] = []
    hooks = LoopHooks(
        save=lambda i: saved.append(i) or Path(f"model_{i:07d}.pth"), checkpoint_period=100
    )
    batches = iter(range(max_iter))
    with pytest.raises(FadError) as err:
        run_loop(
            step, batches, start_iter=0, max_iter=max_iter, hooks=hooks, device=torch.device("cpu")
        )
    return saved, str(err.value)


def test_signal_inside_an_iteration_waits_for_its_end():
    finished: list[int] = []

    def step(iteration, batch):
        if iteration == 1:
            os.kill(os.getpid(), signal.SIGINT)
        finished.append(iteration)  # runs although the signal came before it
        return {"loss": torch.tensor(1.0)}

    saved, message = _loop(step)
    assert finished == [0, 1] and saved == [2]
    assert (
        message.startswith("interrupted at iteration 2; checkpoint model_0000002.pth")
        and HINT in message
    )


def test_second_signal_inside_an_iteration_stops_at_once_without_a_torn_checkpoint():
    finished: list[int] = []

    def step(iteration, batch):
        if iteration == 2:
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)
        finished.append(iteration)
        return {"loss": torch.tensor(1.0)}

    saved, message = _loop(step)
    assert finished == [0, 1] and saved == []  # the half-done iteration 3 is not saved
    assert (
        "interrupted twice during iteration 3, no checkpoint written" in message
        and "resume" in message
    )


def _wait_for(path: Path, text: str, proc: subprocess.Popen, limit: float = 300) -> None:
    end = time.monotonic() + limit
    while time.monotonic() < end and proc.poll() is None:
        if path.is_file() and text in path.read_text():
            return
        time.sleep(0.2)
    raise AssertionError(f"{text!r} never appeared in {path} (exit code {proc.poll()})")


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_to_the_fad_train_process_group_checkpoints_and_exits_non_zero_with_hint(
    signum, shapes_config, fast_opts, tmp_path
):
    """As Ctrl-C in a terminal or a cluster's SIGTERM: the whole process group, data loader
    workers included, gets the signal."""
    opts = fast_opts + ["SOLVER.MAX_ITER", "200", "SOLVER.CHECKPOINT_PERIOD", "1000"]
    opts += ["DATALOADER.NUM_WORKERS", "1"]
    command = [sys.executable, "-m", "fad", "train", "--config-file", str(shapes_config), *opts]
    proc = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        start_new_session=True,
    )
    out = tmp_path / "out"
    try:
        _wait_for(out / "log.txt", "iter 1/200", proc)
        os.killpg(proc.pid, signum)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 2, stderr
    assert stderr.startswith("fad train: error: interrupted at iteration ") and HINT in stderr
    assert stderr.count("\n") == 1  # no traceback from a dying worker
    path, ckpt = find_resume_checkpoint(out)
    done = ckpt["iteration"]
    assert done >= 1 and path.name == f"model_{done:07d}.pth" and str(path) in stderr

    cfg = load_config(shapes_config, fast_opts + ["SOLVER.MAX_ITER", str(done + 1)])
    result = train(cfg, skip_test=True)
    assert result["train"]["iterations"] == 1
    assert f"resuming from {path} at iteration {done}" in (out / "log.txt").read_text()
