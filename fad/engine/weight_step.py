"""One training step, shared by `fad train` and `fad search`: batch preparation and the weight step.

A search iteration is an architect step (``fad.search.architect``) followed by this same weight
step; training is the weight step alone.

Non-finite values: a NaN/Inf loss stops the run before the optimizer step, and so does a NaN/Inf
gradient norm, except under SOLVER.AMP fp16, where it is the loss scaler's overflow signal: the
scaler skips that optimizer step (the weights, or the alphas, stay as they were, so the
post-step checks pass) and halves the scale; a run whose scale falls to `MIN_LOSS_SCALE` (24
skipped steps in a row from the initial 2^16) stops. Weights made non-finite by a step that
was taken stop the run before anything saves them, in every precision.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn

from fad.data.transforms import random_flip
from fad.errors import FadError
from fad.runtime.distributed import any_across_processes
from fad.runtime.precision import Precision
from fad.runtime.seeding import derive_seed

DetectionBatch = tuple[list[Tensor], list[dict[str, Any]]]  # (images [3, H, W], their targets)
MIN_LOSS_SCALE = 2.0**-8  # fp16: below this, the gradients overflow whatever the scale
SCHEDULE_BEFORE_STEP = re.escape("Detected call of `lr_scheduler.step()` before `optimizer.step()`")


class NonFiniteLossError(FadError):
    """A NaN/Inf loss or gradient norm: the run stops before the optimizer step."""


def check_finite(
    iteration: int, values: dict[str, Tensor], device: torch.device, what: str = "loss"
) -> None:
    """Raise NonFiniteLossError on every rank if any rank has a non-finite value."""
    bad = {k: float(v.detach()) for k, v in values.items() if not math.isfinite(float(v.detach()))}
    if any_across_processes(bool(bad), device):
        terms = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in values.items())
        where = terms if bad else f"on another process; here {terms}"
        raise NonFiniteLossError(
            f"non-finite {what} at iteration {iteration + 1} ({where}); "
            "stopped before the optimizer step, the last checkpoint is intact"
        )


def check_grad_norm(
    iteration: int, values: dict[str, Tensor], device: torch.device, precision: Precision, what: str
) -> None:
    """`check_finite` on gradient norms, except under loss scaling (fp16), where a non-finite
    norm means the scaled gradients overflowed: the scaler skips the step instead."""
    if not precision.scaling:
        check_finite(iteration, values, device, what=what)


def check_loss_scale(iteration: int, precision: Precision, device: torch.device) -> None:
    """Stop a fp16 run whose loss scale fell to `MIN_LOSS_SCALE` (on every rank): its
    gradients overflow at every step, so the scaler would skip them all."""
    scale = precision.loss_scale()
    if precision.scaling and any_across_processes(scale <= MIN_LOSS_SCALE, device):
        raise NonFiniteLossError(
            f"non-finite gradients at every step up to iteration {iteration + 1} under "
            f"SOLVER.AMP fp16 (loss scale down to {scale:.3g}); stopped, the last checkpoint is "
            "intact; try SOLVER.AMP bf16 or off"
        )


def all_finite(tensors: list[Tensor]) -> bool:
    """Whether every value of every tensor is finite."""
    values = [t.detach() for t in tensors if t.numel()]
    if not values:
        return True
    return bool(torch.isfinite(torch.nn.utils.get_total_norm(values, math.inf, foreach=True)))


def check_finite_params(
    iteration: int,
    named: list[tuple[str, Tensor]],
    device: torch.device,
    what: str,
    after: str,
) -> None:
    """Raise NonFiniteLossError on every rank if any rank holds a non-finite value in `named`
    (e.g. the weights after the optimizer step): such tensors must never reach a checkpoint.
    One foreach max-norm over all tensors (NaN and Inf propagate through it, and a max cannot
    overflow); the culprit's name is looked up only when there is one."""
    if any_across_processes(not all_finite([t for _, t in named]), device):
        bad = [name for name, t in named if not bool(torch.isfinite(t.detach()).all())]
        where = f"e.g. {bad[0]}" if bad else "on another process"
        raise NonFiniteLossError(
            f"non-finite {what} after the {after} of iteration {iteration + 1} ({where}); "
            "stopped before they could be saved, the last checkpoint is intact"
        )


def prepare_batch(
    batch: DetectionBatch, *, seed: int, iteration: int, flip_prob: float, device: torch.device
) -> DetectionBatch:
    """Random flips drawn from a generator seeded by (seed, iteration), then moved to `device`."""
    generator = torch.Generator().manual_seed(derive_seed(seed, iteration))
    images, targets = random_flip(*batch, generator, flip_prob)
    images = [image.to(device, non_blocking=True) for image in images]
    targets = [
        {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in t.items()} for t in targets
    ]
    return images, targets


class WeightStep:
    """Forward a prepared batch, backward, clip, step the optimizer and the lr schedule.

    Args:
        net: the model (or its DDP wrapper), called as ``net(images, targets) -> loss dict``.
        optimizer, scheduler: stepped once per call.
        device: where the finiteness checks run their collective.
        clipped: the parameters whose gradient norm is clipped (and checked), default all the
            optimizer's.
        clip_grad: the max norm; 0 disables clipping (the norm is still checked).
        precision: the forward pass's autocast and the fp16 loss scaler (default float32); the
            scaler's `update` ends the iteration here.
    Non-finite losses or gradient norms stop the run before the optimizer step (see the module
    doc for fp16); weights made non-finite by the step (e.g. an overflowing lr) stop it before
    anything saves them.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        device: torch.device,
        *,
        clip_grad: float,
        clipped: Iterable[Tensor] | None = None,
        precision: Precision | None = None,
    ) -> None:
        self.net = net
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.device = device
        self.precision = precision or Precision()
        self.max_norm = clip_grad if clip_grad > 0 else float("inf")
        params = [p for group in optimizer.param_groups for p in group["params"]]
        self.clipped = list(params if clipped is None else clipped)
        names = {id(p): n for n, p in getattr(net, "module", net).named_parameters()}
        self.stepped = [(names.get(id(p), "<unnamed>"), p) for p in params]

    def __call__(self, iteration: int, batch: DetectionBatch) -> dict[str, Tensor]:
        precision = self.precision
        with precision.autocast():
            losses = self.net(*batch)
        check_finite(iteration, losses, self.device)
        self.optimizer.zero_grad(set_to_none=True)
        precision.scale(sum(losses.values())).backward()
        precision.unscale_(self.optimizer)
        norm = torch.nn.utils.clip_grad_norm_(self.clipped, self.max_norm)
        check_grad_norm(iteration, {"grad_norm": norm}, self.device, precision, "gradient norm")
        precision.step(self.optimizer)
        precision.update()
        check_loss_scale(iteration, precision, self.device)
        check_finite_params(iteration, self.stepped, self.device, "weights", "optimizer step")
        with warnings.catch_warnings():  # a skipped fp16 step still advances the schedule
            warnings.filterwarnings("ignore", SCHEDULE_BEFORE_STEP, UserWarning)
            self.scheduler.step()
        return losses
