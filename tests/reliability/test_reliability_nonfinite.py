"""Promise 4 (non-finite loss): an injected NaN loss or infinite gradient norm stops `fad train`
before the optimizer step, naming the iteration and the loss terms; the last good checkpoint is
intact and nothing is written after it. The stop happens on every process together."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

import fad.modeling.fcos.detector as fcos_module
from fad.config import load_config
from fad.engine.step import NonFiniteLossError
from fad.engine.train import run_training as train
from fad.runtime.checkpoint import find_resume_checkpoint


class _InfiniteGradient(torch.autograd.Function):
    """Identity forward; the gradient flowing back is multiplied by +inf."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float("inf")


def _poison(monkeypatch, at_call: int, corrupt) -> dict:
    """Make the `at_call`-th loss computation pass through `corrupt(losses)`; record the sha256
    of every checkpoint present at that moment."""
    real = fcos_module.fcos_losses
    seen = {"calls": 0, "hashes": None}

    def poisoned(*args, **kwargs):
        losses = real(*args, **kwargs)
        seen["calls"] += 1
        if seen["calls"] == at_call:
            folder = seen["folder"]
            seen["hashes"] = {p.name: _sha(p) for p in folder.glob("model_*.pth")}
            losses = corrupt(losses)
        return losses

    monkeypatch.setattr(fcos_module, "fcos_losses", poisoned)
    return seen


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _train_until_error(shapes_config, fast_opts, seen):
    cfg = load_config(shapes_config, fast_opts + ["SOLVER.MAX_ITER", "5"])
    seen["folder"] = Path(cfg.OUTPUT_DIR)
    steps = []
    handle = register_optimizer_step_post_hook(lambda optimizer, args, kwargs: steps.append(1))
    try:
        with pytest.raises(NonFiniteLossError) as err:
            train(cfg, skip_test=True)
    finally:
        handle.remove()
    return Path(cfg.OUTPUT_DIR), str(err.value), len(steps)


def _assert_last_good_checkpoint_intact(out: Path, seen: dict, good: int) -> None:
    names = sorted(p.name for p in out.glob("model_*.pth"))
    assert names == [f"model_{i:07d}.pth" for i in range(1, good + 1)]  # nothing after the fault
    assert {n: _sha(out / n) for n in names} == seen["hashes"]  # untouched since the fault
    assert (out / "last_checkpoint").read_text().strip() == f"model_{good:07d}.pth"
    path, ckpt = find_resume_checkpoint(out)
    assert path.name == f"model_{good:07d}.pth" and ckpt["iteration"] == good
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())


def test_nan_loss_stops_before_the_step_naming_iteration_and_terms(
    shapes_config, fast_opts, monkeypatch
):
    def nan_box_loss(losses):
        return {**losses, "loss_reg": losses["loss_reg"] * float("nan")}

    seen = _poison(monkeypatch, 3, nan_box_loss)
    out, message, steps = _train_until_error(shapes_config, fast_opts, seen)
    assert "non-finite loss at iteration 3" in message
    assert "loss_reg=nan" in message and "loss_cls=" in message and "loss_centerness=" in message
    assert "\n" not in message
    assert steps == 2  # the optimizer never stepped on the NaN
    _assert_last_good_checkpoint_intact(out, seen, good=2)


def test_infinite_gradient_norm_stops_before_the_step(shapes_config, fast_opts, monkeypatch):
    def infinite_gradient(losses):
        return {**losses, "loss_cls": _InfiniteGradient.apply(losses["loss_cls"])}

    seen = _poison(monkeypatch, 2, infinite_gradient)
    out, message, steps = _train_until_error(shapes_config, fast_opts, seen)
    assert "non-finite gradient norm at iteration 2" in message and "grad_norm=" in message
    assert steps == 1
    _assert_last_good_checkpoint_intact(out, seen, good=1)


# Two gloo processes; only rank 1 sees a NaN. Each prints what check_finite did.
RANKS = """
import torch
from fad.runtime.distributed import get_rank, init_from_env
from fad.engine.step import NonFiniteLossError, check_finite

device = init_from_env()
value = float("nan") if get_rank() == 1 else 1.0
try:
    check_finite(6, {"loss_cls": torch.tensor(value)}, device)
    print("continued")
except NonFiniteLossError as exc:
    print("stopped:", exc)
torch.distributed.barrier()
torch.distributed.destroy_process_group()
"""


def test_nan_on_one_process_stops_every_process(two_ranks):
    results = two_ranks(["-c", RANKS], timeout=120)
    assert [code for code, _, _ in results] == [0, 0], results
    outputs = [out for _, out, _ in results]
    assert all(o.startswith("stopped: non-finite loss at iteration 7") for o in outputs), outputs
    assert "(loss_cls=nan)" in outputs[1] and "on another process; here loss_cls=1" in outputs[0]
